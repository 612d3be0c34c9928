"""The NSR RIB mirror (appliance/nsr/ribmirror.py): whatever the active engine's Adj-RIBs
go through, a standby that applies the bases and deltas, in order and through JSON as the
store carries them, holds the same Adj-RIBs-In, sent maps and Loc-RIB."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.bgp.family import IPV4_UNICAST, IPV6_UNICAST
from appliance.bgp.packet.pathattrs import PathAttributes
from appliance.bgp.rib.adj_in import AdjRibIn
from appliance.bgp.rib.adj_out import AdjRibOut
from appliance.bgp.rib.checkpoint import attrs_from_plain, attrs_to_plain
from appliance.bgp.rib.loc_rib import LocRib
from appliance.bgp.rib.path import PathInterner, PeerSource
from appliance.nsr.ribmirror import MirrorReader, MirrorWriter
from tests.unit.test_adj_ribs import attr_set, ctx, decode_all, v4_keys
from tests.unit.test_store_contract import make_store  # noqa: F401 - the backends, as a fixture

FAMS = (IPV4_UNICAST, IPV6_UNICAST)
PEERS = ("10.0.0.1", "10.0.0.2")


@dataclass
class _Ribs:
    adj_in: AdjRibIn = field(default_factory=AdjRibIn)
    adj_out: AdjRibOut = field(default_factory=AdjRibOut)
    source: PeerSource | None = None


class _Speaker:
    """What the mirror reads and writes of a Speaker."""

    def __init__(self) -> None:
        self.ribs = {p: _Ribs() for p in PEERS}
        self.loc_rib = {f: LocRib(f) for f in FAMS}
        self.interner = PathInterner()


def _source(peer: str, rid: int) -> PeerSource:
    return PeerSource(peer, bytes(int(x) for x in peer.split(".")), rid, 64500 + rid, 65000, ebgp=True)


def _wire(d: Any) -> Any:
    return json.loads(json.dumps(d))  # as the store carries it


def _state(sp: _Speaker) -> dict:
    out = {}
    for p, r in sp.ribs.items():
        for f in FAMS:
            out[p, f, "in"] = {k: (v.source, v.attrs) for k, v in r.adj_in.items(f)}
            out[p, f, "sent"] = dict(r.adj_out.sent_items(f))
    for f in FAMS:
        loc = sp.loc_rib[f]
        out[f, "loc"] = {k: sorted(((c.source.router_id, c.attrs.med) for c in loc.candidates(k)),
                                   key=repr) for k in list(loc.items().mapping)}
        out[f, "best"] = {k: (v.source, v.attrs) for k, v in loc.items()}
    return out


def _sync(writer: MirrorWriter, reader: MirrorReader, limit: int) -> None:
    while (d := writer.delta(limit)) is not None:
        reader.apply_delta(_wire(d))
    for key in writer.needs_base():
        reader.apply_base(key, _wire(writer.base(key)))


ops = st.lists(st.tuples(st.sampled_from(["announce", "withdraw", "send", "unsend", "down", "reset",
                                          "sync", "rebase"]),
                         st.sampled_from(PEERS), st.integers(0, 3), st.integers(0, 40),
                         st.integers(1, 25)), max_size=40)


@given(ops, st.integers(1, 50))
@settings(max_examples=150, deadline=None)
def test_standby_ends_with_the_same_ribs(program, limit):
    active, standby = _Speaker(), _Speaker()
    writer, reader = MirrorWriter(active), MirrorReader(standby)
    rid = {p: 1 for p in PEERS}
    for op, peer, a, start, n in program:
        r = active.ribs[peer]
        keys = v4_keys(start + n)[start:]
        if r.source is None:
            r.source = _source(peer, rid[peer])
        if op == "announce":
            path = active.interner.get(r.source, attr_set(a))
            changed = r.adj_in.announce(IPV4_UNICAST, path, keys)
            if changed:
                active.loc_rib[IPV4_UNICAST].announce(path, changed)
        elif op == "withdraw":
            removed = r.adj_in.withdraw(IPV4_UNICAST, keys)
            if removed:
                active.loc_rib[IPV4_UNICAST].withdraw(r.source, removed)
        elif op == "send":   # what _take does when it sends
            sent = r.adj_out.sent_table(IPV4_UNICAST)
            exp = attr_set(a + 10)
            sent.update(dict.fromkeys(keys, exp))
            r.adj_out._note(IPV4_UNICAST, keys, exp)
        elif op == "unsend":
            sent = r.adj_out.sent_table(IPV4_UNICAST)
            gone = [k for k in keys if sent.pop(k, None) is not None]
            r.adj_out._note(IPV4_UNICAST, gone, None)
        elif op == "down":   # session down: everything of the neighbor goes
            for fam, removed in r.adj_in.clear().items():
                active.loc_rib[fam].withdraw(r.source, removed)
            r.adj_out.clear()
        elif op == "reset":  # back with another router id: another source object
            for fam, removed in r.adj_in.clear().items():
                active.loc_rib[fam].withdraw(r.source, removed)
            rid[peer] += 1
            r.source = _source(peer, rid[peer])
        elif op == "sync":
            _sync(writer, reader, limit)
        elif op == "rebase":
            writer.invalidate()
    _sync(writer, reader, limit)
    assert writer.pending() == 0
    assert _state(standby) == _state(active)


def test_a_replaced_rib_object_gets_a_base():
    active, standby = _Speaker(), _Speaker()
    writer, reader = MirrorWriter(active), MirrorReader(standby)
    r = active.ribs[PEERS[0]]
    r.source = _source(PEERS[0], 1)
    _sync(writer, reader, 10)
    r.adj_in = AdjRibIn()  # e.g. a checkpoint load: no journal, the writer cannot follow it
    path = active.interner.get(r.source, attr_set(1))
    r.adj_in.announce(IPV4_UNICAST, path, v4_keys(3))
    active.loc_rib[IPV4_UNICAST].announce(path, v4_keys(3))
    assert writer.needs_base() == [PEERS[0]]
    _sync(writer, reader, 10)
    assert _state(standby) == _state(active)


def test_sources_stay_one_object_per_neighbor():
    """The RIBs compare sources by identity: the standby's paths of one neighbor share it."""
    active, standby = _Speaker(), _Speaker()
    writer, reader = MirrorWriter(active), MirrorReader(standby)
    r = active.ribs[PEERS[0]]
    r.source = _source(PEERS[0], 1)
    _sync(writer, reader, 5)
    for i in range(4):
        path = active.interner.get(r.source, attr_set(i))
        r.adj_in.announce(IPV4_UNICAST, path, v4_keys(10 * (i + 1))[10 * i:])
    _sync(writer, reader, 7)
    srcs = {id(p.source) for _k, p in standby.ribs[PEERS[0]].adj_in.items(IPV4_UNICAST)}
    assert srcs == {id(standby.ribs[PEERS[0]].source)}


