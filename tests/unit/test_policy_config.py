"""Routing-policy configuration: the JSON shape, values resolved, every error path."""

from __future__ import annotations

import copy
import re

import pytest

from appliance.policy.config import (
    TOP,
    AsPathLength,
    MatchSet,
    MedAction,
    PolicyConfigError,
    PrependAction,
    aspath_regex,
    ext_community_text,
    parse_ext_community,
    parse_routing_policy,
)

P = "/policy-definitions/policy-definition[name='in']/statements/statement[name='10']"


def full() -> dict:
    return {
        "defined-sets": {
            "prefix-sets": {"prefix-set": [
                {"name": "v4", "mode": "ipv4", "prefixes": {"prefix": [
                    {"ip-prefix": "10.0.0.0/8", "masklength-range": "16..24"},
                    {"ip-prefix": "192.0.2.0/24", "masklength-range": "exact"},
                    {"ip-prefix": "198.51.100.0/24"},
                ]}},
                {"name": "v6", "mode": "ipv6", "prefixes": {"prefix": [
                    {"ip-prefix": "2001:db8::/32", "masklength-range": "48..64"}]}},
            ]},
            "neighbor-sets": {"neighbor-set": [{"name": "n", "address": ["10.0.0.1", "2001:db8::1"]}]},
            "bgp-defined-sets": {
                "as-path-sets": {"as-path-set": [{"name": "a", "member": ["^65001_", "_65002$"]}]},
                "community-sets": {"community-set": [
                    {"name": "c", "member": ["65000:1", "no-export", "^65001:.*$"]}]},
                "ext-community-sets": {"ext-community-set": [
                    {"name": "e", "member": ["route-target:65000:1", "route-origin:10.0.0.1:5"]}]},
                "large-community-sets": {"large-community-set": [
                    {"name": "l", "member": ["65000:1:2", "65000:.*"]}]},
            },
        },
        "policy-definitions": {"policy-definition": [{"name": "in", "statements": {"statement": [
            {"name": "10",
             "conditions": {
                 "match-prefix-set": {"prefix-set": "v4", "match-set-options": "invert"},
                 "match-neighbor-set": {"neighbor-set": "n"},
                 "install-protocol-eq": "bgp",
                 "match-route-type": "external",
                 "next-hop-in": ["192.0.2.1"],
                 "bgp-conditions": {
                     "match-as-path-set": {"as-path-set": "a", "match-set-options": "all"},
                     "match-community-set": {"community-set": "c"},
                     "match-ext-community-set": {"ext-community-set": "e"},
                     "match-large-community-set": {"large-community-set": "l"},
                     "as-path-length": {"operator": "ge", "value": 2},
                     "med-eq": 5, "origin-eq": "egp", "local-pref-eq": "100",
                 }},
             "actions": {
                 "policy-result": "accept-route",
                 "bgp-actions": {
                     "set-local-pref": 200, "set-med": "-7", "set-route-origin": "incomplete",
                     "set-next-hop": "self", "set-weight": 300,
                     "set-as-path-prepend": {"repeat-n": 3},
                     "set-community": {"options": "remove", "community-set-ref": "c"},
                     "set-large-community": {"options": "add", "communities": ["1:2:3"]},
                     "set-ext-community": {"options": "replace", "communities": ["route-target:65000:9"]},
                 }}},
            {"name": "20", "actions": {"bgp-actions": {"set-med": 10}}},
        ]}}]},
    }


