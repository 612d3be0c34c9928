"""The speaker's RIB pipeline without sockets: fake peers feed decoded UPDATEs.

Covers what interop tests reach only indirectly: import policy hooks, loop checks,
best-path propagation into other peers' Adj-RIB-Out, withdrawal on session down.
"""

from __future__ import annotations

import asyncio

import pytest

from appliance.bgp.config import BgpConfig, BgpGlobalConfig, NeighborConfig
from appliance.bgp.family import IPV4_UNICAST, prefix_to_key
from appliance.bgp.rib.adj_in import AdjRibIn
from appliance.bgp.rib.adj_out import AdjRibOut
from appliance.bgp.speaker import PeerRibs, Speaker
from tests.unit.speaker_fakes import attrs, drain, establish
from tests.unit.speaker_fakes import update as _update


@pytest.fixture
def world():
    loop = asyncio.new_event_loop()
    cfg = BgpConfig(
        global_=BgpGlobalConfig(asn=65001, router_id="10.0.0.1", listen_addresses=()),
        neighbors=(NeighborConfig("10.0.0.2", 65002), NeighborConfig("10.0.0.3", 65003)),
    )
    sp = Speaker(cfg, loop=loop)
    peers = {}
    for n in cfg.neighbors:
        # start() is not run (no sockets): the per-neighbor RIBs are made here
        sp.ribs[n.neighbor_address] = PeerRibs(adj_in=AdjRibIn(), adj_out=AdjRibOut())
        peers[n.neighbor_address] = establish(sp, n, n.neighbor_address)
    yield sp, peers, loop
    loop.close()


K1, K2 = prefix_to_key("192.0.2.0/24"), prefix_to_key("198.51.100.0/24")


def test_route_from_one_peer_reaches_the_other(world):
    sp, peers, loop = world
    a, b = peers["10.0.0.2"], peers["10.0.0.3"]
    sp.update_received(a, _update(announced=[(IPV4_UNICAST, attrs(65002), [K1, K2])]))
    drain(loop)
    got = b.received_prefixes()
    assert got["192.0.2.0/24"].as_path == ((2, (65001, 65002)),)
    assert set(got) == {"192.0.2.0/24", "198.51.100.0/24"}
    assert a.received_prefixes() == {}  # split horizon
    sp.update_received(a, _update(withdrawn=[(IPV4_UNICAST, [K1])]))
    drain(loop)
    assert b.received_prefixes()["192.0.2.0/24"] is None


def test_loop_and_first_as_checks(world):
    sp, peers, loop = world
    a = peers["10.0.0.2"]
    sp.update_received(a, _update(announced=[(IPV4_UNICAST, attrs(65002, 65001), [K1])]))
    sp.update_received(a, _update(announced=[(IPV4_UNICAST, attrs(65099), [K2])]))
    assert sp.loc_rib[IPV4_UNICAST].best(K1) is None
    assert sp.loc_rib[IPV4_UNICAST].best(K2) is None
    assert sp.ribs["10.0.0.2"].rejected_updates == 2


def test_import_policy_hook_filters_and_rewrites(world):
    sp, peers, loop = world
    a = peers["10.0.0.2"]

    def only_k1_with_lp(fam, source, at, keys):
        return [(at.replace(local_pref=200), [k for k in keys if k == K1])]

    sp.set_policies("10.0.0.2", IPV4_UNICAST, import_policy=only_k1_with_lp)
    sp.update_received(a, _update(announced=[(IPV4_UNICAST, attrs(65002), [K1, K2])]))
    assert sp.loc_rib[IPV4_UNICAST].best(K1).attrs.local_pref == 200
    assert sp.loc_rib[IPV4_UNICAST].best(K2) is None
    st = sp.neighbor_state("10.0.0.2")
    assert (st["prefixes-received"], st["prefixes-accepted"]) == (2, 1)


def test_session_down_withdraws_everything_from_that_peer(world):
    sp, peers, loop = world
    a, b = peers["10.0.0.2"], peers["10.0.0.3"]
    sp.update_received(a, _update(announced=[(IPV4_UNICAST, attrs(65002), [K1, K2])]))
    drain(loop)
    sp.session_down(a, "test")  # type: ignore[arg-type]
    drain(loop)
    assert len(sp.loc_rib[IPV4_UNICAST]) == 0
    assert all(v is None for v in b.received_prefixes().values())
