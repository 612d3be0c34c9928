"""Adj-RIB-In (stale marking, checkpoints) and Adj-RIB-Out (packing, pacing, withdrawals)."""

from __future__ import annotations

import json

from appliance.bgp.family import IPV4_UNICAST, IPV6_UNICAST, prefix_to_key
from appliance.bgp.packet.constants import AsPathSegment
from appliance.bgp.packet.pathattrs import PathAttributes
from appliance.bgp.packet.update import UpdateDecoder
from appliance.bgp.rib.adj_in import AdjRibIn
from appliance.bgp.rib.adj_out import AdjRibOut
from appliance.bgp.rib.export import NO_ADVERTISE, ExportContext, export_attrs
from appliance.bgp.rib.path import PathInterner, PeerSource

SEQ = AsPathSegment.AS_SEQUENCE
SRC = PeerSource("10.0.0.1", bytes([10, 0, 0, 1]), 1, 64501, 65000, ebgp=True)
TO_IBGP = PeerSource("10.0.0.2", bytes([10, 0, 0, 2]), 2, 65000, 65000, ebgp=False)
TO_EBGP = PeerSource("10.0.0.3", bytes([10, 0, 0, 3]), 3, 64503, 65000, ebgp=True)
ME_V4 = bytes([192, 0, 2, 1])
ME_V6 = bytes.fromhex("20010db8000000000000000000000001")


def ctx(to: PeerSource) -> ExportContext:
    return ExportContext(65000, 0x01010101, b"\x01\x01\x01\x01", to, local_address_v4=ME_V4,
                         local_address_v6=ME_V6)


def attr_set(i: int, nh: bytes = bytes([10, 0, 0, 1])) -> PathAttributes:
    return PathAttributes(as_path=((SEQ, (64501, 100 + i)),), next_hop=nh, med=i,
                          communities=((64501 << 16) | i,))


def v4_keys(n: int) -> list[bytes]:
    return [bytes((24, 10, (i >> 8) & 0xFF, i & 0xFF)) for i in range(n)]


def decode_all(msgs: list[bytes], ebgp: bool):
    dec = UpdateDecoder(four_octet_as=True, ebgp=ebgp)
    return [dec.decode(m[19:]) for m in msgs]


# -- Adj-RIB-In ----------------------------------------------------------------------
def test_adj_in_announce_withdraw_clear():
    interner = PathInterner()
    rib = AdjRibIn()
    p0, p1 = interner.get(SRC, attr_set(0)), interner.get(SRC, attr_set(1))
    k = v4_keys(5)
    assert rib.announce(IPV4_UNICAST, p0, k[:3]) == k[:3]
    assert rib.announce(IPV4_UNICAST, p0, k[:3]) == []
    assert rib.announce(IPV4_UNICAST, p1, [k[2], k[3], k[3]]) == [k[2], k[3]]
    assert rib.announce(IPV4_UNICAST, p1, [k[4], k[4]]) == [k[4]]
    assert rib.get(IPV4_UNICAST, k[2]) is p1 and rib.count(IPV4_UNICAST) == 5
    assert rib.withdraw(IPV4_UNICAST, [k[0], k[0], b"\x08\x0b"]) == [k[0]]
    assert rib.withdraw(IPV6_UNICAST, [k[1]]) == []
    assert set(rib.keys(IPV4_UNICAST)) == set(k[1:])
    assert rib.clear() == {IPV4_UNICAST: k[1:]}
    assert rib.count(IPV4_UNICAST) == 0 and rib.families() == []


