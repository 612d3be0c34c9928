"""Path attributes: one small class per type code, registered in ATTRIBUTES.

Each class knows its flags, the RFC 7606 action for a malformed instance
(``ON_ERROR``), how to decode its value into a PathAttributes field and how to
encode that field again. ``split_attributes`` cuts the attribute field into TLVs and
``decode_attributes`` turns them into one PathAttributes plus the RFC 7606 verdict;
both run only on an attribute-cache miss (see update.py), never per prefix.

Decoders signal a malformed value by raising AttributeMalformed; it never leaves
decode_attributes. Only NotificationError (session reset) escapes this module.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Any, ClassVar, NamedTuple

from ..family import IPV4_UNICAST, IPV6_UNICAST, AfiSafi
from .constants import AS_TRANS, AsPathSegment, AttrFlag, AttrType, ErrorCode, UpdateSubcode
from .errors import BgpCodecError, NotificationError
from .nlri import parse_prefixes
from .pathattrs import FIELDS as _PATH_FIELDS
from .pathattrs import PathAttributes

WELL_KNOWN = AttrFlag.TRANSITIVE                       # 0x40
OPTIONAL_TRANSITIVE = AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE  # 0xC0
OPTIONAL = AttrFlag.OPTIONAL                           # 0x80, non-transitive
# The Partial bit must be 0 on well-known and optional non-transitive attributes (RFC 4271 §4.3).
_MASK_STRICT = 0xE0
_MASK_TRANSITIVE = 0xC0

_CONFED = (AsPathSegment.AS_CONFED_SEQUENCE, AsPathSegment.AS_CONFED_SET)
_U16 = tuple(struct.Struct(f">{n}H") for n in range(256))
_U32 = tuple(struct.Struct(f">{n}I") for n in range(256))


class Action(IntEnum):
    """RFC 7606 §2 error-handling approaches."""

    TREAT_AS_WITHDRAW = 1
    ATTRIBUTE_DISCARD = 2
    SESSION_RESET = 3


class AttributeMalformed(BgpCodecError):
    """Raised by an attribute decoder; the owning class's ON_ERROR says what follows."""


class DecodeContext(NamedTuple):
    four_octet_as: bool
    ebgp: bool


class DecodedAttributes(NamedTuple):
    """What the attribute field of an UPDATE means, without its NLRI (cacheable)."""

    attrs: PathAttributes
    diagnostics: tuple[str, ...]     # attribute-discard actions taken
    withdraw_v4: str | None          # reason to treat IPv4 NLRI-field prefixes as withdrawn
    withdraw_mp: str | None          # reason to treat MP_REACH prefixes as withdrawn


def tlv(flags: int, code: int, value: bytes) -> bytes:
    """One attribute on the wire; the Extended Length bit is set only when needed."""
    n = len(value)
    if n > 255:
        return bytes((flags | AttrFlag.EXTENDED_LENGTH, code)) + n.to_bytes(2, "big") + value
    return bytes((flags & ~AttrFlag.EXTENDED_LENGTH & 0xF0, code, n)) + value


def _u32s(value: bytes) -> tuple[int, ...]:
    n = len(value) >> 2
    return (_U32[n] if n < 256 else struct.Struct(f">{n}I")).unpack(value)


def _pack_u32s(values: tuple[int, ...] | list[int]) -> bytes:
    n = len(values)
    # precompiled Struct per count: skips building and looking up a format string
    return (_U32[n] if n < 256 else struct.Struct(f">{n}I")).pack(*values)


class Attribute:
    """Base of the attribute classes (class-level data + static codecs, no instances)."""

    CODE: ClassVar[int]
    FLAGS: ClassVar[int]
    FLAG_MASK: ClassVar[int] = _MASK_STRICT
    ON_ERROR: ClassVar[Action] = Action.TREAT_AS_WITHDRAW
    FIELD: ClassVar[str] = ""
    IBGP_ONLY: ClassVar[bool] = False      # discarded when received from an eBGP peer
    OLD_PEER_ONLY: ClassVar[bool] = False  # AS4_*: discarded from a 4-octet-AS peer

    @classmethod
    def name(cls) -> str:
        return AttrType(cls.CODE).name

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> Any:
        raise NotImplementedError

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        raise NotImplementedError


