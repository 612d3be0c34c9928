"""Route refresh (RFC 2918), enhanced route refresh (RFC 7313) and hard clear, against FRR."""

from __future__ import annotations

import time

import pytest

from tests.interop.common import FCR_AS, FCR_ID, FCR_NET4, wait_fcr_routes
from tests.topotest import fcr as fcrcfg
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

FRR_AS = 65002
FCR_ADDR, FRR_ADDR = "10.0.23.1", "10.0.23.2"
NETS = ["10.23.1.0/24", "10.23.2.0/24"]


def stats(frr: FrrRouter) -> dict:
    return frr.neighbor(FCR_ADDR).get("messageStats", {})


def rib_snapshot(fcr: FcrRouter) -> dict:
    return {p: r["best"] for p, r in fcr.rib("ipv4-unicast").items()}


def test_route_refresh(topology, workdir):
    h_fcr, h_frr = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h_fcr, h_frr, [f"{FCR_ADDR}/24"], [f"{FRR_ADDR}/24"])
    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS, FRR_ADDR, [{"address": FCR_ADDR, "remote_as": FCR_AS, "connect_retry": 1}],
        {"ipv4": NETS},
    ))
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(
        FCR_AS, FCR_ID, [fcrcfg.neighbor(FRR_ADDR, FRR_AS, connect_retry=1)], [FCR_NET4],
    ))
    fcr.wait_established(FRR_ADDR, 30)
    frr.wait_established(FCR_ADDR, 10)
    wait_fcr_routes(fcr, NETS)
    wait_until(lambda: frr.best_path(FCR_NET4), 15, message="FCR network in FRR")

    # capabilities: route refresh and enhanced route refresh both ways
    caps = frr.neighbor(FCR_ADDR)["neighborCapabilities"]
    assert caps.get("enhancedRouteRefresh") == "advertisedAndReceived", caps
    assert "advertisedAndReceived" in str(caps.get("routeRefresh")), caps
    neg = fcr.ctl("bgp.neighbors", neighbor=FRR_ADDR)
    neg = neg[0] if isinstance(neg, list) else neg
    assert "enhanced" in str(neg.get("negotiated", neg)).lower(), neg

    time.sleep(1.0)  # let the initial exchange settle
    before_rib = rib_snapshot(fcr)
    s0 = stats(frr)
    n0 = fcr.neighbor(FRR_ADDR)
    assert s0.get("routeRefreshRecv", 0) == 0, s0

    # soft in: FRR receives a ROUTE-REFRESH, our routes stay as they were, session stays up
    fcr.clear(FRR_ADDR, soft="in")
    s1 = wait_until(lambda: (s := stats(frr)).get("routeRefreshRecv", 0) >= 1 and s, 10,
                    message="FRR counts a route-refresh received")
    # FRR answers with its table again (enhanced: BoRR, UPDATEs, EoRR)
    wait_until(lambda: fcr.neighbor(FRR_ADDR)["messages"]["received"]["update"]
               > n0["messages"]["received"]["update"], 10, message="FRR re-sent its routes")
    time.sleep(1.0)
    n1 = fcr.neighbor(FRR_ADDR)
    assert n1["messages"]["sent"]["route-refresh"] >= 1, n1
    assert rib_snapshot(fcr) == before_rib
    assert n1["established-transitions"] == n0["established-transitions"] == 1, n1
    assert n1["uptime"] > n0["uptime"], (n0["uptime"], n1["uptime"])
    assert n1["state"] == "Established"

    # soft out: FRR receives our routes again, no reset
    fcr.clear(FRR_ADDR, soft="out")
    s2 = wait_until(lambda: (s := stats(frr)).get("updatesRecv", 0) > s1.get("updatesRecv", 0) and s,
                    10, message="FRR receives our UPDATEs again")
    # enhanced route refresh: the re-advertisement is framed by BoRR and EoRR, which are
    # ROUTE-REFRESH messages (RFC 7313 §4), so FRR counts exactly two more
    s2 = wait_until(lambda: (s := stats(frr)).get("routeRefreshRecv", 0)
                    >= s1.get("routeRefreshRecv", 0) + 2 and s, 5, message="BoRR and EoRR")
    assert s2["routeRefreshRecv"] == s1["routeRefreshRecv"] + 2, s2
    n2 = fcr.neighbor(FRR_ADDR)
    assert n2["established-transitions"] == 1, n2
    assert n2["uptime"] > n1["uptime"]
    assert frr.best_path(FCR_NET4) is not None
    frr_n = frr.neighbor(FCR_ADDR)
    assert frr_n["bgpState"] == "Established" and frr_n.get("connectionsEstablished", 1) == 1, frr_n

    # hard clear: CEASE / Administrative Reset, then back up
    fcr.clear(FRR_ADDR)
    wait_until(lambda: "Administrative Reset" in frr.neighbor(FCR_ADDR).get("lastNotificationReason", ""),
               10, 0.2, message="FRR saw Cease/Administrative Reset")
    n3 = fcr.neighbor(FRR_ADDR)
    assert (n3["last-notification-sent"]["code"], n3["last-notification-sent"]["subcode"]) == (6, 4), n3
    wait_until(lambda: fcr.neighbor(FRR_ADDR)["established-transitions"] == 2
               and fcr.neighbor_state(FRR_ADDR) == "Established", 20, 0.25,
               message="session re-established after the hard clear")
    frr.wait_established(FCR_ADDR, 10)
    wait_fcr_routes(fcr, NETS)
