"""The speaker's RIB pipeline without sockets: fake peers feed decoded UPDATEs.

Covers what interop tests reach only indirectly: import policy hooks, loop checks,
best-path propagation into other peers' Adj-RIB-Out, withdrawal on session down.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from appliance.bgp.config import BgpConfig, BgpGlobalConfig, NeighborConfig
from appliance.bgp.family import IPV4_UNICAST, key_to_prefix, prefix_to_key
from appliance.bgp.packet.capability import Negotiated
from appliance.bgp.packet.pathattrs import PathAttributes
from appliance.bgp.packet.update import Update, UpdateDecoder
from appliance.bgp.speaker import Speaker


@dataclass
class FakeStats:
    sent: dict = field(default_factory=lambda: {"notification": 0})
    received: dict = field(default_factory=lambda: {"notification": 0})
    established_at: float | None = None


class FakePeer:
    """Just what the speaker reads of a Peer; records what it is asked to send."""

    def __init__(self, config: NeighborConfig, router_id: str) -> None:
        self.config = config
        self.state = "Established"
        self.local_address = "10.0.0.1"
        self.stats = FakeStats()
        self.sent: list[bytes] = []
        self.negotiated = Negotiated(
            families=frozenset({IPV4_UNICAST}), four_octet_as=True, route_refresh=True,
            enhanced_route_refresh=False, extended_message=False, max_message_len=4096,
            hold_time=90, keepalive_interval=30, peer_asn=config.peer_as,
            peer_router_id=router_id, peer_graceful_restart=None,
        )

    def send_raw(self, msgs: list[bytes]) -> bool:
        self.sent.extend(msgs)
        return True

    def can_send(self) -> bool:
        return True

    def to_dict(self) -> dict:
        return {"neighbor-address": self.config.neighbor_address, "state": self.state, "statistics": {}}

    def received_prefixes(self) -> dict[str, PathAttributes | None]:
        """Replay what we sent through a decoder: prefix -> attrs (None = withdrawn)."""
        dec = UpdateDecoder(four_octet_as=True, ebgp=True)
        state: dict[str, PathAttributes | None] = {}
        for m in self.sent:
            u = dec.decode(m[19:])
            for _fam, keys in u.withdrawn:
                for k in keys:
                    state[key_to_prefix(k, 1)] = None
            for _fam, attrs, keys in u.announced:
                for k in keys:
                    state[key_to_prefix(k, 1)] = attrs
        return state


def _update(announced=(), withdrawn=()) -> Update:
    u = Update.__new__(Update)
    u.announced = list(announced)
    u.withdrawn = list(withdrawn)
    u.end_of_rib = None
    u.treat_as_withdraw = False
    u.diagnostics = []
    return u


def attrs(*asns: int, nh: str = "10.0.0.2", **kw) -> PathAttributes:
    return PathAttributes(as_path=((2, asns),), next_hop=bytes(map(int, nh.split("."))), **kw)


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
        from appliance.bgp.rib.adj_in import AdjRibIn
        from appliance.bgp.rib.adj_out import AdjRibOut
        from appliance.bgp.speaker import PeerRibs

        p = FakePeer(n, n.neighbor_address)
        sp.peers[n.neighbor_address] = p  # type: ignore[assignment]
        sp.ribs[n.neighbor_address] = PeerRibs(adj_in=AdjRibIn(), adj_out=AdjRibOut())
        sp.session_established(p)  # type: ignore[arg-type]
        peers[n.neighbor_address] = p
    yield sp, peers, loop
    loop.close()


def drain(loop: asyncio.AbstractEventLoop) -> None:
    for _ in range(50):
        loop.call_soon(loop.stop)
        loop.run_forever()


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