ATTRIBUTES: dict[int, type[Attribute]] = {}


def _register(cls: type[Attribute]) -> type[Attribute]:
    ATTRIBUTES[cls.CODE] = cls
    return cls


@_register
class Origin(Attribute):
    CODE = AttrType.ORIGIN
    FLAGS = WELL_KNOWN
    FIELD = "origin"

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> int:
        if len(value) != 1 or value[0] > 2:
            raise AttributeMalformed(f"ORIGIN {value.hex()} invalid")
        return value[0]

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        return tlv(cls.FLAGS, cls.CODE, bytes((attrs.origin,)))


def _parse_segments(
    value: bytes, four: bool, confed_ok: bool
) -> tuple[tuple[int, tuple[int, ...]], ...]:
    width, table = (4, _U32) if four else (2, _U16)
    segs = []
    n = len(value)
    i = 0
    while i < n:
        if i + 2 > n:
            raise AttributeMalformed("AS path segment header truncated")
        seg_type = value[i]
        count = value[i + 1]
        j = i + 2 + count * width
        if not 1 <= seg_type <= 4:
            raise AttributeMalformed(f"unknown AS path segment type {seg_type}")
        if seg_type > 2 and not confed_ok:
            raise AttributeMalformed("confederation segment in AS path from outside the confederation")
        if count == 0 or j > n:
            raise AttributeMalformed("AS path segment length zero or overrunning")
        asns = table[count].unpack_from(value, i + 2)
        if 0 in asns:
            raise AttributeMalformed("AS 0 in AS path (RFC 7607)")
        segs.append((seg_type, asns))
        i = j
    return tuple(segs)


def _encode_segments(path: tuple[tuple[int, tuple[int, ...]], ...], four: bool) -> bytes:
    """Segments on the wire; sequences longer than 255 ASNs are split (RFC 4271 §4.3)."""
    out = []
    for seg_type, asns in path:
        for k in range(0, len(asns), 255):
            chunk = asns[k : k + 255]
            if four:
                body = _pack_u32s(chunk)
            else:
                body = struct.pack(f">{len(chunk)}H", *(a if a <= 0xFFFF else AS_TRANS for a in chunk))
            out.append(bytes((seg_type, len(chunk))) + body)
    return b"".join(out)


def _needs_as4(path: tuple[tuple[int, tuple[int, ...]], ...]) -> bool:
    return any(a > 0xFFFF for t, asns in path if t not in _CONFED for a in asns)


@_register
class AsPath(Attribute):
    CODE = AttrType.AS_PATH
    FLAGS = WELL_KNOWN
    FIELD = "as_path"

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> tuple[tuple[int, tuple[int, ...]], ...]:
        # RFC 5065 §5: confederation segments never come from a true eBGP peer
        return _parse_segments(value, ctx.four_octet_as, not ctx.ebgp)

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        return tlv(cls.FLAGS, cls.CODE, _encode_segments(attrs.as_path, four_octet_as))


def _ipv4_next_hop_ok(nh: bytes) -> bool:
    # 0.0.0.0, multicast (224/4) and class E (240/4, incl. broadcast) cannot be next hops
    return nh != b"\x00\x00\x00\x00" and nh[0] < 224


@_register
class NextHop(Attribute):
    CODE = AttrType.NEXT_HOP
    FLAGS = WELL_KNOWN
    FIELD = "next_hop"

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> bytes:
        if len(value) != 4:
            raise AttributeMalformed(f"NEXT_HOP length {len(value)} != 4")
        if not _ipv4_next_hop_ok(value):
            raise AttributeMalformed(f"NEXT_HOP {'.'.join(map(str, value))} is not a unicast address")
        return value

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        return tlv(cls.FLAGS, cls.CODE, attrs.next_hop) if len(attrs.next_hop) == 4 else b""


