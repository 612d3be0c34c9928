"""Self-check of the topology helper with real peers only (no FCR).

FRR <-> BIRD and FRR <-> GoBGP over eBGP: routes announced by one side show up in the
other's own JSON/CLI output, and withdrawals propagate.
"""

from __future__ import annotations

import pytest

from tests.topotest import wait_until
from tests.topotest.bird import BirdRouter
from tests.topotest.frr import FrrRouter
from tests.topotest.gobgp import GobgpRouter, path_as_path

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


def bird_ebgp_conf(router_id, local, local_as, neighbor, peer_as, statics, name="frr"):
    routes = "\n".join(f"  route {p} blackhole;" for p in statics)
    return f"""
router id {router_id};
protocol device {{ }}
protocol static s4 {{
  ipv4;
{routes}
}}
protocol bgp {name} {{
  local {local} as {local_as};
  neighbor {neighbor} as {peer_as};
  connect retry time 2;
  ipv4 {{ import all; export where source = RTS_STATIC; }};
}}
"""


def test_frr_bird_ebgp_ipv4(topology, workdir):
    r1, r2 = topology.add_host("frr"), topology.add_host("bird")
    topology.link(r1, r2, ["10.0.1.1/24"], ["10.0.1.2/24"])
    frr = FrrRouter(
        r1, workdir / "frr",
        FrrRouter.render_bgp(
            65001, "10.0.1.1",
            [{"address": "10.0.1.2", "remote_as": 65002, "connect_retry": 2}],
            {"ipv4": ["10.10.1.0/24", "10.10.2.0/24"]},
        ),
    )
    bird = BirdRouter(
        r2, workdir / "bird",
        bird_ebgp_conf("10.0.1.2", "10.0.1.2", 65002, "10.0.1.1", 65001,
                       ["10.20.1.0/24", "10.20.2.0/24"]),
    )
    frr.wait_established("10.0.1.2", 30)
    bird.wait_established("frr", 10)

    # BIRD -> FRR
    routes = wait_until(
        lambda: (r := frr.routes("ipv4")) and {"10.20.1.0/24", "10.20.2.0/24"} <= r.keys() and r,
        10, message="BIRD routes in FRR",
    )
    path = routes["10.20.1.0/24"][0]
    assert path["path"] == "65002"
    assert path["nexthops"][0]["ip"] == "10.0.1.2"

    # FRR -> BIRD
    got = wait_until(
        lambda: (r := bird.routes("master4", "frr")) and {"10.10.1.0/24", "10.10.2.0/24"} <= r.keys() and r,
        10, message="FRR routes in BIRD",
    )
    attrs = got["10.10.1.0/24"][0]["attrs"]
    assert attrs["BGP.as_path"] == "65001"
    assert attrs["BGP.next_hop"] == "10.0.1.1"
    assert bird.protocol("frr")["channels"]["ipv4"]["imported"] == 2

    # withdrawals, both ways
    frr.configure("router bgp 65001", "address-family ipv4 unicast", "no network 10.10.2.0/24")
    wait_until(lambda: "10.10.2.0/24" not in bird.routes("master4", "frr"), 10,
               message="withdrawal in BIRD")
    assert bird.route_count("protocol frr") == 1
    bird.birdc("disable s4")
    wait_until(lambda: not ({"10.20.1.0/24", "10.20.2.0/24"} & frr.routes("ipv4").keys()), 10,
               message="withdrawal in FRR")


def test_frr_gobgp_ebgp(topology, workdir):
    r1, r2 = topology.add_host("frr"), topology.add_host("gobgp")
    topology.link(r1, r2, ["10.0.2.1/24", "2001:db8:2::1/64"], ["10.0.2.2/24", "2001:db8:2::2/64"])
    frr = FrrRouter(
        r1, workdir / "frr",
        FrrRouter.render_bgp(
            65001, "10.0.2.1",
            [{"address": "10.0.2.2", "remote_as": 65003, "connect_retry": 2,
              "afis": ["ipv4", "ipv6"]}],
            {"ipv4": ["10.10.1.0/24"], "ipv6": ["2001:db8:a::/48"]},
        ),
    )
    gobgp = GobgpRouter(
        r2, workdir / "gobgp",
        GobgpRouter.render(65003, "10.0.2.2", [
            {"address": "10.0.2.1", "peer_as": 65001, "afis": ["ipv4-unicast", "ipv6-unicast"]},
        ]),
    )
    frr.wait_established("10.0.2.2", 30)
    gobgp.wait_established("10.0.2.1", 10)

    # FRR -> GoBGP
    rib = wait_until(
        lambda: (r := gobgp.rib("ipv4")) and "10.10.1.0/24" in r and r, 10,
        message="FRR route in GoBGP",
    )
    assert path_as_path(rib["10.10.1.0/24"][0]) == [65001]
    wait_until(lambda: "2001:db8:a::/48" in gobgp.rib("ipv6"), 10, message="FRR v6 route in GoBGP")

    # GoBGP -> FRR
    gobgp.add_route("10.30.1.0/24", "nexthop", "10.0.2.2")
    path = wait_until(lambda: frr.best_path("10.30.1.0/24"), 10, message="GoBGP route in FRR")
    assert path["aspath"]["string"] == "65003"
    gobgp.del_route("10.30.1.0/24")
    wait_until(lambda: "10.30.1.0/24" not in frr.routes("ipv4"), 10, message="withdrawal in FRR")

    frr.configure("router bgp 65001", "address-family ipv4 unicast", "no network 10.10.1.0/24")
    wait_until(lambda: "10.10.1.0/24" not in gobgp.rib("ipv4"), 10, message="withdrawal in GoBGP")


def test_rawbgp_against_frr(topology, workdir):
    """The raw speaker itself: establishes with FRR, its UPDATE is accepted, and an NLRI
    with prefix length 33 draws NOTIFICATION 3/10."""
    from tests.topotest import rawbgp as rb

    r1, r2 = topology.add_host("frr"), topology.add_host("raw")
    topology.link(r1, r2, ["10.0.3.1/24"], ["10.0.3.2/24"])
    frr = FrrRouter(r1, workdir / "frr", FrrRouter.render_bgp(
        65001, "10.0.3.1",
        [{"address": "10.0.3.2", "remote_as": 65099, "passive": True}],
        {"ipv4": ["10.10.9.0/24"]},
    ))
    with rb.RawBgpSpeaker.connect(r2, "10.0.3.2", "10.0.3.1", 65099, "10.0.3.2") as raw:
        peer = raw.establish()
        assert peer.my_as == 65001 and peer.four_octet_as == 65001
        frr.wait_established("10.0.3.2", 10)
        got = [rb.parse_update(b) for t, b in raw.poll(2) if t == rb.UPDATE]
        assert any("10.10.9.0/24" in u.nlri and u.as_path(True) == [65001] for u in got), got
        attrs = rb.origin(0) + rb.as_path([65099]) + rb.next_hop("10.0.3.2")
        raw.send(rb.update(attrs=attrs, nlri_bytes=rb.nlri("10.90.1.0/24")))
        path = wait_until(lambda: frr.best_path("10.90.1.0/24"), 10, message="raw route in FRR")
        assert path["aspath"]["string"] == "65099"
        raw.send(rb.update(attrs=attrs, nlri_bytes=rb.raw_nlri(33, b"\x0a\x5a\x02\x00\x00")))
        note = raw.wait_notification(10)
        assert (note.code, note.subcode) == (3, 10), note
