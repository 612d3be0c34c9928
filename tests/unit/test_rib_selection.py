"""RIB selection: distance then metric, ECMP limit, recursive resolution, next-hop tracking,
and a hypothesis comparison with a brute-force model."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.rib import NextHop, RibManager, RoutingConfig


def make(**kw):
    rib = RibManager(RoutingConfig(**kw), fib=False, interfaces=False)
    rib._ifindex = {"eth0": (2, True), "eth1": (3, True), "eth2": (4, True)}
    rib._ifname = {2: "eth0", 3: "eth1", 4: "eth2"}
    rib.replace_many("connected", 4, [("10.0.0.0/24", [NextHop(None, "eth0")]),
                                      ("10.0.1.0/24", [NextHop(None, "eth1")]),
                                      ("10.0.2.0/24", [NextHop(None, "eth2")])])
    return rib


def sel(rib, pfx, fam=4):
    return rib.selected(fam).get(pfx)


def test_distance_then_metric():
    rib = make()
    rib.replace_many("static", 4, [("192.0.2.0/24", "10.0.0.2", 0, 250)])
    rib.update_bgp("ipv4", [("192.0.2.0/24", ("10.0.1.2",), False, 0)])  # ibgp 200
    assert sel(rib, "192.0.2.0/24").origin == "bgp"
    rib.update_bgp("ipv4", [("192.0.2.0/24", ("10.0.1.2",), True, 0)])  # ebgp 20
    assert sel(rib, "192.0.2.0/24").distance == 20
    rib.replace_many("controller", 4, [("192.0.2.0/24", "10.0.2.2")])  # 5
    s = sel(rib, "192.0.2.0/24")
    assert (s.origin, s.hops) == ("controller", (("10.0.2.2", 4),))
    rib.replace_many("x", 4, [("198.51.100.0/24", "10.0.0.2", 7, 30),
                              ("198.51.100.0/24", "10.0.1.2", 3, 30)])
    rib.replace_multi("static", 4, "198.51.100.0/24", [(("10.0.2.2",), 5, 30, 0)])
    assert sel(rib, "198.51.100.0/24").hops == (("10.0.1.2", 3),)  # metric 3 < 5
    rib.apply_config(RoutingConfig(distances={"connected": 0, "static": 1, "ebgp": 20,
                                              "ibgp": 200, "controller": 50}))
    assert sel(rib, "192.0.2.0/24").origin == "bgp"  # controller distance now 50 > 20
    st_ = rib.state(4, "192.0.2.0/24")["routes"]["ipv4"][0]
    assert {c["origin"]: c["active"] for c in st_["candidates"]} == {
        "static": False, "controller": False, "bgp": True}


def test_ecmp_limit_and_blackhole():
    rib = make(maximum_paths=2)
    rib.update_bgp("ipv4", [("192.0.2.0/24", ("10.0.2.9", "10.0.0.9", "10.0.1.9"), True, 0)])
    assert sel(rib, "192.0.2.0/24").hops == (("10.0.0.9", 2), ("10.0.1.9", 3))
    rib.replace_many("static", 4, [("203.0.113.0/24", [NextHop(blackhole=True)])])
    s = sel(rib, "203.0.113.0/24")
    assert s.blackhole and s.route.type == "blackhole"
    # equal static candidates with different next hops: merged
    rib.replace_multi("static", 4, "198.18.0.0/24", [(("10.0.0.5",), 0, 1, 0),
                                                     (("10.0.1.5",), 0, 1, 0),
                                                     (("10.0.2.5",), 0, 9, 0)])
    assert sel(rib, "198.18.0.0/24").hops == (("10.0.0.5", 2), ("10.0.1.5", 3))


def test_recursive_resolution_and_tracking():
    rib = make()
    events = []
    rib.on_nexthop_change(lambda fam, gw, ok, hops: events.append((fam, gw, ok)))
    rib.update_bgp("ipv4", [(bytes([16, 100, 1]), ("172.16.0.1",), False, 0)])
    assert sel(rib, "100.1.0.0/16") is None  # next hop unreachable: invalid
    st_ = rib.state(4, "100.1.0.0/16")["routes"]["ipv4"][0]
    assert st_["candidates"][0]["valid"] is False and "selected" not in st_
    rib.replace_many("static", 4, [("172.16.0.0/16", "10.0.1.7")])
    assert sel(rib, "100.1.0.0/16").hops == (("10.0.1.7", 3),)
    assert ("ipv4", "172.16.0.1", True) in events
    # two levels: a more specific static through another recursive static
    rib.replace_many("static", 4, [("172.16.0.0/24", "172.16.200.1")])
    assert sel(rib, "172.16.0.0/24").hops == (("10.0.1.7", 3),)
    assert sel(rib, "100.1.0.0/16").hops == (("10.0.1.7", 3),)
    assert rib.nexthop_state(4, "172.16.0.1")["via"] == "172.16.0.0/24"
    rib.withdraw_many("static", 4, ["172.16.0.0/16"])
    assert sel(rib, "172.16.0.0/24") is None
    assert sel(rib, "100.1.0.0/16") is None
    assert ("ipv4", "172.16.0.1", False) in events
    rib.replace_many("static", 4, [("172.16.0.0/16", "10.0.2.7")])  # revalidated
    assert sel(rib, "100.1.0.0/16").hops == (("10.0.2.7", 4),)
    # not through the route itself: 172.16.0.0/24's gateway is inside itself
    rib.replace_many("static", 4, [("172.16.0.0/24", "172.16.0.99")])
    assert sel(rib, "172.16.0.0/24").hops == (("10.0.2.7", 4),)
    # a loop is bounded by the depth limit and invalid
    rib.replace_many("static", 4, [("198.18.1.0/24", "198.18.2.1"),
                                   ("198.18.2.0/24", "198.18.1.1")])
    assert sel(rib, "198.18.1.0/24") is None and sel(rib, "198.18.2.0/24") is None
    # connected goes: everything through it goes
    rib.withdraw_many("connected", 4, ["10.0.2.0/24"])
    assert sel(rib, "100.1.0.0/16") is None


def test_tracked_nexthop_without_route_and_ipv6():
    rib = make()
    rib.replace_many("connected", 6, [("2001:db8:1::/64", [NextHop(None, "eth1")])])
    assert rib.track_nexthop("ipv6-unicast", "2001:db8:1::5")["reachable"] is True
    assert rib.track_nexthop("ipv6", "2001:db8:9::5")["reachable"] is False
    rib.update_bgp("ipv6", [("2001:db8:100::/48", ("2001:db8:1::5",), True, 0)])
    assert rib.selected(6)["2001:db8:100::/48"].hops == (("2001:db8:1::5", 3),)
    rib.untrack_nexthop(6, "2001:db8:9::5")
    assert rib.to_dict()["routes"]["bgp"]["ipv6"][0][0] == "2001:db8:100::/48"
    copy = make()
    copy.replace_many("connected", 6, [("2001:db8:1::/64", [NextHop(None, "eth1")])])
    copy.load_dict(rib.to_dict())
    assert copy.selected(6) == rib.selected(6)


def test_bgp_batch_memory_sharing():
    rib = make()
    rib.update_bgp("ipv4", [(f"100.{i >> 8}.{i & 255}.0/24", ("10.0.0.9",), True, 0)
                            for i in range(5000)])
    vals = {id(v) for v in rib._tables["bgp"][4].values()}
    sels = {id(v) for v in rib._selected[4].values() if v.origin == "bgp"}
    assert len(vals) == 1 and len(sels) == 1
    rib.withdraw_many("bgp", 4, [f"100.0.{i}.0/24" for i in range(256)])
    assert len(rib._selected[4]) == 3 + 5000 - 256


# ------------------------------------------------------------------ brute-force model
CONN = {f"10.0.{i}.0/24": f"eth{i}" for i in range(3)}
L1 = [f"172.16.{i}.0/24" for i in range(4)]
L2 = [f"192.168.{i}.0/24" for i in range(4)]
DIST = {"static": 1, "controller": 5, "ebgp": 20, "ibgp": 200}


def model(conn_up, l1, l2, maxp):
    """conn_up: set of connected prefixes; l1/l2: {(origin, prefix): (kind, dist, metric,
    gateways)}. Level 1 gateways are in connected subnets, level 2 gateways in level 1."""
    sel = {p: ("connected", ((None, int(CONN[p][-1]) + 2),)) for p in conn_up}

    def resolve(gw):
        best = None
        for p, (_o, hops) in sel.items():
            n = ipaddress.ip_network(p)
            if ipaddress.ip_address(gw) in n and (best is None or n.prefixlen > best[0]):
                best = (n.prefixlen, hops)
        if best is None:
            return set()
        return {(gw, i) if g is None else (g, i) for g, i in best[1]}

    for level in (l1, l2):
        per = {}
        for (origin, p), (kind, dist, metric, gws) in level.items():
            hops = set().union(*[resolve(g) for g in gws]) if gws else set()
            if hops:
                per.setdefault(p, []).append(((dist if dist is not None else DIST[kind], metric),
                                              origin, hops))
        for p, cands in per.items():
            best = min(c[0] for c in cands)
            hops = set().union(*[c[2] for c in cands if c[0] == best])
            origin = next(c[1] for c in cands if c[0] == best)
            sel[p] = (origin, tuple(sorted(hops, key=lambda h: (h[0] or "", h[1]))[:maxp]))
    return {p: h for p, (_o, h) in sel.items()}


op = st.one_of(
    st.tuples(st.just("conn"), st.sampled_from(sorted(CONN)), st.booleans()),
    st.tuples(st.just("l1"), st.sampled_from(["static", "controller"]), st.sampled_from(L1),
              st.one_of(st.none(), st.tuples(st.sampled_from([None, 1, 5, 30]),
                                             st.integers(0, 2),
                                             st.lists(st.sampled_from(
                                                 [f"10.0.{i}.{j}" for i in range(4)
                                                  for j in (7, 8)]), min_size=1, max_size=3)))),
    st.tuples(st.just("l2"), st.sampled_from(L2),
              st.one_of(st.none(), st.tuples(st.booleans(), st.integers(0, 2),
                                             st.lists(st.sampled_from(
                                                 [f"172.16.{i}.{j}" for i in range(5)
                                                  for j in (1, 2)]), min_size=1, max_size=3)))),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=25), st.integers(1, 3))
def test_matches_brute_force_model(ops, maxp):
    rib = RibManager(RoutingConfig(maximum_paths=maxp), fib=False, interfaces=False)
    rib._ifindex = {f"eth{i}": (i + 2, True) for i in range(3)}
    conn_up, l1, l2 = set(), {}, {}
    for o in ops:
        if o[0] == "conn":
            _, p, up = o
            if up:
                conn_up.add(p)
                rib.replace_many("connected", 4, [(p, [NextHop(None, CONN[p])])])
            else:
                conn_up.discard(p)
                rib.withdraw_many("connected", 4, [p])
        elif o[0] == "l1":
            _, origin, p, spec = o
            if spec is None:
                l1.pop((origin, p), None)
                rib.withdraw_many(origin, 4, [p])
            else:
                dist, metric, gws = spec
                l1[(origin, p)] = (origin, dist, metric, tuple(gws))
                rib.replace_many(origin, 4, [(p, tuple(gws), metric, dist)])
        else:
            _, p, spec = o
            if spec is None:
                l2.pop(("bgp", p), None)
                rib.update_bgp("ipv4", [(p, None, True, 0)])
            else:
                ebgp, metric, gws = spec
                l2[("bgp", p)] = ("ebgp" if ebgp else "ibgp", None, metric, tuple(gws))
                rib.update_bgp("ipv4", [(p, tuple(gws), ebgp, metric)])
    got = {p: s.hops for p, s in rib.selected(4).items()}
    assert got == model(conn_up, l1, l2, maxp)
