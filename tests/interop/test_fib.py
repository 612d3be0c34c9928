"""RIB -> kernel FIB in a namespace: next hops, ECMP, blackhole, interface routes, protocol
196, distances (static vs BGP fed through the RIB API), foreign routes left alone, restart
reconciliation without churn, interface addresses applied and removed."""

from __future__ import annotations

import json
import time

import pytest

from appliance.rib import RibManager, RoutingConfig
from appliance.rib.interfaces import apply_interfaces, parse_interfaces
from appliance.static import StaticRoutes
from tests.topotest import wait_until

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TABLE = 100

STATIC = {"fcr-static:static-routes": {"route": [
    {"prefix": "192.0.2.0/24", "next-hops": {"next-hop": [{"index": "1", "address": "10.0.1.2"}]}},
    {"prefix": "203.0.113.0/24", "next-hops": {"next-hop": [{"index": "1", "blackhole": True}]}},
    {"prefix": "198.18.0.0/24", "next-hops": {"next-hop": [
        {"index": "1", "address": "10.0.1.2"}, {"index": "2", "address": "10.0.2.2"}]}},
    {"prefix": "198.18.1.0/24", "next-hops": {"next-hop": [{"index": "1", "interface": "eth0"}]}},
    {"prefix": "100.64.0.0/24", "distance": 250,
     "next-hops": {"next-hop": [{"index": "1", "address": "10.0.1.2"}]}},
    {"prefix": "2001:db8:99::/48", "next-hops": {"next-hop": [
        {"index": "1", "address": "2001:db8:1::2"}, {"index": "2", "address": "2001:db8:2::2"}]}},
]}}

BGP = [("100.64.0.0/24", ("10.0.2.2",), True, 0),       # beats the distance-250 static
       ("100.65.0.0/16", ("192.0.2.7",), False, 10)]    # recursive through the static /24


def routes(host, table=TABLE, fam="-4"):
    out = host.run(["ip", "-N", "-j", fam, "route", "show", "table", str(table)]).stdout
    return {r["dst"]: r for r in json.loads(out or "[]")}


def hops(r):
    if "nexthops" in r:
        return sorted((n.get("gateway"), n["dev"]) for n in r["nexthops"])
    if r.get("type") in ("blackhole", "6", 6):
        return "blackhole"
    return [(r.get("gateway"), r.get("dev"))]


def start_rib(host):
    rib = RibManager(RoutingConfig(table=TABLE), netns=host.ns)
    rib.start()
    static = StaticRoutes(rib)
    static.apply(STATIC)
    rib.update_bgp("ipv4-unicast", BGP)
    return rib, static


