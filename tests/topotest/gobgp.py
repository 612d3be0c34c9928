"""GoBGP (gobgpd 3.x) in a namespace; the gRPC API listens on the namespace's loopback."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from . import wait_until
from .netns import Host
from .router import Router, render

API_PORT = 50051

# gobgp's session_state enum (api.PeerState.SessionState) as the CLI prints it in JSON
SESSION_STATES = {
    0: "unknown", 1: "idle", 2: "connect", 3: "active",
    4: "opensent", 5: "openconfirm", 6: "established",
}


class GobgpError(RuntimeError):
    pass


class GobgpRouter(Router):
    """One gobgpd; ``config_toml`` is its complete TOML config (see `render`)."""

    def __init__(
        self,
        host: Host,
        workdir: os.PathLike | str,
        config_toml: str,
        *,
        api_port: int = API_PORT,
        start: bool = True,
    ) -> None:
        super().__init__(host, workdir)
        self.config_toml = config_toml
        self.api = f"127.0.0.1:{api_port}"
        self.api_port = api_port
        if start:
            self.start()

    @staticmethod
    def render(asn: int, router_id: str, neighbors: Sequence[Mapping] = ()) -> str:
        """TOML from templates/gobgpd.toml.j2; neighbors: {"address", "peer_as",
        "afis" (default ["ipv4-unicast"]), "passive", "timers": (keepalive, hold)}."""
        full = []
        for n in neighbors:
            d = {"afis": ["ipv4-unicast"], "passive": False, "timers": None, "connect_retry": 5}
            d.update(n)
            full.append(d)
        return render("gobgpd.toml.j2", asn=asn, router_id=router_id, neighbors=full)

    def start(self) -> None:
        conf = self.workdir / "gobgpd.toml"
        conf.write_text(self.config_toml)
        self._spawn(
            "gobgpd",
            ["gobgpd", "-f", str(conf), "-t", "toml", "-p", "--pprof-disable",
             "--api-hosts", self.api],
        )
        try:
            wait_until(
                lambda: self.running("gobgpd") and self.gobgp("global") is not None,
                15, 0.2, message=f"{self.host.name} gobgpd API",
            )
        except AssertionError as exc:
            raise GobgpError(f"{exc}\n--- gobgpd.out\n{self.tail('gobgpd.out')}") from exc

    @property
    def gobgpd_pid(self) -> int:
        return self.pid("gobgpd")

    def cli(self, *args: str, json_out: bool = True, check: bool = True) -> str:
        argv = ["gobgp", "-u", "127.0.0.1", "-p", str(self.api_port)]
        if json_out:
            argv.append("-j")
        argv += list(args)
        res = self.host.run(argv, check=False, timeout=15)
        if check and res.returncode != 0:
            raise GobgpError(f"{' '.join(argv)}: {res.stdout}{res.stderr}")
        return res.stdout

    def gobgp(self, *args: str):
        """``gobgp -j ARGS`` parsed as JSON (None for empty output)."""
        if len(args) == 1 and " " in args[0]:
            args = tuple(args[0].split())
        out = self.cli(*args)
        if not out.strip():
            return None
        try:
            return json.loads(out)
        except json.JSONDecodeError as exc:
            raise GobgpError(f"not JSON from gobgp {args}: {out[:300]!r}") from exc

    def neighbor(self, address: str) -> dict:
        data = self.gobgp("neighbor", address)
        return data or {}

    def neighbor_state(self, address: str) -> str:
        state = self.neighbor(address).get("state", {}).get("session_state", 0)
        if isinstance(state, int):
            return SESSION_STATES.get(state, str(state))
        return str(state).lower()

    def wait_established(self, address: str, timeout: float = 30.0) -> dict:
        return wait_until(
            lambda: self.neighbor_state(address) == "established" and self.neighbor(address),
            timeout, 0.25, message=f"{self.host.name}: {address} established",
        )

    def rib(self, family: str = "ipv4") -> dict:
        """``gobgp global rib -a FAMILY -j`` -> {prefix: [path, ...]}."""
        return self.gobgp("global", "rib", "-a", family) or {}

    def adj_in(self, address: str, family: str = "ipv4") -> dict:
        return self.gobgp("neighbor", address, "adj-in", "-a", family) or {}

    def add_route(self, prefix: str, *attrs: str, family: str | None = None) -> None:
        """``gobgp global rib add PREFIX [attrs...] -a FAMILY``."""
        family = family or ("ipv6" if ":" in prefix else "ipv4")
        self.cli("global", "rib", "add", prefix, *attrs, "-a", family, json_out=False)

    def del_route(self, prefix: str, family: str | None = None) -> None:
        family = family or ("ipv6" if ":" in prefix else "ipv4")
        self.cli("global", "rib", "del", prefix, "-a", family, json_out=False)


def path_as_path(path: dict) -> list[int]:
    """AS numbers of a gobgp JSON path's AS_PATH attribute (type 2), flattened."""
    for attr in path.get("attrs", []):
        if attr.get("type") == 2:
            out: list[int] = []
            for seg in attr.get("as_paths", []):
                out += seg.get("asns", [])
            return out
    return []


def path_next_hop(path: dict) -> str | None:
    for attr in path.get("attrs", []):
        if attr.get("type") == 3:
            return attr.get("nexthop")
        if attr.get("type") == 14:
            return attr.get("nexthop")
    return None


