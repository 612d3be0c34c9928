"""In-service software upgrade on one box: a new engine process takes every session over.

The sequence (docs/nsr.md, "ISSU runbook"), driven over the engines' control sockets:

1. start the new engine as a standby (``fcrd --standby --nsr-store ... --engine-id X
   --control <temporary path> --control-after-adopt <the active engine's path>``); it may
   be another version of FCR; it gets the same configuration (the startup file, or the
   management plane's ``config.apply``);
2. wait until the active engine sees it in the store, alive and with the same
   configuration digest (else: refused, the new process is stopped, nothing changed);
3. ``nsr.release`` on the active engine (pause, checkpoint, freeze, dump, lease transfer);
4. ``nsr.adopt`` on the new one (restore, unfreeze, KEEPALIVE, RIBs, BFD, FIB); it takes
   the well-known control path over;
5. the old engine exits (SIGTERM: it owns nothing any more, so it says nothing).

If step 4 fails (the new engine dies or refuses), the old engine resumes from its own
checkpoint (``nsr.resume``) and the new process is killed.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..engine.client import ControlClient, ControlError

READY_TIMEOUT = 30.0


class IssuError(Exception):
    """The upgrade did not happen; ``resumed`` says whether the old engine kept the sessions."""

    def __init__(self, message: str, resumed: bool = True) -> None:
        super().__init__(message)
        self.resumed = resumed


def call(path: str, method: str, timeout: float = 30.0, **params: Any) -> Any:
    with ControlClient(path, timeout=timeout) as c:
        return c.call(method, **params)


def _wait(pred: Callable[[], Any], timeout: float, what: str, proc: Any = None) -> Any:
    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise IssuError(f"the new engine exited with {proc.returncode} while {what}")
        try:
            v = pred()
            if v:
                return v
        except (OSError, ControlError) as exc:
            last = exc
        time.sleep(0.05)
    raise IssuError(f"timed out after {timeout} s: {what}" + (f" ({last})" if last else ""))


def run_issu(
    active_control: str,
    start_standby: Callable[[str, str], Any],
    *,
    configure: Callable[[str], None] | None = None,
    ready_timeout: float = READY_TIMEOUT,
    stop_old: bool = True,
) -> dict[str, Any]:
    """Upgrade the engine serving ``active_control``. ``start_standby(engine_id,
    control_path)`` starts the new engine and returns its process (``poll``/``kill``/
    ``pid``); ``configure(control_path)`` pushes the configuration when the new engine
    has no startup file. Returns the timings; IssuError when refused or rolled back."""
    t0 = time.monotonic()
    before = call(active_control, "nsr.status")
    if not before.get("active"):
        raise IssuError(f"the engine at {active_control} is not the active one ({before.get('role')})")
    old_pid = before.get("pid")
    engine_id = f"fcrd-{uuid.uuid4().hex[:8]}"
    tmp = f"{active_control}.{engine_id}"
    proc = start_standby(engine_id, tmp)
    try:
        _wait(lambda: os.path.exists(tmp) and call(tmp, "engine.ping"), ready_timeout,
              "waiting for the new engine's control socket", proc)
        if configure is not None:
            configure(tmp)

        def synced() -> bool:
            st = call(active_control, "nsr.status")
            return any(s.get("engine-id") == engine_id and s.get("fresh") and s.get("synchronized")
                       and s.get("ready") for s in st.get("standbys", []))

        _wait(synced, ready_timeout, "waiting for the new engine to be in sync", proc)
    except BaseException:
        _kill(proc)
        raise
    t_ready = time.monotonic()
    try:
        released = call(active_control, "nsr.release", to=engine_id)
    except ControlError as exc:
        _kill(proc)
        raise IssuError(str(exc)) from exc
    try:
        adopted = call(tmp, "nsr.adopt", timeout=120.0)
    except (OSError, ControlError) as exc:
        _kill(proc)
        try:
            call(active_control, "nsr.resume")
        except (OSError, ControlError) as exc2:
            raise IssuError(f"the new engine failed ({exc}) and the old one could not resume: {exc2}",
                            resumed=False) from exc
        raise IssuError(f"the new engine failed ({exc}); the old engine resumed the sessions") from exc
    t_done = time.monotonic()
    if stop_old and old_pid:
        try:
            os.kill(int(old_pid), signal.SIGTERM)
        except ProcessLookupError:
            pass
    return {"engine-id": engine_id, "pid": getattr(proc, "pid", None), "old-pid": old_pid,
            "released": released, "adopted": adopted,
            "wait-ready": t_ready - t0, "switchover": t_done - t_ready, "total": t_done - t0}


def _kill(proc: Any) -> None:
    try:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    except Exception:  # noqa: BLE001 - best effort on the way out
        pass
