"""Policy engine: each condition and action, chains, defaults, regexes, caching, hooks."""

from __future__ import annotations

import pytest

from appliance.bgp.family import IPV4_UNICAST, IPV6_UNICAST, prefix_to_key
from appliance.bgp.packet.pathattrs import PathAttributes
from appliance.bgp.rib.path import Path, PeerSource, local_source
from appliance.policy import (
    NEXT_HOP_SELF,
    PolicyConfigError,
    PolicyEngine,
    RouteContext,
    aspath_text,
    make_export_hook,
    make_import_hook,
    parse_routing_policy,
)
from appliance.policy.engine import compile_prefix_set

SEQ, SET, CSEQ = 2, 1, 3
NH = bytes([192, 0, 2, 1])
BASE = PathAttributes(as_path=((SEQ, (65001, 65002, 65003)),), next_hop=NH, med=50, local_pref=100,
                      communities=(65000 << 16 | 1, 65001 << 16 | 7), large_communities=((65000, 1, 2),),
                      ext_communities=(bytes.fromhex("0002fde800000001"),))


def sets(**kw) -> dict:
    ds: dict = {}
    if "prefix" in kw:
        ds["prefix-sets"] = {"prefix-set": [{"name": n, "prefixes": {"prefix": [
            {"ip-prefix": p, "masklength-range": r} for p, r in entries]}} for n, entries in kw["prefix"].items()]}
    if "neighbor" in kw:
        ds["neighbor-sets"] = {"neighbor-set": [{"name": n, "address": a} for n, a in kw["neighbor"].items()]}
    bgp: dict = {}
    for k, cont, item in [("aspath", "as-path-sets", "as-path-set"), ("comm", "community-sets", "community-set"),
                          ("ext", "ext-community-sets", "ext-community-set"),
                          ("large", "large-community-sets", "large-community-set")]:
        if k in kw:
            bgp[cont] = {item: [{"name": n, "member": m} for n, m in kw[k].items()]}
    if bgp:
        ds["bgp-defined-sets"] = bgp
    return ds


def policy(name: str, *statements: tuple[dict, dict]) -> dict:
    return {"name": name, "statements": {"statement": [
        {"name": str(10 * (i + 1)), "conditions": c, "actions": a} for i, (c, a) in enumerate(statements)]}}


def engine(defined: dict, *policies: dict, cache: bool = True) -> PolicyEngine:
    cfg = parse_routing_policy({"defined-sets": defined, "policy-definitions": {"policy-definition": list(policies)}})
    return PolicyEngine(cfg, cache=cache)


ACC = {"policy-result": "accept-route"}
REJ = {"policy-result": "reject-route"}


def accepted(e: PolicyEngine, route: RouteContext, chain=("p",), default=False) -> bool:
    r = e.evaluate(list(chain), route, default)
    # every path agrees: explain, trace, the uncached engine
    assert (e.explain(list(chain), route, default)["decision"] == "accept-route") == r.accepted
    un = PolicyEngine(e.config, cache=False).evaluate(list(chain), route, default)
    assert (un.accepted, un.attrs, un.weight) == (r.accepted, r.attrs, r.weight)
    return r.accepted


def both(cache_cond: dict, defined: dict | None = None) -> list[PolicyEngine]:
    return [engine(defined or {}, policy("p", (cache_cond, ACC)), cache=c) for c in (True, False)]


# -- prefix sets ------------------------------------------------------------------------


@pytest.mark.parametrize("prefix,want", [
    ("10.0.0.0/8", False), ("10.1.0.0/16", True), ("10.1.2.0/24", True), ("10.1.2.0/25", False),
    ("11.1.0.0/16", False), ("192.0.2.0/24", True), ("192.0.2.0/25", False), ("192.0.0.0/16", False),
    ("0.0.0.0/0", False), ("2001:db8::/48", False),
])
def test_prefix_set_v4_exact_and_range(prefix, want):
    d = sets(prefix={"s": [("10.0.0.0/8", "16..24"), ("192.0.2.0/24", "exact")]})
    e = engine(d, policy("p", ({"match-prefix-set": {"prefix-set": "s"}}, ACC)))
    assert accepted(e, RouteContext(prefix, attrs=BASE)) is want


