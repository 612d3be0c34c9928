"""Property: the compiled, cached engine equals a slow reference interpreter written here.

Random policies over a small universe of sets, random routes (attributes shared between
several prefixes, as the RIBs share them), evaluated per route, in batches, and with
the cache on and off.
"""

from __future__ import annotations

import ipaddress
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.bgp.family import IPV4_UNICAST, IPV6_UNICAST
from appliance.bgp.packet.pathattrs import PathAttributes
from appliance.policy import PolicyEngine, RouteContext, parse_routing_policy
from appliance.policy.config import community_text, large_community_text

DEFINED = {
    "prefix-sets": {"prefix-set": [
        {"name": "p4", "prefixes": {"prefix": [
            {"ip-prefix": "10.0.0.0/8", "masklength-range": "16..24"},
            {"ip-prefix": "10.1.0.0/16", "masklength-range": "exact"},
            {"ip-prefix": "192.168.0.0/16", "masklength-range": "16..32"}]}},
        {"name": "p6", "prefixes": {"prefix": [
            {"ip-prefix": "2001:db8::/32", "masklength-range": "48..64"},
            {"ip-prefix": "10.0.0.0/8", "masklength-range": "exact"}]}},
    ]},
    "neighbor-sets": {"neighbor-set": [{"name": "n", "address": ["10.0.0.1", "10.0.0.3"]}]},
    "bgp-defined-sets": {
        "as-path-sets": {"as-path-set": [
            {"name": "a1", "member": ["^65001_"]},
            {"name": "a2", "member": ["_65003_", "_65002$"]},
            {"name": "a3", "member": ["^$"]}]},
        "community-sets": {"community-set": [
            {"name": "c1", "member": ["65000:1", "no-export"]},
            {"name": "c2", "member": ["65001:.*", "65000:2"]}]},
        "large-community-sets": {"large-community-set": [{"name": "l1", "member": ["1:2:3", "7:.*"]}]},
    },
}

condition = st.fixed_dictionaries({}, optional={
    "match-prefix-set": st.fixed_dictionaries({"prefix-set": st.sampled_from(["p4", "p6"]),
                                               "match-set-options": st.sampled_from(["any", "invert"])}),
    "match-neighbor-set": st.fixed_dictionaries({"neighbor-set": st.just("n"),
                                                 "match-set-options": st.sampled_from(["any", "invert"])}),
    "match-route-type": st.sampled_from(["internal", "external"]),
    "bgp-conditions": st.fixed_dictionaries({}, optional={
        "match-as-path-set": st.fixed_dictionaries({"as-path-set": st.sampled_from(["a1", "a2", "a3"]),
                                                    "match-set-options": st.sampled_from(["any", "all", "invert"])}),
        "match-community-set": st.fixed_dictionaries({"community-set": st.sampled_from(["c1", "c2"]),
                                                      "match-set-options": st.sampled_from(["any", "all", "invert"])}),
        "match-large-community-set": st.fixed_dictionaries({"large-community-set": st.just("l1")}),
        "as-path-length": st.fixed_dictionaries({"operator": st.sampled_from(["eq", "ge", "le"]),
                                                 "value": st.integers(0, 4)}),
        "med-eq": st.sampled_from([0, 10, 11]),
        "local-pref-eq": st.sampled_from([100, 200]),
        "origin-eq": st.sampled_from(["igp", "egp"]),
    }),
})
action = st.fixed_dictionaries({"policy-result": st.sampled_from(
    ["accept-route", "reject-route", "next-statement", "next-policy"])}, optional={
    "bgp-actions": st.fixed_dictionaries({}, optional={
        "set-local-pref": st.sampled_from([100, 200]),
        "set-med": st.sampled_from([10, "+1", "-1", "-100"]),
        "set-route-origin": st.sampled_from(["igp", "egp"]),
        "set-weight": st.integers(0, 3),
        "set-as-path-prepend": st.fixed_dictionaries({"repeat-n": st.integers(1, 2)},
                                                     optional={"asn": st.just(65003)}),
        "set-community": st.one_of(
            st.fixed_dictionaries({"options": st.sampled_from(["add", "replace"]),
                                   "communities": st.lists(st.sampled_from(["65000:1", "65000:2", "65001:5"]), max_size=2)}),
            st.fixed_dictionaries({"options": st.just("remove"), "community-set-ref": st.sampled_from(["c1", "c2"])})),
    })})


