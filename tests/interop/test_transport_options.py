"""Transport options against FRR: update-source, passive mode, eBGP multihop TTL, TCP-MD5."""

from __future__ import annotations

import time

import pytest

from tests.interop.common import FCR_AS, FCR_ID
from tests.topotest import fcr as fcrcfg
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

FRR_AS = 65002
NEVER = 8.0  # how long "never comes up" is watched


def assert_stays_down(fcr: FcrRouter, frr: FrrRouter, fcr_peer: str, frr_peer: str,
                      seconds: float = NEVER) -> None:
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / 0.5) + 2):
        assert fcr.neighbor_state(fcr_peer) != "Established", fcr.neighbor(fcr_peer)
        assert frr.neighbor_state(frr_peer) != "Established", frr.neighbor(frr_peer)
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)


def pair(topology, fcr_addrs, frr_addrs):
    h_fcr, h_frr = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h_fcr, h_frr, fcr_addrs, frr_addrs)
    return h_fcr, h_frr


def test_update_source(topology, workdir):
    primary, secondary, frr_addr = "10.0.31.1", "10.0.31.11", "10.0.31.2"
    h_fcr, h_frr = pair(topology, [f"{primary}/24", f"{secondary}/24"], [f"{frr_addr}/24"])
    # FRR passive: only FCR's outgoing connection can bring the session up
    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS, frr_addr, [{"address": secondary, "remote_as": FCR_AS, "passive": True}]))
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(FCR_AS, FCR_ID, [
        fcrcfg.neighbor(frr_addr, FRR_AS, connect_retry=1, local_address=secondary)]))
    fcr.wait_established(frr_addr, 30)
    n = frr.wait_established(secondary, 10)
    assert n.get("hostForeign") == secondary, {k: n.get(k) for k in ("hostLocal", "hostForeign")}
    assert n.get("hostLocal") == frr_addr, n.get("hostLocal")
    assert n.get("portLocal") == 179, n.get("portLocal")  # FCR was the one that connected
    assert frr.neighbor(primary) == {}


def test_passive_mode(topology, workdir):
    fcr_addr, frr_addr = "10.0.32.1", "10.0.32.2"
    h_fcr, h_frr = pair(topology, [f"{fcr_addr}/24"], [f"{frr_addr}/24"])
    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS, frr_addr, [{"address": fcr_addr, "remote_as": FCR_AS, "passive": True,
                            "connect_retry": 1}]))
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(FCR_AS, FCR_ID, [
        fcrcfg.neighbor(frr_addr, FRR_AS, connect_retry=1, passive=True)]))
    assert_stays_down(fcr, frr, frr_addr, fcr_addr)
    n = fcr.neighbor(frr_addr)
    assert n["messages"]["sent"]["open"] == 0, n
    assert n["state"] in ("Active", "Idle"), n
    # FRR active: it connects, FCR accepts
    frr.configure(f"router bgp {FRR_AS}", f"no neighbor {fcr_addr} passive")
    fcr.wait_established(frr_addr, 20)
    n = frr.wait_established(fcr_addr, 10)
    assert n.get("portForeign") == 179, n.get("portForeign")  # FRR connected to FCR's port 179


def _multihop_topology(topology):
    h_fcr, h_rtr, h_frr = (topology.add_host(x) for x in ("fcr", "rtr", "frr"))
    topology.link(h_fcr, h_rtr, ["10.0.33.1/24"], ["10.0.33.254/24"])
    topology.link(h_rtr, h_frr, ["10.0.34.254/24"], ["10.0.34.2/24"])
    h_rtr.sysctl("net.ipv4.ip_forward", 1)
    h_fcr.run(["ip", "route", "add", "10.0.34.0/24", "via", "10.0.33.254"])
    h_frr.run(["ip", "route", "add", "10.0.33.0/24", "via", "10.0.34.254"])
    return h_fcr, h_frr


@pytest.mark.parametrize("multihop", [False, True], ids=["single-hop", "multihop-ttl-2"])
def test_ebgp_multihop(topology, workdir, multihop):
    h_fcr, h_frr = _multihop_topology(topology)
    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS, "10.0.34.2", [{"address": "10.0.33.1", "remote_as": FCR_AS, "connect_retry": 1,
                               "extra": ["ebgp-multihop 2"]}]))
    extra = {"ebgp-multihop": {"enabled": True, "multihop-ttl": 2}} if multihop else {}
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(FCR_AS, FCR_ID, [
        fcrcfg.neighbor("10.0.34.2", FRR_AS, connect_retry=1, **extra)]))
    if multihop:
        fcr.wait_established("10.0.34.2", 30)
        frr.wait_established("10.0.33.1", 10)
    else:
        # our segments leave with TTL 1 and die at the router: no session in either direction
        assert_stays_down(fcr, frr, "10.0.34.2", "10.0.33.1")
        n = fcr.neighbor("10.0.34.2")
        # FRR's own segments (TTL 2) reach us, ours (TTL 1) die at the router: FRR never
        # sees our OPEN, and our own connection attempts get ICMP time exceeded
        assert "113" in (n.get("last-error") or "") or n["messages"]["received"]["open"] >= 1, n
        assert frr.neighbor("10.0.33.1").get("messageStats", {}).get("opensRecv", 0) == 0


@pytest.mark.parametrize("fcr_key", ["s3cret", "wrong"])
def test_tcp_md5(topology, workdir, fcr_key):
    fcr_addr, frr_addr = "10.0.35.1", "10.0.35.2"
    h_fcr, h_frr = pair(topology, [f"{fcr_addr}/24"], [f"{frr_addr}/24"])
    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS, frr_addr, [{"address": fcr_addr, "remote_as": FCR_AS, "connect_retry": 1,
                            "extra": ["password s3cret"]}]))
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(FCR_AS, FCR_ID, [
        fcrcfg.neighbor(frr_addr, FRR_AS, connect_retry=1,
                        transport={"tcp-md5-key": fcr_key})]))
    if fcr_key == "s3cret":
        fcr.wait_established(frr_addr, 30)
        frr.wait_established(fcr_addr, 10)
    else:
        assert_stays_down(fcr, frr, frr_addr, fcr_addr)
        assert fcr.neighbor(frr_addr)["messages"]["received"]["open"] == 0
