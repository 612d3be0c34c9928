"""Prefix limit (RFC 4486 Cease/Maximum Number of Prefixes Reached) against FRR."""

from __future__ import annotations

import time

import pytest

from tests.interop.common import FCR_AS, FCR_ID, wait_fcr_routes
from tests.topotest import fcr as fcrcfg
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

FRR_AS = 65002
FCR_ADDR, FRR_ADDR = "10.0.21.1", "10.0.21.2"
NETS = [f"10.21.{i}.0/24" for i in range(1, 6)]


def setup(topology, workdir, prefix_limit: dict):
    h_fcr, h_frr = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h_fcr, h_frr, [f"{FCR_ADDR}/24"], [f"{FRR_ADDR}/24"])
    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS, FRR_ADDR,
        [{"address": FCR_ADDR, "remote_as": FCR_AS, "connect_retry": 1}],
        {"ipv4": NETS},
    ))
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(
        FCR_AS, FCR_ID,
        [fcrcfg.neighbor(FRR_ADDR, FRR_AS, connect_retry=1, **{"afi-safis": {"afi-safi": [
            {"afi-safi-name": "ipv4-unicast", "prefix-limit": prefix_limit}]}})],
    ))
    return frr, fcr


def max_prefix_lines(fcr: FcrRouter) -> list[str]:
    return [line for line in fcr.log.read_text(errors="replace").splitlines()
            if "event=bgp.max-prefix " in line + " "]


def test_max_prefix_warning_only(topology, workdir):
    frr, fcr = setup(topology, workdir, {"max-prefixes": 3, "warning-only": True})
    fcr.wait_established(FRR_ADDR, 30)
    wait_fcr_routes(fcr, NETS)
    time.sleep(2)  # give a (wrong) teardown the time to happen
    n = fcr.neighbor(FRR_ADDR)
    assert n["state"] == "Established", n
    assert n["established-transitions"] == 1, n
    assert n["prefixes-received"] == 5, n
    assert set(NETS) <= fcr.rib("ipv4-unicast").keys()
    assert frr.neighbor(FCR_ADDR).get("bgpState") == "Established"
    lines = wait_until(lambda: max_prefix_lines(fcr), 5, message="bgp.max-prefix log line")
    assert len(lines) == 1, lines
    line = lines[0]
    assert "action=warn" in line, line
    assert f"peer={FRR_ADDR}" in line and "limit=3" in line, line
    assert "level=warning" in line, line
    assert n["last-notification-sent"] in (None, {}), n


def test_max_prefix_teardown_restart_timer(topology, workdir):
    restart = 5
    frr, fcr = setup(topology, workdir, {"max-prefixes": 3, "restart-timer": restart})

    # FRR first sees the session, then our CEASE 6/1
    def frr_got_cease():
        n = frr.neighbor(FCR_ADDR)
        return n if "Maximum Number of Prefixes" in n.get("lastNotificationReason", "") else None

    n_frr = wait_until(frr_got_cease, 30, 0.2, message="FRR received Cease/Max prefixes")
    down_at = time.monotonic()
    assert n_frr["lastNotificationReason"].startswith("Cease/"), n_frr
    assert n_frr.get("lastErrorCodeSubcode", "0601") == "0601", n_frr

    n = fcr.neighbor(FRR_ADDR)
    sent = n["last-notification-sent"]
    assert (sent["code"], sent["subcode"]) == (6, 1), n
    assert n["state"] != "Established" or n["established-transitions"] >= 2, n
    lines = max_prefix_lines(fcr)
    assert any("action=teardown" in line and f"restart_after={restart}" in line for line in lines), lines

    # comes back after the restart timer (and not before) ...
    wait_until(lambda: fcr.neighbor(FRR_ADDR)["established-transitions"] >= 2, restart + 10, 0.2,
               message="session re-established after the restart timer")
    waited = time.monotonic() - down_at
    assert waited >= restart - 1.0, f"session came back after {waited:.1f}s < restart-timer {restart}s"

    # ... and goes down again, with a second teardown
    def second_teardown():
        return sum("action=teardown" in line for line in max_prefix_lines(fcr)) >= 2

    wait_until(second_teardown, 10, 0.2, message="second teardown")
    n = fcr.neighbor(FRR_ADDR)
    assert n["state"] != "Established" or n["established-transitions"] >= 3, n
    assert (n["last-notification-sent"]["code"], n["last-notification-sent"]["subcode"]) == (6, 1)
