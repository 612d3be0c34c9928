"""The engine's wiring without sockets or netlink: policy hooks, soft reconfiguration,
static/controller routes in the RIB, redistribution and network policies, the BGP ->
RIB feed with multipath and next-hop tracking, BFD Down -> Cease/BFD Down, the new
engine API methods and the all-or-nothing config.apply."""

from __future__ import annotations

import asyncio
import copy
import json

import pytest

from appliance.bgp.config import BfdTracking, BgpConfig, BgpGlobalConfig, NeighborConfig
from appliance.bgp.family import IPV4_UNICAST, prefix_to_key
from appliance.bgp.speaker import CEASE_BFD_DOWN, Speaker
from appliance.config.native import load_file, parse
from appliance.engine.control import METHODS, ControlServer
from appliance.engine.engine import Engine
from appliance.rib import RibManager, RoutingConfig
from tests.unit.speaker_fakes import attrs, drain, establish
from tests.unit.speaker_fakes import update as _update

# -- the speaker's RIB feed -----------------------------------------------------------------

def test_speaker_feeds_the_rib_with_multipath_and_next_hop_tracking():
    loop = asyncio.new_event_loop()
    try:
        n2, n3 = NeighborConfig("10.0.0.2", 65002), NeighborConfig("10.0.1.3", 65002)
        sp = Speaker(BgpConfig(BgpGlobalConfig(65001, "10.0.0.1", listen_addresses=()), (n2, n3)), loop=loop)
        loop.run_until_complete(sp.start())
        rib = RibManager(RoutingConfig(maximum_paths=2), fib=False, interfaces=False)
        # two "connected" subnets the BGP next hops resolve through
        rib._ifindex.update({"eth0": (2, True), "eth1": (3, True)})
        rib.replace_many("connected", 4, [("10.0.0.0/24", {"interface": "eth0"}),
                                          ("10.0.1.0/24", {"interface": "eth1"})])
        sp.set_rib(rib, multipath=True)
        a, b = establish(sp, n2, "10.0.0.2"), establish(sp, n3, "10.0.1.3")
        k = prefix_to_key("192.0.2.0/24")
        sp.update_received(a, _update(announced=[(IPV4_UNICAST, attrs(65002), [k])]))
        drain(loop)
        sel = rib.state("ipv4", "192.0.2.0/24")["routes"]["ipv4"][0]["selected"]
        assert sel["origin"] == "bgp" and [h["address"] for h in sel["next-hops"]] == ["10.0.0.2"]
        # an equal path from the second peer: not best, but a second next hop (multipath)
        sp.update_received(b, _update(announced=[(IPV4_UNICAST, attrs(65002, nh="10.0.1.3"), [k])]))
        drain(loop)
        sel = rib.state("ipv4", "192.0.2.0/24")["routes"]["ipv4"][0]["selected"]
        assert sorted(h["address"] for h in sel["next-hops"]) == ["10.0.0.2", "10.0.1.3"]
        # a longer AS path is not equal: one next hop again
        sp.update_received(b, _update(announced=[(IPV4_UNICAST, attrs(65002, 65009, nh="10.0.1.3"), [k])]))
        drain(loop)
        sel = rib.state("ipv4", "192.0.2.0/24")["routes"]["ipv4"][0]["selected"]
        assert [h["address"] for h in sel["next-hops"]] == ["10.0.0.2"]
        # next-hop tracking: 10.0.0.2 unreachable -> the route is no longer selected
        sp.update_received(b, _update(withdrawn=[(IPV4_UNICAST, [k])]))
        drain(loop)
        rib.withdraw_many("connected", 4, ["10.0.0.0/24"])
        st = rib.state("ipv4", "192.0.2.0/24")["routes"]["ipv4"][0]
        assert "selected" not in st and [c["valid"] for c in st["candidates"]] == [False]
        rib.replace_many("connected", 4, [("10.0.0.0/24", {"interface": "eth0"})])
        assert rib.state("ipv4", "192.0.2.0/24")["routes"]["ipv4"][0]["selected"]["origin"] == "bgp"
        # withdrawn in BGP -> withdrawn from the RIB; our own networks never go to the RIB
        sp.update_received(a, _update(withdrawn=[(IPV4_UNICAST, [k])]))
        sp.set_networks(["198.51.100.0/24"])
        drain(loop)
        assert rib.state("ipv4")["routes"]["ipv4"] == [r for r in rib.state("ipv4")["routes"]["ipv4"]
                                                       if r["prefix"] != "192.0.2.0/24"]
        assert "bgp" not in rib.state("ipv4")["counts"]["ipv4"]
        assert sp.rib_pending() == 0
    finally:
        loop.close()


