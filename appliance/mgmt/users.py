"""Users of the management plane (NETCONF and CLI), from the running configuration.

    db = UserDb.from_config(plane.running, bootstrap_keys=load_bootstrap_keys())
    db.check_password("alice", "s3cret")          # crypt(3) hash, constant-time compare
    db.check_public_key("alice", pkey)             # paramiko.PKey or ("ssh-ed25519", "AAAA...")
    db.role("alice")                               # "admin" | "operator" | "viewer" | None

The users are `fcr-system:system/users/user[name]`: `password-hash` (crypt(3): `$6$`
SHA-512, `$5$` SHA-256, `$y$` yescrypt and whatever else the platform's libcrypt knows),
`role` (default viewer) and `ssh-keys/ssh-key[name]/key` (OpenSSH public key lines).

There is no default password anywhere. With no user configured nobody can log in, except
through the bootstrap path: the public keys in `/etc/fcr/authorized_keys` (BOOTSTRAP_KEYS)
log in as user `admin` with role admin, as long as the configuration has no user with role
admin and no user named `admin`. Once an admin is configured, the file is ignored. See
docs/mgmt.md "Users and roles".

Hashing lives in one place, `crypt_hash()`: Python's `crypt` module (libxcrypt's crypt_r; in
3.11 and 3.12, deprecated, removed in 3.13) → libcrypt through ctypes → a pure-Python
SHA-crypt (`$5$`, `$6$` only; about 3x slower: 6 ms against 2 ms per
SHA-512 check at 5000 rounds).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
import struct
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLES = ("admin", "operator", "viewer")
DEFAULT_ROLE = "viewer"  # the model's default for user/role
BOOTSTRAP_USER = "admin"
BOOTSTRAP_KEYS = "/etc/fcr/authorized_keys"
SYSTEM = "fcr-system:system"

KEY_TYPES = frozenset({
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})

# ---------------------------------------------------------------------------------------
# crypt(3), in one place

_B64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# byte order of the SHA-crypt output encoding: triples, then the tail (spec by U. Drepper)
_ORDER_512 = ((0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
              (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
              (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19),
              (62, 20, 41))
_ORDER_256 = ((0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14), (15, 25, 5), (6, 16, 26),
              (27, 7, 17), (18, 28, 8), (9, 19, 29))


def _b64_24(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(_B64[w & 0x3F])
        w >>= 6
    return "".join(out)


def _repeat(block: bytes, n: int) -> bytes:
    return (block * (n // len(block) + 1))[:n]


def sha_crypt(password: str | bytes, setting: str) -> str | None:
    """Pure-Python SHA-crypt (`$5$` / `$6$`, optional `rounds=N$`); None for other settings."""
    parts = setting.split("$")
    if len(parts) < 3 or parts[0] != "" or parts[1] not in ("5", "6"):
        return None
    h, size = (hashlib.sha512, 64) if parts[1] == "6" else (hashlib.sha256, 32)
    rest = parts[2:]
    rounds, explicit = 5000, False
    if rest[0].startswith("rounds="):
        try:
            rounds = int(rest[0][7:])
        except ValueError:
            return None
        rounds, explicit = min(max(rounds, 1000), 999_999_999), True
        rest = rest[1:]
        if not rest:
            return None
    salt_s = rest[0][:16]
    p = password.encode() if isinstance(password, str) else password
    s = salt_s.encode()
    b = h(p + s + p).digest()
    a = h(p + s)
    a.update(_repeat(b, len(p)))
    n = len(p)
    while n:
        a.update(b if n & 1 else p)
        n >>= 1
    da = a.digest()
    p_seq = _repeat(h(p * len(p)).digest(), len(p))
    s_seq = _repeat(h(s * (16 + da[0])).digest(), len(s))
    c = da
    for i in range(rounds):
        x = h(p_seq if i & 1 else c)
        if i % 3:
            x.update(s_seq)
        if i % 7:
            x.update(p_seq)
        x.update(c if i & 1 else p_seq)
        c = x.digest()
    if size == 64:
        enc = "".join(_b64_24(c[i], c[j], c[k], 4) for i, j, k in _ORDER_512) + _b64_24(0, 0, c[63], 2)
    else:
        enc = "".join(_b64_24(c[i], c[j], c[k], 4) for i, j, k in _ORDER_256) + _b64_24(0, c[31], c[30], 3)
    head = f"${parts[1]}$" + (f"rounds={rounds}$" if explicit else "")
    return f"{head}{salt_s}${enc}"


def _system_crypt() -> tuple[str, Callable[[str, str], str | None]] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt as _crypt  # noqa: PLC0415 - deprecated in 3.11, removed in 3.13
        return "crypt-module", _crypt.crypt
    except ImportError:
        pass
    try:  # Python 3.13+: libxcrypt directly (crypt() is not reentrant: serialize it)
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("crypt")
        if not name:
            return None
        lib = ctypes.CDLL(name)
        fn = lib.crypt
        fn.argtypes, fn.restype = [ctypes.c_char_p, ctypes.c_char_p], ctypes.c_char_p
        lock = threading.Lock()

        def _ctypes_crypt(password: str, setting: str) -> str | None:
            with lock:
                out = fn(password.encode(), setting.encode())
            return out.decode() if out else None

        return "libcrypt-ctypes", _ctypes_crypt
    except (OSError, AttributeError):
        return None


_SYSTEM = _system_crypt()
CRYPT_BACKEND = _SYSTEM[0] if _SYSTEM else "pure-python-sha-crypt"


def crypt_hash(password: str, setting: str) -> str | None:
    """crypt(3) of `password` with `setting` (a full hash or its `$id$salt` prefix); None when
    no backend knows the method. The platform's libcrypt first (yescrypt and friends), the
    pure-Python SHA-crypt when there is none."""
    if "\x00" in password:
        return None
    if _SYSTEM is not None:
        try:
            out = _SYSTEM[1](password, setting)
        except (OSError, ValueError):
            out = None
        # libxcrypt signals failure with "*0" / "*1" (or NULL)
        if out and not out.startswith("*"):
            return out
        if not setting.startswith(("$5$", "$6$")):
            return None
    return sha_crypt(password, setting)


# a real hash to burn the same time on for unknown users (timing must not tell who exists)
_DUMMY_HASH = sha_crypt("fcr-no-such-user", "$6$fcrdummysalt0000$")


# ---------------------------------------------------------------------------------------
# public keys

def parse_key_line(line: str) -> tuple[str, bytes] | None:
    """(type, blob) of an OpenSSH public key line (options before the type are skipped, as in
    authorized_keys); None if there is no valid key in it."""
    parts = line.strip().split()
    for i, part in enumerate(parts[:-1]):
        if part in KEY_TYPES:
            try:
                blob = base64.b64decode(parts[i + 1], validate=True)
            except (binascii.Error, ValueError):
                return None
            return (part, blob) if _blob_type(blob) == part else None
    return None


def _blob_type(blob: bytes) -> str | None:
    if len(blob) < 4:
        return None
    (n,) = struct.unpack(">I", blob[:4])
    if n > len(blob) - 4:
        return None
    try:
        return blob[4:4 + n].decode("ascii")
    except UnicodeDecodeError:
        return None


def _offered(key: Any) -> tuple[str, bytes] | None:
    """(type, blob) of a key offered at login: paramiko.PKey or (type, base64)."""
    if hasattr(key, "asbytes") and hasattr(key, "get_name"):
        blob = key.asbytes()
        return _blob_type(blob) or key.get_name(), blob
    if isinstance(key, tuple | list) and len(key) == 2:
        ktype, b64 = key
        try:
            blob = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError, TypeError):
            return None
        return (str(ktype), blob) if _blob_type(blob) == ktype else None
    return None


def load_bootstrap_keys(path: str | Path = BOOTSTRAP_KEYS) -> list[str]:
    """Key lines of the first-boot admin file; [] when missing, unreadable, or writable by
    group or others (a file anybody may write is no credential)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return []
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