def test_continue_from_sends_only_what_was_queued():
    """The adopter's Adj-RIB-Out: the sent map from the mirror, the queue from the handover
    state; unchanged routes compare by identity and are not sent again."""
    src = _source("10.0.0.9", 9)
    interner = PathInterner()
    loc = LocRib(IPV4_UNICAST)
    keys = v4_keys(100)
    paths = [interner.get(src, attr_set(i % 5)) for i in range(100)]
    for k, p in zip(keys, paths, strict=True):
        loc.announce(p, [k])
    c = ctx(PeerSource("10.0.0.3", bytes([10, 0, 0, 3]), 3, 64503, 65000, ebgp=True))
    old = AdjRibOut()
    for k, p in zip(keys, paths, strict=True):
        old.enqueue(IPV4_UNICAST, k, p)
    old.build_messages(c, max_messages=10_000)
    random.seed(1)
    later = random.sample(keys, 7)
    for k in later:  # queued, not sent, when the switchover came
        old.enqueue(IPV4_UNICAST, k, None)
    state = _wire(old.handover_state(IPV4_UNICAST))
    new = AdjRibOut()
    sent = dict(old.sent_items(IPV4_UNICAST))
    # the mirror's own attribute objects: equal to the old engine's, not identical
    copies = {a: _copy_attrs(a) for a in set(sent.values())}
    for k, a in sent.items():
        new.sent_table(IPV4_UNICAST)[k] = copies[a]
    new.continue_from(IPV4_UNICAST, state, _Withdrawn(loc, later), c, copies.values())
    msgs = new.build_messages(c, max_messages=10_000)
    ups = decode_all(msgs, ebgp=True)
    withdrawn = [k for u in ups for _f, ks in u.withdrawn for k in ks]
    announced = [k for u in ups for _f, _a, ks in u.announced for k in ks]
    assert sorted(withdrawn) == sorted(later)
    assert announced == []


def _copy_attrs(a: PathAttributes) -> PathAttributes:
    b = attrs_from_plain(attrs_to_plain(a))
    assert b == a and b is not a
    return b


