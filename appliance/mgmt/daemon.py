"""fcr-mgmtd: the management plane process (owns the datastores, outlives fcrd).

    fcr-mgmtd --state-dir /var/lib/fcr/mgmt --engine-socket /run/fcr/fcrd.sock \\
              [--netconf-host ::] [--netconf-port 830] \\
              [--admin-authorized-keys /etc/fcr/authorized_keys] [--initial-config FILE]

It loads startup.json, pushes running to the engine, keeps watching the engine (a restarted
engine gets running again; NETCONF sessions stay up meanwhile, DESIGN.md invariant 2) and
serves NETCONF over SSH. Users and roles come from the running configuration
(`fcr-system:system/users`, appliance/mgmt/users.py); every NETCONF operation is checked
with appliance/mgmt/access.py. See docs/mgmt.md "fcr-mgmtd".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

from ..engine.client import DEFAULT_SOCKET
from ..log import log_event, setup_logging
from .engine_link import EngineLink
from .plane import ManagementPlane
from .store import Store
from .users import BOOTSTRAP_KEYS, BOOTSTRAP_USER, UserDb, crypt_hash, load_bootstrap_keys

log = logging.getLogger("fcr.mgmt")

DEFAULT_STATE_DIR = "/var/lib/fcr/mgmt"
HOST_KEY = "ssh_host_ed25519_key"
_SALT = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def hash_password(password: str) -> str:
    """SHA-512 crypt(3) of `password` with a fresh random salt."""
    salt = "".join(secrets.choice(_SALT) for _ in range(16))
    out = crypt_hash(password, f"$6${salt}$")
    if not out:
        raise RuntimeError("no crypt(3) backend for $6$")
    return out


def seed_startup(state_dir: str | Path, initial: str | Path, admin_keys: list[str]) -> str | None:
    """First start: when `state_dir` has no startup.json, write `initial` (RFC 7951 JSON)
    there with one user `admin` (role admin) added: with the bootstrap keys as its SSH keys
    when there are any, else with the hash of a random password, which is returned (the
    caller prints it once; it is stored nowhere). Returns None when nothing was seeded or
    no password was made. A configuration that already has a user named admin is kept as
    it is."""
    store = Store(state_dir)
    if store.startup_path.exists():
        return None
    cfg: dict[str, Any] = json.loads(Path(initial).read_text(encoding="utf-8"))
    system = cfg.setdefault("fcr-system:system", {})
    users = system.setdefault("users", {}).setdefault("user", [])
    password = None
    if not any(u.get("name") == BOOTSTRAP_USER for u in users):
        user: dict[str, Any] = {"name": BOOTSTRAP_USER, "role": "admin"}
        if admin_keys:
            user["ssh-keys"] = {"ssh-key": [{"name": f"key{i + 1}", "key": k.strip()}
                                            for i, k in enumerate(admin_keys)]}
        else:
            password = secrets.token_urlsafe(12)
            user["password-hash"] = hash_password(password)
        users.append(user)
    store.write_startup(cfg)
    return password


class Users:
    """The UserDb of the current running configuration, rebuilt when running changes
    (plane.running is replaced, never mutated, on every commit). Safe to call from the SSH
    threads: reading a reference is atomic and a UserDb is immutable."""

    def __init__(self, plane: ManagementPlane, bootstrap_keys_path: str | None) -> None:
        self.plane = plane
        self.path = bootstrap_keys_path
        self._for: Any = None
        self._keys: list[str] = []
        self._db = UserDb()

    def db(self) -> UserDb:
        running = self.plane.running
        keys = load_bootstrap_keys(self.path) if self.path else []
        if running is not self._for or keys != self._keys:
            self._db = UserDb.from_config(running, bootstrap_keys=keys)
            self._for, self._keys = running, keys
        return self._db

    def check_password(self, user: str, password: str) -> bool:
        return self.db().check_password(user, password)

    def authorized_keys(self, user: str) -> list[str]:
        return self.db().authorized_keys(user)

    def role(self, user: str) -> str | None:
        return self.db().role(user)


async def run(args: argparse.Namespace) -> None:
    state_dir = Path(args.state_dir)
    keys_path = args.admin_authorized_keys or None
    if args.initial_config:
        password = seed_startup(state_dir, args.initial_config, load_bootstrap_keys(keys_path) if keys_path else [])
        if password is not None:
            # printed once, on the console; only its hash is kept (startup.json)
            print(f"fcr-mgmtd: first start: NETCONF user '{BOOTSTRAP_USER}' password: {password}\n"
                  "fcr-mgmtd: (shown only now; change it with edit-config on "
                  "/fcr-system:system/users/user[name='admin']/password-hash)", flush=True)
    engine = EngineLink(args.engine_socket, poll_interval=args.poll_interval) if args.engine_socket else None
    plane = ManagementPlane(state_dir, engine)
    await plane.start()
    users = Users(plane, keys_path)
    if not len(users.db()):
        log_event(log, "mgmtd.no-users", level=logging.WARNING,
                  hint=f"no user can log in: configure fcr-system users or put a key in {keys_path or BOOTSTRAP_KEYS}")
    server = None
    if args.netconf_port >= 0:
        from ..netconf.server import NetconfServer

        server = NetconfServer(
            plane, host=args.netconf_host, port=args.netconf_port,
            host_key_path=state_dir / "netconf" / HOST_KEY,
            authenticate=users.check_password, authorized_keys=users.authorized_keys,
            role_of=users.role, engine_call=engine.call if engine is not None else None,
            max_message=args.max_message)
        if engine is not None and args.engine_command:
            from .switchover import SwitchoverRunner

            server.switchover = SwitchoverRunner(args.engine_socket, args.engine_command,
                                                 lambda: plane.running, log_path=args.engine_log)
            plane.switchover_available = True
        await server.start()
        if engine is not None and args.event_interval > 0:
            server.poll_engine_events(engine.call, args.event_interval, socket_path=engine.path,
                                      resync=max(args.event_interval, 10.0))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    log_event(log, "mgmtd.ready", state_dir=str(state_dir), engine=args.engine_socket or "",
              netconf=f"[{server.host}]:{server.port}" if server else "off")
    try:
        await stop.wait()
    finally:
        if server is not None:
            await server.stop()
        await plane.stop()
        log_event(log, "mgmtd.stop")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fcr-mgmtd", description="FCR management plane (NETCONF)")
    ap.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                    help="startup.json, history/, confirmed.json, netconf/ssh_host_ed25519_key")
    ap.add_argument("--engine-socket", default=DEFAULT_SOCKET, help="fcrd control socket ('' for none)")
    ap.add_argument("--netconf-host", default="::", help="address NETCONF listens on (:: = all, dual stack)")
    ap.add_argument("--netconf-port", type=int, default=830, help="NETCONF port (0: any free port, -1: off)")
    ap.add_argument("--admin-authorized-keys", default=BOOTSTRAP_KEYS,
                    help="first-boot keys: log in as admin while no admin user is configured")
    ap.add_argument("--initial-config",
                    help="seed startup.json from this file when the state dir has none (adds user admin)")
    ap.add_argument("--max-message", type=int, default=64 << 20,
                    help="largest NETCONF message in octets; a bigger one closes the session")
    ap.add_argument("--poll-interval", type=float, default=1.0, help="engine liveness poll (s)")
    ap.add_argument("--event-interval", type=float, default=1.0,
                    help="engine state poll for notifications (s; 0: off)")
    ap.add_argument("--engine-command", help="how to start a new routing engine for an in-service "
                    "upgrade (fcr-nsr:switchover with no standby), e.g. 'fcrd --nsr-store /var/lib/fcr/nsr.db'")
    ap.add_argument("--engine-log", help="stdout/stderr of an engine started for an upgrade")
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = ap.parse_args(argv)
    setup_logging(args.log_level)
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # e.g. the NETCONF port is taken
        log_event(log, "mgmtd.failed", level=logging.ERROR, error=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