class _U32Attribute(Attribute):
    """A 4-octet unsigned value (MED, LOCAL_PREF): one decoder, one encoder."""

    @classmethod
    def decode(cls, value: bytes, ctx: DecodeContext) -> int:
        if len(value) != 4:
            raise AttributeMalformed(f"{AttrType(cls.CODE).name} length {len(value)} != 4")
        return int.from_bytes(value, "big")

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        v = getattr(attrs, cls.FIELD)
        return b"" if v is None else tlv(cls.FLAGS, cls.CODE, v.to_bytes(4, "big"))


@_register
class MultiExitDisc(_U32Attribute):
    CODE = AttrType.MULTI_EXIT_DISC
    FLAGS = OPTIONAL
    FIELD = "med"


@_register
class LocalPref(_U32Attribute):
    CODE = AttrType.LOCAL_PREF
    FLAGS = WELL_KNOWN
    FIELD = "local_pref"
    IBGP_ONLY = True  # RFC 7606 §7.5


@_register
class AtomicAggregate(Attribute):
    CODE = AttrType.ATOMIC_AGGREGATE
    FLAGS = WELL_KNOWN
    FIELD = "atomic_aggregate"
    ON_ERROR = Action.ATTRIBUTE_DISCARD  # RFC 7606 §7.6

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> bool:
        if value:
            raise AttributeMalformed(f"ATOMIC_AGGREGATE length {len(value)} != 0")
        return True

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        return tlv(cls.FLAGS, cls.CODE, b"") if attrs.atomic_aggregate else b""


def _decode_aggregator(value: bytes, four: bool, name: str) -> tuple[int, bytes]:
    width = 4 if four else 2
    if len(value) != width + 4:
        raise AttributeMalformed(f"{name} length {len(value)} != {width + 4}")
    asn = int.from_bytes(value[:width], "big")
    if asn == 0:
        raise AttributeMalformed(f"AS 0 in {name} (RFC 7607)")
    return asn, value[width:]


@_register
class Aggregator(Attribute):
    CODE = AttrType.AGGREGATOR
    FLAGS = OPTIONAL_TRANSITIVE
    FLAG_MASK = _MASK_TRANSITIVE
    FIELD = "aggregator"
    ON_ERROR = Action.ATTRIBUTE_DISCARD  # RFC 7606 §7.7

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> tuple[int, bytes]:
        return _decode_aggregator(value, ctx.four_octet_as, "AGGREGATOR")

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        if attrs.aggregator is None:
            return b""
        asn, addr = attrs.aggregator
        if four_octet_as:
            return tlv(cls.FLAGS, cls.CODE, asn.to_bytes(4, "big") + addr)
        return tlv(cls.FLAGS, cls.CODE, min_as2(asn).to_bytes(2, "big") + addr)


def min_as2(asn: int) -> int:
    """The 2-octet form of an ASN: itself, or AS_TRANS when it does not fit (RFC 6793)."""
    return asn if asn <= 0xFFFF else AS_TRANS


@_register
class Communities(Attribute):
    CODE = AttrType.COMMUNITIES
    FLAGS = OPTIONAL_TRANSITIVE
    FLAG_MASK = _MASK_TRANSITIVE
    FIELD = "communities"

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> tuple[int, ...]:
        if not value or len(value) & 3:
            raise AttributeMalformed(f"COMMUNITIES length {len(value)} not a non-zero multiple of 4")
        return _u32s(value)

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        c = attrs.communities
        return tlv(cls.FLAGS, cls.CODE, _pack_u32s(c)) if c else b""


@_register
class OriginatorId(Attribute):
    CODE = AttrType.ORIGINATOR_ID
    FLAGS = OPTIONAL
    FIELD = "originator_id"
    IBGP_ONLY = True  # RFC 7606 §7.9

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> bytes:
        if len(value) != 4:
            raise AttributeMalformed(f"ORIGINATOR_ID length {len(value)} != 4")
        return value

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        o = attrs.originator_id
        return b"" if o is None else tlv(cls.FLAGS, cls.CODE, o)


