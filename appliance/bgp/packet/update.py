"""BGP UPDATE messages (RFC 4271 §4.3, RFC 4760, RFC 7606): decode with interning, encode, pack.

Hot path (docs/bgp-codec.md): per UPDATE we read two lengths, slice the withdrawn
and NLRI keys (nlri.parse_prefixes) and look the raw attribute bytes up in an
AttrCache. Only a miss decodes attributes. UPDATEs carrying MP_REACH/MP_UNREACH
hold NLRI inside the attribute field; for them the non-MP attribute bytes are the
cache key, and (those bytes, MP next hop) interns the per-family PathAttributes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..family import IPV4_UNICAST, IPV6_UNICAST, AfiSafi
from .attributes import (
    DecodeContext,
    DecodedAttributes,
    MpReachNlri,
    MpUnreachNlri,
    decode_attributes,
    encode_path_attributes,
    split_attributes,
)
from .constants import MARKER, AttrFlag, AttrType, ErrorCode, MsgType, UpdateSubcode
from .errors import NotificationError
from .nlri import parse_prefixes
from .pathattrs import PathAttributes

_MP_REACH = AttrType.MP_REACH_NLRI
_MP_UNREACH = AttrType.MP_UNREACH_NLRI
_HEADER_LEN = 19
_EMPTY_UPDATE = b"\x00\x00\x00\x00"


class AttrCache:
    """Interns decoded attribute sets: attribute bytes -> PathAttributes. Bounded (clear when full).

    Shared by all peers of a speaker. What attribute bytes mean depends on the
    session (2- or 4-octet ASNs, eBGP or iBGP), so there is one table per mode.
    Entries are immutable, so clearing a table never invalidates what callers hold.
    """

    __slots__ = ("max_entries", "_tables")

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self.max_entries = max_entries
        self._tables: dict[tuple[bool, bool], dict[object, DecodedAttributes]] = {
            (four, ebgp): {} for four in (False, True) for ebgp in (False, True)
        }

    def table(self, four_octet_as: bool, ebgp: bool) -> dict[object, DecodedAttributes]:
        return self._tables[(four_octet_as, ebgp)]

    def store(self, table: dict[object, DecodedAttributes], key: object, entry: DecodedAttributes) -> None:
        if len(table) >= self.max_entries:
            table.clear()  # cheaper and simpler than LRU; a refill costs one decode per set
        table[key] = entry

    def __len__(self) -> int:
        return sum(len(t) for t in self._tables.values())

    def clear(self) -> None:
        for t in self._tables.values():
            t.clear()


class Update:
    """One decoded UPDATE. Apply ``withdrawn`` before ``announced`` (RFC 4271 §4.3:
    a prefix in both fields is treated as withdrawn, then announced)."""

    __slots__ = ("announced", "withdrawn", "end_of_rib", "treat_as_withdraw", "diagnostics")

    def __init__(
        self,
        announced: list[tuple[AfiSafi, PathAttributes, list[bytes]]],
        withdrawn: list[tuple[AfiSafi, list[bytes]]],
        end_of_rib: AfiSafi | None = None,
        treat_as_withdraw: bool = False,
        diagnostics: list[str] | None = None,
    ) -> None:
        self.announced = announced
        self.withdrawn = withdrawn
        self.end_of_rib = end_of_rib
        self.treat_as_withdraw = treat_as_withdraw
        self.diagnostics = diagnostics if diagnostics is not None else []

    def __repr__(self) -> str:
        ann = [(f.name, len(k)) for f, _, k in self.announced]
        wd = [(f.name, len(k)) for f, k in self.withdrawn]
        return (
            f"Update(announced={ann}, withdrawn={wd}, end_of_rib={self.end_of_rib}, "
            f"treat_as_withdraw={self.treat_as_withdraw}, diagnostics={self.diagnostics})"
        )


def _framing(why: str) -> NotificationError:
    return NotificationError(ErrorCode.UPDATE_MESSAGE, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, reason=why)


class UpdateDecoder:
    """Decodes the UPDATEs of one session (its AS width and eBGP/iBGP fixed)."""

    __slots__ = ("_ctx", "_families", "_cache", "_table", "_v4")

    def __init__(
        self,
        *,
        four_octet_as: bool,
        ebgp: bool,
        families: frozenset[AfiSafi] = frozenset({IPV4_UNICAST, IPV6_UNICAST}),
        cache: AttrCache | None = None,
    ) -> None:
        self._ctx = DecodeContext(four_octet_as, ebgp)
        self._families = families
        self._cache = cache if cache is not None else AttrCache()
        self._table = self._cache.table(four_octet_as, ebgp)
        self._v4 = IPV4_UNICAST in families

    def decode(self, body: bytes | memoryview) -> Update:
        """body = the UPDATE message after the 19-octet header. Raises only NotificationError (from packet/errors.py) when RFC 7606 says reset (or the message framing inside the UPDATE is broken)."""
        if type(body) is not bytes:
            body = bytes(body)
        n = len(body)
        if n < 4:
            raise _framing(f"UPDATE body of {n} octets is shorter than its two length fields")
        wend = 2 + (body[0] << 8 | body[1])
        if wend + 2 > n:
            raise _framing("withdrawn routes length overruns the UPDATE")
        astart = wend + 2
        aend = astart + (body[wend] << 8 | body[wend + 1])
        if aend > n:
            raise _framing("total path attribute length overruns the UPDATE")
        if n == 4:
            return Update([], [], IPV4_UNICAST)  # RFC 4724 §2: empty UPDATE = IPv4 End-of-RIB

        withdrawn_v4 = parse_prefixes(body, 2, wend) if wend > 2 else None
        nlri_v4 = parse_prefixes(body, aend, n) if aend < n else None
        ab = body[astart:aend]
        entry = self._table.get(ab)
        if entry is None:
            entry = decode_attributes(ab, self._ctx)
            if entry is None:
                return self._decode_mp(ab, withdrawn_v4, nlri_v4)
            self._cache.store(self._table, ab, entry)
        if nlri_v4 and not withdrawn_v4 and entry.withdraw_v4 is None and not entry.diagnostics and self._v4:
            return Update([(IPV4_UNICAST, entry.attrs, nlri_v4)], [], None, False, [])  # hot path
        return self._assemble(entry, withdrawn_v4, nlri_v4, None, None, None)

    def _decode_mp(
        self,
        ab: bytes,
        withdrawn_v4: list[bytes] | None,
        nlri_v4: list[bytes] | None,
    ) -> Update:
        reach = unreach = None
        parts = []
        ctx = self._ctx
        for flags, code, t, v, end in split_attributes(ab):
            if code == _MP_REACH or code == _MP_UNREACH:
                name = AttrType(code).name
                if (reach if code == _MP_REACH else unreach) is not None:
                    raise _framing(f"{name} appears twice (RFC 7606 §3 g)")
                if flags & 0xE0 != AttrFlag.OPTIONAL:
                    raise _framing(f"{name} flags 0x{flags:02x} invalid")
                if code == _MP_REACH:
                    reach = MpReachNlri.decode(ab[v:end], ctx)
                else:
                    unreach = MpUnreachNlri.decode(ab[v:end], ctx)
            else:
                parts.append(ab[t:end])
        table = self._table
        non_mp = b"".join(parts)
        base = table.get(non_mp)
        if base is None:
            base = decode_attributes(non_mp, ctx)
            assert base is not None  # non_mp holds no MP attribute
            self._cache.store(table, non_mp, base)
        mp_entry = None
        if reach is not None:
            key = (non_mp, reach[1])  # a tuple key never equals a bytes key
            mp_entry = table.get(key)
            if mp_entry is None:
                mp_entry = base._replace(attrs=base.attrs.replace(next_hop=reach[1]))
                self._cache.store(table, key, mp_entry)
        return self._assemble(base, withdrawn_v4, nlri_v4, reach, unreach, mp_entry)

    def _assemble(
        self,
        entry: DecodedAttributes,
        withdrawn_v4: list[bytes] | None,
        nlri_v4: list[bytes] | None,
        reach: tuple[AfiSafi, bytes, list[bytes] | None] | None,
        unreach: tuple[AfiSafi, list[bytes] | None] | None,
        mp_entry: DecodedAttributes | None,
    ) -> Update:
        withdrawn: list[tuple[AfiSafi, list[bytes]]] = []
        diags = list(entry.diagnostics)
        # Prefixes to announce, per family, before the RFC 7606 verdict.
        offered: list[tuple[AfiSafi, PathAttributes, list[bytes]]] = []
        if withdrawn_v4:
            withdrawn.append((IPV4_UNICAST, withdrawn_v4))
        if nlri_v4:
            if self._v4:
                offered.append((IPV4_UNICAST, entry.attrs, nlri_v4))
            else:
                diags.append(f"ignored {len(nlri_v4)} IPv4 prefixes: family not negotiated")
        eor = None
        if unreach is not None:
            family, keys = unreach
            if keys is None or family not in self._families:
                diags.append(f"ignored MP_UNREACH_NLRI of {family.name}: family not negotiated")
            elif keys:
                withdrawn = _add_withdrawn(withdrawn, family, keys)
            elif reach is None and not withdrawn_v4 and not nlri_v4:
                eor = family  # RFC 4724 §2
        if reach is not None and mp_entry is not None:
            family, _, keys = reach
            if keys is None or family not in self._families:
                diags.append(f"ignored MP_REACH_NLRI of {family.name}: family not negotiated")
            elif keys:
                offered.append((family, mp_entry.attrs, keys))
        if not offered:
            return Update([], withdrawn, eor, False, diags)
        # RFC 7606 §2: treat-as-withdraw covers every route of the UPDATE. NEXT_HOP is
        # mandatory only when the NLRI field is used (RFC 4760 §3 makes it optional otherwise).
        reason = entry.withdraw_v4 if nlri_v4 and self._v4 else entry.withdraw_mp
        if reason is None:
            return Update(offered, withdrawn, eor, False, diags)
        diags.append(f"treat-as-withdraw: {reason}")
        for family, _, keys in offered:
            withdrawn = _add_withdrawn(withdrawn, family, keys)
        return Update([], withdrawn, eor, True, diags)


def _add_withdrawn(
    withdrawn: list[tuple[AfiSafi, list[bytes]]], family: AfiSafi, keys: list[bytes]
) -> list[tuple[AfiSafi, list[bytes]]]:
    """One entry per family: merge into the family's existing list (rare path)."""
    for i, (f, old) in enumerate(withdrawn):
        if f == family:
            withdrawn[i] = (f, old + keys)
            return withdrawn
    withdrawn.append((family, keys))
    return withdrawn