@st.composite
def policies(draw):
    out = []
    for i in range(draw(st.integers(1, 3))):
        stmts = draw(st.lists(st.tuples(condition, action), min_size=1, max_size=4))
        out.append({"name": f"P{i}", "statements": {"statement": [
            {"name": str(j), "conditions": c, "actions": a} for j, (c, a) in enumerate(stmts)]}})
    return out


AS_PATHS = [(), ((2, (65001,)),), ((2, (65001, 65002)),), ((2, (65004, 65003, 65005)),),
            ((2, (65002,)), (1, (65003, 65009)))]
COMMS = [65000 << 16 | 1, 65000 << 16 | 2, 65001 << 16 | 9, 0xFFFFFF01, 7]

attrs_st = st.builds(
    lambda ap, med, lp, origin, cm, lc: PathAttributes(
        origin=origin, as_path=ap, next_hop=bytes(4), med=med, local_pref=lp,
        communities=tuple(dict.fromkeys(cm)), large_communities=lc),
    st.sampled_from(AS_PATHS), st.sampled_from([None, 0, 10, 11]), st.sampled_from([None, 100, 200]),
    st.integers(0, 2), st.lists(st.sampled_from(COMMS), max_size=3),
    st.sampled_from([(), ((1, 2, 3),), ((7, 0, 0),), ((8, 1, 1),)]))
PREFIXES = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.0/25", "192.168.1.0/24",
            "192.168.1.128/32", "11.0.0.0/8", "2001:db8:1::/48", "2001:db8::/32", "a00::/8", "2001:db8:1:2::/64"]


# -- the reference interpreter: straightforward, from the parsed configuration ---------

def ref_prefix(ps, prefix: str) -> bool:
    net = ipaddress.ip_network(prefix)
    for e in ps.prefixes:
        cfg = ipaddress.ip_network(e.ip_prefix)
        if cfg.version == net.version and e.lo <= net.prefixlen <= e.hi and net.subnet_of(cfg):
            return True
    return False


def ref_members(values, patterns, text, route_vals, opt) -> bool:
    def one(v):
        return v in values or any(re.fullmatch(p.pattern, text(v)) for p in patterns)
    if opt == "all":
        return all(v in route_vals for v in values) and all(
            any(re.fullmatch(p.pattern, text(v)) for v in route_vals) for p in patterns)
    hit = any(one(v) for v in route_vals)
    return not hit if opt == "invert" else hit


def ref_aspath_text(ap) -> str:
    return " ".join(" ".join(map(str, a)) if t == 2 else "{" + ",".join(map(str, a)) + "}" for t, a in ap if a)


def ref_cond(cfg, c, a: PathAttributes, prefix, neighbor, rtype) -> bool:
    ds = cfg.defined_sets
    if c.match_prefix_set and ref_prefix(ds.prefix_sets[c.match_prefix_set.set_name], prefix) == (c.match_prefix_set.options == "invert"):
        return False
    if c.match_neighbor_set and (neighbor in ds.neighbor_sets[c.match_neighbor_set.set_name].addresses) == (c.match_neighbor_set.options == "invert"):
        return False
    if c.match_route_type and c.match_route_type != rtype:
        return False
    if c.match_as_path_set:
        pats = ds.as_path_sets[c.match_as_path_set.set_name].patterns
        t = ref_aspath_text(a.as_path)
        hits = [bool(p.search(t)) for p in pats]
        opt = c.match_as_path_set.options
        if not (all(hits) if opt == "all" else (not any(hits) if opt == "invert" else any(hits))):
            return False
    if c.match_community_set:
        s = ds.community_sets[c.match_community_set.set_name]
        if not ref_members(s.values, s.patterns, community_text, a.communities, c.match_community_set.options):
            return False
    if c.match_large_community_set:
        s = ds.large_community_sets[c.match_large_community_set.set_name]
        if not ref_members(s.values, s.patterns, large_community_text, a.large_communities, c.match_large_community_set.options):
            return False
    if c.as_path_length:
        n, op = a.as_path_length, c.as_path_length.operator
        v = c.as_path_length.value
        if not (n == v if op == "eq" else n >= v if op == "ge" else n <= v):
            return False
    if c.med_eq is not None and a.med != c.med_eq:
        return False
    if c.local_pref_eq is not None and a.local_pref != c.local_pref_eq:
        return False
    return not (c.origin_eq is not None and a.origin != c.origin_eq)