def test_bfd_down_resets_only_bfd_neighbors_with_cease_bfd_down():
    loop = asyncio.new_event_loop()
    try:
        with_bfd = NeighborConfig("10.0.0.2", 65002, bfd=BfdTracking(enabled=True))
        without = NeighborConfig("10.0.0.3", 65003)
        sp = Speaker(BgpConfig(BgpGlobalConfig(65001, "10.0.0.1", listen_addresses=()), (with_bfd, without)),
                     loop=loop)
        loop.run_until_complete(sp.start())
        a, b = establish(sp, with_bfd, "10.0.0.2"), establish(sp, without, "10.0.0.3")
        eng = Engine(parse({}))
        eng.bgp = sp
        eng._on_bfd("10.0.0.3", "Up", "Down", "control-detection-time-expired")
        eng._on_bfd("10.0.0.2", "Init", "Down", "control-detection-time-expired")  # never was Up
        assert a.resets == [] and b.resets == []
        eng._on_bfd("10.0.0.2", "Up", "Down", "control-detection-time-expired")
        assert a.resets == [(6, CEASE_BFD_DOWN)] and b.resets == []
        assert eng._bfd_state == {"10.0.0.3": "Down", "10.0.0.2": "Down"}
    finally:
        loop.close()


# -- the engine with its API ---------------------------------------------------------------

def _pol(name, **actions):
    st = {"name": "1", "actions": {"policy-result": "accept-route"}}
    if actions:
        st["actions"]["bgp-actions"] = actions
    return {"name": name, "statements": {"statement": [st]}}


CFG = {
    "fcr-routing-policy:routing-policy": {
        "defined-sets": {"prefix-sets": {"prefix-set": [{"name": "TEN", "prefixes": {"prefix": [
            {"ip-prefix": "10.0.0.0/8", "masklength-range": "8..24"}]}}]}},
        "policy-definitions": {"policy-definition": [
            _pol("RED", **{"set-community": {"options": "add", "communities": ["65001:99"]}}),
            _pol("NET", **{"set-med": 5}),
            {"name": "IN", "statements": {"statement": [{
                "name": "ten", "conditions": {"match-prefix-set": {"prefix-set": "TEN"}},
                "actions": {"policy-result": "accept-route", "bgp-actions": {"set-local-pref": 200}}}]}},
        ]},
    },
    "fcr-static:static-routes": {"route": [
        {"prefix": "198.51.100.0/24", "next-hops": {"next-hop": [{"index": "1", "blackhole": True}]}},
        {"prefix": "203.0.113.0/24", "distance": 7, "tag": 3,
         "next-hops": {"next-hop": [{"index": "1", "address": "10.9.0.1"}]}}]},
    "fcr-routing:routing": {"ecmp": {"maximum-paths": 4}},
    "fcr-nsr:nsr": {"role": "standalone"},
    "fcr-bgp:bgp": {
        "global": {"as": 65001, "router-id": "10.0.0.1", "listen": {"enabled": False},
                   "afi-safis": {"afi-safi": [{"afi-safi-name": "ipv4-unicast", "redistribute": [
                       {"protocol": "static", "policy": ["RED"]}]}]}},
        "neighbors": {"neighbor": [{
            "neighbor-address": "10.0.0.2", "peer-as": 65002, "transport": {"passive-mode": True},
            "afi-safis": {"afi-safi": [{"afi-safi-name": "ipv4-unicast", "import-policy": ["IN"],
                                        "default-import-policy": "reject-route"}]}}]},
        "networks": {"network": [{"prefix": "192.0.2.0/24", "policy": "NET"}]},
    },
}


@pytest.fixture
def engine(tmp_path):
    loop = asyncio.new_event_loop()
    eng = Engine(parse(CFG))
    server = ControlServer(eng, str(tmp_path / "ctl.sock"))
    loop.run_until_complete(eng.start())
    ids = iter(range(1, 10_000))

    def call(method, **params):
        req = json.dumps({"id": next(ids), "method": method, "params": params}).encode()
        resp = loop.run_until_complete(server.handle_line(req))
        drain(loop, 5)
        return resp

    yield eng, call, loop
    loop.run_until_complete(eng.stop("test over"))
    loop.close()