@_register
class ClusterList(Attribute):
    CODE = AttrType.CLUSTER_LIST
    FLAGS = OPTIONAL
    FIELD = "cluster_list"
    IBGP_ONLY = True  # RFC 7606 §7.10

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> tuple[bytes, ...]:
        if not value or len(value) & 3:
            raise AttributeMalformed(f"CLUSTER_LIST length {len(value)} not a non-zero multiple of 4")
        return tuple(value[i : i + 4] for i in range(0, len(value), 4))

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        c = attrs.cluster_list
        return tlv(cls.FLAGS, cls.CODE, b"".join(c)) if c else b""


def _mp_family(value: bytes, name: str) -> AfiSafi:
    if len(value) < 3:
        raise _mp_error(f"{name} shorter than AFI/SAFI")
    return AfiSafi(int.from_bytes(value[:2], "big"), value[2])


def _mp_error(why: str) -> NotificationError:
    # RFC 7606 §7.11: we cannot trust the family's NLRI any more -> session reset
    return NotificationError(
        ErrorCode.UPDATE_MESSAGE, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, reason=why
    )


_MP_NEXT_HOP_LENGTHS = {IPV4_UNICAST: (4,), IPV6_UNICAST: (16, 32)}  # RFC 4760, RFC 2545


@_register
class MpReachNlri(Attribute):
    """RFC 4760 §3. Malformed -> session reset; decode raises NotificationError itself."""

    CODE = AttrType.MP_REACH_NLRI
    FLAGS = OPTIONAL
    ON_ERROR = Action.SESSION_RESET

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> tuple[AfiSafi, bytes, list[bytes] | None]:
        """(family, next hop, prefix keys); keys are None for a family we cannot parse."""
        family = _mp_family(value, "MP_REACH_NLRI")
        if len(value) < 5:
            raise _mp_error("MP_REACH_NLRI truncated before the next hop")
        nh_len = value[3]
        nlri_at = 5 + nh_len
        if nlri_at > len(value):
            raise _mp_error(f"MP_REACH_NLRI next hop length {nh_len} overruns the attribute")
        next_hop = value[4 : 4 + nh_len]
        lengths = _MP_NEXT_HOP_LENGTHS.get(family)
        if lengths is None:
            return family, next_hop, None
        if nh_len not in lengths:
            raise _mp_error(f"MP_REACH_NLRI next hop length {nh_len} invalid for {family.name}")
        keys = parse_prefixes(
            value, nlri_at, len(value), family.afi, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST
        )
        return family, next_hop, keys

    @classmethod
    def encode_value(cls, family: AfiSafi, next_hop: bytes, nlri: bytes) -> bytes:
        return (
            family.afi.to_bytes(2, "big") + bytes((family.safi, len(next_hop)))
            + next_hop + b"\x00" + nlri
        )

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        return b""  # carries NLRI: built per message by update.pack_updates


@_register
class MpUnreachNlri(Attribute):
    """RFC 4760 §4. Malformed -> session reset."""

    CODE = AttrType.MP_UNREACH_NLRI
    FLAGS = OPTIONAL
    ON_ERROR = Action.SESSION_RESET

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> tuple[AfiSafi, list[bytes] | None]:
        family = _mp_family(value, "MP_UNREACH_NLRI")
        if family not in _MP_NEXT_HOP_LENGTHS:
            return family, None
        keys = parse_prefixes(value, 3, len(value), family.afi, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST)
        return family, keys

    @classmethod
    def encode_value(cls, family: AfiSafi, nlri: bytes) -> bytes:
        return family.afi.to_bytes(2, "big") + bytes((family.safi,)) + nlri

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        return b""


