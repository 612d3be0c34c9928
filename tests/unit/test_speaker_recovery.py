"""Crash recovery in the speaker (Speaker.recover_sessions, docs/nsr.md "Crash"): the peers
are asked for their routes again in waves, output is held until they are back."""

from __future__ import annotations

import asyncio
import dataclasses

from appliance.bgp import speaker as speaker_mod
from appliance.bgp.config import BgpConfig, BgpGlobalConfig, NeighborConfig
from appliance.bgp.family import IPV4_UNICAST
from appliance.bgp.packet.constants import RouteRefreshSubtype
from appliance.bgp.speaker import Speaker
from tests.unit.speaker_fakes import drain, establish


def _asked(p) -> bool:
    return any(sub == 0 for _f, sub in p.refreshes)


def test_peers_are_asked_for_their_routes_in_waves_and_output_waits_for_all():
    loop = asyncio.new_event_loop()
    try:
        ns = [NeighborConfig(f"10.0.{i}.2", 65002) for i in range(20)]
        sp = Speaker(BgpConfig(BgpGlobalConfig(65001, "10.0.0.1", listen_addresses=()), tuple(ns)), loop=loop)
        loop.run_until_complete(sp.start())
        peers = [establish(sp, n, f"10.9.0.{i}") for i, n in enumerate(ns)]
        for p in peers:
            p.negotiated = dataclasses.replace(p.negotiated, enhanced_route_refresh=True)
        drain(loop)
        sessions = {n.neighbor_address: ({}, None, None, b"") for n in ns}
        loop.run_until_complete(sp.recover_sessions(sessions, relearn_timeout=30))
        wave = speaker_mod._REFRESH_WAVE
        assert sum(map(_asked, peers)) == wave  # not all twenty at once
        done = 0
        while done < len(peers):
            p = next(p for p in peers if _asked(p) and not getattr(p, "_done", False))
            assert not any(sub == RouteRefreshSubtype.BORR for q in peers for _f, sub in q.refreshes), \
                "output is held until every peer's routes are back"
            sp.route_refresh_received(p, IPV4_UNICAST, RouteRefreshSubtype.BORR)
            sp.route_refresh_received(p, IPV4_UNICAST, RouteRefreshSubtype.EORR)
            p._done = True
            done += 1
            assert sum(map(_asked, peers)) == min(len(peers), wave + done)
        # the table they are all given again is one copy, shared (not one per peer)
        tables = {id(sp.ribs[n.neighbor_address].adj_out._full[IPV4_UNICAST].keys) for n in ns}
        assert len(tables) == 1
        drain(loop)
        # all back: every peer gets its table again, between BoRR and EoRR
        assert all(any(sub == RouteRefreshSubtype.BORR for _f, sub in p.refreshes) for p in peers)
    finally:
        loop.close()


def test_a_peer_gone_before_its_turn_does_not_hold_the_output():
    loop = asyncio.new_event_loop()
    try:
        ns = [NeighborConfig(f"10.0.{i}.2", 65002) for i in range(speaker_mod._REFRESH_WAVE + 1)]
        sp = Speaker(BgpConfig(BgpGlobalConfig(65001, "10.0.0.1", listen_addresses=()), tuple(ns)), loop=loop)
        loop.run_until_complete(sp.start())
        peers = [establish(sp, n, f"10.9.0.{i}") for i, n in enumerate(ns)]
        for p in peers:
            p.negotiated = dataclasses.replace(p.negotiated, enhanced_route_refresh=True)
        loop.run_until_complete(sp.recover_sessions({n.neighbor_address: ({}, None, None, b"") for n in ns},
                                                    relearn_timeout=30))
        last = peers[-1]
        assert not _asked(last)
        last.state = "Idle"  # went down while waiting for its turn
        for p in peers[:-1]:
            sp.route_refresh_received(p, IPV4_UNICAST, RouteRefreshSubtype.BORR)
            sp.route_refresh_received(p, IPV4_UNICAST, RouteRefreshSubtype.EORR)
        drain(loop)
        assert all(any(sub == RouteRefreshSubtype.BORR for _f, sub in p.refreshes) for p in peers[:-1])
    finally:
        loop.close()
