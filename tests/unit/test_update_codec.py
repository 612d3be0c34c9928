"""UPDATE codec: round trips (hypothesis), packing, End-of-RIB, RFC 7606 at message level, interning."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.bgp.family import IPV4_UNICAST, IPV6_UNICAST, AfiSafi, prefix_to_key
from appliance.bgp.packet.attributes import ATTRIBUTES
from appliance.bgp.packet.constants import MARKER, ErrorCode, UpdateSubcode
from appliance.bgp.packet.errors import NotificationError
from appliance.bgp.packet.pathattrs import PathAttributes
from appliance.bgp.packet.update import (
    AttrCache,
    Update,
    UpdateDecoder,
    encode_attributes,
    end_of_rib,
    pack_updates,
    pack_withdrawals,
)

# -- strategies ----------------------------------------------------------------------

ASN = st.integers(1, 2**32 - 1)
U32 = st.integers(0, 2**32 - 1)


def as_paths(four: bool, confed: bool) -> st.SearchStrategy:
    seg = st.tuples(st.sampled_from([1, 2]), st.lists(ASN, min_size=1, max_size=12).map(tuple))
    # Confederation ASNs cannot survive a 2-octet session (they never go into AS4_PATH),
    # and they are only valid as the leading segments.
    conf_asn = ASN if four else st.integers(1, 65535)
    conf_seg = st.tuples(st.sampled_from([3, 4]), st.lists(conf_asn, min_size=1, max_size=4).map(tuple))
    lead = st.lists(conf_seg, max_size=2) if confed else st.just([])
    return st.builds(lambda a, b: tuple(a) + tuple(b), lead, st.lists(seg, max_size=4))


IPV4_NH = st.builds(
    lambda a, b, c, d: bytes((a, b, c, d)), st.integers(1, 223), st.integers(0, 255),
    st.integers(0, 255), st.integers(0, 255),
)
UNKNOWN_CODE = st.integers(19, 255).filter(lambda c: c not in ATTRIBUTES)


@st.composite
def path_attributes(draw: st.DrawFn, four: bool, ebgp: bool) -> PathAttributes:
    unknown = draw(st.dictionaries(UNKNOWN_CODE, st.binary(max_size=300), max_size=3))
    return PathAttributes(
        origin=draw(st.integers(0, 2)),
        as_path=draw(as_paths(four, confed=not ebgp)),
        next_hop=draw(IPV4_NH),
        med=draw(st.none() | U32),
        local_pref=None if ebgp else draw(U32),
        atomic_aggregate=draw(st.booleans()),
        aggregator=draw(st.none() | st.tuples(ASN, st.binary(min_size=4, max_size=4))),
        communities=tuple(draw(st.lists(U32, max_size=6))),
        ext_communities=tuple(draw(st.lists(st.binary(min_size=8, max_size=8), max_size=4))),
        large_communities=tuple(draw(st.lists(st.tuples(U32, U32, U32), max_size=4))),
        originator_id=None if ebgp else draw(st.none() | st.binary(min_size=4, max_size=4)),
        cluster_list=() if ebgp else tuple(draw(st.lists(st.binary(min_size=4, max_size=4), max_size=4))),
        unknown=tuple((0xE0, code, value) for code, value in sorted(unknown.items())),
    )


def _key(plen: int, addr: int, width: int) -> bytes:
    addr &= ((1 << width) - 1) ^ ((1 << (width - plen)) - 1)
    return bytes((plen,)) + addr.to_bytes(width // 8, "big")[: (plen + 7) // 8]


def prefix_keys(family: AfiSafi, max_size: int = 300) -> st.SearchStrategy:
    width = 32 if family == IPV4_UNICAST else 128
    key = st.builds(_key, st.integers(0, width), st.integers(0, 2**width - 1), st.just(width))
    return st.lists(key, min_size=1, max_size=max_size, unique=True)


# -- helpers -------------------------------------------------------------------------


def body(withdrawn: bytes = b"", attrs: bytes = b"", nlri: bytes = b"") -> bytes:
    return len(withdrawn).to_bytes(2, "big") + withdrawn + len(attrs).to_bytes(2, "big") + attrs + nlri


def check_framing(msg: bytes, max_len: int) -> None:
    assert len(msg) <= max_len
    assert msg[:16] == MARKER and int.from_bytes(msg[16:18], "big") == len(msg) and msg[18] == 2


def roundtrip(attrs: PathAttributes, family: AfiSafi, next_hop: bytes, keys: list[bytes],
              four: bool, ebgp: bool, max_len: int = 4096) -> None:
    ab = encode_attributes(attrs, four_octet_as=four, family=family)
    expected = attrs if family == IPV4_UNICAST else attrs.replace(next_hop=next_hop)
    msgs = pack_updates(family, ab, next_hop, keys, max_len)
    dec = UpdateDecoder(four_octet_as=four, ebgp=ebgp)
    got: list[bytes] = []
    for msg in msgs:
        check_framing(msg, max_len)
        upd = dec.decode(msg[19:])
        assert upd.withdrawn == [] and not upd.treat_as_withdraw and upd.end_of_rib is None
        assert upd.diagnostics == []
        ((fam, decoded, k),) = upd.announced
        assert fam == family
        assert decoded == expected
        got.extend(k)
    assert sorted(got) == sorted(keys)
    assert len(got) == len(keys)


# -- round trips -----------------------------------------------------------------------

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("four", [True, False], ids=["as4", "as2"])
@pytest.mark.parametrize("ebgp", [True, False], ids=["ebgp", "ibgp"])
class TestRoundTrip:
    @SETTINGS
    @given(data=st.data())
    def test_ipv4(self, four: bool, ebgp: bool, data: st.DataObject) -> None:
        attrs = data.draw(path_attributes(four, ebgp))
        keys = data.draw(prefix_keys(IPV4_UNICAST))
        max_len = data.draw(st.sampled_from([4096, 65535, 1024]))
        roundtrip(attrs, IPV4_UNICAST, attrs.next_hop, keys, four, ebgp, max_len)

    @SETTINGS
    @given(data=st.data())
    def test_ipv6(self, four: bool, ebgp: bool, data: st.DataObject) -> None:
        attrs = data.draw(path_attributes(four, ebgp))
        keys = data.draw(prefix_keys(IPV6_UNICAST))
        nh = data.draw(st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32))
        max_len = data.draw(st.sampled_from([4096, 65535, 1024]))
        roundtrip(attrs, IPV6_UNICAST, nh, keys, four, ebgp, max_len)


@SETTINGS
@given(keys=prefix_keys(IPV6_UNICAST, 2000), max_len=st.integers(200, 4096))
def test_withdrawals_roundtrip_ipv6(keys: list[bytes], max_len: int) -> None:
    dec = UpdateDecoder(four_octet_as=True, ebgp=True)
    got = []
    for msg in pack_withdrawals(IPV6_UNICAST, keys, max_len):
        check_framing(msg, max_len)
        upd = dec.decode(msg[19:])
        assert upd.announced == [] and not upd.treat_as_withdraw
        ((fam, k),) = upd.withdrawn
        assert fam == IPV6_UNICAST
        got.extend(k)
    assert got == keys


@SETTINGS
@given(keys=prefix_keys(IPV4_UNICAST, 2000), max_len=st.integers(100, 4096))
def test_withdrawals_roundtrip_ipv4(keys: list[bytes], max_len: int) -> None:
    dec = UpdateDecoder(four_octet_as=True, ebgp=True)
    got = []
    for msg in pack_withdrawals(IPV4_UNICAST, keys, max_len):
        check_framing(msg, max_len)
        ((fam, k),) = dec.decode(msg[19:]).withdrawn
        got.extend(k)
    assert got == keys


# -- packing -------------------------------------------------------------------------

BASE = PathAttributes(origin=0, as_path=((2, (65001, 65002)),), next_hop=b"\x0a\x00\x00\x01", med=10)


@pytest.mark.parametrize("family", [IPV4_UNICAST, IPV6_UNICAST], ids=lambda f: f.name)
@pytest.mark.parametrize("max_len", [4096, 65535])
def test_pack_10000_prefixes(family: AfiSafi, max_len: int) -> None:
    if family == IPV4_UNICAST:
        keys = [bytes((24, 10, i >> 8, i & 0xFF)) for i in range(10_000)]
        nh = BASE.next_hop
    else:
        keys = [bytes((64, 0x20, 0x01, 0x0D, 0xB8, 0, 0, i >> 8, i & 0xFF)) for i in range(10_000)]
        nh = bytes(range(16))
    ab = encode_attributes(BASE, four_octet_as=True, family=family)
    msgs = pack_updates(family, ab, nh, keys, max_len)
    per_key = len(keys[0])
    overhead = 19 + 4 + len(ab) + (0 if family == IPV4_UNICAST else 9 + len(nh))
    per_msg = (max_len - overhead) // per_key
    assert len(msgs) == -(-len(keys) // per_msg)  # as few as max_len allows
    dec = UpdateDecoder(four_octet_as=True, ebgp=True)
    got = []
    for m in msgs:
        check_framing(m, max_len)
        ((_, _, k),) = dec.decode(m[19:]).announced
        got.extend(k)
    assert got == keys
    wmsgs = pack_withdrawals(family, keys, max_len)
    back = []
    for m in wmsgs:
        check_framing(m, max_len)
        back.extend(dec.decode(m[19:]).withdrawn[0][1])
    assert back == keys


def test_pack_empty_and_too_small() -> None:
    assert pack_updates(IPV4_UNICAST, b"", b"", []) == []
    assert pack_withdrawals(IPV6_UNICAST, []) == []
    with pytest.raises(ValueError):
        pack_updates(IPV4_UNICAST, b"x" * 4080, b"", [b"\x00"])


# -- End-of-RIB ------------------------------------------------------------------------


@pytest.mark.parametrize("family", [IPV4_UNICAST, IPV6_UNICAST], ids=lambda f: f.name)
def test_end_of_rib(family: AfiSafi) -> None:
    msg = end_of_rib(family)
    check_framing(msg, 4096)
    upd = UpdateDecoder(four_octet_as=True, ebgp=True).decode(msg[19:])
    assert upd.end_of_rib == family
    assert upd.announced == [] and upd.withdrawn == []


def test_ipv4_eor_is_the_empty_update() -> None:
    assert end_of_rib(IPV4_UNICAST)[19:] == b"\x00\x00\x00\x00"


# -- message-level RFC 7606 and framing ---------------------------------------------------

ORIGIN = b"\x40\x01\x01\x00"
AS_PATH = b"\x40\x02\x06\x02\x01\x00\x00\xfd\xe9"  # 4-octet: [65001]
NEXT_HOP = b"\x40\x03\x04\x0a\x00\x00\x01"
GOOD = ORIGIN + AS_PATH + NEXT_HOP
NLRI = b"\x18\x0a\x01\x02\x10\xac\x10"  # 10.1.2.0/24, 172.16.0.0/16


def dec(ebgp: bool = True, four: bool = True, **kw) -> UpdateDecoder:
    return UpdateDecoder(four_octet_as=four, ebgp=ebgp, **kw)


def test_good_update() -> None:
    upd = dec().decode(body(attrs=GOOD, nlri=NLRI))
    ((fam, attrs, keys),) = upd.announced
    assert fam == IPV4_UNICAST and keys == [prefix_to_key("10.1.2.0/24"), prefix_to_key("172.16.0.0/16")]
    assert attrs.as_path == ((2, (65001,)),) and attrs.next_hop == b"\x0a\x00\x00\x01"


def test_memoryview_input() -> None:
    upd = dec().decode(memoryview(bytearray(body(attrs=GOOD, nlri=NLRI))))
    assert upd.announced[0][2] == [b"\x18\x0a\x01\x02", b"\x10\xac\x10"]
    assert all(type(k) is bytes for k in upd.announced[0][2])


def test_host_bits_are_cleared_in_keys() -> None:
    upd = dec().decode(body(attrs=GOOD, nlri=b"\x17\x0a\x01\x03" + b"\x01\xff"))
    assert upd.announced[0][2] == [prefix_to_key("10.1.2.0/23"), prefix_to_key("128.0.0.0/1")]


@pytest.mark.parametrize("nlri", [b"\x21\x0a\x00\x00\x00\x00", b"\x18\x0a\x01", b"\x20"])
def test_malformed_nlri_resets(nlri: bytes) -> None:
    with pytest.raises(NotificationError) as exc:
        dec().decode(body(attrs=GOOD, nlri=nlri))
    assert (exc.value.code, exc.value.subcode) == (ErrorCode.UPDATE_MESSAGE, UpdateSubcode.INVALID_NETWORK_FIELD)


def test_malformed_withdrawn_resets() -> None:
    with pytest.raises(NotificationError) as exc:
        dec().decode(body(withdrawn=b"\x19\x0a\x01\x02"))
    assert exc.value.subcode == UpdateSubcode.INVALID_NETWORK_FIELD


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00",  # shorter than the length fields
        b"\x00\x05\x00\x00",  # withdrawn length overruns
        b"\x00\x00\x00\x09\x40\x01\x01\x00",  # attribute length overruns
        body(attrs=b"\x40\x01\x05\x00"),  # attribute value overruns the attribute field
        body(attrs=b"\x40\x01"),  # truncated attribute header
        body(attrs=b"\x50\x01\x00"),  # truncated extended-length header
    ],
)
def test_framing_errors_reset(raw: bytes) -> None:
    with pytest.raises(NotificationError) as exc:
        dec().decode(raw)
    assert (exc.value.code, exc.value.subcode) == (
        ErrorCode.UPDATE_MESSAGE, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST)


def _treated_as_withdraw(upd: Update, keys: int = 2) -> None:
    assert upd.treat_as_withdraw
    assert upd.announced == []
    ((fam, k),) = upd.withdrawn
    assert fam == IPV4_UNICAST and len(k) == keys
    assert any(d.startswith("treat-as-withdraw") for d in upd.diagnostics)


@pytest.mark.parametrize("attrs", [ORIGIN + AS_PATH, AS_PATH + NEXT_HOP, ORIGIN + NEXT_HOP, b""],
                         ids=["no-next-hop", "no-origin", "no-as-path", "no-attributes"])
def test_missing_well_known_is_treat_as_withdraw(attrs: bytes) -> None:
    _treated_as_withdraw(dec().decode(body(attrs=attrs, nlri=NLRI)))


def test_missing_local_pref_from_ibgp() -> None:
    _treated_as_withdraw(dec(ebgp=False).decode(body(attrs=GOOD, nlri=NLRI)))
    upd = dec(ebgp=False).decode(body(attrs=GOOD + b"\x40\x05\x04\x00\x00\x00\x64", nlri=NLRI))
    assert upd.announced[0][1].local_pref == 100


@pytest.mark.parametrize("nh", [b"\x00\x00\x00\x00", b"\xe0\x00\x00\x05", b"\xf0\x00\x00\x01", b"\xff\xff\xff\xff"])
def test_bad_next_hop_is_treat_as_withdraw(nh: bytes) -> None:
    _treated_as_withdraw(dec().decode(body(attrs=ORIGIN + AS_PATH + b"\x40\x03\x04" + nh, nlri=NLRI)))


def test_withdrawals_survive_bad_attributes() -> None:
    upd = dec().decode(body(withdrawn=b"\x08\x0b", attrs=b"\x40\x01\x02\x00\x00" + AS_PATH, nlri=NLRI))
    assert upd.treat_as_withdraw
    ((fam, keys),) = upd.withdrawn
    assert keys == [b"\x08\x0b", b"\x18\x0a\x01\x02", b"\x10\xac\x10"]


def test_withdraw_only_with_bad_attributes_is_not_treat_as_withdraw() -> None:
    upd = dec().decode(body(withdrawn=b"\x08\x0b", attrs=b"\x40\x01\x02\x00\x00"))
    assert not upd.treat_as_withdraw and upd.withdrawn == [(IPV4_UNICAST, [b"\x08\x0b"])]


def test_confed_segment_from_ebgp() -> None:
    confed_path = b"\x40\x02\x06\x03\x01\x00\x00\xfd\xe9"
    _treated_as_withdraw(dec().decode(body(attrs=ORIGIN + confed_path + NEXT_HOP, nlri=NLRI)))
    lp = b"\x40\x05\x04\x00\x00\x00\x64"
    upd = dec(ebgp=False).decode(body(attrs=ORIGIN + confed_path + NEXT_HOP + lp, nlri=NLRI))
    assert upd.announced[0][1].as_path == ((3, (65001,)),)


def _mp_reach(family: AfiSafi, nh: bytes, nlri: bytes) -> bytes:
    v = family.afi.to_bytes(2, "big") + bytes((family.safi, len(nh))) + nh + b"\x00" + nlri
    return bytes((0x80, 14, len(v))) + v


def _mp_unreach(family: AfiSafi, nlri: bytes) -> bytes:
    v = family.afi.to_bytes(2, "big") + bytes((family.safi,)) + nlri
    return bytes((0x80, 15, len(v))) + v


V6_NLRI = b"\x20\x20\x01\x0d\xb8"


def test_duplicate_mp_reach_resets() -> None:
    mp = _mp_reach(IPV6_UNICAST, bytes(16), V6_NLRI)
    with pytest.raises(NotificationError) as exc:
        dec().decode(body(attrs=mp + ORIGIN + AS_PATH + mp))
    assert exc.value.subcode == UpdateSubcode.MALFORMED_ATTRIBUTE_LIST


@pytest.mark.parametrize(
    "mp",
    [
        _mp_reach(IPV6_UNICAST, bytes(8), V6_NLRI),  # bad next hop length
        _mp_reach(IPV6_UNICAST, bytes(16), b"\x81" + bytes(17)),  # prefix length > 128
        _mp_reach(IPV6_UNICAST, bytes(16), b"\x40\x20\x01"),  # truncated prefix
        b"\x80\x0e\x02\x00\x02",  # shorter than AFI/SAFI
        b"\x80\x0e\x04\x00\x02\x01\x20",  # next hop length overruns
        b"\xc0\x0e" + _mp_reach(IPV6_UNICAST, bytes(16), V6_NLRI)[2:],  # transitive flag
        _mp_unreach(IPV6_UNICAST, b"\x30\x20"),  # truncated withdrawn prefix
    ],
)
def test_malformed_mp_resets(mp: bytes) -> None:
    with pytest.raises(NotificationError) as exc:
        dec().decode(body(attrs=mp + ORIGIN + AS_PATH))
    assert (exc.value.code, exc.value.subcode) == (
        ErrorCode.UPDATE_MESSAGE, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST)


def test_mixed_ipv4_and_mp_update() -> None:
    nh6 = bytes(range(16))
    attrs = _mp_reach(IPV6_UNICAST, nh6, V6_NLRI) + GOOD + _mp_unreach(IPV6_UNICAST, b"\x10\x20\x02")
    upd = dec().decode(body(withdrawn=b"\x08\x0c", attrs=attrs, nlri=NLRI))
    fams = {f: (a, k) for f, a, k in upd.announced}
    assert fams[IPV4_UNICAST][0].next_hop == b"\x0a\x00\x00\x01"
    assert fams[IPV6_UNICAST][0].next_hop == nh6
    assert fams[IPV6_UNICAST][1] == [V6_NLRI]
    assert dict(upd.withdrawn) == {IPV4_UNICAST: [b"\x08\x0c"], IPV6_UNICAST: [b"\x10\x20\x02"]}


def test_mp_reach_missing_as_path_is_treat_as_withdraw() -> None:
    upd = dec().decode(body(attrs=_mp_reach(IPV6_UNICAST, bytes(16), V6_NLRI) + ORIGIN))
    assert upd.treat_as_withdraw and upd.withdrawn == [(IPV6_UNICAST, [V6_NLRI])]


def test_mp_reach_needs_no_ipv4_next_hop() -> None:
    upd = dec().decode(body(attrs=_mp_reach(IPV6_UNICAST, bytes(16), V6_NLRI) + ORIGIN + AS_PATH))
    assert upd.announced and not upd.treat_as_withdraw


def test_family_not_negotiated_is_ignored() -> None:
    d = dec(families=frozenset({IPV4_UNICAST}))
    upd = d.decode(body(attrs=_mp_reach(IPV6_UNICAST, bytes(16), V6_NLRI) + ORIGIN + AS_PATH))
    assert upd.announced == [] and upd.withdrawn == [] and upd.diagnostics
    unknown_family = AfiSafi(1, 128)  # VPNv4: NLRI not parsed, attribute ignored
    upd = dec().decode(body(attrs=_mp_reach(unknown_family, bytes(12), b"\x99") + ORIGIN + AS_PATH))
    assert upd.announced == [] and upd.diagnostics


# -- interning -------------------------------------------------------------------------


def test_attribute_sets_are_interned() -> None:
    cache = AttrCache()
    a = dec(cache=cache).decode(body(attrs=GOOD, nlri=NLRI))
    b = dec(cache=cache).decode(body(attrs=GOOD, nlri=b"\x08\x0b"))
    assert a.announced[0][1] is b.announced[0][1]
    nh6 = bytes(16)
    c = dec(cache=cache).decode(body(attrs=_mp_reach(IPV6_UNICAST, nh6, V6_NLRI) + ORIGIN + AS_PATH))
    d = dec(cache=cache).decode(body(attrs=_mp_reach(IPV6_UNICAST, nh6, b"\x00") + ORIGIN + AS_PATH))
    assert c.announced[0][1] is d.announced[0][1]


def test_cache_keys_on_session_mode() -> None:
    cache = AttrCache()
    as_path2 = b"\x40\x02\x04\x02\x01\xfd\xe9"  # 2-octet [65001]; malformed for a 4-octet session
    attrs = ORIGIN + as_path2 + NEXT_HOP
    assert dec(four=False, cache=cache).decode(body(attrs=attrs, nlri=NLRI)).announced
    assert dec(four=True, cache=cache).decode(body(attrs=attrs, nlri=NLRI)).treat_as_withdraw


def test_cache_is_bounded() -> None:
    cache = AttrCache(max_entries=3)
    d = dec(cache=cache)
    for med in range(10):
        d.decode(body(attrs=GOOD + b"\x80\x04\x04" + med.to_bytes(4, "big"), nlri=NLRI))
        assert len(cache) <= 3


def test_treat_as_withdraw_covers_every_family_of_the_update() -> None:
    nh6 = bytes(range(16))
    attrs = _mp_reach(IPV6_UNICAST, nh6, V6_NLRI) + ORIGIN + AS_PATH  # NEXT_HOP missing for IPv4 NLRI
    upd = dec().decode(body(attrs=attrs, nlri=NLRI))
    assert upd.treat_as_withdraw and upd.announced == []
    assert dict(upd.withdrawn) == {IPV4_UNICAST: [b"\x18\x0a\x01\x02", b"\x10\xac\x10"], IPV6_UNICAST: [V6_NLRI]}
