"""Scheduler slips and long GC passes are logged (appliance/loopwatch.py)."""

from __future__ import annotations

import asyncio
import logging
import time

from appliance.log import LogfmtFormatter
from appliance.loopwatch import GcPauseLog, LoopWatch


def _lines(caplog) -> list[str]:
    return [LogfmtFormatter().format(r) for r in caplog.records]


def _hog(seconds: float) -> None:
    time.sleep(seconds)  # a callback that holds the loop


def _watched(caplog, body) -> LoopWatch:
    """Run ``body`` (a coroutine function) on a loop watched with a 0.3 s threshold."""

    async def main() -> LoopWatch:
        watch = LoopWatch(threshold=0.3, tick=0.05)
        watch.start()
        await body()
        await watch.stop()
        return watch

    with caplog.at_level(logging.WARNING, logger="fcr.loop"):
        return asyncio.run(main())


def test_a_slip_is_logged_with_where_the_loop_is_and_its_end(caplog):
    async def body() -> None:
        await asyncio.sleep(0.2)
        _hog(0.8)
        await asyncio.sleep(0.3)

    watch = _watched(caplog, body)
    slips = [m for m in _lines(caplog) if "event=loop.slip " in m]
    ends = [m for m in _lines(caplog) if "event=loop.slip-end" in m]
    # at 0.3 s and again at 0.6 s into the 0.8 s hold (a loaded machine may see one less)
    assert watch.slips == 1 and 1 <= len(slips) <= 3 and len(ends) == 1, caplog.text
    assert all("_hog" in m for m in slips), slips
    end_s = float(ends[0].split("seconds=")[1].split()[0])
    assert 0.7 <= end_s <= 3.0, ends[0]


def test_a_loop_that_keeps_running_is_not_a_slip(caplog):
    async def body() -> None:
        for _ in range(10):
            _hog(0.05)
            await asyncio.sleep(0.02)

    watch = _watched(caplog, body)
    assert watch.slips == 0 and "loop.slip" not in caplog.text


def test_only_long_collections_are_logged(caplog, monkeypatch):
    clock = iter([10.0, 10.01, 20.0, 20.5])
    monkeypatch.setattr("appliance.loopwatch.time.perf_counter", lambda: next(clock))
    cb = GcPauseLog()
    with caplog.at_level(logging.WARNING, logger="fcr.loop"):
        cb("start", {"generation": 0})
        cb("stop", {"generation": 0, "collected": 3})
        cb("start", {"generation": 2})
        cb("stop", {"generation": 2, "collected": 7})
    lines = _lines(caplog)
    assert len(lines) == 1 and "generation=2" in lines[0] and "seconds=0.5" in lines[0], lines