def test_adj_in_graceful_restart_stale_and_sweep():
    interner = PathInterner()
    rib = AdjRibIn()
    p0, p1 = interner.get(SRC, attr_set(0)), interner.get(SRC, attr_set(1))
    k = v4_keys(6)
    rib.announce(IPV4_UNICAST, p0, k)
    assert rib.mark_stale(IPV4_UNICAST) == 6
    assert all(rib.is_stale(IPV4_UNICAST, x) for x in k)
    # the restarted peer re-sends some routes: same path (no change) or a new one
    assert rib.announce(IPV4_UNICAST, p0, k[:2]) == []
    assert rib.announce(IPV4_UNICAST, p1, k[2:3]) == [k[2]]
    assert rib.withdraw(IPV4_UNICAST, k[3:4]) == [k[3]]
    assert rib.stale_count(IPV4_UNICAST) == 2
    assert not rib.is_stale(IPV4_UNICAST, k[0])
    assert sorted(rib.sweep_stale(IPV4_UNICAST)) == sorted(k[4:])   # End-of-RIB
    assert rib.sweep_stale(IPV4_UNICAST) == []
    assert set(rib.keys(IPV4_UNICAST)) == set(k[:3])
    assert rib.mark_stale(IPV6_UNICAST) == 0


def test_adj_in_checkpoint_round_trip():
    interner = PathInterner()
    rib = AdjRibIn()
    keys = v4_keys(300)
    for i in range(3):
        rib.announce(IPV4_UNICAST, interner.get(SRC, attr_set(i)), keys[i::3])
    v6 = [prefix_to_key("2001:db8::/32"), prefix_to_key("2001:db8:1::/48")]
    rib.announce(IPV6_UNICAST, interner.get(SRC, attr_set(9, ME_V6)), v6)
    rib.mark_stale(IPV4_UNICAST)
    rib.announce(IPV4_UNICAST, interner.get(SRC, attr_set(0)), keys[:1])
    d = json.loads(json.dumps(rib.to_dict()))
    assert len(d["paths"]["attrs"]) == 4          # once per attribute set, not per prefix
    back = AdjRibIn.from_dict(d, interner)
    for fam in (IPV4_UNICAST, IPV6_UNICAST):
        assert dict(back.items(fam)) == dict(rib.items(fam))
    assert back.stale_count(IPV4_UNICAST) == 299 and not back.is_stale(IPV4_UNICAST, keys[0])


# -- Adj-RIB-Out ---------------------------------------------------------------------
def _full_table(n: int = 10_000):
    interner = PathInterner()
    paths = [interner.get(SRC, attr_set(i)) for i in range(3)]
    keys = v4_keys(n)
    return {k: paths[i % 3] for i, k in enumerate(keys)}, paths


def _collect(updates):
    got: dict[bytes, PathAttributes] = {}
    withdrawn: list[bytes] = []
    for u in updates:
        assert not u.treat_as_withdraw and not u.diagnostics
        for _fam, ks in u.withdrawn:
            withdrawn.extend(ks)
        for _fam, attrs, ks in u.announced:
            for k in ks:
                assert k not in got
                got[k] = attrs
    return got, withdrawn


def test_adj_out_full_table_packs_and_decodes():
    table, paths = _full_table()
    out = AdjRibOut()
    out.enqueue_full(IPV4_UNICAST, table.items())
    msgs = out.build_messages(ctx(TO_EBGP), max_messages=10_000)
    assert not out.has_pending()
    updates = decode_all(msgs, ebgp=True)
    assert updates[-1].end_of_rib == IPV4_UNICAST
    assert [u.end_of_rib for u in updates[:-1]] == [None] * (len(updates) - 1)
    got, withdrawn = _collect(updates)
    assert withdrawn == [] and set(got) == set(table)
    expected = {p: export_attrs(p, ctx(TO_EBGP), IPV4_UNICAST) for p in paths}
    assert all(got[k] == expected[p] for k, p in table.items())
    assert expected[paths[0]].next_hop == ME_V4
    # ~10,000 4-octet NLRI at ~1,000 per 4096-octet message, 3 groups
    assert len(msgs) <= 3 * 12 + 1
    assert all(len(m) <= 4096 for m in msgs)
    assert out.advertised_count(IPV4_UNICAST) == 10_000
    # nothing changed: re-enqueueing the same bests sends nothing
    for k, p in list(table.items())[:50]:
        out.enqueue(IPV4_UNICAST, k, p)
    assert out.build_messages(ctx(TO_EBGP), 100) == []


