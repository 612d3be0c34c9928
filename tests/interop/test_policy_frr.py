"""Routing policy in fcrd against FRR: import conditions and actions, export actions as FRR
sees them, network and redistribution policies, and a policy change without a session reset.

    frr-e (AS 65002, eBGP) ---- fcr (AS 65001) ---- frr-i (AS 65001, iBGP)

frr-e announces six prefixes; fcr's import policy (default reject) keeps three of them:
a prefix-set entry `exact`, a mask-length range `24..24`, and one more with a community
added; a community condition and an AS-path regex reject two, the range rejects the /25.
What fcr exports carries the set actions: to frr-i LOCAL_PREF, MED, a community and an
AS-path prepend of a given AS; to frr-e a prepend of our own AS on the network statement
(whose network policy set its MED) and the redistributed static route (community from the
redistribution policy). Then config.apply changes the policies: the import side is re-run
by ROUTE-REFRESH, the export side by a new pass over Adj-RIB-Out; no session is reset
(FCR's established-transitions and FRR's connectionsEstablished unchanged, uptimes grow).
"""

from __future__ import annotations

import copy
import time

import pytest

from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

FCR_AS, E_AS = 65001, 65002
FCR_E, E_ADDR = "10.0.41.1", "10.0.41.2"
FCR_I, I_ADDR = "10.0.42.1", "10.0.42.2"
NET, STATIC = "192.0.2.0/24", "198.51.100.0/24"
P16, P24, P25 = "10.1.0.0/16", "10.1.1.0/24", "10.1.2.0/25"
BADCOMM, VIA65003, P4 = "10.2.0.0/24", "10.3.0.0/24", "10.4.0.0/24"
ANNOUNCED = [P16, P24, P25, BADCOMM, VIA65003, P4]

E_CONF = f"""
ip prefix-list C666 seq 5 permit {BADCOMM}
ip prefix-list P3 seq 5 permit {VIA65003}
route-map OUT permit 10
 match ip address prefix-list C666
 set community 65002:666
route-map OUT permit 20
 match ip address prefix-list P3
 set as-path prepend 65003
route-map OUT permit 30
""" + FrrRouter.render_bgp(
    E_AS, E_ADDR, [{"address": FCR_E, "remote_as": FCR_AS, "connect_retry": 1,
                    "af_extra": {"ipv4": ["route-map OUT out", "send-community"]}}],
    {"ipv4": ANNOUNCED})

I_CONF = FrrRouter.render_bgp(
    FCR_AS, I_ADDR, [{"address": FCR_I, "remote_as": FCR_AS, "connect_retry": 1}])


def _stmt(name, conditions=None, result="accept-route", **actions):
    s = {"name": name, "actions": {"policy-result": result}}
    if conditions:
        s["conditions"] = conditions
    if actions:
        s["actions"]["bgp-actions"] = {k.replace("_", "-"): v for k, v in actions.items()}
    return s


def _pset(name, *entries):
    return {"name": name, "prefixes": {"prefix": [{"ip-prefix": p, "masklength-range": r}
                                                  for p, r in entries]}}


def policy(range24="24..24", p4_result="accept-route", to_i_lp=250) -> dict:
    return {
        "defined-sets": {
            "prefix-sets": {"prefix-set": [
                _pset("EXACT16", (P16, "exact")), _pset("RANGE", (P16, range24)),
                _pset("P4", (P4, "exact")), _pset("OWN", (NET, "exact"))]},
            "bgp-defined-sets": {
                "as-path-sets": {"as-path-set": [{"name": "VIA65003", "member": ["_65003$"]}]},
                "community-sets": {"community-set": [{"name": "BAD", "member": ["65002:666"]}]},
            },
        },
        "policy-definitions": {"policy-definition": [
            {"name": "FROM-E", "statements": {"statement": [
                _stmt("bad-community", {"bgp-conditions": {"match-community-set": {
                    "community-set": "BAD"}}}, "reject-route"),
                _stmt("via-65003", {"bgp-conditions": {"match-as-path-set": {
                    "as-path-set": "VIA65003"}}}, "reject-route"),
                _stmt("exact", {"match-prefix-set": {"prefix-set": "EXACT16"}},
                      set_local_pref=300),
                _stmt("range", {"match-prefix-set": {"prefix-set": "RANGE"}}),
                _stmt("p4", {"match-prefix-set": {"prefix-set": "P4"}}, p4_result,
                      **({"set_community": {"options": "add", "communities": ["65001:4"]}}
                         if p4_result == "accept-route" else {})),
            ]}},
            {"name": "TO-I", "statements": {"statement": [
                _stmt("all", None, set_local_pref=to_i_lp, set_med=77,
                      set_community={"options": "add", "communities": ["65001:100"]},
                      set_as_path_prepend={"repeat-n": 2, "asn": 65099}),
            ]}},
            {"name": "TO-E", "statements": {"statement": [
                _stmt("own", {"match-prefix-set": {"prefix-set": "OWN"}},
                      set_as_path_prepend={"repeat-n": 2}),
            ]}},
            {"name": "NET", "statements": {"statement": [_stmt("med", None, set_med=5)]}},
            {"name": "RED", "statements": {"statement": [
                _stmt("tag", None, set_community={"options": "add", "communities": ["65001:99"]})]}},
        ]},
    }


