"""Path attributes: per-attribute RFC 7606 handling, flags, unknown attributes, AS4 (RFC 6793)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.bgp.packet.attributes import (
    ATTRIBUTES,
    Action,
    DecodeContext,
    decode_attributes,
    encode_path_attributes,
    merge_as4_path,
    split_attributes,
    tlv,
)
from appliance.bgp.packet.constants import AS_TRANS, AttrType
from appliance.bgp.packet.errors import NotificationError
from appliance.bgp.packet.pathattrs import PathAttributes

EBGP4 = DecodeContext(four_octet_as=True, ebgp=True)
IBGP4 = DecodeContext(four_octet_as=True, ebgp=False)
EBGP2 = DecodeContext(four_octet_as=False, ebgp=True)

ORIGIN = tlv(0x40, 1, b"\x00")
AS_PATH = tlv(0x40, 2, b"\x02\x02" + struct.pack(">II", 65001, 65002))
NEXT_HOP = tlv(0x40, 3, b"\x0a\x00\x00\x01")
LOCAL_PREF = tlv(0x40, 5, b"\x00\x00\x00\x64")
MANDATORY = ORIGIN + AS_PATH + NEXT_HOP


def decode(extra: bytes, ctx: DecodeContext = EBGP4, base: bytes = MANDATORY):
    entry = decode_attributes(base + extra, ctx)
    assert entry is not None
    return entry


def test_registry_covers_every_required_type() -> None:
    want = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32}
    assert set(ATTRIBUTES) == want
    for code, cls in ATTRIBUTES.items():
        assert cls.CODE == code and cls.name() == AttrType(code).name


def test_good_set() -> None:
    e = decode(tlv(0x80, 4, b"\x00\x00\x00\x07") + tlv(0xC0, 8, b"\xfd\xe9\x00\x01"))
    assert e.withdraw_v4 is None and e.withdraw_mp is None and e.diagnostics == ()
    assert e.attrs.med == 7 and e.attrs.communities == (65001 << 16 | 1,)
    assert e.attrs.as_path == ((2, (65001, 65002)),)


# RFC 7606 §7 per attribute: (wire, context, expected action)
W, D = Action.TREAT_AS_WITHDRAW, Action.ATTRIBUTE_DISCARD
CASES = [
    ("origin-length", tlv(0x40, 1, b"\x00\x00"), EBGP4, W),
    ("origin-value", tlv(0x40, 1, b"\x03"), EBGP4, W),
    ("origin-flags-optional", tlv(0xC0, 1, b"\x00"), EBGP4, W),
    ("origin-flags-partial", tlv(0x60, 1, b"\x00"), EBGP4, W),
    ("as-path-segment-type", tlv(0x40, 2, b"\x05\x01\x00\x00\x00\x01"), EBGP4, W),
    ("as-path-zero-count", tlv(0x40, 2, b"\x02\x00"), EBGP4, W),
    ("as-path-overrun", tlv(0x40, 2, b"\x02\x02\x00\x00\x00\x01"), EBGP4, W),
    ("as-path-as0", tlv(0x40, 2, b"\x02\x01\x00\x00\x00\x00"), EBGP4, W),
    ("as-path-confed-ebgp", tlv(0x40, 2, b"\x03\x01\x00\x00\x00\x01"), EBGP4, W),
    ("next-hop-length", tlv(0x40, 3, b"\x0a\x00\x00"), EBGP4, W),
    ("next-hop-zero", tlv(0x40, 3, b"\x00\x00\x00\x00"), EBGP4, W),
    ("next-hop-flags", tlv(0x80, 3, b"\x0a\x00\x00\x01"), EBGP4, W),
    ("med-length", tlv(0x80, 4, b"\x00\x00\x01"), EBGP4, W),
    ("med-flags-transitive", tlv(0xC0, 4, b"\x00\x00\x00\x01"), EBGP4, W),
    ("local-pref-length", tlv(0x40, 5, b"\x00\x00\x01"), IBGP4, W),
    ("local-pref-ebgp", tlv(0x40, 5, b"\x00\x00\x00\x64"), EBGP4, D),
    ("atomic-aggregate-length", tlv(0x40, 6, b"\x01"), EBGP4, D),
    ("atomic-aggregate-flags", tlv(0xC0, 6, b""), EBGP4, D),
    ("aggregator-length-as4", tlv(0xC0, 7, b"\x00\x01\x01\x02\x03\x04"), EBGP4, D),
    ("aggregator-length-as2", tlv(0xC0, 7, b"\x00\x00\x00\x01\x01\x02\x03\x04"), EBGP2, D),
    ("aggregator-as0", tlv(0xC0, 7, b"\x00\x00\x00\x00\x01\x02\x03\x04"), EBGP4, D),
    ("aggregator-flags", tlv(0x40, 7, b"\x00\x00\x00\x01\x01\x02\x03\x04"), EBGP4, D),
    ("communities-length", tlv(0xC0, 8, b"\x00\x01\x00"), EBGP4, W),
    ("communities-empty", tlv(0xC0, 8, b""), EBGP4, W),
    ("originator-id-length", tlv(0x80, 9, b"\x01\x02\x03"), IBGP4, W),
    ("originator-id-ebgp", tlv(0x80, 9, b"\x01\x02\x03\x04"), EBGP4, D),
    ("cluster-list-length", tlv(0x80, 10, b"\x01\x02\x03\x04\x05"), IBGP4, W),
    ("cluster-list-ebgp", tlv(0x80, 10, b"\x01\x02\x03\x04"), EBGP4, D),
    ("ext-communities-length", tlv(0xC0, 16, bytes(12)), EBGP4, W),
    ("ext-communities-empty", tlv(0xC0, 16, b""), EBGP4, W),
    ("large-communities-length", tlv(0xC0, 32, bytes(16)), EBGP4, W),
    ("as4-path-malformed", tlv(0xC0, 17, b"\x02\x02\x00\x00\x00\x01"), EBGP2, D),
    ("as4-path-confed", tlv(0xC0, 17, b"\x03\x01\x00\x00\x00\x01"), EBGP2, D),
    ("as4-path-from-as4-peer", tlv(0xC0, 17, b"\x02\x01\x00\x01\x00\x00"), EBGP4, D),
    ("as4-aggregator-length", tlv(0xC0, 18, b"\x00\x01\x01\x02\x03\x04"), EBGP2, D),
    ("as4-aggregator-from-as4-peer", tlv(0xC0, 18, bytes(8)), EBGP4, D),
    ("unknown-well-known", tlv(0x40, 99, b"\x01"), EBGP4, W),
]


@pytest.mark.parametrize("wire,ctx,action", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rfc7606_attribute_errors(wire: bytes, ctx: DecodeContext, action: Action) -> None:
    as_path = AS_PATH if ctx.four_octet_as else tlv(0x40, 2, b"\x02\x01\xfd\xe9")
    parts = {1: ORIGIN, 2: as_path, 3: NEXT_HOP}
    if not ctx.ebgp:
        parts[5] = LOCAL_PREF
    parts.pop(wire[1], None)  # the attribute under test replaces the good one
    base = b"".join(parts.values())
    entry = decode(wire, ctx, base)
    if action == Action.TREAT_AS_WITHDRAW:
        assert entry.withdraw_v4 and entry.withdraw_mp
    else:
        assert entry.withdraw_v4 is None and entry.withdraw_mp is None, entry
        assert any(d.startswith("attribute-discard") for d in entry.diagnostics)
        # the discarded attribute left no trace in the result
        plain = decode(b"", ctx, base)
        assert entry.attrs == plain.attrs


def test_partial_bit_allowed_on_optional_transitive() -> None:
    e = decode(tlv(0xE0, 8, b"\x00\x00\x00\x01"))
    assert e.attrs.communities == (1,) and e.withdraw_v4 is None


def test_duplicates_keep_the_first() -> None:
    e = decode(tlv(0x80, 4, b"\x00\x00\x00\x01") + tlv(0x80, 4, b"\x00\x00\x00\x02"))
    assert e.attrs.med == 1 and e.withdraw_v4 is None
    assert e.diagnostics == ("attribute-discard: duplicate attribute type 4",)


def test_unknown_attributes() -> None:
    e = decode(tlv(0xC0, 99, b"abc") + tlv(0x80, 100, b"zz") + tlv(0xD0, 101, b"x" * 300))
    assert e.attrs.unknown == ((0xE0, 99, b"abc"), (0xE0, 101, b"x" * 300))  # non-transitive dropped
    assert e.withdraw_v4 is None and e.diagnostics == ()
    wire = encode_path_attributes(e.attrs, four_octet_as=True, with_next_hop=True)
    assert tlv(0xE0, 99, b"abc") in wire  # re-sent with the Partial bit
    assert b"\xf0\x65\x01\x2c" in wire  # extended length kept for 300 octets


def test_mp_attributes_are_left_to_the_caller() -> None:
    assert decode_attributes(b"\x80\x0e\x03\x00\x02\x01" + MANDATORY, EBGP4) is None


def test_split_attributes() -> None:
    tlvs = split_attributes(ORIGIN + b"\x90\x63\x00\x03xxx")  # extended length, short value
    assert tlvs == [(0x40, 1, 0, 3, 4), (0x90, 99, 4, 8, 11)]
    with pytest.raises(NotificationError):
        split_attributes(ORIGIN + b"\x40\x02\x05\x00")


def test_missing_reasons() -> None:
    e = decode(b"", IBGP4, ORIGIN + AS_PATH)
    assert "LOCAL_PREF" in e.withdraw_mp and "NEXT_HOP" in e.withdraw_v4
    e = decode(b"", EBGP4, ORIGIN + AS_PATH)
    assert e.withdraw_mp is None and "NEXT_HOP" in e.withdraw_v4


# -- AS4 (RFC 6793) ------------------------------------------------------------------------


def _path2(*segs: tuple[int, tuple[int, ...]]) -> bytes:
    return tlv(0x40, 2, b"".join(bytes((t, len(a))) + struct.pack(f">{len(a)}H", *a) for t, a in segs))


def _path4(code: int, *segs: tuple[int, tuple[int, ...]]) -> bytes:
    flags = 0x40 if code == 2 else 0xC0
    return tlv(flags, code, b"".join(bytes((t, len(a))) + struct.pack(f">{len(a)}I", *a) for t, a in segs))


def test_as4_path_merge() -> None:
    e = decode(_path2((2, (100, AS_TRANS, AS_TRANS))) + _path4(17, (2, (70000, 80000))), EBGP2,
               ORIGIN + NEXT_HOP)
    assert e.attrs.as_path == ((2, (100,)), (2, (70000, 80000)))


def test_as4_path_longer_than_as_path_is_ignored() -> None:
    e = decode(_path2((2, (AS_TRANS,))) + _path4(17, (2, (70000, 80000))), EBGP2, ORIGIN + NEXT_HOP)
    assert e.attrs.as_path == ((2, (AS_TRANS,)),)


def test_as4_aggregator_merge() -> None:
    agg = tlv(0xC0, 7, struct.pack(">H", AS_TRANS) + b"\x01\x02\x03\x04")
    agg4 = tlv(0xC0, 18, struct.pack(">I", 4200000000) + b"\x01\x02\x03\x04")
    e = decode(_path2((2, (AS_TRANS,))) + agg + agg4 + _path4(17, (2, (4200000000,))), EBGP2,
               ORIGIN + NEXT_HOP)
    assert e.attrs.aggregator == (4200000000, b"\x01\x02\x03\x04")
    assert e.attrs.as_path == ((2, (4200000000,)),)


def test_aggregator_not_as_trans_voids_as4_attributes() -> None:
    agg = tlv(0xC0, 7, struct.pack(">H", 65010) + b"\x01\x02\x03\x04")
    agg4 = tlv(0xC0, 18, struct.pack(">I", 4200000000) + b"\x01\x02\x03\x04")
    e = decode(_path2((2, (AS_TRANS,))) + agg + agg4 + _path4(17, (2, (4200000000,))), EBGP2,
               ORIGIN + NEXT_HOP)
    assert e.attrs.aggregator == (65010, b"\x01\x02\x03\x04")
    assert e.attrs.as_path == ((2, (AS_TRANS,)),)
    assert e.diagnostics


def test_merge_keeps_leading_confed_and_counts_sets_as_one() -> None:
    as_path = ((3, (1, 2)), (2, (10, AS_TRANS)), (1, (AS_TRANS, AS_TRANS)))
    as4 = ((2, (70000,)), (1, (80000, 90000)))
    assert merge_as4_path(as_path, as4) == ((3, (1, 2)), (2, (10,)), (2, (70000,)), (1, (80000, 90000)))


def test_encode_towards_2_octet_peer() -> None:
    attrs = PathAttributes(as_path=((2, (65001, 4200000000)),), aggregator=(4200000001, b"\x01\x02\x03\x04"))
    wire = encode_path_attributes(attrs, four_octet_as=False, with_next_hop=False)
    codes = [t[1] for t in split_attributes(wire)]
    assert codes == [1, 2, 7, 17, 18]  # type-code order
    assert _path2((2, (65001, AS_TRANS))) in wire
    assert _path4(17, (2, (65001, 4200000000))) in wire
    back = decode_attributes(wire, EBGP2)
    assert back.attrs == attrs
    small = PathAttributes(as_path=((2, (65001, 65002)),), aggregator=(65001, b"\x01\x02\x03\x04"))
    wire = encode_path_attributes(small, four_octet_as=False, with_next_hop=False)
    assert [t[1] for t in split_attributes(wire)] == [1, 2, 7]  # no AS4_* when all ASNs fit


def test_long_as_sequence_is_split_into_255s() -> None:
    attrs = PathAttributes(as_path=((2, tuple(range(1, 601))),))
    wire = encode_path_attributes(attrs, four_octet_as=True, with_next_hop=False)
    back = decode_attributes(wire, EBGP4).attrs
    assert [len(a) for _, a in back.as_path] == [255, 255, 90]
    assert sum((a for _, a in back.as_path), ()) == tuple(range(1, 601))


# -- per-attribute round trip --------------------------------------------------------------


U32 = st.integers(0, 2**32 - 1)


@settings(max_examples=200, deadline=None)
@given(
    four=st.booleans(),
    med=st.none() | U32,
    communities=st.lists(U32, max_size=100).map(tuple),
    ext=st.lists(st.binary(min_size=8, max_size=8), max_size=40).map(tuple),
    large=st.lists(st.tuples(U32, U32, U32), max_size=30).map(tuple),
    cluster=st.lists(st.binary(min_size=4, max_size=4), max_size=70).map(tuple),
    originator=st.none() | st.binary(min_size=4, max_size=4),
    atomic=st.booleans(),
)
def test_attribute_values_roundtrip(four, med, communities, ext, large, cluster, originator, atomic) -> None:
    attrs = PathAttributes(
        origin=2, as_path=((2, (65001,)),), next_hop=b"\x01\x02\x03\x04", med=med, local_pref=5,
        communities=communities, ext_communities=ext, large_communities=large,
        cluster_list=cluster, originator_id=originator, atomic_aggregate=atomic,
    )
    wire = encode_path_attributes(attrs, four_octet_as=four, with_next_hop=True)
    entry = decode_attributes(wire, DecodeContext(four, False))
    assert entry.attrs == attrs
    assert entry.withdraw_v4 is None and entry.diagnostics == ()