def test_adj_out_respects_max_messages_and_ends_with_eor():
    table, _ = _full_table()
    out = AdjRibOut()
    out.enqueue_full(IPV4_UNICAST, table.items())
    batches = []
    while out.has_pending():
        msgs = out.build_messages(ctx(TO_IBGP), max_messages=4, max_len=1024)
        assert 0 < len(msgs) <= 5          # at most one End-of-RIB on top
        batches.append(msgs)
        assert len(batches) < 200
    assert len(batches) > 5
    updates = [decode_all(b, ebgp=False) for b in batches]
    eors = [(i, j) for i, us in enumerate(updates) for j, u in enumerate(us) if u.end_of_rib]
    assert eors == [(len(updates) - 1, len(updates[-1]) - 1)]
    got, _ = _collect(u for us in updates for u in us)
    assert set(got) == set(table)
    assert all(a.local_pref == 100 for a in got.values())
    assert all(len(m) <= 1024 for b in batches for m in b)


def test_adj_out_withdrawals_and_coalescing():
    table, paths = _full_table(1000)
    interner = PathInterner()
    blocked = interner.get(SRC, attr_set(7).replace(communities=(NO_ADVERTISE,)))
    out = AdjRibOut()
    out.enqueue_full(IPV4_UNICAST, table.items())
    out.build_messages(ctx(TO_EBGP), 1000)
    keys = list(table)
    never_sent = bytes((24, 11, 0, 0))
    out.enqueue(IPV4_UNICAST, keys[0], None)            # prefix gone
    out.enqueue(IPV4_UNICAST, keys[1], blocked)         # best no longer exportable
    out.enqueue(IPV4_UNICAST, keys[2], paths[1])        # changed: paths[2] -> ... -> None
    out.enqueue(IPV4_UNICAST, keys[2], None)            # coalesced: only the last counts
    out.enqueue(IPV4_UNICAST, never_sent, paths[0])
    out.enqueue(IPV4_UNICAST, never_sent, None)         # never sent: nothing to withdraw
    out.enqueue(IPV4_UNICAST, keys[3], paths[1])        # keys[3] had paths[0]
    out.enqueue_many(IPV4_UNICAST, [(keys[4], paths[2])])  # keys[4] had paths[1]
    assert out.pending_count() == 6
    msgs = out.build_messages(ctx(TO_EBGP), 100)
    got, withdrawn = _collect(decode_all(msgs, ebgp=True))
    assert sorted(withdrawn) == sorted(keys[:3])
    assert set(got) == {keys[3], keys[4]}
    assert out.advertised_count(IPV4_UNICAST) == 1000 - 3
    assert not any(u.end_of_rib for u in decode_all(msgs, ebgp=True))
    # withdrawals go first
    assert decode_all(msgs[:1], ebgp=True)[0].withdrawn


def test_adj_out_split_horizon_policy_and_ipv6():
    interner = PathInterner()
    from_peer = interner.get(TO_IBGP, attr_set(1))
    v6_path = interner.get(SRC, attr_set(2, ME_V6))
    v6 = [prefix_to_key(f"2001:db8:{i:x}::/48") for i in range(300)]
    dropped = bytes((24, 10, 0, 1))

    def policy(key, path, attrs):
        if key == dropped:
            return None
        return attrs.replace(med=77)

    out = AdjRibOut(policy=policy)
    out.enqueue_full(IPV4_UNICAST, [(bytes((24, 10, 0, 0)), from_peer), (dropped, v6_path)])
    out.enqueue_full(IPV6_UNICAST, ((k, v6_path) for k in v6))
    msgs = out.build_messages(ctx(TO_IBGP), 100)
    updates = decode_all(msgs, ebgp=False)
    assert {u.end_of_rib for u in updates if u.end_of_rib} == {IPV4_UNICAST, IPV6_UNICAST}
    got, _ = _collect(updates)
    assert set(got) == set(v6)
    assert all(a.med == 77 and a.next_hop == ME_V6 for a in got.values())
    assert out.advertised_count(IPV4_UNICAST) == 0


