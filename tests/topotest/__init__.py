"""Test topology helper: network namespaces joined by veth pairs, with real BGP daemons.

Modelled on FRR's topotests (read, not copied). See docs/testing.md.

    with Topology() as topo:
        r1, r2 = topo.add_host("r1"), topo.add_host("r2")
        topo.link(r1, r2, ["10.0.1.1/24"], ["10.0.1.2/24"])
        frr = FrrRouter(r1, workdir / "r1", FrrRouter.render_bgp(...))
        ...
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """`wait_until` gave up; the message holds the last value or exception seen."""


def wait_until(
    pred: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.2,
    message: str = "",
) -> T:
    """Call ``pred`` until it returns a truthy value; return that value.

    Exceptions raised by ``pred`` count as "not yet" (the last one is reported).
    Bounded in time (``timeout``) and so in count (``timeout / interval`` + 1 calls).
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    last_exc: BaseException | None = None
    max_calls = int(timeout / max(interval, 0.01)) + 2
    for _ in range(max_calls):
        try:
            last = pred()
            last_exc = None
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last_exc = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    detail = f"last exception: {last_exc!r}" if last_exc is not None else f"last value: {last!r}"
    raise WaitTimeout(f"timed out after {timeout}s waiting for {message or pred!r}; {detail}")


from .netns import Host, Topology, cleanup_stale_namespaces  # noqa: E402

__all__ = ["Host", "Topology", "WaitTimeout", "cleanup_stale_namespaces", "wait_until"]