@_register
class ExtendedCommunities(Attribute):
    CODE = AttrType.EXTENDED_COMMUNITIES
    FLAGS = OPTIONAL_TRANSITIVE
    FLAG_MASK = _MASK_TRANSITIVE
    FIELD = "ext_communities"

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> tuple[bytes, ...]:
        if not value or len(value) & 7:
            raise AttributeMalformed(f"EXTENDED_COMMUNITIES length {len(value)} not a non-zero multiple of 8")
        return tuple(value[i : i + 8] for i in range(0, len(value), 8))

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        c = attrs.ext_communities
        return tlv(cls.FLAGS, cls.CODE, b"".join(c)) if c else b""


@_register
class As4Path(Attribute):
    CODE = AttrType.AS4_PATH
    FLAGS = OPTIONAL_TRANSITIVE
    FLAG_MASK = _MASK_TRANSITIVE
    FIELD = "as4_path"  # scratch field, merged into as_path (RFC 6793 §4.2.3)
    ON_ERROR = Action.ATTRIBUTE_DISCARD  # RFC 6793 §6
    OLD_PEER_ONLY = True

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> tuple[tuple[int, tuple[int, ...]], ...]:
        return _parse_segments(value, True, False)  # RFC 6793 §6: no confed segments here

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        # Only towards a 2-octet peer, only when some ASN does not fit (RFC 6793 §4.2.2);
        # confederation segments never go into AS4_PATH.
        if four_octet_as or not _needs_as4(attrs.as_path):
            return b""
        path = tuple(s for s in attrs.as_path if s[0] not in _CONFED)
        return tlv(cls.FLAGS, cls.CODE, _encode_segments(path, True))


@_register
class As4Aggregator(Attribute):
    CODE = AttrType.AS4_AGGREGATOR
    FLAGS = OPTIONAL_TRANSITIVE
    FLAG_MASK = _MASK_TRANSITIVE
    FIELD = "as4_aggregator"  # scratch field, merged into aggregator
    ON_ERROR = Action.ATTRIBUTE_DISCARD  # RFC 6793 §6
    OLD_PEER_ONLY = True

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> tuple[int, bytes]:
        return _decode_aggregator(value, True, "AS4_AGGREGATOR")

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        agg = attrs.aggregator
        if four_octet_as or agg is None or agg[0] <= 0xFFFF:
            return b""
        return tlv(cls.FLAGS, cls.CODE, agg[0].to_bytes(4, "big") + agg[1])


@_register
class LargeCommunities(Attribute):
    CODE = AttrType.LARGE_COMMUNITIES
    FLAGS = OPTIONAL_TRANSITIVE
    FLAG_MASK = _MASK_TRANSITIVE
    FIELD = "large_communities"  # RFC 8092 §6: malformed -> treat-as-withdraw

    @staticmethod
    def decode(value: bytes, ctx: DecodeContext) -> tuple[tuple[int, int, int], ...]:
        if not value or len(value) % 12:
            raise AttributeMalformed(f"LARGE_COMMUNITIES length {len(value)} not a non-zero multiple of 12")
        v = _u32s(value)
        return tuple(zip(v[0::3], v[1::3], v[2::3], strict=True))

    @classmethod
    def encode(cls, attrs: PathAttributes, four_octet_as: bool) -> bytes:
        c = attrs.large_communities
        if not c:
            return b""
        return tlv(cls.FLAGS, cls.CODE, _pack_u32s([x for t in c for x in t]))


# Attributes encode_attributes writes, in type-code order (MP_* carry NLRI: built per message).
ENCODERS: tuple[type[Attribute], ...] = tuple(
    ATTRIBUTES[c] for c in sorted(ATTRIBUTES) if c not in (AttrType.MP_REACH_NLRI, AttrType.MP_UNREACH_NLRI)
)


# -- the attribute field ---------------------------------------------------------------

# One attribute TLV: (flags, type code, offset of the TLV, value start, value end).
Tlv = tuple[int, int, int, int, int]


