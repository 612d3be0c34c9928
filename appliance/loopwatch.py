"""Scheduler slips: the event loop held by one callback for longer than it should be.

Every timer of the daemon (KEEPALIVE, hold, BFD hand-off, lease renewal) runs on one
asyncio loop, so a callback that runs for seconds delays all of them. Junos logs such a
"scheduler slip"; so do we: a task on the loop stamps the time every ``tick``; a thread
checks the stamp, and when it is older than ``threshold`` it logs ``loop.slip`` with
where the loop's thread is at that moment (again each ``threshold`` while it lasts), and
``loop.slip-end`` with the whole duration when the loop runs again. The thread only
reads a float and the threads' frames: it never touches the loop's objects.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

from .log import log_event

log = logging.getLogger("fcr.loop")


class LoopWatch:
    def __init__(self, threshold: float = 1.0, tick: float = 0.1) -> None:
        self.threshold = threshold
        self.tick = tick
        self._stamp = time.monotonic()
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop_thread = 0
        self.slips = 0  # slips seen (tests)

    def start(self) -> None:
        """Call on the loop's thread, with the loop running."""
        self._loop_thread = threading.get_ident()
        self._stamp = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._beat())
        self._thread = threading.Thread(target=self._watch, name="fcr-loopwatch", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 2.0)

    async def _beat(self) -> None:
        while True:
            self._stamp = time.monotonic()
            await asyncio.sleep(self.tick)

    def _watch(self) -> None:
        slip_from: float | None = None  # the stamp the loop has not moved past
        report_at = 0.0
        while not self._stop.wait(self.tick):
            stamp = self._stamp
            if slip_from is not None and stamp != slip_from:
                log_event(log, "loop.slip-end", level=logging.WARNING, seconds=round(stamp - slip_from, 2))
                slip_from = None
            late = time.monotonic() - stamp
            if late < self.threshold:
                continue
            if slip_from is None:
                slip_from, report_at = stamp, late
                self.slips += 1
            if late >= report_at:  # once per threshold while it lasts: where it is each time
                report_at = late + self.threshold
                log_event(log, "loop.slip", level=logging.WARNING, seconds=round(late, 2),
                          where=self._where())

    def _where(self) -> str:
        """The loop thread's innermost frames; then every other thread's innermost one (a
        thread in one long C call holds the GIL, and the loop thread waits where it was)."""
        frames = sys._current_frames()
        frame = frames.get(self._loop_thread)
        where = _frames(frame, 6) if frame is not None else "?"
        me = threading.get_ident()
        names = {t.ident: t.name for t in threading.enumerate()}
        others = [f"{names.get(tid, tid)}: {_frames(f, 2)}" for tid, f in frames.items()
                  if tid not in (self._loop_thread, me)]
        return " | ".join([where, *others])


def _frames(frame: object, n: int) -> str:
    stack = traceback.extract_stack(frame)[-n:]  # type: ignore[arg-type]
    return " < ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}:{f.name}" for f in reversed(stack))


GC_PAUSE_LOG = 0.1  # s: a collection this long holds every timer and read; log it


class GcPauseLog:
    """gc callback: log a collection that held the event loop for GC_PAUSE_LOG or more
    (every timer of the engine waits for it; BFD runs in its own process and does not)."""

    def __init__(self) -> None:
        self.started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self.started = now
        elif now - self.started >= GC_PAUSE_LOG:
            log_event(log, "gc.pause", level=logging.WARNING, generation=info.get("generation"),
                      seconds=round(now - self.started, 3), collected=info.get("collected"))