@pytest.mark.parametrize("prefix,want", [
    ("2001:db8::/32", False), ("2001:db8:1::/48", True), ("2001:db8:1:2::/64", True),
    ("2001:db8:1:2::/65", False), ("2001:db9::/48", False), ("2001:db8:ff00::/40", True),
    ("fd00::/8", True), ("fd00::/16", False), ("10.0.0.0/8", False), ("::/0", True),
])
def test_prefix_set_v6_exact_and_range(prefix, want):
    d = sets(prefix={"s": [("2001:db8::/32", "40..64"), ("fd00::/8", "exact"), ("::/0", "exact")]})
    e = engine(d, policy("p", ({"match-prefix-set": {"prefix-set": "s"}}, ACC)))
    assert accepted(e, RouteContext(prefix, attrs=BASE)) is want


def test_prefix_set_invert_and_family_isolation():
    d = sets(prefix={"s": [("10.0.0.0/8", "exact")]})
    e = engine(d, policy("p", ({"match-prefix-set": {"prefix-set": "s", "match-set-options": "invert"}}, ACC)))
    assert not accepted(e, RouteContext("10.0.0.0/8", attrs=BASE))
    assert accepted(e, RouteContext("10.0.0.0/9", attrs=BASE))
    # the v6 key b"\x08\x0a" is the same bytes as the v4 key of 10.0.0.0/8: must not match
    t6 = compile_prefix_set(e.config.defined_sets.prefix_sets["s"], 2)
    assert not t6(prefix_to_key("a00::/8"))


def test_prefix_set_zero_length_range():
    d = sets(prefix={"s": [("0.0.0.0/0", "0..8")]})
    t = compile_prefix_set(parse_routing_policy({"defined-sets": d}).defined_sets.prefix_sets["s"], 1)
    assert t(prefix_to_key("0.0.0.0/0")) and t(prefix_to_key("10.0.0.0/8")) and not t(prefix_to_key("10.0.0.0/9"))


# -- other conditions -----------------------------------------------------------------


def test_neighbor_protocol_route_type_next_hop():
    d = sets(neighbor={"n": ["10.0.0.1", "2001:db8::1"]})
    e = engine(d, policy("p", ({"match-neighbor-set": {"neighbor-set": "n"}}, ACC)))
    assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE, neighbor="10.0.0.1"))
    assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE, neighbor="2001:db8::1"))
    assert not accepted(e, RouteContext("1.0.0.0/24", attrs=BASE, neighbor="10.0.0.2"))
    e = engine(d, policy("p", ({"match-neighbor-set": {"neighbor-set": "n", "match-set-options": "invert"}}, ACC)))
    assert not accepted(e, RouteContext("1.0.0.0/24", attrs=BASE, neighbor="10.0.0.1"))
    assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE, neighbor="10.0.0.2"))

    e = engine({}, policy("p", ({"install-protocol-eq": "static"}, ACC)))
    assert accepted(e, RouteContext("1.0.0.0/24", protocol="static", next_hop="192.0.2.9"))
    assert not accepted(e, RouteContext("1.0.0.0/24", attrs=BASE, protocol="bgp"))
    e = engine({}, policy("p", ({"match-route-type": "internal"}, ACC)))
    assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE, route_type="internal"))
    assert not accepted(e, RouteContext("1.0.0.0/24", attrs=BASE, route_type="external"))
    e = engine({}, policy("p", ({"next-hop-in": ["192.0.2.1", "2001:db8::9"]}, ACC)))
    assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE))
    assert not accepted(e, RouteContext("1.0.0.0/24", attrs=BASE.replace(next_hop=bytes(4))))
    ll = bytes.fromhex("20010db8" + "0" * 22 + "09") + bytes.fromhex("fe80" + "0" * 26 + "01")
    assert accepted(e, RouteContext("2001:db8::/32", attrs=BASE.replace(next_hop=ll)))
    # a static route's next hop comes from the route when it has no attributes
    assert accepted(e, RouteContext("1.0.0.0/24", protocol="static", next_hop="192.0.2.1"))


