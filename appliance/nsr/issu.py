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

If step 4 fails, what happens depends on whether the new engine took the sessions: it
did once its ``nsr.status`` says role ``active`` (set when its restored sockets have left
repair mode and the freeze is lifted: from then on they are live connections, and killing
the process would make the kernel send FIN/RST on every one of them, while the old engine's
checkpoint is already stale). So after a failed or unanswered ``nsr.adopt``:

- the new engine died, or it answers as ``standby`` (refused, or failed before its sockets
  were live; nothing of it reached the wire): it is killed and the old engine resumes from
  its own checkpoint (``nsr.resume``) -- a rollback;
- it answers as ``active`` (on the temporary path, or on the well-known one it has moved
  to): the upgrade happened but something late failed (an error after the sessions were
  adopted, an answer that came too late): the new engine is kept, the old one stopped as
  usual, and the error is reported in the result (``error``);
- it is alive but does not answer (its loop is busy, or it hangs): nobody can tell who has
  the sessions; both are left running and IssuError(resumed=False) says so.

A remaining window: a standby that refused ``nsr.adopt`` for a passing reason (a store
hiccup) retries on its own when it sees the lease is its; should that retry succeed
between its status answer and the kill, the kill closes live sockets.
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
RPC_TIMEOUT = 120.0    # s: nsr.release / nsr.adopt / nsr.resume (1M routes take tens of seconds)
STATUS_TIMEOUT = 5.0   # s: one nsr.status question while finding out what happened
PROBE_TIMEOUT = 15.0   # s: how long a failed adoption's outcome is looked for


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
    error: str | None = None
    try:
        released = call(active_control, "nsr.release", timeout=RPC_TIMEOUT, to=engine_id)
    except (OSError, ControlError) as exc:
        released = _release_failed(active_control, exc, before, engine_id, proc)
    try:
        adopted = call(tmp, "nsr.adopt", timeout=RPC_TIMEOUT)
    except (OSError, ControlError) as exc:
        state, st = new_engine_state(active_control, tmp, engine_id, proc)
        if state == "adopted":
            # the sessions are the new engine's now: killing it would reset them
            error = f"nsr.adopt: {exc}"
            adopted = _adopted_from_status(st)
        elif state == "unknown":
            raise IssuError(f"the new engine failed ({exc}) and does not answer; it may hold the "
                            f"sessions, so neither engine was stopped (new pid "
                            f"{getattr(proc, 'pid', None)}, old pid {old_pid})", resumed=False) from exc
        else:  # died, or still a standby: nothing of it is on the wire, roll back
            _rollback(active_control, proc, exc)
    t_done = time.monotonic()
    if stop_old and old_pid:
        _terminate(int(old_pid))
    return {"engine-id": engine_id, "pid": getattr(proc, "pid", None), "old-pid": old_pid,
            "released": released, "adopted": adopted, "error": error,
            "wait-ready": t_ready - t0, "switchover": t_done - t_ready, "total": t_done - t0}


def _release_failed(active_control: str, exc: Exception, before: dict[str, Any], engine_id: str,
                    proc: Any) -> dict[str, Any]:
    """``nsr.release`` did not answer with a result. An error the engine sent is a refusal
    (nothing changed). No answer (timeout, connection closed) is not: the lease may have
    moved. Then the old engine is asked: 'released' -> go on with the adoption."""
    answered = isinstance(exc, ControlError) and "closed the control connection" not in str(exc)
    if not answered:
        try:
            st = call(active_control, "nsr.status", timeout=STATUS_TIMEOUT)
        except (OSError, ControlError):
            st = None
        if st is not None and st.get("engine-id") == before.get("engine-id") and st.get("role") == "released":
            last = st.get("last-switchover") or {}
            return {"to": last.get("to", engine_id), "epoch": last.get("epoch"),
                    "note": f"no answer to nsr.release ({exc}); the engine says it released"}
        # the old engine may have died after the lease moved: the standby then adopts on its
        # own (it watches the lease), and must not be killed once it has
        state, _st = new_engine_state(active_control, f"{active_control}.{engine_id}", engine_id, proc,
                                      wait=2.0)
        if state == "adopted":
            raise IssuError(f"nsr.release failed ({exc}) but the new engine {engine_id} took the "
                            "sessions; it was kept", resumed=False) from exc
        _kill(proc)
        raise IssuError(f"nsr.release failed: {exc}", resumed=bool(st and st.get("active"))) from exc
    _kill(proc)
    raise IssuError(str(exc)) from exc


def _rollback(active_control: str, proc: Any, exc: Exception) -> None:
    _kill(proc)
    try:
        call(active_control, "nsr.resume", timeout=RPC_TIMEOUT)
    except (OSError, ControlError) as exc2:
        raise IssuError(f"the new engine failed ({exc}) and the old one could not resume: {exc2}",
                        resumed=False) from exc
    raise IssuError(f"the new engine failed ({exc}); the old engine resumed the sessions") from exc


def new_engine_state(active_control: str, tmp: str, engine_id: str, proc: Any,
                     wait: float | None = None) -> tuple[str, dict[str, Any] | None]:
    """Did the new engine take the sessions? ``("dead", None)``, ``("adopted", status)``,
    ``("standby", status)`` or ``("unknown", None)`` (alive, no answer within ``wait`` s).
    It answers on its temporary control path until it has adopted, then on the well-known
    one (``--control-after-adopt``); whichever engine answers there says who it is."""
    end = time.monotonic() + (PROBE_TIMEOUT if wait is None else wait)
    while True:
        if proc.poll() is not None:
            return "dead", None
        for path in (tmp, active_control):
            try:
                st = call(path, "nsr.status", timeout=STATUS_TIMEOUT)
            except (OSError, ControlError):
                continue
            if st.get("engine-id") != engine_id:
                continue  # the old engine, still on its path
            if st.get("role") == "active":
                return "adopted", st
            # standby: it never made its sockets live; fenced: it went silent on its own
            return "standby", st
        if time.monotonic() >= end:
            # one last look: a process that exited while we asked is dead, not unknown
            return ("dead", None) if proc.poll() is not None else ("unknown", None)
        time.sleep(0.1)


def _adopted_from_status(st: dict[str, Any] | None) -> dict[str, Any]:
    st = st or {}
    last = st.get("last-switchover") or {}
    lease = st.get("lease") or {}
    epoch = st.get("epoch") if st.get("epoch") is not None else lease.get("epoch", last.get("epoch"))
    return {"epoch": epoch, "peers": st.get("sessions", []), "timing": last.get("timing"),
            "from-status": True}


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _kill(proc: Any) -> None:
    try:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    except Exception:  # noqa: BLE001 - best effort on the way out
        pass