def test_full_shape_parses_and_resolves():
    cfg = parse_routing_policy(full())
    ds = cfg.defined_sets
    v4 = ds.prefix_sets["v4"]
    assert [(e.ip_prefix, e.lo, e.hi) for e in v4.prefixes] == [
        ("10.0.0.0/8", 16, 24), ("192.0.2.0/24", 24, 24), ("198.51.100.0/24", 24, 24)]
    assert v4.prefixes[0].network == 0x0A000000
    assert ds.prefix_sets["v6"].prefixes[0].version == 6
    assert ds.neighbor_sets["n"].packed == {bytes([10, 0, 0, 1]), bytes.fromhex("20010db8" + "0" * 23 + "1")}
    assert ds.community_sets["c"].values == (65000 << 16 | 1, 0xFFFFFF01)
    assert [p.pattern for p in ds.community_sets["c"].patterns] == ["^65001:.*$"]
    assert ds.large_community_sets["l"].values == ((65000, 1, 2),)
    assert len(ds.large_community_sets["l"].patterns) == 1
    assert ds.ext_community_sets["e"].values == (
        bytes.fromhex("0002fde800000001"), bytes.fromhex("01030a0000010005"))
    pol = cfg.policy_definitions["in"]
    assert [s.name for s in pol.statements] == ["10", "20"]
    c = pol.statements[0].conditions
    assert c.match_prefix_set == MatchSet("v4", "invert")
    assert c.match_neighbor_set == MatchSet("n", "any")
    assert c.match_as_path_set == MatchSet("a", "all")
    assert c.as_path_length == AsPathLength("ge", 2)
    assert (c.med_eq, c.origin_eq, c.local_pref_eq) == (5, 1, 100)
    assert c.next_hop_in == ("192.0.2.1",)
    a = pol.statements[0].actions
    assert a.policy_result == "accept-route"
    assert a.set_med == MedAction("subtract", 7)
    assert a.set_route_origin == 2 and a.set_next_hop == "self" and a.set_weight == 300
    assert a.set_as_path_prepend == PrependAction(3, None)
    assert a.set_community.values == ds.community_sets["c"].values
    assert len(a.set_community.patterns) == 1
    assert a.set_large_community.values == ((1, 2, 3),)
    assert a.set_ext_community.values == (bytes.fromhex("0002fde800000009"),)
    second = pol.statements[1].actions
    assert second.policy_result == "next-statement"  # no policy-result: continue
    assert second.set_med == MedAction("set", 10)


def test_whole_document_and_empty():
    assert parse_routing_policy({"fcr-routing-policy:routing-policy": full()}).policy_definitions
    cfg = parse_routing_policy({})
    assert cfg.policy_definitions == {} and cfg.defined_sets.prefix_sets == {}


def test_med_forms():
    for v, want in [(5, MedAction("set", 5)), ("5", MedAction("set", 5)), ("+3", MedAction("add", 3)),
                    ("-0", MedAction("subtract", 0))]:
        d = full()
        d["policy-definitions"]["policy-definition"][0]["statements"]["statement"][1]["actions"] = {
            "bgp-actions": {"set-med": v}}
        assert parse_routing_policy(d).policy_definitions["in"].statements[1].actions.set_med == want


def _stmt(d: dict) -> dict:
    return d["policy-definitions"]["policy-definition"][0]["statements"]["statement"][0]


def _sets(d: dict) -> dict:
    return d["defined-sets"]


def _bgp_sets(d: dict) -> dict:
    return d["defined-sets"]["bgp-defined-sets"]