@pytest.mark.parametrize("cond,want", [
    ({"med-eq": 50}, True), ({"med-eq": 51}, False),
    ({"local-pref-eq": 100}, True), ({"local-pref-eq": 200}, False),
    ({"origin-eq": "igp"}, True), ({"origin-eq": "incomplete"}, False),
    ({"as-path-length": {"operator": "eq", "value": 3}}, True),
    ({"as-path-length": {"operator": "eq", "value": 2}}, False),
    ({"as-path-length": {"operator": "ge", "value": 3}}, True),
    ({"as-path-length": {"operator": "ge", "value": 4}}, False),
    ({"as-path-length": {"operator": "le", "value": 3}}, True),
    ({"as-path-length": {"operator": "le", "value": 2}}, False),
])
def test_attribute_equalities(cond, want):
    e = engine({}, policy("p", ({"bgp-conditions": cond}, ACC)))
    assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE)) is want


def test_med_eq_absent_med_does_not_match():
    e = engine({}, policy("p", ({"bgp-conditions": {"med-eq": 0}}, ACC)))
    assert not accepted(e, RouteContext("1.0.0.0/24", attrs=BASE.replace(med=None)))


# -- AS-path regexes ----------------------------------------------------------------------

PATHS = {
    "a": ((SEQ, (65001, 65002, 65003)),),
    "b": ((SEQ, (650011, 65002)),),
    "c": ((SEQ, (64999, 65003, 65002)),),
    "empty": (),
    "set": ((SEQ, (65001,)), (SET, (65003, 65004))),
    "confed": ((CSEQ, (65100,)), (SEQ, (65001, 65002))),
}


@pytest.mark.parametrize("regex,matches", [
    ("^65001_", {"a", "set"}),
    ("_65002$", {"b", "c", "confed"}),
    ("_65003_", {"a", "c", "set"}),
    ("^$", {"empty"}),
    (".*", set(PATHS)),
    ("^65001$", set()),
    ("_65001_65002_", {"a", "confed"}),
    ("^(65001|64999)_", {"a", "c", "set"}),
])
def test_aspath_regex_conventions(regex, matches):
    d = sets(aspath={"x": [regex]})
    e = engine(d, policy("p", ({"bgp-conditions": {"match-as-path-set": {"as-path-set": "x"}}}, ACC)))
    got = {n for n, p in PATHS.items() if accepted(e, RouteContext("1.0.0.0/24", attrs=BASE.replace(as_path=p)))}
    assert got == matches


def test_aspath_text_and_set_options():
    assert aspath_text(PATHS["set"]) == "65001 {65003,65004}"
    assert aspath_text(PATHS["confed"]) == "(65100) 65001 65002"
    assert aspath_text(()) == ""
    d = sets(aspath={"x": ["^65001_", "_65003$"]})
    for opt, want_a, want_c in [("any", True, False), ("all", True, False), ("invert", False, True)]:
        e = engine(d, policy("p", ({"bgp-conditions": {"match-as-path-set": {"as-path-set": "x", "match-set-options": opt}}}, ACC)))
        assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE.replace(as_path=PATHS["a"]))) is want_a
        assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE.replace(as_path=PATHS["c"]))) is want_c
    e = engine(d, policy("p", ({"bgp-conditions": {"match-as-path-set": {"as-path-set": "x", "match-set-options": "all"}}}, ACC)))
    assert not accepted(e, RouteContext("1.0.0.0/24", attrs=BASE.replace(as_path=PATHS["set"])))


# -- community sets ------------------------------------------------------------------------


def comms(*texts: str) -> tuple[int, ...]:
    out = []
    for t in texts:
        a, b = t.split(":")
        out.append(int(a) << 16 | int(b))
    return tuple(out)