def fcr_config(pol: dict) -> dict:
    def fam(imp=None, exp=None, dimp=None):
        f = {"afi-safi-name": "ipv4-unicast"}
        if imp:
            f["import-policy"] = imp
        if dimp:
            f["default-import-policy"] = dimp
        if exp:
            f["export-policy"] = exp
        return {"afi-safi": [f]}

    return {
        "fcr-system:system": {"hostname": "fcr"},
        "fcr-routing-policy:routing-policy": pol,
        "fcr-static:static-routes": {"route": [
            {"prefix": STATIC, "next-hops": {"next-hop": [{"index": "1", "blackhole": True}]}}]},
        "fcr-bgp:bgp": {
            "global": {"as": FCR_AS, "router-id": "10.255.0.1",
                       "afi-safis": {"afi-safi": [{"afi-safi-name": "ipv4-unicast", "redistribute": [
                           {"protocol": "static", "policy": ["RED"]}]}]}},
            "neighbors": {"neighbor": [
                {"neighbor-address": E_ADDR, "peer-as": E_AS, "timers": {"connect-retry": 1},
                 "afi-safis": fam(["FROM-E"], ["TO-E"], "reject-route")},
                {"neighbor-address": I_ADDR, "peer-as": FCR_AS, "timers": {"connect-retry": 1},
                 "next-hop-self": True, "afi-safis": fam(exp=["TO-I"])},
            ]},
            "networks": {"network": [{"prefix": NET, "policy": "NET"}]},
        },
    }


def comms(path: dict) -> list[str]:
    return (path.get("community") or {}).get("string", "").split()


