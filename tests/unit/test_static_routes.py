"""Static route config parsing (error paths), BFD tracking with a fake BFD, controller routes."""

from __future__ import annotations

import enum

import pytest

from appliance.rib import NextHop, RibManager
from appliance.static import StaticConfigError, StaticRoutes, parse_static

R = "/fcr-static:static-routes/route"


def cfg(*routes):
    return {"fcr-static:static-routes": {"route": list(routes)}}


def route(prefix, *nhs, **kw):
    return {"prefix": prefix, "next-hops": {"next-hop": list(nhs)}, **kw}


def test_parse_ok():
    c = parse_static(cfg(route("192.0.2.0/24", {"index": "a", "address": "10.0.0.2",
                                                "bfd": {"enabled": True}},
                               {"index": "b", "interface": "eth1", "distance": 9},
                               distance=3, tag=7),
                         route("2001:db8::/32", {"index": "1", "blackhole": True})))
    r = c.route("192.0.2.0/24")
    assert (r.distance, r.tag, r.family) == (3, 7, 4)
    assert r.next_hops[0].bfd and r.next_hops[1].distance == 9
    assert c.route("2001:db8::/32").next_hops[0].blackhole


@pytest.mark.parametrize("data,path", [
    (cfg(route("192.0.2.1/24", {"index": "1", "address": "10.0.0.2"})), f"{R}[0]/prefix"),
    (cfg({"next-hops": {}}), f"{R}[0]/prefix"),
    (cfg(route("192.0.2.0/24")), f"{R}[prefix='192.0.2.0/24']/next-hops/next-hop"),
    (cfg(route("192.0.2.0/24", {"index": "1", "address": "2001:db8::1"})),
     f"{R}[prefix='192.0.2.0/24']/next-hops/next-hop[index='1']/address"),
    (cfg(route("192.0.2.0/24", {"index": "1", "address": "10.0.0.1"}, distance=0)),
     f"{R}[prefix='192.0.2.0/24']/distance"),
    (cfg(route("192.0.2.0/24", {"index": "1", "blackhole": True, "address": "10.0.0.1"})),
     f"{R}[prefix='192.0.2.0/24']/next-hops/next-hop[index='1']/blackhole"),
    (cfg(route("192.0.2.0/24", {"index": "1"})),
     f"{R}[prefix='192.0.2.0/24']/next-hops/next-hop[index='1']"),
    (cfg(route("192.0.2.0/24", {"index": "1", "interface": "e", "bfd": {"enabled": True}})),
     f"{R}[prefix='192.0.2.0/24']/next-hops/next-hop[index='1']/bfd/enabled"),
    (cfg(route("192.0.2.0/24", {"index": "1", "address": "10.0.0.1", "bogus": 1})),
     f"{R}[prefix='192.0.2.0/24']/next-hops/next-hop[index='1']/bogus"),
    (cfg(route("192.0.2.0/24", {"index": "1", "address": "10.0.0.1"}),
         route("192.0.2.0/24", {"index": "1", "address": "10.0.0.1"})),
     f"{R}[prefix='192.0.2.0/24']"),
    (cfg(route("192.0.2.0/24", {"index": "1", "address": "10.0.0.1"},
               {"index": "1", "address": "10.0.0.3"})),
     f"{R}[prefix='192.0.2.0/24']/next-hops/next-hop[index='1']"),
])
def test_parse_errors(data, path):
    with pytest.raises(StaticConfigError) as ei:
        parse_static(data)
    assert ei.value.path == path


def make_rib():
    rib = RibManager(fib=False, interfaces=False)
    rib._ifindex = {"eth0": (2, True), "eth1": (3, True)}
    rib.replace_many("connected", 4, [("10.0.0.0/24", [NextHop(None, "eth0")]),
                                      ("10.0.1.0/24", [NextHop(None, "eth1")])])
    return rib


class FakeBfd:
    """The BFD manager's listener API: add_listener(callback(peer, old, new, diag))."""

    class State(enum.Enum):
        ADMIN_DOWN, DOWN, INIT, UP = 0, 1, 2, 3

    def __init__(self):
        self.states = {}
        self.listeners = []

    def add_listener(self, cb):
        self.listeners.append(cb)

    def set(self, peer, state):
        old = self.states.get(peer)
        self.states[peer] = state
        for cb in self.listeners:
            cb(peer, old, state, 0)

    def is_up(self, peer):
        s = self.states.get(peer)
        return None if s is None else s == self.State.UP