@pytest.mark.parametrize("members,opt,route,want", [
    (["65000:1"], "any", ("65000:1",), True),
    (["65000:1"], "any", ("65000:2",), False),
    (["65000:1", "65000:2"], "all", ("65000:1",), False),
    (["65000:1", "65000:2"], "all", ("65000:2", "65000:1", "1:1"), True),
    (["65000:1"], "invert", ("65000:1",), False),
    (["65000:1"], "invert", ("1:1",), True),
    (["no-export"], "any", ("65535:65281",), True),
    (["^65001:.*$"], "any", ("65001:77",), True),
    (["65001:.*"], "any", ("6500:1",), False),
    (["65001:[0-9]$"], "any", ("65001:77",), False),
    (["65001:.*", "65000:1"], "all", ("65001:5", "65000:1"), True),
    (["65001:.*", "65000:1"], "all", ("65000:1",), False),
])
def test_community_set_match(members, opt, route, want):
    d = sets(comm={"c": members})
    e = engine(d, policy("p", ({"bgp-conditions": {"match-community-set": {"community-set": "c", "match-set-options": opt}}}, ACC)))
    assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE.replace(communities=comms(*route)))) is want


def test_community_regex_is_a_full_match():
    d = sets(comm={"c": ["5:1"]})  # exact, not a substring regex
    e = engine(d, policy("p", ({"bgp-conditions": {"match-community-set": {"community-set": "c"}}}, ACC)))
    assert not accepted(e, RouteContext("1.0.0.0/24", attrs=BASE.replace(communities=comms("65:11"))))
    d = sets(comm={"c": ["5:1.*"]})
    e = engine(d, policy("p", ({"bgp-conditions": {"match-community-set": {"community-set": "c"}}}, ACC)))
    assert not accepted(e, RouteContext("1.0.0.0/24", attrs=BASE.replace(communities=comms("65:11"))))
    assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE.replace(communities=comms("5:11"))))


def test_large_and_ext_community_sets():
    d = sets(large={"l": ["65000:1:2"], "r": ["^65000:9:.*"]}, ext={"e": ["route-target:65000:1"], "x": ["route-origin:.*"]})
    for name, want in [("l", True), ("r", False)]:
        e = engine(d, policy("p", ({"bgp-conditions": {"match-large-community-set": {"large-community-set": name}}}, ACC)))
        assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE)) is want
    assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE.replace(large_communities=((65000, 9, 4),))))
    for name, want in [("e", True), ("x", False)]:
        e = engine(d, policy("p", ({"bgp-conditions": {"match-ext-community-set": {"ext-community-set": name}}}, ACC)))
        assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE)) is want
    soo = bytes.fromhex("01030a0000010005")
    assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE.replace(ext_communities=(soo,))))


def test_conditions_are_anded():
    d = sets(prefix={"s": [("1.0.0.0/8", "8..24")]})
    e = engine(d, policy("p", ({"match-prefix-set": {"prefix-set": "s"}, "bgp-conditions": {"med-eq": 50}}, ACC)))
    assert accepted(e, RouteContext("1.0.0.0/24", attrs=BASE))
    assert not accepted(e, RouteContext("2.0.0.0/24", attrs=BASE))
    assert not accepted(e, RouteContext("1.0.0.0/24", attrs=BASE.replace(med=1)))


# -- actions -----------------------------------------------------------------------------


def act(bgp: dict, result: str = "accept-route", route: RouteContext | None = None, local_as: int = 65000):
    e = engine(sets(comm={"rm": ["65001:.*", "65000:1"], "add": ["7:7", "no-export"]},
                    large={"lrm": ["65000:.*"]}),
               policy("p", ({}, {"policy-result": result, "bgp-actions": bgp})))
    r = route or RouteContext("1.0.0.0/24", attrs=BASE, local_as=local_as)
    res = e.evaluate(["p"], r, False)
    un = PolicyEngine(e.config, cache=False).evaluate(["p"], r, False)
    assert (un.accepted, un.attrs, un.weight) == (res.accepted, res.attrs, res.weight)
    ex = e.explain(["p"], r, False)
    if res.accepted:
        assert ex["attributes"]["origin"] == res.attrs.to_dict()["origin"]
    return res