ERRORS = [
    # (mutator, path suffix, message fragment)
    (lambda d: d.update(bogus=1), "/bogus", "unknown member"),
    (lambda d: _sets(d)["prefix-sets"]["prefix-set"][0]["prefixes"]["prefix"][0].update(
        {"ip-prefix": "10.0.0.1/8"}),
     "/defined-sets/prefix-sets/prefix-set[name='v4']/prefixes/prefix[ip-prefix='10.0.0.1/8'][masklength-range='16..24']/ip-prefix",
     "not an IP prefix"),
    (lambda d: _sets(d)["prefix-sets"]["prefix-set"][0]["prefixes"]["prefix"][0].update(
        {"masklength-range": "8..33"}), "/masklength-range", "<= 32"),
    (lambda d: _sets(d)["prefix-sets"]["prefix-set"][0]["prefixes"]["prefix"][0].update(
        {"masklength-range": "4..20"}), "/masklength-range", "8 <= lo"),
    (lambda d: _sets(d)["prefix-sets"]["prefix-set"][0]["prefixes"]["prefix"][0].update(
        {"masklength-range": "24..16"}), "/masklength-range", "lo <= hi"),
    (lambda d: _sets(d)["prefix-sets"]["prefix-set"][0]["prefixes"]["prefix"][0].update(
        {"masklength-range": "sixteen"}), "/masklength-range", "'lo..hi'"),
    (lambda d: _sets(d)["prefix-sets"]["prefix-set"][1]["prefixes"]["prefix"][0].update(
        {"ip-prefix": "10.0.0.0/8"}), "/ip-prefix", "not an ipv6 prefix"),
    (lambda d: _sets(d)["prefix-sets"]["prefix-set"][0].update(mode="ipv5"),
     "/defined-sets/prefix-sets/prefix-set[name='v4']/mode", "not one of"),
    (lambda d: _sets(d)["prefix-sets"]["prefix-set"][0]["prefixes"]["prefix"].append(
        {"ip-prefix": "10.0.0.0/8", "masklength-range": "16..24"}),
     "/prefix[ip-prefix='10.0.0.0/8'][masklength-range='16..24']", "duplicate"),
    (lambda d: _sets(d)["prefix-sets"]["prefix-set"].append({"name": "v4"}),
     "/defined-sets/prefix-sets/prefix-set[name='v4']", "duplicate"),
    (lambda d: _sets(d)["prefix-sets"]["prefix-set"].append({"mode": "ipv4"}),
     "/defined-sets/prefix-sets/prefix-set[3]", "needs the key"),
    (lambda d: _sets(d)["prefix-sets"].update({"prefix-set": {}}),
     "/defined-sets/prefix-sets/prefix-set", "expected a list"),
    (lambda d: _sets(d)["neighbor-sets"]["neighbor-set"][0].update(address=["10.0.0.300"]),
     "/defined-sets/neighbor-sets/neighbor-set[name='n']/address[1]", "not an IP address"),
    (lambda d: _sets(d)["neighbor-sets"]["neighbor-set"][0].update(address="10.0.0.1"),
     "/neighbor-set[name='n']/address", "expected a list"),
    (lambda d: _sets(d)["neighbor-sets"]["neighbor-set"][0].update(address=[1]),
     "/address[1]", "expected a string"),
    (lambda d: _bgp_sets(d)["as-path-sets"]["as-path-set"][0].update(member=["^65001_", "(65002"]),
     "/defined-sets/bgp-defined-sets/as-path-sets/as-path-set[name='a']/member[2]", "bad regular expression"),
    (lambda d: _bgp_sets(d)["community-sets"]["community-set"][0].update(member=["65536:1"]),
     "/community-set[name='c']/member[1]", "0..65535"),
    (lambda d: _bgp_sets(d)["community-sets"]["community-set"][0].update(member=["65000:*("]),
     "/community-set[name='c']/member[1]", "bad regular expression"),
    (lambda d: _bgp_sets(d)["large-community-sets"]["large-community-set"][0].update(member=["4294967296:1:1"]),
     "/large-community-set[name='l']/member[1]", "0..4294967295"),
    (lambda d: _bgp_sets(d)["ext-community-sets"]["ext-community-set"][0].update(member=["route-target:10.0.0.1:70000"]),
     "/ext-community-set[name='e']/member[1]", "0..65535"),
    (lambda d: _bgp_sets(d)["ext-community-sets"]["ext-community-set"][0].update(member=["route-target:host:1"]),
     "/ext-community-set[name='e']/member[1]", "administrator"),
    (lambda d: _bgp_sets(d).update(bogus={}), "/defined-sets/bgp-defined-sets/bogus", "unknown member"),
    # references
    (lambda d: _stmt(d)["conditions"]["match-prefix-set"].update({"prefix-set": "nope"}),
     P + "/conditions/match-prefix-set/prefix-set", "'nope' is not defined"),
    (lambda d: _stmt(d)["conditions"]["match-neighbor-set"].update({"neighbor-set": "nope"}),
     P + "/conditions/match-neighbor-set/neighbor-set", "not defined"),
    (lambda d: _stmt(d)["conditions"]["bgp-conditions"]["match-as-path-set"].update({"as-path-set": "nope"}),
     P + "/conditions/bgp-conditions/match-as-path-set/as-path-set", "not defined"),
    (lambda d: _stmt(d)["conditions"]["bgp-conditions"]["match-community-set"].update({"community-set": "nope"}),
     P + "/conditions/bgp-conditions/match-community-set/community-set", "not defined"),
    (lambda d: _stmt(d)["conditions"]["bgp-conditions"]["match-ext-community-set"].update({"ext-community-set": "x"}),
     P + "/conditions/bgp-conditions/match-ext-community-set/ext-community-set", "not defined"),
    (lambda d: _stmt(d)["conditions"]["bgp-conditions"]["match-large-community-set"].update({"large-community-set": "x"}),
     P + "/conditions/bgp-conditions/match-large-community-set/large-community-set", "not defined"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"]["set-community"].update({"community-set-ref": "nope"}),
     P + "/actions/bgp-actions/set-community/community-set-ref", "not defined"),
    (lambda d: _stmt(d)["conditions"].update({"match-prefix-set": {"match-set-options": "any"}}),
     P + "/conditions/match-prefix-set/prefix-set", "missing mandatory"),
    # condition values
    (lambda d: _stmt(d)["conditions"]["match-prefix-set"].update({"match-set-options": "all"}),
     P + "/conditions/match-prefix-set/match-set-options", "not one of"),
    (lambda d: _stmt(d)["conditions"].update({"install-protocol-eq": "ospf"}),
     P + "/conditions/install-protocol-eq", "not one of"),
    (lambda d: _stmt(d)["conditions"].update({"match-route-type": "any"}),
     P + "/conditions/match-route-type", "not one of"),
    (lambda d: _stmt(d)["conditions"].update({"next-hop-in": ["nh"]}),
     P + "/conditions/next-hop-in[1]", "not an IP address"),
    (lambda d: _stmt(d)["conditions"]["bgp-conditions"].update({"med-eq": -1}),
     P + "/conditions/bgp-conditions/med-eq", "out of range"),
    (lambda d: _stmt(d)["conditions"]["bgp-conditions"].update({"local-pref-eq": True}),
     P + "/conditions/bgp-conditions/local-pref-eq", "expected an integer"),
    (lambda d: _stmt(d)["conditions"]["bgp-conditions"].update({"origin-eq": "bgp"}),
     P + "/conditions/bgp-conditions/origin-eq", "not one of"),
    (lambda d: _stmt(d)["conditions"]["bgp-conditions"]["as-path-length"].update({"operator": "gt"}),
     P + "/conditions/bgp-conditions/as-path-length/operator", "not one of"),
    (lambda d: _stmt(d)["conditions"]["bgp-conditions"]["as-path-length"].pop("value"),
     P + "/conditions/bgp-conditions/as-path-length/value", "missing mandatory"),
    (lambda d: _stmt(d)["conditions"].update({"bgp-conditions": []}),
     P + "/conditions/bgp-conditions", "expected an object"),
    (lambda d: _stmt(d)["conditions"]["bgp-conditions"].update({"med": 1}),
     P + "/conditions/bgp-conditions/med", "unknown member"),
    # actions
    (lambda d: _stmt(d)["actions"].update({"policy-result": "accept"}),
     P + "/actions/policy-result", "not one of"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"].update({"set-local-pref": 4294967296}),
     P + "/actions/bgp-actions/set-local-pref", "out of range"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"].update({"set-med": "+x"}),
     P + "/actions/bgp-actions/set-med", "'+N'"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"].update({"set-med": "+4294967296"}),
     P + "/actions/bgp-actions/set-med", "out of range"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"].update({"set-route-origin": "bgp"}),
     P + "/actions/bgp-actions/set-route-origin", "not one of"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"].update({"set-next-hop": "me"}),
     P + "/actions/bgp-actions/set-next-hop", "'self'"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"].update({"set-weight": 65536}),
     P + "/actions/bgp-actions/set-weight", "out of range"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"]["set-as-path-prepend"].update({"repeat-n": 33}),
     P + "/actions/bgp-actions/set-as-path-prepend/repeat-n", "out of range"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"]["set-as-path-prepend"].update({"repeat-n": None}),
     P + "/actions/bgp-actions/set-as-path-prepend/repeat-n", "missing mandatory"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"]["set-as-path-prepend"].update({"asn": 0}),
     P + "/actions/bgp-actions/set-as-path-prepend/asn", "out of range"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"]["set-community"].update({"options": "append"}),
     P + "/actions/bgp-actions/set-community/options", "not one of"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"]["set-community"].pop("options"),
     P + "/actions/bgp-actions/set-community/options", "missing mandatory"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"]["set-community"].update({"options": "add"}),
     P + "/actions/bgp-actions/set-community/community-set-ref", "only 'remove'"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"]["set-community"].update({"communities": ["1:1"]}),
     P + "/actions/bgp-actions/set-community/community-set-ref", "not both"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"]["set-large-community"].update({"communities": ["1:.*"]}),
     P + "/actions/bgp-actions/set-large-community/communities[1]", "regexes only with 'remove'"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"]["set-ext-community"].update({"communities": ["route-target:1:99999999999"]}),
     P + "/actions/bgp-actions/set-ext-community/communities[1]", "0..4294967295"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"]["set-ext-community"].update(
        {"options": "remove", "communities": ["route-target:1:("]}),
     P + "/actions/bgp-actions/set-ext-community/communities[1]", "bad regular expression"),
    (lambda d: _stmt(d)["actions"]["bgp-actions"].update({"set-tag": 1}),
     P + "/actions/bgp-actions/set-tag", "unknown member"),
    (lambda d: _stmt(d).update({"when": 1}), P + "/when", "unknown member"),
    (lambda d: d["policy-definitions"]["policy-definition"][0]["statements"]["statement"].append({"name": "10"}),
     P, "duplicate"),
    (lambda d: d["policy-definitions"]["policy-definition"].append({"name": "in"}),
     "/policy-definitions/policy-definition[name='in']", "duplicate"),
    (lambda d: d["policy-definitions"]["policy-definition"][0].update(name=5),
     "/policy-definitions/policy-definition[name='5']/name", "expected a string"),
]