class _Withdrawn:
    """A Loc-RIB where ``gone`` were withdrawn since."""

    def __init__(self, loc: LocRib, gone: list[bytes]) -> None:
        self.loc, self.gone = loc, set(gone)

    def best(self, key: bytes):
        return None if key in self.gone else self.loc.best(key)


def test_a_neighbor_back_with_another_identity_replaces_its_routes():
    """Between two deltas the session went down and came back with another router id and
    re-announced the same prefixes: the standby must drop the old source's candidates."""
    active, standby = _Speaker(), _Speaker()
    writer, reader = MirrorWriter(active), MirrorReader(standby)
    r = active.ribs[PEERS[0]]
    r.source = _source(PEERS[0], 1)
    keys = v4_keys(8)
    path = active.interner.get(r.source, attr_set(1))
    r.adj_in.announce(IPV4_UNICAST, path, keys)
    active.loc_rib[IPV4_UNICAST].announce(path, keys)
    _sync(writer, reader, 100)
    for fam, removed in r.adj_in.clear().items():
        active.loc_rib[fam].withdraw(r.source, removed)
    r.source = _source(PEERS[0], 2)
    path = active.interner.get(r.source, attr_set(1))
    r.adj_in.announce(IPV4_UNICAST, path, keys)
    active.loc_rib[IPV4_UNICAST].announce(path, keys)
    _sync(writer, reader, 100)
    assert _state(standby) == _state(active)
    assert all(len(standby.loc_rib[IPV4_UNICAST].candidates(k)) == 1 for k in keys)


def test_mirror_through_each_store(make_store):  # noqa: F811 - the imported fixture
    """Bases and deltas written as the agent writes them, followed through the store's change
    feed (each backend's own feed semantics: MongoDB's shows only a key's latest write),
    applied deltas deleted and the feed compacted: the standby ends with the active's RIBs."""
    store = make_store()
    active, standby = _Speaker(), _Speaker()
    writer, reader = MirrorWriter(active), MirrorReader(standby)
    since = store.last_seq()
    written: list[tuple[int, str]] = []
    n = 0

    def flush() -> None:
        nonlocal n
        recs = []
        while (d := writer.delta(7)) is not None:
            n += 1
            recs.append(("nsr.ribdelta", f"{n:012d}", d))
        recs += [("nsr.ribbase", k, writer.base(k)) for k in writer.needs_base()]
        if recs:
            seq = store.put_many(recs)
            written.extend((seq, k) for ns, k, _v in recs if ns == "nsr.ribdelta")

    def follow() -> None:
        nonlocal since, written
        for ch in list(store.changes(since)):
            since = ch.seq
            if ch.value is None:
                continue
            if ch.ns == "nsr.ribdelta":
                reader.apply_delta(ch.value)
            elif ch.ns == "nsr.ribbase":
                reader.apply_base(ch.key, ch.value)
        done = [k for s, k in written if s <= since]
        written = [(s, k) for s, k in written if s > since]
        if done:
            store.put_many((), deletes=[("nsr.ribdelta", k) for k in done])
            store.compact(since)

    rnd = random.Random(7)
    for _step in range(300):
        peer = rnd.choice(PEERS)
        r = active.ribs[peer]
        if r.source is None:
            r.source = _source(peer, 1)
        start = rnd.randrange(60)
        keys = v4_keys(start + rnd.randrange(1, 20))[start:]
        what = rnd.random()
        if what < 0.5:
            path = active.interner.get(r.source, attr_set(rnd.randrange(4)))
            changed = r.adj_in.announce(IPV4_UNICAST, path, keys)
            if changed:
                active.loc_rib[IPV4_UNICAST].announce(path, changed)
        elif what < 0.75:
            removed = r.adj_in.withdraw(IPV4_UNICAST, keys)
            if removed:
                active.loc_rib[IPV4_UNICAST].withdraw(r.source, removed)
        elif what < 0.9:
            exp = attr_set(rnd.randrange(3))
            r.adj_out.sent_table(IPV4_UNICAST).update(dict.fromkeys(keys, exp))
            r.adj_out._note(IPV4_UNICAST, keys, exp)
        elif what < 0.97:
            flush()
            if rnd.random() < 0.7:
                follow()
        else:
            writer.invalidate()  # a standby asked for a whole copy again
    flush()
    follow()
    assert _state(standby) == _state(active)
    assert not list(store.scan("nsr.ribdelta"))