def test_set_local_pref_origin_weight_next_hop():
    r = act({"set-local-pref": 300, "set-route-origin": "incomplete", "set-weight": 7, "set-next-hop": "198.51.100.1"})
    assert r.attrs.local_pref == 300 and r.attrs.origin == 2 and r.weight == 7
    assert r.attrs.next_hop == bytes([198, 51, 100, 1])
    assert r.attrs.med == BASE.med and r.attrs.communities == BASE.communities
    assert act({"set-next-hop": "self"}).attrs.next_hop == NEXT_HOP_SELF
    assert act({}).weight is None
    assert act({}, route=RouteContext("1.0.0.0/24", attrs=BASE, weight=5)).weight == 5


@pytest.mark.parametrize("med_in,action,want", [
    (50, 10, 10), (50, "+10", 60), (50, "-10", 40), (5, "-10", 0), (None, "+3", 3), (None, "-3", 0),
    (0xFFFFFFF0, "+100", 0xFFFFFFFF), (50, "0", 0),
])
def test_set_med(med_in, action, want):
    r = act({"set-med": action}, route=RouteContext("1.0.0.0/24", attrs=BASE.replace(med=med_in)))
    assert r.attrs.med == want


def test_as_path_prepend():
    r = act({"set-as-path-prepend": {"repeat-n": 2}}, local_as=64512)
    assert r.attrs.as_path == ((SEQ, (64512, 64512, 65001, 65002, 65003)),)
    r = act({"set-as-path-prepend": {"repeat-n": 1, "asn": 4200000000}})
    assert r.attrs.as_path == ((SEQ, (4200000000, 65001, 65002, 65003)),)
    r = act({"set-as-path-prepend": {"repeat-n": 3}}, route=RouteContext("1.0.0.0/24", attrs=BASE.replace(as_path=PATHS["set"][1:]), local_as=1))
    assert r.attrs.as_path == ((SEQ, (1, 1, 1)), (SET, (65003, 65004)))
    r = act({"set-as-path-prepend": {"repeat-n": 1}}, route=RouteContext("1.0.0.0/24", attrs=BASE.replace(as_path=()), local_as=9))
    assert r.attrs.as_path == ((SEQ, (9,)),) and r.attrs.as_path_length == 1


def test_community_add_remove_replace():
    base = comms("65000:1", "65001:7")
    assert act({"set-community": {"options": "add", "communities": ["7:7", "65000:1"]}}).attrs.communities == base + comms("7:7")
    assert act({"set-community": {"options": "add", "community-set-ref": "add"}}).attrs.communities == base + comms("7:7") + (0xFFFFFF01,)
    assert act({"set-community": {"options": "replace", "communities": ["9:9"]}}).attrs.communities == comms("9:9")
    assert act({"set-community": {"options": "replace", "communities": []}}).attrs.communities == ()
    assert act({"set-community": {"options": "remove", "communities": ["65000:1"]}}).attrs.communities == comms("65001:7")
    # remove by a set holding a regex and an exact value
    r = RouteContext("1.0.0.0/24", attrs=BASE.replace(communities=comms("65001:1", "65000:1", "65000:2", "165001:3", "65001:99")))
    assert act({"set-community": {"options": "remove", "community-set-ref": "rm"}}, route=r).attrs.communities == comms("65000:2", "165001:3")
    # inline regex remove
    assert act({"set-community": {"options": "remove", "communities": ["6500[01]:.*"]}}).attrs.communities == ()