def split_attributes(data: bytes) -> list[Tlv]:
    """Cut the path-attribute field into TLVs.

    An attribute header or value that overruns the field makes every later
    attribute unreadable: RFC 7606 §4 / §5 call for a session reset.
    """
    out: list[Tlv] = []
    n = len(data)
    i = 0
    while i < n:
        if i + 3 > n:
            raise _list_error(f"attribute header truncated at offset {i}")
        flags = data[i]
        if flags & 0x10:
            if i + 4 > n:
                raise _list_error(f"attribute header truncated at offset {i}")
            v = i + 4
            end = v + (data[i + 2] << 8 | data[i + 3])
        else:
            v = i + 3
            end = v + data[i + 2]
        if end > n:
            raise _list_error(f"attribute type {data[i + 1]} at offset {i} overruns the attribute field")
        out.append((flags, data[i + 1], i, v, end))
        i = end
    return out


def _list_error(why: str) -> NotificationError:
    return NotificationError(
        ErrorCode.UPDATE_MESSAGE, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, reason=why
    )


# Per type code, what the decode loop needs, unpacked once (saves class-attribute lookups
# on the cache-miss path): (class, decode, field, flag mask, flags, iBGP-only, old-peer-only).
_DISPATCH = {
    code: (cls, cls.decode, cls.FIELD, cls.FLAG_MASK, cls.FLAGS, cls.IBGP_ONLY, cls.OLD_PEER_ONLY)
    for code, cls in ATTRIBUTES.items()
    if code not in (AttrType.MP_REACH_NLRI, AttrType.MP_UNREACH_NLRI)
}
_MP_CODES = (AttrType.MP_REACH_NLRI, AttrType.MP_UNREACH_NLRI)


def _by_code(attr: tuple[int, int, bytes]) -> int:
    return attr[1]