# -- encoding ---------------------------------------------------------------------------


def encode_attributes(attrs: PathAttributes, *, four_octet_as: bool, family: AfiSafi) -> bytes:
    """Wire bytes of every attribute except MP_REACH/MP_UNREACH, in type-code order.
    NEXT_HOP (attrs.next_hop) only for IPv4 unicast. When four_octet_as is False, AS_PATH is sent with
    2-octet ASNs (AS_TRANS=23456 for ASNs > 65535) plus AS4_PATH, and AGGREGATOR likewise with AS4_AGGREGATOR (RFC 6793 §4.2.2)."""
    return encode_path_attributes(attrs, four_octet_as=four_octet_as, with_next_hop=family == IPV4_UNICAST)


def _message(body: bytes) -> bytes:
    return MARKER + (_HEADER_LEN + len(body)).to_bytes(2, "big") + bytes((MsgType.UPDATE,)) + body


def _mp_tlv(code: int, value: bytes) -> bytes:
    # always Extended Length: the header size is then fixed, which keeps packing simple
    return bytes((AttrFlag.OPTIONAL | AttrFlag.EXTENDED_LENGTH, code)) + len(value).to_bytes(2, "big") + value


def _chunks(keys: Sequence[bytes], room: int) -> Iterator[list[bytes]]:
    """Greedy runs of keys whose total size fits ``room`` octets."""
    if room < 17:  # the largest key (an IPv6 /128) must fit
        raise ValueError(f"max_len leaves only {room} octets for NLRI")
    chunk: list[bytes] = []
    size = 0
    for k in keys:
        lk = len(k)
        if size + lk > room and chunk:
            yield chunk
            chunk = []
            size = 0
        chunk.append(k)
        size += lk
    if chunk:
        yield chunk