def test_large_and_ext_community_actions():
    r = act({"set-large-community": {"options": "add", "communities": ["1:2:3"]}})
    assert r.attrs.large_communities == ((65000, 1, 2), (1, 2, 3))
    assert act({"set-large-community": {"options": "remove", "large-community-set-ref": "lrm"}}).attrs.large_communities == ()
    assert act({"set-large-community": {"options": "replace", "communities": ["9:9:9"]}}).attrs.large_communities == ((9, 9, 9),)
    r = act({"set-ext-community": {"options": "add", "communities": ["route-origin:10.0.0.1:5"]}})
    assert r.attrs.ext_communities == BASE.ext_communities + (bytes.fromhex("01030a0000010005"),)
    r = act({"set-ext-community": {"options": "remove", "communities": ["route-target:.*"]}})
    assert r.attrs.ext_communities == ()


def test_rejected_result_has_no_attrs():
    r = act({"set-local-pref": 5}, result="reject-route")
    assert not r.accepted and r.attrs is None and r.weight is None


# -- chains, results, defaults ------------------------------------------------------------


def chain_engine(cache=True) -> PolicyEngine:
    d = sets(prefix={"ten": [("10.0.0.0/8", "8..32")]}, comm={"c": ["65000:1"]})
    p1 = policy("p1",
                ({"match-prefix-set": {"prefix-set": "ten"}}, {"policy-result": "next-statement", "bgp-actions": {"set-local-pref": 150}}),
                ({"bgp-conditions": {"local-pref-eq": 150}}, {"policy-result": "next-policy", "bgp-actions": {"set-med": "+1"}}),
                ({}, {"policy-result": "reject-route"}))
    p2 = policy("p2",
                ({"bgp-conditions": {"med-eq": 51}}, {"policy-result": "accept-route", "bgp-actions": {"set-weight": 9}}),
                ({"bgp-conditions": {"match-community-set": {"community-set": "c"}}}, {"policy-result": "next-statement", "bgp-actions": {"set-community": {"options": "add", "communities": ["1:1"]}}}))
    p3 = policy("p3", ({"bgp-conditions": {"med-eq": 50}}, REJ))
    return engine(d, p1, p2, p3, cache=cache)


@pytest.mark.parametrize("cache", [True, False])
def test_chain_next_statement_next_policy(cache):
    e = chain_engine(cache)
    # 10/8: p1/10 sets lp 150 -> p1/20 matches (lp 150): med 51, next policy -> p2/10 accepts, weight 9
    r = e.evaluate(["p1", "p2"], RouteContext("10.1.0.0/16", attrs=BASE), False)
    assert r.accepted and r.attrs.local_pref == 150 and r.attrs.med == 51 and r.weight == 9
    # not 10/8: p1/30 rejects
    assert not e.evaluate(["p1", "p2"], RouteContext("11.0.0.0/8", attrs=BASE), True).accepted
    # p2 alone: med 50 -> statement 20 adds 1:1, falls off the end -> the default decides
    r = e.evaluate(["p2"], RouteContext("11.0.0.0/8", attrs=BASE), True)
    assert r.accepted and r.attrs.communities[-1] == 1 << 16 | 1 and r.weight is None
    assert not e.evaluate(["p2"], RouteContext("11.0.0.0/8", attrs=BASE), False).accepted
    # falling off p2 continues with p3, which rejects med 50
    assert not e.evaluate(["p2", "p3"], RouteContext("11.0.0.0/8", attrs=BASE), True).accepted
    # empty chain: default
    assert e.evaluate([], RouteContext("11.0.0.0/8", attrs=BASE), True).attrs is BASE
    assert not e.evaluate([], RouteContext("11.0.0.0/8", attrs=BASE), False).accepted


def test_unknown_policy_in_chain():
    with pytest.raises(PolicyConfigError):
        chain_engine().evaluate(["nope"], RouteContext("1.0.0.0/8", attrs=BASE))


