"""fcrd started empty plus fcr-mgmtd (the management plane with NETCONF) in one namespace.

    mr = MgmtRouter(host, workdir, initial_config, users={"admin": ("admin", "pw")})
    with mr.netconf("admin") as m:          # ncclient over a socket made inside the namespace
        ...
    mr.restart_fcrd()                        # kill fcrd, start it empty again

Both daemons are started by pid through Host.popen and stopped by pid (Router.stop). The
NETCONF port is 830 inside the namespace; the test process reaches it with a socket created
in the namespace (Host.socket), so no traffic leaves the test's namespaces.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
from collections.abc import Mapping
from pathlib import Path

from ncclient import manager

from . import wait_until
from .fcr import FcrError, fcrd_env, fcrd_path
from .netns import Host
from .router import Router

REPO = Path(__file__).resolve().parents[2]
NETCONF_PORT = 830


def mgmtd_path() -> str:
    venv = REPO / ".venv" / "bin" / "fcr-mgmtd"
    return str(venv) if venv.exists() else "fcr-mgmtd"


def with_users(config: Mapping, users: Mapping[str, tuple[str, str]]) -> dict:
    """`config` with fcr-system users {name: (role, password)} (SHA-512 crypt hashes)."""
    from appliance.mgmt.daemon import hash_password

    cfg = json.loads(json.dumps(config))
    system = cfg.setdefault("fcr-system:system", {})
    system["users"] = {"user": [{"name": n, "role": r, "password-hash": hash_password(pw)}
                                for n, (r, pw) in sorted(users.items())]}
    return cfg


class MgmtRouter(Router):
    def __init__(self, host: Host, workdir: os.PathLike | str, config: Mapping,
                 users: Mapping[str, tuple[str, str]], *, max_message: int = 1 << 20,
                 start: bool = True, fcrd_args: tuple[str, ...] = (),
                 mgmtd_args: tuple[str, ...] = ()) -> None:
        super().__init__(host, workdir)
        self.users = dict(users)
        self.config = with_users(config, users)
        self.control = self.workdir / "control.sock"
        self.state_dir = self.workdir / "mgmt"
        self.initial = self.workdir / "initial.json"
        self.max_message = max_message
        self.fcrd_args = list(fcrd_args)
        self.mgmtd_args = list(mgmtd_args)
        self._restarts = 0
        self._ids = itertools.count(1)
        if start:
            self.start()

    # -- processes --------------------------------------------------------------------------
    def start_fcrd(self, timeout: float = 15.0) -> None:
        if self.control.exists():
            self.control.unlink()
        log = open(self.workdir / "fcrd.log", "ab")  # noqa: SIM115 - the child keeps its copy
        try:
            proc = self.host.popen([fcrd_path(), "--control", str(self.control), *self.fcrd_args],
                                   stdout=log, stderr=log,
                                   env=fcrd_env())
        finally:
            log.close()
        self.procs[f"fcrd{self._restarts}"] = proc
        self.fcrd = proc
        wait_until(lambda: self._fcrd_ready(proc), timeout, 0.1, message="fcrd control socket")

    def _fcrd_ready(self, proc) -> bool:
        if proc.poll() is not None:
            raise FcrError(f"fcrd exited with {proc.returncode}\n{self.tail('fcrd.log')}")
        return self.control.exists()

    def start(self, timeout: float = 20.0) -> None:
        self.initial.write_text(json.dumps(self.config, indent=2))
        self.start_fcrd()
        log = open(self.workdir / "fcr-mgmtd.log", "ab")  # noqa: SIM115
        try:
            self.mgmtd = self.host.popen(
                [mgmtd_path(), "--state-dir", str(self.state_dir), "--engine-socket", str(self.control),
                 "--netconf-port", str(NETCONF_PORT), "--initial-config", str(self.initial),
                 "--admin-authorized-keys", str(self.workdir / "no-such-authorized-keys"),
                 "--max-message", str(self.max_message), "--log-level", "debug", *self.mgmtd_args],
                stdout=log, stderr=log, env=fcrd_env())
        finally:
            log.close()
        self.procs["fcr-mgmtd"] = self.mgmtd

        def ready() -> bool:
            if self.mgmtd.poll() is not None:
                raise FcrError(f"fcr-mgmtd exited with {self.mgmtd.returncode}\n{self.tail('fcr-mgmtd.log')}")
            return "event=mgmtd.ready" in (self.workdir / "fcr-mgmtd.log").read_text(errors="replace")

        wait_until(ready, timeout, 0.1, message="fcr-mgmtd ready")

    def restart_fcrd(self, sig: int = signal.SIGKILL) -> None:
        """Kill fcrd (by pid) and start it again, empty: fcr-mgmtd must give it running."""
        old = self.fcrd
        os.kill(old.pid, sig)
        old.wait(10)
        self._restarts += 1
        self.start_fcrd()

    # -- NETCONF ----------------------------------------------------------------------------
    def socket(self) -> socket.socket:
        s = self.host.socket(socket.AF_INET)
        s.settimeout(10)
        s.connect(("127.0.0.1", NETCONF_PORT))
        s.settimeout(None)
        return s

    def netconf(self, user: str = "admin", password: str | None = None, timeout: float = 30):
        pw = self.users[user][1] if password is None else password
        return manager.connect(host="127.0.0.1", port=NETCONF_PORT, sock=self.socket(), username=user,
                               password=pw, hostkey_verify=False, allow_agent=False, look_for_keys=False,
                               timeout=timeout)

    # -- the engine, directly (for assertions) -----------------------------------------------
    def ctl(self, method: str, **params):
        from .fcr import FcrRouter

        return FcrRouter.ctl(self, method, **params)  # same wire protocol, same socket attribute

    def neighbor_state(self, address: str) -> str:
        for n in self.ctl("bgp.summary").get("neighbors", []):
            if n.get("neighbor-address") == address:
                return n.get("state", "")
        return ""
