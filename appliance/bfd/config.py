"""BFD session configuration as the engine consumes it: plain, validated, immutable data.

Field names follow the ``fcr-bfd:bfd`` leaves of docs/configuration.md (intervals in µs).
`from_json` maps that JSON (RFC 7951 shape) to configs, naming the path on errors.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from .packet import AuthType

AUTH_TYPES = {
    "keyed-sha1": AuthType.KEYED_SHA1,
    "meticulous-keyed-sha1": AuthType.METICULOUS_KEYED_SHA1,
}
AUTH_NAMES = {v: k for k, v in AUTH_TYPES.items()}

SLOW_TX = 1_000_000          # µs: §6.8.3, DesiredMinTxInterval while not Up
MIN_INTERVAL = 1_000         # µs: we refuse anything faster than 1 ms


class BfdConfigError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True, slots=True)
class AuthConfig:
    auth_type: AuthType                 # KEYED_SHA1 or METICULOUS_KEYED_SHA1
    key_id: int
    key: bytes                          # 1..20 octets

    @property
    def meticulous(self) -> bool:
        return self.auth_type == AuthType.METICULOUS_KEYED_SHA1


@dataclass(frozen=True, slots=True)
class SessionConfig:
    peer_address: str
    local_address: str | None = None
    interface: str | None = None
    multihop: bool = False
    desired_min_tx: int = 300_000       # µs
    required_min_rx: int = 300_000      # µs
    detect_mult: int = 3
    auth: AuthConfig | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        validate(self)

    @property
    def family(self) -> int:
        return 6 if ":" in self.peer_address else 4

    @property
    def port(self) -> int:
        return 4784 if self.multihop else 3784

    def timers(self) -> tuple[int, int, int]:
        return (self.desired_min_tx, self.required_min_rx, self.detect_mult)


def validate(cfg: SessionConfig, path: str = "session") -> None:
    try:
        peer = ipaddress.ip_address(cfg.peer_address)
    except ValueError:
        raise BfdConfigError(f"{path}/peer-address", f"not an IP address: {cfg.peer_address!r}") from None
    if cfg.local_address is not None:
        try:
            local = ipaddress.ip_address(cfg.local_address)
        except ValueError:
            raise BfdConfigError(f"{path}/local-address", f"not an IP address: {cfg.local_address!r}") from None
        if local.version != peer.version:
            raise BfdConfigError(f"{path}/local-address", "address family differs from the peer's")
    if cfg.multihop and cfg.local_address is None:
        raise BfdConfigError(f"{path}/local-address", "required for a multihop session")
    if not 1 <= cfg.detect_mult <= 255:
        raise BfdConfigError(f"{path}/detection-multiplier", "must be 1..255")
    for name, v in (("desired-min-tx-interval", cfg.desired_min_tx),
                    ("required-min-rx-interval", cfg.required_min_rx)):
        if not MIN_INTERVAL <= v <= 0xFFFFFFFF:
            raise BfdConfigError(f"{path}/{name}", f"must be {MIN_INTERVAL}..4294967295 µs")
    if cfg.auth is not None:
        if cfg.auth.auth_type not in AUTH_NAMES:
            raise BfdConfigError(f"{path}/authentication/type", "keyed-sha1 or meticulous-keyed-sha1")
        if not 0 <= cfg.auth.key_id <= 255:
            raise BfdConfigError(f"{path}/authentication/key-id", "must be 0..255")
        if not 1 <= len(cfg.auth.key) <= 20:
            raise BfdConfigError(f"{path}/authentication/key", "1..20 octets")


def cfg_to_json(c: SessionConfig) -> dict[str, Any]:
    """A `SessionConfig` as plain JSON-able data (the key in hex); inverse of `cfg_from_json`.
    Used on the worker pipe and in handover exports (`BfdManager.export_sessions`)."""
    d = {f: getattr(c, f) for f in SessionConfig.__slots__}
    if c.auth is not None:
        d["auth"] = {"auth_type": int(c.auth.auth_type), "key_id": c.auth.key_id, "key": c.auth.key.hex()}
    return d


def cfg_from_json(d: dict[str, Any]) -> SessionConfig:
    d = dict(d)
    a = d.pop("auth", None)
    auth = None if a is None else AuthConfig(AuthType(a["auth_type"]), a["key_id"], bytes.fromhex(a["key"]))
    return SessionConfig(auth=auth, **d)


def _get(d: dict, name: str) -> Any:
    for k, v in d.items():
        if k == name or k.endswith(":" + name):
            return v
    return None


def from_json(doc: dict[str, Any]) -> list[SessionConfig]:
    """``{"fcr-bfd:bfd": {"sessions": {"session": [...]}}}`` (or the inner ``bfd`` object)."""
    bfd = _get(doc, "bfd")
    if bfd is None:
        bfd = doc
    sessions = (_get(bfd, "sessions") or {}).get("session", [])
    out = []
    for i, s in enumerate(sessions):
        path = f"/fcr-bfd:bfd/sessions/session[{i}]"
        if not isinstance(s, dict) or "peer-address" not in s:
            raise BfdConfigError(path, "a session needs peer-address")
        auth = None
        a = s.get("authentication")
        if a:
            t = AUTH_TYPES.get(a.get("type", ""))
            if t is None:
                raise BfdConfigError(f"{path}/authentication/type", f"unknown {a.get('type')!r}")
            key = a.get("key", "")
            auth = AuthConfig(t, int(a.get("key-id", 0)), key.encode() if isinstance(key, str) else bytes(key))
        try:
            cfg = SessionConfig(
                peer_address=s["peer-address"],
                local_address=s.get("local-address"),
                interface=s.get("interface"),
                multihop=bool(s.get("multihop", False)),
                desired_min_tx=int(s.get("desired-min-tx-interval", 300_000)),
                required_min_rx=int(s.get("required-min-rx-interval", 300_000)),
                detect_mult=int(s.get("detection-multiplier", 3)),
                auth=auth,
                enabled=bool(s.get("enabled", True)),
            )
        except BfdConfigError as exc:
            raise BfdConfigError(path + exc.path.removeprefix("session"), str(exc).split(": ", 1)[1]) from None
        out.append(cfg)
    return out