def test_explain_and_trace():
    e = chain_engine()
    ex = e.explain(["p1", "p2"], RouteContext("10.1.0.0/16", attrs=BASE, neighbor="10.0.0.1"), False)
    assert ex["decision"] == "accept-route" and ex["decided-by"] == "p2/10"
    assert ex["attributes"]["local-pref"] == 150 and ex["attributes"]["med"] == 51 and ex["weight"] == 9
    assert ex["prefix"] == "10.1.0.0/16" and ex["neighbor"] == "10.0.0.1"
    s = ex["steps"]
    assert s[0]["statement"] == "10" and s[0]["conditions"] == [{"condition": "match-prefix-set ten any", "matched": True}]
    assert s[0]["actions"] == ["set-local-pref 150"] and s[0]["result"] == "next-statement"
    assert s[1]["result"] == "next-policy" and s[2] == {"policy": "p1", "end": "next-policy"}
    assert s[3]["policy"] == "p2" and s[3]["result"] == "accept-route"
    ex = e.explain(["p1"], RouteContext("11.0.0.0/8", attrs=BASE), True)
    assert ex["decision"] == "reject-route" and ex["decided-by"] == "p1/30" and ex["attributes"] is None
    assert ex["steps"][0]["matched"] is False and ex["steps"][0]["result"] == "no match"
    tr = e.evaluate(["p2"], RouteContext("11.0.0.0/8", attrs=BASE), True, trace=True).trace
    assert tr[0].startswith("p2/10: no match (med-eq 51)")
    assert tr[1].startswith("p2/20: match -> next-statement [set-community add 1:1]")
    assert tr[-1] == "decision: accept-route (default)"


# -- caching and interning ------------------------------------------------------------------


def test_cache_never_changes_results_across_prefixes():
    e = chain_engine()
    for _ in range(2):
        r1 = e.evaluate(["p1", "p2"], RouteContext("10.1.0.0/16", attrs=BASE), False)
        r2 = e.evaluate(["p1", "p2"], RouteContext("11.1.0.0/16", attrs=BASE), False)
        assert r1.accepted and not r2.accepted
    # same attrs, different neighbor/route-type classes are kept apart
    d = sets(neighbor={"n": ["10.0.0.1"]})
    e = engine(d, policy("p", ({"match-neighbor-set": {"neighbor-set": "n"}}, {"policy-result": "accept-route", "bgp-actions": {"set-local-pref": 7}})))
    for _ in range(2):
        assert e.evaluate(["p"], RouteContext("1.0.0.0/8", attrs=BASE, neighbor="10.0.0.1"), False).attrs.local_pref == 7
        assert not e.evaluate(["p"], RouteContext("1.0.0.0/8", attrs=BASE, neighbor="10.0.0.2"), False).accepted


def test_results_are_interned():
    e = chain_engine()
    a = e.evaluate(["p1", "p2"], RouteContext("10.1.0.0/16", attrs=BASE), False).attrs
    b = e.evaluate(["p1", "p2"], RouteContext("10.2.0.0/16", attrs=BASE.replace()), False).attrs
    assert a is b
    un = PolicyEngine(e.config, cache=False)
    c = un.evaluate(["p1", "p2"], RouteContext("10.1.0.0/16", attrs=BASE), False).attrs
    assert c is un.evaluate(["p1", "p2"], RouteContext("10.3.0.0/16", attrs=BASE), False).attrs


def test_cache_bound():
    e = PolicyEngine(chain_engine().config, max_cache_entries=4)
    for i in range(20):
        a = BASE.replace(med=i)
        r = e.evaluate(["p2"], RouteContext("1.0.0.0/8", attrs=a), False)
        assert r.accepted == (i == 51)
    assert sum(len(d) for ch in e._chains.values() for d in ch.roots.values()) <= 4


# -- hooks ------------------------------------------------------------------------------------

EBGP = PeerSource("10.0.0.1", bytes([10, 0, 0, 1]), 1, 65001, 65000, ebgp=True)
IBGP = PeerSource("10.0.0.2", bytes([10, 0, 0, 2]), 2, 65000, 65000, ebgp=False)


def keys(*prefixes: str) -> list[bytes]:
    return [prefix_to_key(p) for p in prefixes]


