"""The FIB: programs the RIB's selected routes into one kernel table, off the event loop.

What is ours: routes in ``table`` whose rtnetlink protocol is ``protocol`` (default 196).
Nothing else is read as ours, changed or deleted. On start the table is dumped (filtered by
table and protocol) and taken as the installed state; desired routes are then applied as a
diff (add what is missing, replace what differs, leave equal routes alone). Our routes that
nobody wants any more ("stale") are deleted only when the engine says the protocols have
converged (`converged()`), so a restarted engine never withdraws forwarding it is about to
re-learn (DESIGN.md invariant 5). The table is never flushed.

Threading: the RIB hands changes to `set_many` (a dict merge under a lock: cheap, coalescing
repeated changes of a prefix); a worker thread drains them in slices of ``batch`` routes,
encodes them and sends each slice in a few ``sendmsg`` calls (netlink.RouteSocket.batch).
The event loop never waits on netlink. Failures are kept per prefix.
"""

from __future__ import annotations

import threading
import time

from . import netlink
from .netlink import KernelRoute

OP_ADD, OP_REPLACE, OP_DELETE = 0, 1, 2


class Fib:
    def __init__(self, table: int = 254, protocol: int = 196, metric: int = 20,
                 netns: str | None = None, batch: int = 4000) -> None:
        self.table = table
        self.protocol = protocol
        self.metric = metric
        self.netns = netns
        self.batch = batch
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._installed: dict[int, dict[int, KernelRoute]] = {4: {}, 6: {}}
        self._pending: dict[int, dict[int, KernelRoute | None]] = {4: {}, 6: {}}
        self._failed: dict[int, dict[int, str]] = {4: {}, 6: {}}
        self._stale: dict[int, set[int]] = {4: set(), 6: set()}
        self._busy = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self._sock: netlink.RouteSocket | None = None
        self.stats = {"added": 0, "replaced": 0, "deleted": 0, "failed": 0, "unchanged": 0,
                      "batches": 0, "found-at-start": 0}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Open the socket, read what is ours in the kernel, start the worker."""
        self._sock = netlink.RouteSocket(self.netns)
        for fam in (4, 6):
            found = self._sock.dump_routes(fam, self.table, self.protocol)
            self._installed[fam] = found
            self._stale[fam] = set(found)
            self.stats["found-at-start"] += len(found)
        self._thread = threading.Thread(target=self._run, name="fcr-fib", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- input from the RIB ----------------------------------------------------------------
    def set_many(self, fam: int, changes: dict[int, KernelRoute | None]) -> None:
        """Desired state per prefix (None: not in the FIB). Coalesced; applied by the worker."""
        if not changes:
            return
        with self._cond:
            self._pending[fam].update(changes)
            stale = self._stale[fam]
            if stale:
                for key, route in changes.items():
                    if route is not None:
                        stale.discard(key)
            self._cond.notify()

    def converged(self) -> int:
        """Delete our routes that no protocol wants (found at start, never re-announced)."""
        n = 0
        with self._cond:
            for fam in (4, 6):
                pend = self._pending[fam]
                for key in self._stale[fam]:
                    if key not in pend:
                        pend[key] = None
                        n += 1
                self._stale[fam] = set()
            self._cond.notify()
        return n

    def wait_idle(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy or any(self._pending.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    # -- state -----------------------------------------------------------------------------
    def status(self, fam: int, key: int, wanted: KernelRoute | None) -> str:
        with self._lock:
            if key in self._pending[fam]:
                return "pending"
            err = self._failed[fam].get(key)
            if err is not None:
                return f"fib-failed: {err}"
            have = self._installed[fam].get(key)
        if wanted is None:
            return "not-installed" if have is None else "stale"
        return "installed" if have == wanted else "pending"

    def installed(self, fam: int) -> dict[int, KernelRoute]:
        with self._lock:
            return dict(self._installed[fam])

    def failures(self, fam: int) -> dict[int, str]:
        with self._lock:
            return dict(self._failed[fam])

    def counts(self) -> dict:
        with self._lock:
            return {
                "table": self.table, "protocol": self.protocol,
                "installed": {f"ipv{f}": len(self._installed[f]) for f in (4, 6)},
                "pending": {f"ipv{f}": len(self._pending[f]) for f in (4, 6)},
                "failed": {f"ipv{f}": len(self._failed[f]) for f in (4, 6)},
                "stale": {f"ipv{f}": len(self._stale[f]) for f in (4, 6)},
                **self.stats,
            }

    # -- worker ----------------------------------------------------------------------------
    def _take(self) -> tuple[int, list[tuple[int, int, KernelRoute | None]]] | None:
        for fam in (4, 6):
            pend = self._pending[fam]
            if not pend:
                continue
            inst = self._installed[fam]
            ops = []
            n = 0
            while pend and n < self.batch:
                key, route = pend.popitem()
                n += 1
                have = inst.get(key)
                if route is None:
                    if have is not None:
                        ops.append((key, OP_DELETE, have))
                    else:
                        self._failed[fam].pop(key, None)
                elif have is None:
                    ops.append((key, OP_ADD, route))
                elif have != route:
                    ops.append((key, OP_REPLACE if have.priority == route.priority
                                else OP_ADD, route))
                    if have.priority != route.priority:
                        ops.append((key, OP_DELETE, have))
                else:
                    self.stats["unchanged"] += 1
                    self._failed[fam].pop(key, None)
            return fam, ops
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not any(self._pending.values()):
                    self._busy = False
                    self._cond.notify_all()
                    self._cond.wait(1.0)
                if self._stop:
                    self._busy = False
                    return
                self._busy = True
                taken = self._take()
            if taken is None:
                continue
            fam, ops = taken
            if not ops:
                continue
            msgs = netlink.encode_many(fam, ops, self.table, self.protocol, self.metric)
            try:
                errors = self._sock.batch(_tagged(msgs))
            except OSError as exc:
                errors = {i: f"netlink: {exc}" for i in range(len(ops))}
            with self._cond:
                inst, failed = self._installed[fam], self._failed[fam]
                self.stats["batches"] += 1
                for i, (key, op, route) in enumerate(ops):
                    err = errors.get(i)
                    if err is not None:
                        if op == OP_DELETE and err.startswith("No such process"):
                            inst.pop(key, None)  # already gone: that is what we wanted
                            continue
                        failed[key] = err
                        self.stats["failed"] += 1
                        continue
                    failed.pop(key, None)
                    if op == OP_DELETE:
                        if inst.get(key) == route:
                            del inst[key]
                        self.stats["deleted"] += 1
                    else:
                        inst[key] = route
                        self.stats["added" if op == OP_ADD else "replaced"] += 1


def _tagged(msgs: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    return [(i, m) for i, (_key, m) in enumerate(msgs)]
