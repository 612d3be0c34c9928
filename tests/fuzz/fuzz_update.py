"""Fuzz targets for the UPDATE decoder, the attribute decoder and the NLRI parser.

Each target also checks invariants that must hold for any input it accepts:
a cache hit gives the same answer as the miss that filled it, keys are canonical,
and a cleanly decoded attribute set re-encodes to bytes that decode to it again.
"""

from __future__ import annotations

from appliance.bgp.family import IPV4_UNICAST, IPV6_UNICAST
from appliance.bgp.packet.attributes import DecodeContext, decode_attributes, encode_path_attributes
from appliance.bgp.packet.constants import Afi
from appliance.bgp.packet.nlri import normalize_key, parse_prefixes
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

_FULL = PathAttributes(
    origin=1,
    as_path=((3, (65010,)), (2, (65001, 4200000000, 23456)), (1, (70000, 5))),
    next_hop=b"\x0a\x00\x00\x01",
    med=7,
    local_pref=100,
    atomic_aggregate=True,
    aggregator=(4200000001, b"\x01\x02\x03\x04"),
    communities=(0xFDE90001, 0xFFFFFF01),
    ext_communities=(b"\x00\x02\xfd\xe9\x00\x00\x00\x01",),
    large_communities=((4200000000, 1, 2),),
    originator_id=b"\x01\x01\x01\x01",
    cluster_list=(b"\x02\x02\x02\x02",),
    unknown=((0xE0, 99, b"opaque"),),
)
_SMALL = PathAttributes(origin=0, as_path=((2, (65001, 65002)),), next_hop=b"\xc0\x00\x02\x01", med=0)
_V4 = [b"\x18\x0a\x01\x02", b"\x10\xac\x10", b"\x00", b"\x20\x01\x02\x03\x04", b"\x09\x80\x80"]
_V6 = [b"\x20\x20\x01\x0d\xb8", b"\x80" + bytes(range(16)), b"\x00", b"\x41" + bytes(9)]


def _update_seeds(four: bool) -> list[bytes]:
    out = []
    for attrs in (_FULL, _SMALL):
        ab4 = encode_attributes(attrs, four_octet_as=four, family=IPV4_UNICAST)
        ab6 = encode_attributes(attrs, four_octet_as=four, family=IPV6_UNICAST)
        out += pack_updates(IPV4_UNICAST, ab4, attrs.next_hop, _V4)
        out += pack_updates(IPV6_UNICAST, ab6, bytes(range(32)), _V6)
        out += pack_updates(IPV6_UNICAST, ab6, bytes(range(16)), _V6[:2])
    out += pack_withdrawals(IPV4_UNICAST, _V4) + pack_withdrawals(IPV6_UNICAST, _V6)
    out += [end_of_rib(IPV4_UNICAST), end_of_rib(IPV6_UNICAST)]
    return [m[19:] for m in out]


def _same(a: Update, b: Update) -> bool:
    return (a.announced, a.withdrawn, a.end_of_rib, a.treat_as_withdraw, a.diagnostics) == (
        b.announced, b.withdrawn, b.end_of_rib, b.treat_as_withdraw, b.diagnostics)


def _check_update(data: bytes, four: bool) -> None:
    for ebgp in (True, False):
        dec = UpdateDecoder(four_octet_as=four, ebgp=ebgp, cache=AttrCache())
        first = dec.decode(data)
        second = dec.decode(data)  # now served from the cache
        assert _same(first, second), (first, second)
        for _family, keys in first.withdrawn:
            assert all(normalize_key(k) == k for k in keys)
        for _family, attrs, keys in first.announced:
            assert isinstance(attrs, PathAttributes) and keys
            assert all(normalize_key(k) == k for k in keys)
        if first.treat_as_withdraw:
            assert first.announced == []


def update_2octet(data: bytes) -> None:
    _check_update(data, False)


def update_4octet(data: bytes) -> None:
    _check_update(data, True)


def _attribute_seeds() -> list[bytes]:
    out = []
    for attrs in (_FULL, _SMALL):
        for four in (True, False):
            out.append(encode_path_attributes(attrs, four_octet_as=four, with_next_hop=True))
    return out


def attributes(data: bytes) -> None:
    for four in (True, False):
        for ebgp in (True, False):
            ctx = DecodeContext(four, ebgp)
            entry = decode_attributes(data, ctx)
            if entry is None or entry.diagnostics or entry.withdraw_v4 or not four:
                continue  # (2-octet merges are lossy by design)
            # A clean decode must survive encode -> decode unchanged.
            wire = encode_path_attributes(entry.attrs, four_octet_as=True, with_next_hop=True)
            again = decode_attributes(wire, ctx)
            assert again is not None and again.attrs == entry.attrs, (entry.attrs, again)


def _nlri_seeds() -> list[bytes]:
    return [b"".join(_V4), b"".join(_V6)]


def nlri(data: bytes) -> None:
    for afi, width in ((Afi.IPV4, 32), (Afi.IPV6, 128)):
        try:
            keys = parse_prefixes(data, 0, len(data), afi)
        except Exception:
            if afi == Afi.IPV6:
                raise
            continue
        assert sum(map(len, keys)) == len(data)
        for k in keys:
            assert k[0] <= width and len(k) == 1 + (k[0] + 7) // 8
            assert normalize_key(k) == k


TARGETS = {
    "update-2octet": (update_2octet, lambda: _update_seeds(False)),
    "update-4octet": (update_4octet, lambda: _update_seeds(True)),
    "attributes": (attributes, _attribute_seeds),
    "nlri": (nlri, _nlri_seeds),
}