@pytest.mark.parametrize("mutate,suffix,fragment", ERRORS)
def test_error_paths(mutate, suffix, fragment):
    d = copy.deepcopy(full())
    mutate(d)
    with pytest.raises(PolicyConfigError) as ei:
        parse_routing_policy(d)
    err = ei.value
    assert err.path.startswith(TOP), err.path
    assert err.path.endswith(suffix), err.path
    assert fragment in err.message, err.message
    assert str(err).startswith(err.path + ": ")


def test_not_an_object_and_custom_root_path():
    with pytest.raises(PolicyConfigError) as ei:
        parse_routing_policy([], path="/x")
    assert ei.value.path == "/x"


def test_check_chain():
    cfg = parse_routing_policy(full())
    cfg.check_chain(["in"], "/p")
    with pytest.raises(PolicyConfigError) as ei:
        cfg.check_chain(["in", "out"], "/fcr-bgp:bgp/neighbors/neighbor[neighbor-address='10.0.0.2']/import-policy")
    assert ei.value.path.endswith("/import-policy") and "'out'" in ei.value.message


def test_aspath_regex_translation():
    b = "(?:^|[ ,{}()\\[\\]]|$)"
    assert aspath_regex("^65001_") == "^65001" + b
    assert aspath_regex("[_]") == "[_]"
    assert aspath_regex("\\_") == "\\_"
    assert aspath_regex("_[^_]_") == b + "[^_]" + b
    assert re.compile(aspath_regex("[]_]")).search("]")


def test_ext_community_forms():
    assert parse_ext_community("route-target:65000:1") == bytes.fromhex("0002fde800000001")
    assert parse_ext_community("rt:4200000000:7") == bytes.fromhex("0202fa56ea000007")
    assert parse_ext_community("soo:10.0.0.1:5") == bytes.fromhex("01030a0000010005")
    assert parse_ext_community("65000:1") is None
    for t in ["route-target:65000:1", "route-origin:10.0.0.1:5", "route-target:4200000000:7"]:
        assert ext_community_text(parse_ext_community(t)) == t
    assert ext_community_text(bytes.fromhex("0306000000000001")) == "0x0306000000000001"