def pack_updates(family: AfiSafi, attr_bytes: bytes, next_hop: bytes, nlri: Sequence[bytes], max_len: int = 4096) -> list[bytes]:
    """Complete UPDATE messages (with 19-octet header) announcing `nlri` under one attribute set, as few messages as max_len allows.
    IPv4 unicast: attr_bytes already contains NEXT_HOP; NLRI go in the trailing NLRI field. IPv6: builds MP_REACH_NLRI (next_hop = 16 or 32 octets, RFC 2545) per message and puts it with attr_bytes."""
    fixed = _HEADER_LEN + 4 + len(attr_bytes)
    if family == IPV4_UNICAST:
        head = b"\x00\x00" + len(attr_bytes).to_bytes(2, "big") + attr_bytes
        return [_message(head + b"".join(chunk)) for chunk in _chunks(nlri, max_len - fixed)]
    out = []
    # MP_REACH header (4) + AFI/SAFI/next-hop length (4) + next hop + reserved (1)
    room = max_len - fixed - 9 - len(next_hop)
    for chunk in _chunks(nlri, room):
        mp = _mp_tlv(_MP_REACH, MpReachNlri.encode_value(family, next_hop, b"".join(chunk)))
        attrs = mp + attr_bytes  # MP_REACH first (RFC 7606 §5.1)
        out.append(_message(b"\x00\x00" + len(attrs).to_bytes(2, "big") + attrs))
    return out


def pack_withdrawals(family: AfiSafi, nlri: Sequence[bytes], max_len: int = 4096) -> list[bytes]:
    """Complete UPDATE messages withdrawing nlri (IPv4: withdrawn routes field; IPv6: MP_UNREACH_NLRI)."""
    if family == IPV4_UNICAST:
        return [
            _message(len(w).to_bytes(2, "big") + w + b"\x00\x00")
            for w in map(b"".join, _chunks(nlri, max_len - _HEADER_LEN - 4))
        ]
    out = []
    for chunk in _chunks(nlri, max_len - _HEADER_LEN - 4 - 7):
        mp = _mp_tlv(_MP_UNREACH, MpUnreachNlri.encode_value(family, b"".join(chunk)))
        out.append(_message(b"\x00\x00" + len(mp).to_bytes(2, "big") + mp))
    return out


def end_of_rib(family: AfiSafi) -> bytes:
    """Complete End-of-RIB marker message (RFC 4724 §2)."""
    if family == IPV4_UNICAST:
        return _message(_EMPTY_UPDATE)
    mp = bytes((AttrFlag.OPTIONAL, _MP_UNREACH, 3)) + MpUnreachNlri.encode_value(family, b"")
    return _message(b"\x00\x00" + len(mp).to_bytes(2, "big") + mp)