def decode_attributes(data: bytes, ctx: DecodeContext) -> DecodedAttributes | None:
    """Decode the attribute field ``data`` and apply RFC 7606.

    Returns None as soon as an MP_REACH/MP_UNREACH attribute shows up: those carry
    NLRI, so the caller splits them off (split_attributes) and decodes the rest.
    The TLV walk is done here too rather than through split_attributes: this runs
    once per new attribute set, which on a full-table feed is once per UPDATE.
    """
    fields: dict[str, Any] = {}
    diags: list[str] = []
    withdraw: str | None = None
    unknown: list[tuple[int, int, bytes]] = []
    seen = 0
    dispatch = _DISPATCH
    ebgp = ctx.ebgp
    four = ctx.four_octet_as
    n = len(data)
    i = 0
    while i < n:
        if i + 3 > n:
            raise _list_error(f"attribute header truncated at offset {i}")
        flags = data[i]
        code = data[i + 1]
        if flags & 0x10:
            if i + 4 > n:
                raise _list_error(f"attribute header truncated at offset {i}")
            v = i + 4
            end = v + (data[i + 2] << 8 | data[i + 3])
        else:
            v = i + 3
            end = v + data[i + 2]
        if end > n:
            raise _list_error(f"attribute type {code} at offset {i} overruns the attribute field")
        i = end
        bit = 1 << code
        if seen & bit:  # RFC 7606 §3 g: keep the first, discard the rest
            diags.append(f"attribute-discard: duplicate attribute type {code}")
            continue
        seen |= bit
        # Inline fast paths for the well-formed common attributes (a full table is
        # one attribute set per UPDATE, so this loop is per UPDATE there): no decoder
        # call, no dispatch tuple. Anything unusual or malformed falls through to
        # the generic decoder below, which owns every RFC 7606 verdict.
        if code <= 8:
            fl = flags & 0xE0
            ln = end - v
            if code == 2:  # AS_PATH: one AS_SEQUENCE segment, 4-octet ASNs, no AS 0
                if four and fl == 0x40 and ln > 2 and data[v] == 2 and ln == 2 + 4 * data[v + 1]:
                    asns = _U32[data[v + 1]].unpack_from(data, v + 2)
                    if 0 not in asns:
                        fields["as_path"] = ((2, asns),)
                        continue
            elif code == 1:  # ORIGIN
                if fl == 0x40 and ln == 1 and data[v] <= 2:
                    fields["origin"] = data[v]
                    continue
            elif code == 3:  # NEXT_HOP
                if fl == 0x40 and ln == 4 and data[v] < 224:
                    nh = data[v:end]
                    if nh != b"\x00\x00\x00\x00":
                        fields["next_hop"] = nh
                        continue
            elif code == 4:  # MULTI_EXIT_DISC
                if fl == 0x80 and ln == 4:
                    fields["med"] = data[v] << 24 | data[v + 1] << 16 | data[v + 2] << 8 | data[v + 3]
                    continue
            elif code == 5:  # LOCAL_PREF (iBGP only)
                if fl == 0x40 and ln == 4 and not ebgp:
                    fields["local_pref"] = data[v] << 24 | data[v + 1] << 16 | data[v + 2] << 8 | data[v + 3]
                    continue
            elif code == 8:  # COMMUNITIES (Partial bit allowed)
                if fl & 0xC0 == 0xC0 and ln and not ln & 3 and ln < 1024:
                    fields["communities"] = _U32[ln >> 2].unpack_from(data, v)
                    continue
        d = dispatch.get(code)
        if d is None:
            if code in _MP_CODES:
                return None
            if not flags & AttrFlag.OPTIONAL:
                withdraw = withdraw or f"unrecognized well-known attribute type {code}"
            elif flags & AttrFlag.TRANSITIVE:  # pass it on, marked Partial (RFC 4271 §5)
                unknown.append(((flags & 0xE0) | AttrFlag.PARTIAL, code, data[v:end]))
            continue  # unknown optional non-transitive: quietly ignored (RFC 4271 §5)
        cls, decode, field, mask, want, ibgp_only, old_only = d
        if ibgp_only and ebgp:
            diags.append(f"attribute-discard: {cls.name()} from an eBGP peer")
            continue
        if old_only and four:
            diags.append(f"attribute-discard: {cls.name()} from a 4-octet-AS peer (RFC 6793 §4.1)")
            continue
        try:
            if flags & mask != want:
                raise AttributeMalformed(f"{cls.name()} flags 0x{flags:02x} invalid")
            fields[field] = decode(data[v:end], ctx)
        except AttributeMalformed as exc:
            if cls.ON_ERROR == Action.ATTRIBUTE_DISCARD:
                diags.append(f"attribute-discard: {exc}")
            else:
                withdraw = withdraw or str(exc)
    if not four:
        _merge_as4(fields, diags)
    if unknown:
        fields["unknown"] = tuple(sorted(unknown, key=_by_code))  # the order we re-send them in
    attrs = PathAttributes(**fields)

    if withdraw is None and "origin" in fields and "as_path" in fields and (ebgp or "local_pref" in fields):
        # common case: nothing missing for MP NLRI
        withdraw_v4 = None if "next_hop" in fields else "missing well-known attribute NEXT_HOP"
        return DecodedAttributes(attrs, tuple(diags), withdraw_v4, None)
    missing = [n for n, f in (("ORIGIN", "origin"), ("AS_PATH", "as_path")) if f not in fields]
    if not ebgp and "local_pref" not in fields:
        missing.append("LOCAL_PREF")
    withdraw_mp = withdraw or (f"missing well-known attribute {', '.join(missing)}" if missing else None)
    if "next_hop" not in fields:
        missing.append("NEXT_HOP")
    withdraw_v4 = withdraw or (f"missing well-known attribute {', '.join(missing)}" if missing else None)
    return DecodedAttributes(attrs, tuple(diags), withdraw_v4, withdraw_mp)