@pytest.mark.parametrize("cache", [True, False])
def test_import_hook_and_batch(cache):
    d = sets(prefix={"ten": [("10.0.0.0/8", "16..24")]}, neighbor={"n": ["10.0.0.1"]})
    e = engine(d, policy("in",
                         ({"match-prefix-set": {"prefix-set": "ten"}, "match-route-type": "external"},
                          {"policy-result": "accept-route", "bgp-actions": {"set-local-pref": 200, "set-weight": 3}}),
                         ({"match-neighbor-set": {"neighbor-set": "n"}}, {"policy-result": "accept-route", "bgp-actions": {"set-as-path-prepend": {"repeat-n": 1}}}),
                         ), cache=cache)
    hook = make_import_hook(e, ["in"], "reject-route")
    ks = keys("10.1.0.0/16", "11.0.0.0/8", "10.2.3.0/24", "10.2.3.0/25")
    assert hook(ks[0], IPV4_UNICAST, EBGP, BASE).local_pref == 200
    assert hook(ks[1], IPV4_UNICAST, EBGP, BASE).as_path[0][1][0] == 65000
    assert hook(ks[1], IPV4_UNICAST, IBGP, BASE) is None
    assert hook(ks[0], IPV4_UNICAST, IBGP, BASE) is None  # internal: statement 10 fails, not in n
    groups = dict((a.local_pref, ks2) for a, ks2 in hook.filter_batch(IPV4_UNICAST, EBGP, BASE, ks))
    assert groups == {200: [ks[0], ks[2]], 100: [ks[1], ks[3]]}
    w = {a.local_pref: wt for a, wt, _ in hook.filter_batch_weighted(IPV4_UNICAST, EBGP, BASE, ks)}
    assert w == {200: 3, 100: None}
    assert hook.filter_batch(IPV4_UNICAST, IBGP, BASE, ks) == []
    # v6 family: the prefix set is v4 only
    assert [len(k) for _, k in hook.filter_batch(IPV6_UNICAST, EBGP, BASE, keys("2001:db8::/32"))] == [1]
    with pytest.raises(ValueError):
        make_import_hook(e, ["in"], "maybe")


def test_import_batch_without_prefix_statement_is_one_group():
    e = engine(sets(comm={"c": ["65000:1"]}), policy("in", ({"bgp-conditions": {"match-community-set": {"community-set": "c"}}},
                                                            {"policy-result": "accept-route", "bgp-actions": {"set-med": 1}})))
    hook = make_import_hook(e, ["in"], False)
    ks = keys(*(f"10.{i}.0.0/16" for i in range(50)))
    out = hook.filter_batch(IPV4_UNICAST, EBGP, BASE, ks)
    assert len(out) == 1 and out[0][1] is ks and out[0][0].med == 1
    assert hook.filter_batch(IPV4_UNICAST, EBGP, BASE.replace(communities=()), ks) == []


def test_export_hook():
    d = sets(prefix={"ten": [("10.0.0.0/8", "8..24")]})
    e = engine(d, policy("out",
                         ({"match-prefix-set": {"prefix-set": "ten"}, "match-route-type": "local"},
                          {"policy-result": "accept-route", "bgp-actions": {"set-next-hop": "self", "set-as-path-prepend": {"repeat-n": 2}}}),
                         ({"match-prefix-set": {"prefix-set": "ten"}}, {"policy-result": "accept-route", "bgp-actions": {"set-next-hop": "self"}})))
    me = bytes([192, 0, 2, 254])
    hook = make_export_hook(e, ["out"], "reject-route", family=IPV4_UNICAST, local_as=65000, next_hop_self=me)
    raw = make_export_hook(e, ["out"], "reject-route", family=IPV4_UNICAST, local_as=65000)
    lp = Path(local_source(1, 65000), BASE)
    learned = Path(EBGP, BASE)
    k = prefix_to_key("10.1.0.0/16")
    a = hook(k, lp, BASE)
    assert a.next_hop == me and a.as_path[0][1][:2] == (65000, 65000)
    assert hook(k, lp, BASE) is a
    assert hook(k, learned, BASE).next_hop == me and hook(k, learned, BASE).as_path == BASE.as_path
    assert raw(k, learned, BASE).next_hop == NEXT_HOP_SELF
    assert hook(prefix_to_key("11.0.0.0/8"), learned, BASE) is None