def test_api_methods_are_listed():
    for m in ("rib.routes", "static.push", "static.list", "static.clear", "bfd.sessions",
              "policy.test", "interfaces.state"):
        assert m in METHODS


def test_statics_redistribution_network_policy_and_api(engine):
    eng, call, loop = engine
    r = call("rib.routes", family="ipv4")["result"]
    by = {x["prefix"]: x for x in r["routes"]["ipv4"]}
    assert by["198.51.100.0/24"]["selected"]["blackhole"] is True
    cand = by["203.0.113.0/24"]["candidates"][0]
    assert (cand["origin"], cand["distance"], cand["tag"], cand["valid"]) == ("static", 7, 3, False)
    assert by["198.51.100.0/24"]["fib"] == "disabled"  # kernel=False: no netlink at all
    # redistributed static (selected only) with the RED community; network with NET's MED
    rib = {x["prefix"]: x["best"] for x in call("bgp.rib")["result"]["routes"]}
    assert rib["198.51.100.0/24"]["communities"] == ["65001:99"] and rib["198.51.100.0/24"]["origin"] == "incomplete"
    assert "203.0.113.0/24" not in rib  # its next hop does not resolve: not selected, not redistributed
    assert rib["192.0.2.0/24"]["med"] == 5
    # controller routes: push, list, clear; never redistributed (no redistribute controller)
    res = call("static.push", prefix="10.20.0.0/16", **{"next-hops": [{"blackhole": True}]}, tag=4)
    assert res["result"]["pushed"]["prefix"] == "10.20.0.0/16"
    assert call("static.push", prefix="10.21.0.0/16", **{"next-hops": []})["error"]
    assert call("static.push", prefix="nonsense", **{"next-hops": ["10.0.0.9"]})["error"]
    lst = call("static.list")["result"]
    assert [c["prefix"] for c in lst["controller"]] == ["10.20.0.0/16"]
    assert {c["prefix"] for c in lst["configured"]} == {"198.51.100.0/24", "203.0.113.0/24"}
    st = call("rib.routes", prefix="10.20.0.0/16")["result"]["routes"]["ipv4"][0]
    assert st["selected"]["origin"] == "controller" and st["selected"]["distance"] == 5
    assert call("static.clear")["result"] == {"cleared": 1}
    assert call("static.list")["result"]["controller"] == []
    # other state
    assert call("bfd.sessions")["result"] == {"sessions": []}
    assert call("interfaces.state")["result"]["interfaces"] == []


def test_policy_test_explains(engine):
    _eng, call, _loop = engine
    ok = call("policy.test", policy=["IN"], route={
        "prefix": "10.1.0.0/16", "as-path": "65002 65003", "communities": ["65002:1", "no-export"],
        "next-hop": "10.0.0.2", "neighbor": "10.0.0.2", "med": 3})["result"]
    assert ok["decision"] == "accept-route" and ok["decided-by"] == "IN/ten"
    assert ok["attributes"]["local-pref"] == 200 and ok["route-type"] == "external"
    no = call("policy.test", policy="IN", route={"prefix": "192.168.0.0/16", "default": "reject-route"})["result"]
    assert no["decision"] == "reject-route" and no["decided-by"] == "default"
    static = call("policy.test", policy=["RED"], route={"prefix": "198.51.100.0/24", "protocol": "static"})
    assert static["result"]["attributes"]["communities"] == ["65001:99"]
    assert "not defined" in call("policy.test", policy=["NOPE"], route={"prefix": "10.0.0.0/8"})["error"]["message"]
    assert "bad route" in call("policy.test", policy=["IN"], route={"prefix": "10.0.0.0/8", "origin": "x"})["error"]["message"]


