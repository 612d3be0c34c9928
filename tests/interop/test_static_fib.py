"""Static routes through fcrd into the kernel of its namespace, against FRR (bgpd + bfdd).

    fcr eth0 10.0.51.1 ---- 10.0.51.2 frr   (eBGP, BFD 50 ms x 3)
    fcr eth1 10.0.52.1 ---- 10.0.52.2 frr

Checks, in the kernel table (main, protocol 196, metric 20) of fcr's namespace: next hop by
address, by interface, blackhole, ECMP, IPv6; BGP (eBGP, 20) against statics of distance 30
(BGP wins; withdrawn -> the static takes over) and 10 (static wins); a BFD-tracked static
disappears when BFD goes down (FRR's BFD packets dropped by nftables) and comes back when
it is up again; an interface address from ietf-interfaces; controller routes pushed,
listed and cleared over the engine API.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

FCR_AS, FRR_AS = 65001, 65002
A1, B1 = "10.0.51.1", "10.0.51.2"   # link 1: fcr eth0, frr
A2, B2 = "10.0.52.1", "10.0.52.2"   # link 2: fcr eth1, frr
BGP_WINS, STATIC_WINS = "10.50.0.0/24", "10.51.0.0/24"
TRACKED = "10.60.0.0/24"
CTRL = "10.70.0.0/24"


def nh(index, **kw):
    return {"index": str(index), **kw}


STATICS = [
    {"prefix": "192.0.2.0/24", "next-hops": {"next-hop": [nh(1, address=B1)]}},
    {"prefix": "198.18.1.0/24", "next-hops": {"next-hop": [nh(1, interface="eth1")]}},
    {"prefix": "203.0.113.0/24", "next-hops": {"next-hop": [nh(1, blackhole=True)]}},
    {"prefix": "198.18.0.0/24", "next-hops": {"next-hop": [nh(1, address=B1), nh(2, address=B2)]}},
    {"prefix": "2001:db8:99::/48", "next-hops": {"next-hop": [nh(1, address="2001:db8:51::2")]}},
    {"prefix": BGP_WINS, "distance": 30, "next-hops": {"next-hop": [nh(1, address=B2)]}},
    {"prefix": STATIC_WINS, "distance": 10, "next-hops": {"next-hop": [nh(1, address=B2)]}},
    {"prefix": TRACKED, "next-hops": {"next-hop": [nh(1, address=B1, bfd={"enabled": True})]}},
]

FCR_CONFIG = {
    "fcr-system:system": {"hostname": "fcr"},
    "fcr-routing:routing": {"fib": {"table": 254, "protocol": 196}},
    "fcr-static:static-routes": {"route": STATICS},
    "ietf-interfaces:interfaces": {"interface": [{
        "name": "eth1", "type": "iana-if-type:ethernetCsmacd",
        "ietf-ip:ipv4": {"address": [{"ip": A2, "prefix-length": 24},
                                     {"ip": "10.0.53.1", "prefix-length": 24}]}}]},
    "fcr-bfd:bfd": {"sessions": {"session": [{
        "peer-address": B1, "local-address": A1, "interface": "eth0",
        "desired-min-tx-interval": 50000, "required-min-rx-interval": 50000,
        "detection-multiplier": 3}]}},
    "fcr-bgp:bgp": {
        "global": {"as": FCR_AS, "router-id": "10.255.0.1"},
        "neighbors": {"neighbor": [{"neighbor-address": B1, "peer-as": FRR_AS,
                                    "timers": {"connect-retry": 1}}]},
    },
}


def kernel(host, fam="-4"):
    """Our routes (protocol 196) in the main table of ``host``'s namespace."""
    out = host.run(["ip", "-N", "-j", fam, "route", "show", "table", "254"]).stdout
    return {r["dst"]: r for r in json.loads(out or "[]") if str(r.get("protocol")) == "196"}


def hops(r):
    if r is None:
        return None
    if r.get("type") in ("blackhole", "6", 6):
        return "blackhole"
    if "nexthops" in r:
        return sorted((n.get("gateway"), n["dev"]) for n in r["nexthops"])
    return [(r.get("gateway"), r.get("dev"))]


def wait_kernel(host, prefix, want, timeout=10.0, fam="-4"):
    return wait_until(lambda: hops(kernel(host, fam).get(prefix)) == want, timeout, 0.1,
                      message=f"kernel {prefix} -> {want} (have {hops(kernel(host, fam).get(prefix))})")