def test_fib_program_reconcile_and_addresses(topology, workdir):
    h, p = topology.add_host("fcr"), topology.add_host("peer")
    topology.link(h, p, ["10.0.1.1/24", "2001:db8:1::1/64"], ["10.0.1.2/24", "2001:db8:1::2/64"])
    topology.link(h, p, ["10.0.2.1/24", "2001:db8:2::1/64"], ["10.0.2.2/24", "2001:db8:2::2/64"])
    topology.link(h, p, ["10.0.3.1/24"], ["10.0.3.2/24"])
    # foreign routes: another protocol in our table, our protocol in another table
    h.run(["ip", "route", "add", "198.51.100.0/24", "via", "10.0.1.2", "table", str(TABLE),
           "proto", "static"])
    h.run(["ip", "route", "add", "198.51.101.0/24", "via", "10.0.1.2", "table", "200",
           "proto", "196"])
    # a stale route of ours from an "earlier engine", nobody wants it any more
    h.run(["ip", "route", "add", "10.99.0.0/24", "via", "10.0.1.2", "table", str(TABLE),
           "proto", "196", "metric", "20"])

    rib, _static = start_rib(h)
    try:
        assert rib.fib_wait(20)
        rt = routes(h)
        assert hops(rt["192.0.2.0/24"]) == [("10.0.1.2", "eth0")]
        assert rt["192.0.2.0/24"]["protocol"] in ("196", 196)
        assert hops(rt["203.0.113.0/24"]) == "blackhole"
        assert hops(rt["198.18.0.0/24"]) == [("10.0.1.2", "eth0"), ("10.0.2.2", "eth1")]
        assert hops(rt["198.18.1.0/24"]) == [(None, "eth0")]
        assert hops(rt["100.64.0.0/24"]) == [("10.0.2.2", "eth1")]  # eBGP 20 < static 250
        assert hops(rt["100.65.0.0/16"]) == [("10.0.1.2", "eth0")]  # resolved recursively
        rt6 = routes(h, fam="-6")
        assert hops(rt6["2001:db8:99::/48"]) == [("2001:db8:1::2", "eth0"),
                                                  ("2001:db8:2::2", "eth1")]
        assert "10.99.0.0/24" in rt  # stale kept until converged
        st = rib.state("ipv4", "100.64.0.0/24")["routes"]["ipv4"][0]
        assert st["selected"]["origin"] == "bgp" and st["fib"] == "installed"
        assert [c["active"] for c in st["candidates"]] == [False, True] or \
            sorted((c["origin"], c["active"]) for c in st["candidates"]) == [
                ("bgp", True), ("static", False)]
        # BGP withdraws: the static (250) takes over
        rib.update_bgp("ipv4", [("100.64.0.0/24", None, True, 0)])
        assert rib.fib_wait(10)
        assert hops(routes(h)["100.64.0.0/24"]) == [("10.0.1.2", "eth0")]
        rib.update_bgp("ipv4-unicast", BGP)
        assert rib.fib_wait(10)
        # a kernel failure is reported per prefix, the rest goes on
        rib.replace_many("controller", 4, [("198.51.100.0/24",  # gateway not on that link
                                            {"address": "10.77.0.1", "interface": "eth0"})])
        rib.replace_many("controller", 4, [("198.19.0.0/24", "10.0.2.2")])
        assert rib.fib_wait(10)
        bad = rib.state("ipv4", "198.51.100.0/24")["routes"]["ipv4"][0]["fib"]
        assert bad.startswith("fib-failed: "), bad
        assert "198.19.0.0/24" in routes(h)
        rib.clear_origin("controller")
        assert rib.fib_wait(10)
        assert rib.fib_converged() == 1
        assert rib.fib_wait(10)
    finally:
        rib.stop()

    before = routes(h)
    assert "10.99.0.0/24" not in before
    assert hops(before["198.51.100.0/24"]) == [("10.0.1.2", "eth0")]
    assert before["198.51.100.0/24"]["protocol"] in ("4", 4)
    assert "198.51.101.0/24" in routes(h, table=200)
    assert "198.19.0.0/24" not in before

    # "restart": engine gone, routes stay; one route changed behind our back
    h.run(["ip", "route", "replace", "192.0.2.0/24", "via", "10.0.2.2", "table", str(TABLE),
           "proto", "196", "metric", "20"])
    mon_log = workdir / "monitor.log"
    h.popen(["ip", "monitor", "route"], log=mon_log)
    time.sleep(0.3)
    rib2, _static2 = start_rib(h)
    try:
        assert rib2.fib.stats["found-at-start"] >= 7
        assert rib2.fib_converged() == 0
        assert rib2.fib_wait(20)
        time.sleep(0.5)
        after = routes(h)
        assert hops(after["192.0.2.0/24"]) == [("10.0.1.2", "eth0")]  # fixed
        assert {k: hops(v) for k, v in after.items()} == {k: hops(v) for k, v in before.items()}
        events = [ln for ln in mon_log.read_text().splitlines() if ln.strip()]
        assert not [e for e in events if e.startswith("Deleted")], events
        touched = [e for e in events if "table" in e and f"table {TABLE}" in e]
        assert all("192.0.2.0/24" in e for e in touched), touched
        assert rib2.fib.stats["unchanged"] >= 6
        assert rib2.fib.stats["replaced"] == 1 and rib2.fib.stats["added"] == 0

        # interface addresses: ours added (IFA_PROTO 196), foreign removed where owned
        cfg = parse_interfaces({"ietf-interfaces:interfaces": {"interface": [
            {"name": "eth2", "enabled": True,
             "ietf-ip:ipv4": {"address": [{"ip": "10.0.3.9", "prefix-length": 24}]},
             "ietf-ip:ipv6": {"address": [{"ip": "2001:db8:3::9", "prefix-length": 64}]}},
            {"name": "eth9"}]}})
        report = apply_interfaces(cfg, h.ns)
        assert "error: no such interface" in report["eth9"]
        addrs = json.loads(h.run(["ip", "-N", "-j", "addr", "show", "dev", "eth2"]).stdout)[0]
        have = {(a["local"], None) for a in addrs["addr_info"]}
        assert ("10.0.3.9", None) in have, have
        wait_until(lambda: [v for lk in rib2.interfaces.snapshot().values() if lk.name == "eth2"
                            for k, v in lk.addresses.items() if k[1] == "10.0.3.9"] == [(0, 196)],
                   5, message="our address carries IFA_PROTO 196")
        assert not any(a == "10.0.3.1" for a, _ in have)  # owned interface: foreign removed
        assert any(a.startswith("fe80:") for a, _ in have)  # link-local never removed
        wait_until(lambda: (rib2.lookup(6, "2001:db8:3::1") or {}).get("selected", {})
                   .get("origin") == "connected", 5, message="connected route via monitor")
        eth0 = json.loads(h.run(["ip", "-j", "addr", "show", "dev", "eth0"]).stdout)[0]
        assert "10.0.1.1" in {a["local"] for a in eth0["addr_info"]}  # not listed: untouched
        apply_interfaces((), h.ns)  # nothing configured: ours go, foreign stay
        addrs = json.loads(h.run(["ip", "-N", "-j", "addr", "show", "dev", "eth2"]).stdout)[0]
        assert not [a for a in addrs["addr_info"] if a["local"] in ("10.0.3.9", "2001:db8:3::9")]
        wait_until(lambda: rib2.lookup(6, "2001:db8:3::1") is None, 5,
                   message="connected route gone")
        # link down: the interface static goes, and comes back
        apply_interfaces(parse_interfaces({"interface": [{"name": "eth0", "enabled": False}]}),
                         h.ns)
        wait_until(lambda: rib2.fib_wait(5) and "198.18.1.0/24" not in routes(h), 10,
                   message="interface route withdrawn with its link")
        apply_interfaces(parse_interfaces({"interface": [{"name": "eth0", "enabled": True}]}),
                         h.ns)
        wait_until(lambda: rib2.fib_wait(5) and "198.18.1.0/24" in routes(h), 10,
                   message="interface route back")
    finally:
        rib2.stop()


def test_fib_removes_blackhole_and_interface_routes(topology, workdir):
    """A withdrawn blackhole or link-scope route of ours leaves the kernel (a delete
    must match any type and scope, not unicast/universe only)."""
    h, p = topology.add_host("fcr"), topology.add_host("peer")
    topology.link(h, p, ["10.0.1.1/24"], ["10.0.1.2/24"])
    rib, static = start_rib(h)
    try:
        assert rib.fib_wait(20)
        rt = routes(h)
        assert "203.0.113.0/24" in rt and "198.18.1.0/24" in rt
        static.apply({"fcr-static:static-routes": {"route": [
            r for r in STATIC["fcr-static:static-routes"]["route"]
            if r["prefix"] not in ("203.0.113.0/24", "198.18.1.0/24")]}})
        assert rib.fib_wait(20)
        wait_until(lambda: not ({"203.0.113.0/24", "198.18.1.0/24"} & set(routes(h))), 10,
                   message="blackhole and interface routes deleted from the kernel")
        assert "192.0.2.0/24" in routes(h)  # the rest untouched
    finally:
        rib.stop()