def ref_apply(act, a: PathAttributes, local_as: int) -> PathAttributes:
    if act.set_local_pref is not None:
        a = a.replace(local_pref=act.set_local_pref)
    if act.set_med is not None:
        m = act.set_med
        cur = a.med or 0
        a = a.replace(med=m.value if m.op == "set" else min(cur + m.value, 2**32 - 1) if m.op == "add" else max(cur - m.value, 0))
    if act.set_route_origin is not None:
        a = a.replace(origin=act.set_route_origin)
    sc = act.set_community
    if sc is not None:
        if sc.options == "replace":
            a = a.replace(communities=tuple(sc.values))
        elif sc.options == "add":
            a = a.replace(communities=a.communities + tuple(v for v in sc.values if v not in a.communities))
        else:
            a = a.replace(communities=tuple(c for c in a.communities if c not in sc.values and not any(
                p.fullmatch(community_text(c)) for p in sc.patterns)))
    pp = act.set_as_path_prepend
    if pp is not None:
        asns = (pp.asn or local_as,) * pp.repeat_n
        ap = a.as_path
        if ap and ap[0][0] == 2 and len(ap[0][1]) + len(asns) <= 255:
            ap = ((2, asns + ap[0][1]),) + ap[1:]
        else:
            ap = ((2, asns),) + ap
        a = a.replace(as_path=ap)
    return a


def reference(cfg, chain, a, prefix, neighbor, rtype, local_as, default):
    weight = None
    for name in chain:
        for s in cfg.policy_definitions[name].statements:
            if not ref_cond(cfg, s.conditions, a, prefix, neighbor, rtype):
                continue
            r = s.actions.policy_result
            if r == "reject-route":
                return False, None, None
            a = ref_apply(s.actions, a, local_as)
            if s.actions.set_weight is not None:
                weight = s.actions.set_weight
            if r == "accept-route":
                return True, a, weight
            if r == "next-policy":
                break
    return (True, a, weight) if default else (False, None, None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pols=policies(), routes=st.lists(st.tuples(attrs_st, st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=6),
                                                  st.sampled_from(["10.0.0.1", "10.0.0.2"]),
                                                  st.sampled_from(["internal", "external"])), min_size=1, max_size=4),
       default=st.booleans(), data=st.data())
def test_engine_equals_reference(pols, routes, default, data):
    cfg = parse_routing_policy({"defined-sets": DEFINED, "policy-definitions": {"policy-definition": pols}})
    names = [p["name"] for p in pols]
    chain = data.draw(st.lists(st.sampled_from(names), min_size=0, max_size=3))
    cached, uncached = PolicyEngine(cfg), PolicyEngine(cfg, cache=False)
    for _round in range(2):  # the second round runs from a warm cache
        for attrs, prefixes, nbr, rtype in routes:
            for prefix in prefixes:
                want = reference(cfg, chain, attrs, prefix, nbr, rtype, 65000, default)
                rc = RouteContext(prefix, attrs=attrs, neighbor=nbr, route_type=rtype, local_as=65000)
                for e in (cached, uncached):
                    r = e.evaluate(chain, rc, default)
                    assert (r.accepted, r.attrs, r.weight) == want, (prefix, e.cache)
                ex = cached.explain(chain, rc, default)
                assert (ex["decision"] == "accept-route") == want[0]
            # batches: per family, the same answers grouped
            for fam, ver in ((IPV4_UNICAST, 4), (IPV6_UNICAST, 6)):
                ps = [p for p in prefixes if ipaddress.ip_network(p).version == ver]
                ks = [RouteContext(p).key for p in ps]
                expect = {}
                for p, k in zip(ps, ks, strict=True):
                    acc, a, w = reference(cfg, chain, attrs, p, nbr, rtype, 65000, default)
                    if acc:
                        expect.setdefault((a, w), []).append(k)
                for e in (cached, uncached):
                    got = e.evaluate_batch(chain, fam, attrs, ks, neighbor=ipaddress.ip_address(nbr).packed,
                                           route_type=rtype, local_as=65000, default_accept=default)
                    norm: dict = {}
                    for a, w, gk in got:
                        norm.setdefault((a, w), []).extend(gk)
                    assert {g: sorted(v) for g, v in norm.items()} == {g: sorted(v) for g, v in expect.items()}