def _merge_as4(fields: dict[str, Any], diags: list[str]) -> None:
    """RFC 6793 §4.2.3: rebuild 4-octet AS_PATH/AGGREGATOR from a 2-octet peer's UPDATE."""
    as4_path = fields.pop("as4_path", None)
    as4_agg = fields.pop("as4_aggregator", None)
    agg = fields.get("aggregator")
    if as4_agg is not None:
        if agg is None:
            diags.append("attribute-discard: AS4_AGGREGATOR without AGGREGATOR")
        elif agg[0] != AS_TRANS:
            # an old speaker aggregated after the AS4_* were made: they are stale
            diags.append("attribute-discard: AS4_AGGREGATOR and AS4_PATH (AGGREGATOR is not AS_TRANS)")
            return
        else:
            fields["aggregator"] = as4_agg
    if as4_path is not None and "as_path" in fields:
        fields["as_path"] = merge_as4_path(fields["as_path"], as4_path)


def _count(path: tuple[tuple[int, tuple[int, ...]], ...]) -> int:
    # RFC 4271 §9.1.2.2 counting: an AS_SET is one, confederation segments are none
    return sum(
        len(a) if t == AsPathSegment.AS_SEQUENCE else 1 if t == AsPathSegment.AS_SET else 0
        for t, a in path
    )


def merge_as4_path(
    as_path: tuple[tuple[int, tuple[int, ...]], ...],
    as4_path: tuple[tuple[int, tuple[int, ...]], ...],
) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """RFC 6793 §4.2.3: leading ASNs of AS_PATH + AS4_PATH, or AS_PATH if AS4_PATH is longer."""
    need = _count(as_path) - _count(as4_path)
    if need < 0:
        return as_path
    lead: list[tuple[int, tuple[int, ...]]] = []
    for seg_type, asns in as_path:
        if seg_type in _CONFED:  # leading or adjacent confederation segments are kept
            lead.append((seg_type, asns))
            continue
        if need == 0:
            break
        if seg_type == AsPathSegment.AS_SET:
            lead.append((seg_type, asns))
            need -= 1
        else:
            lead.append((seg_type, asns[:need]))
            need -= len(asns[:need])
    return tuple(lead) + as4_path


# What encode_path_attributes walks, in type-code order: (code, PathAttributes field or
# None, encoder). A field that is None/empty/False means "attribute absent", so the
# encoder call is skipped (runs once per exported attribute set: a full table to a new
# peer calls this 62,500 times). ORIGIN and AS_PATH are always written (an empty
# AS_PATH is a real, mandatory attribute); AS4_* have no field of their own.
_ALWAYS_ENCODED = (AttrType.ORIGIN, AttrType.AS_PATH)
_NEXT_HOP = int(AttrType.NEXT_HOP)
_ENCODE_PLAN: tuple[tuple[int, str | None, Any], ...] = tuple(
    (
        int(cls.CODE),
        cls.FIELD if cls.FIELD in _PATH_FIELDS and cls.CODE not in _ALWAYS_ENCODED else None,
        cls.encode,
    )
    for cls in ENCODERS
)
_ABSENT = (None, (), b"")


def encode_path_attributes(attrs: PathAttributes, *, four_octet_as: bool, with_next_hop: bool) -> bytes:
    """Every attribute but MP_*, in type-code order, unknown transitive ones with Partial set."""
    parts: list[tuple[int, bytes]] = []
    for code, field, encode in _ENCODE_PLAN:
        if field is not None:
            v = getattr(attrs, field)
            if v is False or v in _ABSENT:
                continue
        if code == _NEXT_HOP and not with_next_hop:
            continue
        wire = encode(attrs, four_octet_as)
        if wire:
            parts.append((code, wire))
    if attrs.unknown:
        parts.extend((code, tlv(flags | AttrFlag.PARTIAL, code, value)) for flags, code, value in attrs.unknown)
        parts.sort(key=_by_first)
    return b"".join([w for _, w in parts])


def _by_first(p: tuple[int, bytes]) -> int:
    return p[0]


__all__ = [
    "ATTRIBUTES",
    "Action",
    "AttributeMalformed",
    "DecodeContext",
    "DecodedAttributes",
    "decode_attributes",
    "encode_path_attributes",
    "merge_as4_path",
    "split_attributes",
    "tlv",
]