def test_adj_out_checkpoint_round_trip():
    table, _ = _full_table(3000)
    out = AdjRibOut()
    out.enqueue_full(IPV4_UNICAST, table.items())
    first = out.build_messages(ctx(TO_EBGP), max_messages=2)
    keys = list(table)
    out.enqueue(IPV4_UNICAST, keys[0], None)
    d = json.loads(json.dumps(out.to_dict()))
    back = AdjRibOut.from_dict(d)
    assert dict(back.sent_items(IPV4_UNICAST)) == dict(out.sent_items(IPV4_UNICAST))
    assert back.pending_count() == out.pending_count()
    rest_a = out.build_messages(ctx(TO_EBGP), 1000)
    rest_b = back.build_messages(ctx(TO_EBGP), 1000)
    assert rest_a == rest_b
    got, withdrawn = _collect(decode_all(first + rest_a, ebgp=True))
    assert withdrawn == [keys[0]] and set(got) == set(table)


def test_adj_out_policy_path_paces_too():
    table, _ = _full_table(5000)
    out = AdjRibOut(policy=lambda key, path, attrs: attrs.replace(med=key[3]))
    out.enqueue_full(IPV4_UNICAST, table.items())
    updates = []
    while out.has_pending():
        msgs = out.build_messages(ctx(TO_EBGP), max_messages=8)
        assert len(msgs) <= 9
        updates.extend(decode_all(msgs, ebgp=True))
    assert updates[-1].end_of_rib == IPV4_UNICAST
    got, _ = _collect(updates)
    assert set(got) == set(table) and all(a.med == k[3] for k, a in got.items())


def test_adj_out_route_refresh_resends_and_clear():
    table, paths = _full_table(100)
    out = AdjRibOut()
    out.enqueue_full(IPV4_UNICAST, table.items())
    first = out.build_messages(ctx(TO_EBGP), 100)
    out.enqueue_full(IPV4_UNICAST, table.items())     # route refresh: everything again
    again = out.build_messages(ctx(TO_EBGP), 100)
    assert again == first                               # same packing, End-of-RIB last
    out.clear()
    assert not out.has_pending() and out.advertised_count(IPV4_UNICAST) == 0
    out.enqueue_full(IPV4_UNICAST, [])                  # empty table: just End-of-RIB
    [eor] = out.build_messages(ctx(TO_EBGP), 100)
    assert decode_all([eor], ebgp=True)[0].end_of_rib == IPV4_UNICAST


def test_adj_out_changes_during_full_table_win_over_the_snapshot():
    table, paths = _full_table(3000)
    keys = list(table)
    out = AdjRibOut()
    early = bytes((24, 11, 0, 0))
    out.enqueue(IPV4_UNICAST, keys[-1], paths[0])       # older than the snapshot
    out.enqueue(IPV4_UNICAST, early, None)               # not in the table: stays
    out.enqueue_full(IPV4_UNICAST, table.items())
    assert out.pending_count() == 3000 + 2   # keys[-1] is counted in both queues
    msgs = out.build_messages(ctx(TO_EBGP), max_messages=2)
    first, _ = _collect(decode_all(msgs, ebgp=True))
    late, gone = keys[-2], keys[-3]
    assert late not in first and gone not in first
    sent_key = next(iter(first))
    out.enqueue(IPV4_UNICAST, late, paths[(keys.index(late) + 1) % 3])
    out.enqueue(IPV4_UNICAST, gone, None)
    out.enqueue(IPV4_UNICAST, sent_key, None)
    rest = []
    while out.has_pending():
        rest.extend(decode_all(out.build_messages(ctx(TO_EBGP), max_messages=3), ebgp=True))
    assert rest[-1].end_of_rib == IPV4_UNICAST and not any(u.end_of_rib for u in rest[:-1])
    got, withdrawn = _collect(rest)
    assert withdrawn == [sent_key]
    assert gone not in got
    want = export_attrs(table[late], ctx(TO_EBGP), IPV4_UNICAST)
    assert got[late] != want                                     # the newer path was sent
    assert got[keys[-1]] == export_attrs(table[keys[-1]], ctx(TO_EBGP), IPV4_UNICAST)
    assert set(got) | set(first) == set(table) - {gone}
    assert out.advertised_count(IPV4_UNICAST) == 3000 - 2