def test_policy_change_is_soft_and_session_change_resets(engine):
    eng, call, loop = engine
    sp = eng.bgp
    n = sp.peers["10.0.0.2"].config
    peer = establish(sp, n, "10.0.0.2")
    new = copy.deepcopy(CFG)
    new["fcr-routing-policy:routing-policy"]["policy-definitions"]["policy-definition"][2][
        "statements"]["statement"][0]["actions"]["bgp-actions"]["set-local-pref"] = 300
    res = call("config.apply", config=new)["result"]
    assert res["reset"] == [] and res["soft"] == ["10.0.0.2 in"], res
    assert peer.refreshes == [(IPV4_UNICAST, 0)] and peer.resets == []
    # an export chain added: Adj-RIB-Out re-run, no reset, no route refresh
    new2 = copy.deepcopy(new)
    new2["fcr-bgp:bgp"]["neighbors"]["neighbor"][0]["afi-safis"]["afi-safi"][0]["export-policy"] = ["NET"]
    res = call("config.apply", config=new2)["result"]
    assert res["reset"] == [] and res["soft"] == ["10.0.0.2 out"], res
    assert len(peer.refreshes) == 1
    # a session parameter: the neighbor is reset
    new3 = copy.deepcopy(new2)
    new3["fcr-bgp:bgp"]["neighbors"]["neighbor"][0]["timers"] = {"hold-time": 30, "keepalive-interval": 10}
    assert call("config.apply", config=new3)["result"]["reset"] == ["10.0.0.2"]
    # distances and ECMP apply at once; a new FIB table needs a restart
    new4 = copy.deepcopy(new3)
    call("static.push", prefix="10.30.0.0/16", **{"next-hops": [{"blackhole": True}]})
    new4["fcr-routing:routing"] = {"fib": {"table": 100}, "administrative-distance": {"controller": 9}}
    res = call("config.apply", config=new4)["result"]
    assert res["restart-required"] and not res.get("errors"), res
    st = call("rib.routes", prefix="10.30.0.0/16")["result"]["routes"]["ipv4"][0]
    assert st["selected"]["distance"] == 9


def test_bad_config_changes_nothing(engine):
    eng, call, _loop = engine
    before = eng.config
    bad = copy.deepcopy(CFG)
    bad["fcr-static:static-routes"]["route"][0]["next-hops"]["next-hop"][0]["address"] = "10.0.0.1"
    err = call("config.apply", config=bad)["error"]["message"]
    assert err.startswith("/fcr-static:static-routes"), err
    bad = copy.deepcopy(CFG)
    bad["fcr-bgp:bgp"]["neighbors"]["neighbor"][0]["afi-safis"]["afi-safi"][0]["import-policy"] = ["MISSING"]
    assert "import-policy" in call("config.apply", config=bad)["error"]["message"]
    assert eng.config is before
    assert call("static.list")["result"]["configured"][0]["prefix"] == "198.51.100.0/24"


def test_every_module_of_the_full_example_is_mapped():
    cfg = load_file("docs/examples/full.json")
    assert len(cfg.policy.policy_definitions) == 3
    assert [r.prefix for r in cfg.static.routes] == ["203.0.113.0/24", "198.51.100.0/24", "2001:db8:100::/48"]
    assert [s.peer_address for s in cfg.bfd] == ["192.0.2.2", "2001:db8:ffff::9"]
    assert cfg.routing.maximum_paths == 8 and [i.name for i in cfg.interfaces] == ["eth1", "lo"]
    assert cfg.system.users == ("admin", "noc", "monitor")
    assert any(x.startswith("fcr-nsr:nsr") for x in cfg.not_applied)
    eng = Engine(cfg)
    wanted, clients = eng._bfd_configs(cfg)
    # one session per peer: the configured one wins over the BGP neighbor's and the static's
    assert wanted["192.0.2.2"].desired_min_tx == 50000
    assert clients["192.0.2.2"] == ["configured", "bgp", "static"]
    assert clients["10.255.0.2"] == ["bgp"] and wanted["10.255.0.2"].desired_min_tx == 100000


def test_redistribution_change_restarts_nothing(engine):
    _eng, call, _loop = engine
    assert "198.51.100.0/24" in {x["prefix"] for x in call("bgp.rib")["result"]["routes"]}
    new = copy.deepcopy(CFG)
    del new["fcr-bgp:bgp"]["global"]["afi-safis"]
    res = call("config.apply", config=new)["result"]
    assert res["reset"] == [] and not res.get("errors"), res
    assert "198.51.100.0/24" not in {x["prefix"] for x in call("bgp.rib")["result"]["routes"]}
    res = call("config.apply", config=CFG)["result"]
    assert res["reset"] == [], res
    rib = {x["prefix"]: x["best"] for x in call("bgp.rib")["result"]["routes"]}
    assert rib["198.51.100.0/24"]["communities"] == ["65001:99"]