def test_policy_import_export_and_change_without_reset(topology, workdir):
    h_fcr, h_e, h_i = topology.add_host("fcr"), topology.add_host("frre"), topology.add_host("frri")
    topology.link(h_fcr, h_e, [f"{FCR_E}/24"], [f"{E_ADDR}/24"])
    topology.link(h_fcr, h_i, [f"{FCR_I}/24"], [f"{I_ADDR}/24"])
    frr_e = FrrRouter(h_e, workdir / "frre", E_CONF)
    frr_i = FrrRouter(h_i, workdir / "frri", I_CONF)
    cfg = fcr_config(policy())
    fcr = FcrRouter(h_fcr, workdir / "fcr", cfg)
    fcr.wait_established(E_ADDR, 30)
    fcr.wait_established(I_ADDR, 30)

    # -- import: conditions accept/reject as configured --------------------------------
    kept = [P16, P24, P4]

    def fcr_has(expected, absent):
        rib = fcr.rib("ipv4-unicast")
        return all(p in rib for p in expected) and not any(p in rib for p in absent) and rib

    rib = wait_until(lambda: fcr_has(kept, []) if fcr.neighbor(E_ADDR).get("prefixes-received") == 6
                     else False, 20, 0.25, message="FRR's routes filtered into FCR")
    for p in (P25, BADCOMM, VIA65003):
        assert p not in rib, (p, rib[p])
    assert rib[P16]["best"]["local-pref"] == 300, rib[P16]
    assert "local-pref" not in rib[P24]["best"] or rib[P24]["best"]["local-pref"] != 300
    assert "65001:4" in rib[P4]["best"].get("communities", []), rib[P4]
    n = fcr.neighbor(E_ADDR)
    assert (n["prefixes-received"], n["prefixes-accepted"]) == (6, 3), n

    # the engine explains a decision without installing anything
    ex = fcr.ctl("policy.test", policy=["FROM-E"], route={
        "prefix": BADCOMM, "as-path": "65002", "communities": ["65002:666"],
        "next-hop": E_ADDR, "neighbor": E_ADDR, "default": "reject-route"})
    assert ex["decision"] == "reject-route" and ex["decided-by"] == "FROM-E/bad-community", ex
    ex = fcr.ctl("policy.test", policy=["FROM-E"], route={
        "prefix": "10.1.3.0/24", "as-path": "65002", "neighbor": E_ADDR, "default": "reject-route"})
    assert ex["decision"] == "accept-route" and ex["decided-by"] == "FROM-E/range", ex

    # -- export: set actions as FRR sees them ------------------------------------------
    def i_path(prefix):
        return frr_i.best_path(prefix)

    p = wait_until(lambda: i_path(P4), 15, 0.25, message="FCR's export in frr-i")
    assert p["locPrf"] == 250, p
    assert p["metric"] == 77, p
    assert p["aspath"]["string"] == "65099 65099 65002", p
    assert comms(p) == ["65001:4", "65001:100"], p
    p16 = wait_until(lambda: i_path(P16), 10, 0.25, message=f"{P16} in frr-i")
    assert p16["locPrf"] == 250, p16

    net = wait_until(lambda: frr_e.best_path(NET), 15, 0.25, message="FCR's network in frr-e")
    assert net["aspath"]["string"] == "65001 65001 65001", net   # TO-E: own AS prepended twice
    assert net["metric"] == 5, net                                # network policy NET
    red = wait_until(lambda: frr_e.best_path(STATIC), 15, 0.25, message="redistributed static in frr-e")
    assert red["aspath"]["string"] == "65001", red
    assert comms(red) == ["65001:99"], red
    assert red.get("origin") in ("incomplete", "?"), red

    # -- a policy change, applied without a session reset -------------------------------
    time.sleep(1.0)
    fcr_before = {a: fcr.neighbor(a) for a in (E_ADDR, I_ADDR)}
    frr_before = {"e": frr_e.neighbor(FCR_E), "i": frr_i.neighbor(FCR_I)}
    rr0 = frr_e.neighbor(FCR_E).get("messageStats", {}).get("routeRefreshRecv", 0)

    new = copy.deepcopy(cfg)
    new["fcr-routing-policy:routing-policy"] = policy(range24="24..25", p4_result="reject-route",
                                                      to_i_lp=260)
    res = fcr.ctl("config.apply", config=new)
    assert res["reset"] == [] and res["added"] == [] and res["removed"] == [], res
    assert f"{E_ADDR} in" in res.get("soft", []) and f"{I_ADDR} out" in res.get("soft", []), res

    wait_until(lambda: fcr_has([P16, P24, P25], [P4, BADCOMM, VIA65003]), 15, 0.25,
               message="new import policy applied by route refresh")
    assert frr_e.neighbor(FCR_E)["messageStats"]["routeRefreshRecv"] > rr0
    wait_until(lambda: (x := i_path(P16)) and x["locPrf"] == 260, 15, 0.25,
               message="new export policy in frr-i")
    wait_until(lambda: not i_path(P4), 15, 0.25, message=f"{P4} withdrawn from frr-i")
    assert i_path(P25)["locPrf"] == 260
    time.sleep(1.2)  # FRR's uptime has a resolution of one second

    for a in (E_ADDR, I_ADDR):
        after = fcr.neighbor(a)
        assert after["state"] == "Established", after
        assert after["established-transitions"] == fcr_before[a]["established-transitions"] == 1, after
        assert after["uptime"] > fcr_before[a]["uptime"]
    for key, frr, addr in (("e", frr_e, FCR_E), ("i", frr_i, FCR_I)):
        now = frr.neighbor(addr)
        assert now["bgpState"] == "Established"
        assert now.get("connectionsEstablished") == frr_before[key].get("connectionsEstablished") == 1, now
        assert now["bgpTimerUpMsec"] > frr_before[key]["bgpTimerUpMsec"], now
    print(f"\npolicy change applied without reset: FRR uptimes "
          f"{frr_e.neighbor(FCR_E)['bgpTimerUpMsec']} ms / {frr_i.neighbor(FCR_I)['bgpTimerUpMsec']} ms")
