"""Hold timer expiry against a frozen FRR bgpd, then recovery."""

from __future__ import annotations

import time

import pytest

from tests.interop.common import FCR_AS, FCR_ID
from tests.topotest import fcr as fcrcfg
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

FRR_AS = 65002
HOLD = 9


def test_hold_timer_expiry_and_recovery(topology, workdir):
    h_fcr, h_frr = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h_fcr, h_frr, ["10.0.9.1/24"], ["10.0.9.2/24"])
    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS, "10.0.9.2",
        [{"address": "10.0.9.1", "remote_as": FCR_AS, "timers": (3, HOLD), "connect_retry": 2}],
    ))
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(
        FCR_AS, FCR_ID,
        [fcrcfg.neighbor("10.0.9.2", FRR_AS, hold_time=HOLD, keepalive=3, connect_retry=2)],
    ))
    fcr.wait_established("10.0.9.2", 30)
    frr.wait_established("10.0.9.1", 10)

    frozen_at = time.monotonic()
    h_frr.freeze(frr.bgpd_pid)
    try:
        wait_until(lambda: fcr.neighbor_state("10.0.9.2") != "Established", HOLD + 2, 0.2,
                   message="FCR leaves Established after the hold time")
        elapsed = time.monotonic() - frozen_at
        n = fcr.neighbor("10.0.9.2")
        assert "hold" in (n.get("last-error") or "").lower(), n
        assert elapsed <= HOLD + 2
    finally:
        h_frr.thaw(frr.bgpd_pid)

    fcr.wait_established("10.0.9.2", 30)
    frr.wait_established("10.0.9.1", 10)