def test_bfd_tracking_withdraws_and_restores():
    rib, bfd = make_rib(), FakeBfd()
    bfd.states["10.0.0.2"] = FakeBfd.State.DOWN
    static = StaticRoutes(rib, bfd_state=bfd.is_up)
    bfd.add_listener(static.bfd_listener())
    static.apply(cfg(
        route("192.0.2.0/24", {"index": "1", "address": "10.0.0.2", "bfd": {"enabled": True}},
              {"index": "2", "address": "10.0.1.2", "distance": 50}),
        route("198.51.100.0/24", {"index": "1", "address": "10.0.0.2",
                                  "bfd": {"enabled": True}})))
    assert static.bfd_peers() == [{"peer": "10.0.0.2", "multihop": False, "local-address": None}]
    sel = rib.selected(4)
    assert sel["192.0.2.0/24"].hops == (("10.0.1.2", 3),)  # backup while BFD is down
    assert "198.51.100.0/24" not in sel
    bfd.set("10.0.0.2", FakeBfd.State.UP)
    sel = rib.selected(4)
    assert sel["192.0.2.0/24"].hops == (("10.0.0.2", 2),)
    assert sel["198.51.100.0/24"].hops == (("10.0.0.2", 2),)
    bfd.set("10.0.0.2", FakeBfd.State.DOWN)
    sel = rib.selected(4)
    assert sel["192.0.2.0/24"].hops == (("10.0.1.2", 3),)
    assert "198.51.100.0/24" not in sel
    static.on_bfd_change("10.0.0.2", True)
    assert "198.51.100.0/24" in rib.selected(4)
    # a next hop without BFD is never withdrawn by it; unknown session -> used
    static2 = StaticRoutes(make_rib(), bfd_state=lambda peer: None)
    static2.apply(cfg(route("192.0.2.0/24", {"index": "1", "address": "10.0.0.9",
                                             "bfd": {"enabled": True}})))
    assert "192.0.2.0/24" in static2.rib.selected(4)


def test_apply_removes_and_controller_apart():
    rib = make_rib()
    static = StaticRoutes(rib)
    static.apply(cfg(route("192.0.2.0/24", {"index": "1", "address": "10.0.0.2"}),
                     route("203.0.113.0/24", {"index": "1", "blackhole": True})))
    static.push("198.18.0.0/24", ["10.0.1.2"])
    static.push("192.0.2.0/24", [{"address": "10.0.1.3"}])
    assert [e["prefix"] for e in static.list()] == ["192.0.2.0/24", "198.18.0.0/24"]
    sel = rib.selected(4)
    assert sel["192.0.2.0/24"].origin == "static"  # 1 < controller 5
    assert sel["198.18.0.0/24"].origin == "controller"
    assert sel["203.0.113.0/24"].blackhole
    static.apply(cfg(route("203.0.113.0/24", {"index": "1", "blackhole": True})))
    assert rib.selected(4)["192.0.2.0/24"].origin == "controller"
    assert static.clear() == 2
    assert set(rib.selected(4)) == {"10.0.0.0/24", "10.0.1.0/24", "203.0.113.0/24"}
    assert static.withdraw("198.18.0.0/24") is False


def test_route_without_distance_takes_the_configured_static_distance():
    from appliance.rib import RoutingConfig

    cfg = RoutingConfig.from_json({"administrative-distance": {"static": 50}})
    rib = RibManager(cfg, fib=False, interfaces=False)
    rib._ifindex = {"eth0": (2, True)}
    rib.replace_many("connected", 4, [("10.0.0.0/24", [NextHop(None, "eth0")])])
    static = StaticRoutes(rib)
    static.apply({"fcr-static:static-routes": {"route": [
        {"prefix": "192.0.2.0/24", "next-hops": {"next-hop": [{"index": "1", "address": "10.0.0.2"}]}},
        {"prefix": "198.51.100.0/24", "distance": 7,
         "next-hops": {"next-hop": [{"index": "1", "address": "10.0.0.2"}]}},
    ]}})
    routes = {r["prefix"]: r for r in rib.state(4)["routes"]["ipv4"]}
    assert routes["192.0.2.0/24"]["selected"]["distance"] == 50
    assert routes["198.51.100.0/24"]["selected"]["distance"] == 7