def test_static_routes_in_the_kernel(topology, workdir):
    h_fcr, h_frr = topology.add_host("fcr"), topology.add_host("frr")
    _, f_if1 = topology.link(h_fcr, h_frr, [f"{A1}/24", "2001:db8:51::1/64"], [f"{B1}/24", "2001:db8:51::2/64"])
    topology.link(h_fcr, h_frr, [f"{A2}/24"], [f"{B2}/24"])
    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS, B1, [{"address": A1, "remote_as": FCR_AS, "connect_retry": 1}],
        {"ipv4": [BGP_WINS, STATIC_WINS]}), bfd=True)
    res = frr.vtysh("configure terminal", "bfd", f"peer {A1} local-address {B1} interface {f_if1}",
                    "receive-interval 50", "transmit-interval 50", "detect-multiplier 3", daemon="bfdd")
    assert "%" not in res.stdout, res.stdout
    fcr = FcrRouter(h_fcr, workdir / "fcr", FCR_CONFIG)
    fcr.wait_established(B1, 30)

    # -- next hops of every kind, protocol 196 ------------------------------------------
    wait_kernel(h_fcr, "192.0.2.0/24", [(B1, "eth0")])
    rt = kernel(h_fcr)
    assert rt["192.0.2.0/24"].get("metric") == 20, rt["192.0.2.0/24"]
    assert hops(rt["198.18.1.0/24"]) == [(None, "eth1")]
    assert hops(rt["203.0.113.0/24"]) == "blackhole"
    assert hops(rt["198.18.0.0/24"]) == [(B1, "eth0"), (B2, "eth1")]    # ECMP
    wait_kernel(h_fcr, "2001:db8:99::/48", [("2001:db8:51::2", "eth0")], fam="-6")

    # -- BGP (eBGP 20) against statics of distance 30 and 10 ------------------------------
    wait_kernel(h_fcr, BGP_WINS, [(B1, "eth0")])       # BGP 20 < static 30
    wait_kernel(h_fcr, STATIC_WINS, [(B2, "eth1")])    # static 10 < BGP 20
    st = fcr.ctl("rib.routes", prefix=BGP_WINS)["routes"]["ipv4"][0]
    assert st["selected"]["origin"] == "bgp" and st["fib"] == "installed", st
    assert sorted((c["origin"], c["distance"], c["active"]) for c in st["candidates"]) == [
        ("bgp", 20, True), ("static", 30, False)], st
    frr.configure(f"router bgp {FRR_AS}", "address-family ipv4 unicast", f"no network {BGP_WINS}")
    wait_kernel(h_fcr, BGP_WINS, [(B2, "eth1")])       # withdrawn: the static takes over
    frr.configure(f"router bgp {FRR_AS}", "address-family ipv4 unicast", f"network {BGP_WINS}")
    wait_kernel(h_fcr, BGP_WINS, [(B1, "eth0")])

    # -- BFD-tracked static ---------------------------------------------------------------
    wait_until(lambda: any(s["state"] == "Up" and s["peer-address"] == B1
                           for s in fcr.ctl("bfd.sessions")["sessions"]), 20, 0.1, "BFD Up")
    s = next(s for s in fcr.ctl("bfd.sessions")["sessions"] if s["peer-address"] == B1)
    assert sorted(s["clients"]) == ["configured", "static"], s
    wait_kernel(h_fcr, TRACKED, [(B1, "eth0")])
    h_frr.run(["nft", "add", "table", "inet", "bfdt"])
    h_frr.run(["nft", "add", "chain", "inet", "bfdt", "output",
               "{ type filter hook output priority 0 ; }"])
    t0 = time.monotonic()
    h_frr.run(["nft", "add", "rule", "inet", "bfdt", "output", "udp", "dport", "3784", "drop"])
    wait_until(lambda: TRACKED not in kernel(h_fcr), 5, 0.02, "tracked static gone with BFD")
    gone = time.monotonic() - t0
    assert hops(kernel(h_fcr)["192.0.2.0/24"]) == [(B1, "eth0")]  # untracked statics stay
    h_frr.run(["nft", "delete", "table", "inet", "bfdt"])
    t1 = time.monotonic()
    wait_kernel(h_fcr, TRACKED, [(B1, "eth0")], timeout=15)
    back = time.monotonic() - t1
    print(f"\nBFD-tracked static: removed from the kernel {gone * 1000:.0f} ms after FRR's BFD "
          f"packets were dropped (50 ms x 3), back {back:.2f} s after the drop rule went")

    # -- interface addresses from ietf-interfaces -----------------------------------------
    ifs = {i["name"]: i for i in fcr.ctl("interfaces.state")["interfaces"]}
    addrs = {(a["ip"], a["prefix-length"]): a["ours"] for a in ifs["eth1"]["addresses"] if a["family"] == "ipv4"}
    assert addrs == {(A2, 24): False, ("10.0.53.1", 24): True}, ifs["eth1"]
    assert ifs["eth1"]["up"] is True

    # -- controller routes -----------------------------------------------------------------
    fcr.ctl("static.push", prefix=CTRL, **{"next-hops": [B2]})
    fcr.ctl("static.push", prefix="10.71.0.0/24", **{"next-hops": [{"address": B1}, {"address": B2}]},
            distance=7, tag=9)
    wait_kernel(h_fcr, CTRL, [(B2, "eth1")])
    wait_kernel(h_fcr, "10.71.0.0/24", [(B1, "eth0"), (B2, "eth1")])
    listed = fcr.ctl("static.list")
    assert sorted(r["prefix"] for r in listed["controller"]) == [CTRL, "10.71.0.0/24"], listed
    assert {r["prefix"] for r in listed["configured"]} == {r["prefix"] for r in STATICS}
    st = fcr.ctl("rib.routes", prefix="10.71.0.0/24")["routes"]["ipv4"][0]
    assert st["selected"]["origin"] == "controller" and st["candidates"][0]["tag"] == 9, st
    assert fcr.ctl("static.clear") == {"cleared": 2}
    wait_until(lambda: CTRL not in kernel(h_fcr) and "10.71.0.0/24" not in kernel(h_fcr), 5, 0.1,
               "controller routes cleared")
    assert fcr.ctl("static.list")["controller"] == []
    assert "192.0.2.0/24" in kernel(h_fcr)  # configured statics untouched