# ---------------------------------------------------------------------------------------
# the user database

@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str | None = None
    keys: tuple[tuple[str, bytes], ...] = ()
    key_lines: tuple[str, ...] = field(default=(), repr=False)
    bootstrap: bool = False


class UserDb:
    def __init__(self, users: Iterable[User] = ()) -> None:
        self._users = {u.name: u for u in users}

    @classmethod
    def from_config(cls, config_json: dict[str, Any], *, bootstrap_keys: Iterable[str] = ()) -> UserDb:
        """Users of an RFC 7951 configuration (running). `bootstrap_keys` (the lines of
        BOOTSTRAP_KEYS, read by the caller) log in as admin only while no admin is configured."""
        users: list[User] = []
        system = (config_json or {}).get(SYSTEM) or {}
        for entry in ((system.get("users") or {}).get("user") or []):
            name = entry.get("name")
            if not isinstance(name, str) or not name:
                continue
            role = entry.get("role", DEFAULT_ROLE)
            if role not in ROLES:
                continue
            ph = entry.get("password-hash")
            lines, keys = [], []
            for k in ((entry.get("ssh-keys") or {}).get("ssh-key") or []):
                line = k.get("key", "")
                parsed = parse_key_line(line)
                if parsed is not None:
                    keys.append(parsed)
                    lines.append(line)
            users.append(User(name, role, ph if isinstance(ph, str) and ph.startswith("$") else None,
                              tuple(keys), tuple(lines)))
        if not any(u.role == "admin" or u.name == BOOTSTRAP_USER for u in users):
            parsed_lines = [(ln, parse_key_line(ln)) for ln in bootstrap_keys]
            good = [(ln, p) for ln, p in parsed_lines if p is not None]
            if good:
                users.append(User(BOOTSTRAP_USER, "admin", None, tuple(p for _, p in good),
                                  tuple(ln for ln, _ in good), bootstrap=True))
        return cls(users)

    def __contains__(self, name: object) -> bool:
        return name in self._users

    def __len__(self) -> int:
        return len(self._users)

    def names(self) -> list[str]:
        return sorted(self._users)

    def user(self, name: str) -> User | None:
        return self._users.get(name)

    def role(self, user: str) -> str | None:
        u = self._users.get(user)
        return u.role if u is not None else None

    def check_password(self, user: str, password: str) -> bool:
        """True if `password` matches the user's crypt(3) hash. The computed and stored hashes
        are compared in constant time; an unknown user or a user without a password costs a
        SHA-512-crypt all the same."""
        u = self._users.get(user)
        stored = u.password_hash if u is not None else None
        if not isinstance(password, str):
            return False
        computed = crypt_hash(password, stored or _DUMMY_HASH or "$6$x$") or ""
        if stored is None:
            return False
        return hmac.compare_digest(computed.encode(), stored.encode())

    def check_public_key(self, user: str, key: Any) -> bool:
        """True if `key` (paramiko.PKey, or (type, base64 blob)) is one of the user's keys.
        (The SSH layer checks the signature; this only says whether the key is authorized.)"""
        u = self._users.get(user)
        offered = _offered(key)
        if u is None or offered is None:
            return False
        ok = False
        for ktype, blob in u.keys:
            ok |= ktype == offered[0] and hmac.compare_digest(blob, offered[1])
        return ok

    def authorized_keys(self, user: str) -> list[str]:
        """The user's key lines (the NetconfServer `authorized_keys` callback)."""
        u = self._users.get(user)
        return list(u.key_lines) if u is not None else []
