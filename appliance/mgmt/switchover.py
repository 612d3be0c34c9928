"""The management plane's side of an NSR switchover (the fcr-nsr:switchover RPC).

- A standby engine is registered in the checkpoint store (another box, or one started by
  an operator): the active engine releases the sessions to it (``nsr.release``); the
  standby adopts them when it sees the lease (it watches it, see NsrAgent).
- None: an in-service upgrade on this box (appliance/nsr/issu.py): a new engine process is
  started from ``--engine-command`` as a standby on a temporary control socket, gets the
  running configuration, adopts the sessions and takes the well-known control path over;
  the old process exits. The NETCONF sessions stay up throughout (DESIGN.md invariant 2).

A VIP ({"address": "10.0.92.1/24", "dev": "eth0"}, the RPC's <vip>) moves the sessions' local
address with them to the standby's box: it goes to ``nsr.release``. It needs a registered
standby; with none the switchover would be an in-service upgrade on this box, and a VIP is
refused before anything starts.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import subprocess
from typing import Any

from ..engine.client import ControlClient, ControlError
from ..log import log_event
from ..nsr.issu import IssuError, run_issu

log = logging.getLogger("fcr.mgmt.switchover")


class SwitchoverRunner:
    def __init__(self, engine_socket: str, engine_command: str, running: Any, *,
                 log_path: str | None = None) -> None:
        self.engine_socket = engine_socket
        self.engine_command = shlex.split(engine_command)
        self.running = running  # () -> the running configuration (RFC 7951 JSON)
        self.log_path = log_path
        self._lock = asyncio.Lock()

    async def __call__(self, engine_id: str | None, *,
                       vip: dict[str, str] | None = None) -> dict[str, Any]:
        if self._lock.locked():
            raise IssuError("a switchover is already under way")
        async with self._lock:
            return await asyncio.to_thread(self._run, engine_id, vip)

    def _call(self, path: str, method: str, **params: Any) -> Any:
        with ControlClient(path, timeout=120.0) as c:
            return c.call(method, **params)

    def _run(self, engine_id: str | None, vip: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            st = self._call(self.engine_socket, "nsr.status")
        except ControlError as exc:
            raise IssuError(str(exc)) from None
        standbys = [s for s in st.get("standbys", []) if s.get("fresh")]
        if engine_id is not None or standbys:
            # hand over to a registered standby (it adopts on its own when the lease moves)
            # (vip only when given: an engine of an older version may not know it)
            extra = {"vip": vip} if vip is not None else {}
            rel = self._call(self.engine_socket, "nsr.release", to=engine_id, **extra)
            log_event(log, "mgmt.switchover", to=rel["to"], epoch=rel["epoch"],
                      **({"vip": vip["address"]} if vip else {}))
            return {"active-engine-id": rel["to"], "epoch": rel["epoch"]}
        if vip is not None:
            # in-service upgrade: the new engine starts on this box, where the address stays
            raise IssuError(f"vip {vip.get('address')} on {vip.get('dev')} needs a standby engine on "
                            "another box; none is registered (fresh) in the checkpoint store, so this "
                            "switchover would be an in-service upgrade on this box, where the address "
                            "stays: refused, nothing changed (start the standby with fcrd --standby, "
                            "or leave out <vip>)")

        def start(new_id: str, control: str) -> subprocess.Popen:
            argv = [*self.engine_command, "--control", control, "--engine-id", new_id,
                    "--standby", "--control-after-adopt", self.engine_socket]
            out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
            try:
                return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                        start_new_session=True)
            finally:
                if out is not subprocess.DEVNULL:
                    out.close()

        def configure(control: str) -> None:
            self._call(control, "config.apply", config=self.running())

        res = run_issu(self.engine_socket, start, configure=configure)
        log_event(log, "mgmt.issu", engine=res["engine-id"], pid=res["pid"],
                  switchover=round(res["switchover"], 3), total=round(res["total"], 3))
        if res.get("error"):  # the new engine has the sessions, something after that failed
            log_event(log, "mgmt.issu-late-error", level=logging.WARNING, engine=res["engine-id"],
                      error=res["error"])
        return {"active-engine-id": res["engine-id"], "epoch": res["adopted"]["epoch"]}
