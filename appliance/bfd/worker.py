"""BFD in its own process: `BfdProcess` (the engine's side) and the worker's main loop.

Measured (bench/bfd_under_load.py, docs/bfd.md): a BFD *thread* in the routing engine
is not enough at 50 ms × 3 — a full-table ingest holds the GIL inside single C calls
(freeing a million-entry dict, a cyclic GC pass) for 100-150 ms, longer than the
detection time, and the switch interval cannot preempt those. The worker process has
its own interpreter and GIL; `BfdProcess` has the same API as `BfdManager` and talks to
it over a pipe (JSON lines: requests with an id, replies, and transition events).

The worker exits when its stdin closes, so it never outlives the engine; by default it
then goes silent (no AdminDown), as a non-stop-routing switchover needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from .config import SessionConfig, cfg_from_json, cfg_to_json
from .session import BfdManager, Listener, normalize, wait_for_state

REQUEST_TIMEOUT = 5.0

__all__ = ["BfdProcess", "cfg_from_json", "cfg_to_json", "realtime_priority", "serve"]


class BfdProcess:
    """`BfdManager`'s API, served by a worker process (same network namespace)."""

    def __init__(self, *, listen_v4: str = "0.0.0.0", listen_v6: str = "::") -> None:
        self._argv = [sys.executable, "-m", "appliance.bfd.worker", listen_v4, listen_v6]
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._wlock = threading.Lock()
        self._lock = threading.Lock()
        self._next_id = 0
        self._pending: dict[int, list] = {}
        self._listeners: list[tuple[Listener, asyncio.AbstractEventLoop | None]] = []

    def start(self) -> None:
        if self._proc is not None:
            return
        self._proc = subprocess.Popen(
            self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self._reader = threading.Thread(target=self._read, name="bfd-proxy", daemon=True)
        self._reader.start()
        self._call("ping")

    def stop(self, admin_down: bool = False, timeout: float = 5.0) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(Exception):
            self._call("stop", admin_down=admin_down)
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        self._proc = None

    def __enter__(self) -> BfdProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    # -- plumbing ----------------------------------------------------------------------------
    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "event" in msg:
                self._dispatch(msg)
            else:
                with self._lock:
                    slot = self._pending.get(msg.get("id"))
                if slot is not None:
                    slot[1] = msg
                    slot[0].set()
        with self._lock:  # the worker is gone: fail whoever waits
            for slot in self._pending.values():
                slot[1] = {"error": "BFD worker exited"}
                slot[0].set()

    def _dispatch(self, msg: dict) -> None:
        args = (msg["peer"], msg["old"], msg["new"], msg["diag"])
        with self._lock:
            listeners = list(self._listeners)
        for cb, loop in listeners:
            if loop is not None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(cb, *args)
            else:
                with contextlib.suppress(Exception):
                    cb(*args)

    def _call(self, method: str, **params) -> Any:
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("BFD worker not running")
        ev = threading.Event()
        with self._lock:
            self._next_id += 1
            rid = self._next_id
            slot: list = [ev, None]
            self._pending[rid] = slot
        try:
            with self._wlock:
                self._proc.stdin.write(json.dumps({"id": rid, "method": method, "params": params}) + "\n")
                self._proc.stdin.flush()
            if not ev.wait(REQUEST_TIMEOUT):
                raise TimeoutError(f"BFD worker did not answer {method}")
        finally:
            with self._lock:
                self._pending.pop(rid, None)
        reply = slot[1]
        if reply.get("error"):
            kind = reply.get("type")
            if kind == "KeyError":
                raise KeyError(reply.get("key", reply["error"]))
            if kind == "OSError" and reply.get("errno"):
                raise OSError(reply["errno"], reply.get("strerror") or reply["error"])
            raise (ValueError if kind == "ValueError" else RuntimeError)(reply["error"])
        return reply.get("result")

    # -- the BfdManager API ------------------------------------------------------------------
    def add_session(self, cfg: SessionConfig, checkpoint: dict | None = None) -> dict[str, Any]:
        return self._call("add_session", cfg=cfg_to_json(cfg), checkpoint=checkpoint)

    def update_session(self, cfg: SessionConfig) -> None:
        self._call("update_session", cfg=cfg_to_json(cfg))

    def remove_session(self, peer: str, admin_down: bool = True) -> bool:
        return self._call("remove_session", peer=peer, admin_down=admin_down)

    def apply(self, configs: Iterable[SessionConfig]) -> None:
        self._call("apply", cfgs=[cfg_to_json(c) for c in configs])

    def admin_down(self, peer: str) -> None:
        self._call("admin_down", peer=peer)

    def admin_up(self, peer: str) -> None:
        self._call("admin_up", peer=peer)

    def session(self, peer: str) -> dict[str, Any] | None:
        return self._call("session", peer=peer)

    def sessions(self) -> list[dict[str, Any]]:
        return self._call("sessions")

    def state(self, peer: str) -> str | None:
        return self._call("state", peer=peer)

    def checkpoint(self) -> dict[str, Any]:
        return self._call("checkpoint")

    def export_sessions(self, peers: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """`BfdManager.export_sessions` in the worker: checkpoint and silently remove, in one
        step; KeyError (nothing exported) for a peer without a session."""
        return self._call("export_sessions", peers=None if peers is None else list(peers))

    def adopt_sessions(self, exported: dict[str, dict[str, Any]]) -> None:
        """`BfdManager.adopt_sessions` in the worker: restore, send at once, report
        ``(peer, state, state, "adopted")``; all or nothing (ValueError, KeyError, OSError)."""
        self._call("adopt_sessions", exported=exported)

    @property
    def stats(self) -> dict[str, Any]:
        return self._call("stats")

    def wait_state(self, peer: str, state: str, timeout: float) -> bool:
        return wait_for_state(self.state, peer, state, timeout, 0.01)

    def add_listener(self, callback: Listener, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is None:
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_running_loop()
        with self._lock:
            self._listeners.append((callback, loop))

    def remove_listener(self, callback: Listener) -> None:
        with self._lock:
            self._listeners = [(cb, lp) for cb, lp in self._listeners if cb != callback]


def realtime_priority(priority: int = 10) -> str:
    """SCHED_RR for this process (threads started later inherit it), when permitted.

    On 2 busy cores the scheduler alone let the worker wait up to ~90 ms (measured),
    so a loaded engine next to FRR could flap 50 ms × 3; a real-time class bounds that.
    The worker does microseconds of work per packet, so it cannot starve the box."""
    import os

    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
        return f"SCHED_RR {priority}"
    except (OSError, AttributeError) as exc:
        return f"normal ({exc})"


def serve(listen_v4: str, listen_v6: str) -> int:
    sched = realtime_priority()
    out_lock = threading.Lock()

    def emit(obj: dict) -> None:
        with out_lock:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    mgr = BfdManager(listen_v4=listen_v4, listen_v6=listen_v6)
    mgr.add_listener(lambda p, o, n, d: emit({"event": "transition", "peer": p, "old": o, "new": n,
                                              "diag": d, "monotonic": time.monotonic()}))
    mgr.start()
    admin_down = False
    try:
        for line in sys.stdin:
            try:
                req = json.loads(line)
            except json.JSONDecodeError:
                continue
            m, p = req.get("method"), req.get("params") or {}
            try:
                if m == "ping":
                    res: Any = {"scheduling": sched}
                elif m == "stop":
                    admin_down = bool(p.get("admin_down"))
                    emit({"id": req["id"], "result": None})
                    break
                elif m == "add_session":
                    res = mgr.add_session(cfg_from_json(p["cfg"]), p.get("checkpoint"))
                elif m == "update_session":
                    res = mgr.update_session(cfg_from_json(p["cfg"]))
                elif m == "apply":
                    res = mgr.apply([cfg_from_json(c) for c in p["cfgs"]])
                elif m == "stats":
                    res = dict(mgr.stats)
                elif m in ("remove_session",):
                    res = mgr.remove_session(normalize(p["peer"]), p.get("admin_down", True))
                elif m in ("admin_down", "admin_up", "session", "state"):
                    res = getattr(mgr, m)(p["peer"])
                elif m in ("sessions", "checkpoint"):
                    res = getattr(mgr, m)()
                elif m == "export_sessions":
                    res = mgr.export_sessions(p.get("peers"))
                elif m == "adopt_sessions":
                    res = mgr.adopt_sessions(p["exported"])
                else:
                    raise ValueError(f"unknown method {m!r}")
                emit({"id": req["id"], "result": res})
            except (ValueError, KeyError, OSError, RuntimeError) as exc:
                err = {"id": req.get("id"), "error": str(exc), "type": type(exc).__name__}
                if isinstance(exc, KeyError) and exc.args:
                    err["key"] = exc.args[0]
                elif isinstance(exc, OSError):
                    err.update(type="OSError", errno=exc.errno, strerror=exc.strerror)
                emit(err)
    finally:
        mgr.stop(admin_down=admin_down)
    return 0


if __name__ == "__main__":
    sys.exit(serve(*(sys.argv[1:3] or ["0.0.0.0", "::"])))
