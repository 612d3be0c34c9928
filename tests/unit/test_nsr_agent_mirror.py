"""Two NSR agents on one embedded store, in one event loop: the active engine's mirror
writer and a standby's follower (appliance/nsr/agent.py). Engines are stand-ins with real
Adj-RIBs and Loc-RIBs (tests/unit/test_nsr_ribmirror.py)."""

from __future__ import annotations

import asyncio
import time

from appliance.bgp.family import IPV4_UNICAST
from appliance.nsr.agent import NsrAgent
from tests.unit.test_adj_ribs import attr_set, v4_keys
from tests.unit.test_nsr_ribmirror import PEERS, _source, _Speaker, _state


class _Engine:
    def __init__(self) -> None:
        self.bgp = _Speaker()
        self.bgp.peers = {}
        self.config_digest = "same"
        self.rib = object()
        self.bfd = None


async def _until(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out: {what}"
        await asyncio.sleep(0.02)


def test_standby_follows_and_ends_at_the_active_engines_sequence(tmp_path):
    """After churn stops, the standby's applied sequence reaches the active engine's
    written one: a release is possible again (the last batch may end with deletions of
    applied deltas; they count as applied)."""

    async def main() -> None:
        url = str(tmp_path / "nsr.db")
        act_eng, sb_eng = _Engine(), _Engine()
        active = NsrAgent(act_eng, url, "a")
        standby = NsrAgent(sb_eng, url, "b", standby=True)
        await active.start()
        await standby.start()
        try:
            await _until(lambda: standby._mirror_synced, 10, "standby synced")
            ribs = act_eng.bgp.ribs[PEERS[0]]
            ribs.source = _source(PEERS[0], 1)
            keys = v4_keys(3000)
            for i in range(40):  # 2 s of changes: deltas written, applied, deleted
                path = act_eng.bgp.interner.get(ribs.source, attr_set(i % 7))
                ks = keys[(i * 70) % 2900:][:100]
                changed = ribs.adj_in.announce(IPV4_UNICAST, path, ks)
                if changed:
                    act_eng.bgp.loc_rib[IPV4_UNICAST].announce(path, changed)
                await asyncio.sleep(0.05)
            await _until(lambda: active._writer is not None and active._writer.pending() == 0, 5, "all taken")
            # A flush takes the journal before its store write lands, and under the lock: the
            # written sequence is final only once no flush holds the lock (as release does).
            async with active._mirror_lock:
                assert active._writer.pending() == 0
                written = active._mirror_written
            await _until(lambda: standby._mirror_applied >= written, 5,
                         f"standby at the active's sequence ({standby._mirror_applied} < {written})")
            assert _state(sb_eng.bgp) == _state(act_eng.bgp)
            st = await active.status()
            [sb] = st["standbys"]
            assert sb["engine-id"] == "b" and sb["synchronized"] and sb["fresh"], sb
        finally:
            await standby.stop()
            await active.stop()

    asyncio.run(main())