# -- model check: whatever the interleaving, the peer ends up with the latest bests --
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_M_KEYS = v4_keys(24)
_M_INTERNER = PathInterner()
_M_PATHS = [
    _M_INTERNER.get(SRC, attr_set(0)),
    _M_INTERNER.get(SRC, attr_set(1)),
    _M_INTERNER.get(SRC, attr_set(2).replace(communities=(NO_ADVERTISE,))),
    _M_INTERNER.get(TO_EBGP, attr_set(3)),      # from the receiving peer: split horizon
    None,
]
_op = st.one_of(
    st.tuples(st.just("enq"), st.integers(0, 23), st.integers(0, 4)),
    st.tuples(st.just("full")),
    st.tuples(st.just("reset")),
    st.tuples(st.just("build"), st.integers(1, 3)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_op, max_size=30), st.booleans())
def test_adj_out_matches_model(ops, with_policy):
    policy = (lambda key, path, attrs: None if key[3] == 5 else attrs) if with_policy else None
    out = AdjRibOut(policy=policy)
    c = ctx(TO_EBGP)
    loc: dict[bytes, object] = {}  # the Loc-RIB the speaker keeps the Adj-RIB-Out in step with
    peer: dict[bytes, PathAttributes] = {}
    fulls = eors = 0
    dec = UpdateDecoder(four_octet_as=True, ebgp=True)

    def apply(msgs):
        nonlocal eors
        for m in msgs:
            u = dec.decode(m[19:])
            if u.end_of_rib:
                eors += 1
            for _f, ks in u.withdrawn:
                for k in ks:
                    assert k in peer          # we only withdraw what the peer has
                    del peer[k]
            for _f, attrs, ks in u.announced:
                peer.update(dict.fromkeys(ks, attrs))

    for op in ops:
        if op[0] == "enq":
            k, p = _M_KEYS[op[1]], _M_PATHS[op[2]]
            out.enqueue(IPV4_UNICAST, k, p)
            if p is None:
                loc.pop(k, None)
            else:
                loc[k] = p
        elif op[0] in ("full", "reset"):   # route refresh / session re-established
            if op[0] == "reset":
                out.clear()
                peer.clear()
            out.enqueue_full(IPV4_UNICAST, loc.items())
            fulls += 1
        else:
            msgs = out.build_messages(c, max_messages=op[1], max_len=128)
            assert len(msgs) <= op[1] + 1
            apply(msgs)
    while out.has_pending():
        apply(out.build_messages(c, max_messages=2, max_len=128))
    expected = {}
    for k, p in loc.items():
        exp = export_attrs(p, c, IPV4_UNICAST)
        if exp is not None and policy is not None:
            exp = policy(k, p, exp)
        if exp is not None:
            expected[k] = exp
    assert peer == expected
    assert dict(out.sent_items(IPV4_UNICAST)) == expected
    assert (eors >= 1) == (fulls >= 1) and eors <= fulls


def test_adj_out_work_per_call_is_bounded_when_nothing_is_sent():
    """A queue whose entries are all filtered (NO_EXPORT, split horizon) costs no octets;
    one build_messages must still stop after a bounded number of entries, so the event
    loop runs keepalives between calls (the switchover bench's 100-peer drops)."""
    from appliance.bgp.rib import adj_out

    n = 3 * adj_out._MAX_EXAMINED + 5
    path = PathInterner().get(SRC, attr_set(1))
    keys = [bytes((24, 10 + (i >> 16), (i >> 8) & 0xFF, i & 0xFF)) for i in range(n)]
    for full in (True, False):
        out = AdjRibOut(policy=lambda key, path, attrs: None)
        if full:
            out.enqueue_full(IPV4_UNICAST, [(k, path) for k in keys])
        else:
            out.enqueue_many(IPV4_UNICAST, [(k, path) for k in keys])
        calls = 0
        while out.has_pending():
            before = out.pending_count()
            msgs = out.build_messages(ctx(TO_EBGP), max_messages=100)
            assert before - out.pending_count() <= adj_out._MAX_EXAMINED
            calls += 1
            assert calls < 10
        assert calls >= 4
        assert [u.end_of_rib for u in decode_all(msgs, ebgp=True)] == ([IPV4_UNICAST] if full else [])
