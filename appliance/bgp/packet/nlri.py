"""NLRI fields <-> prefix keys (RFC 4271 §4.3, RFC 4760 §5) for IPv4/IPv6 unicast.

A prefix key is the NLRI wire form itself (see appliance/bgp/family.py), so decoding
is a loop of slices. This loop runs once per received prefix: keep it free of
function calls and per-prefix objects other than the key. Table lookups replace the
length arithmetic and the range check (a size of 0 marks an invalid length).
"""

from __future__ import annotations

from collections.abc import Iterable

from .constants import Afi, ErrorCode, UpdateSubcode
from .errors import NotificationError

# Octets a prefix of each length occupies, length octet included; 0 = length too long.
_SIZE_V4 = tuple(1 + ((p + 7) >> 3) if p <= 32 else 0 for p in range(256))
_SIZE_V6 = tuple(1 + ((p + 7) >> 3) if p <= 128 else 0 for p in range(256))
# Bits of the last address octet that lie beyond the prefix length (must be zero in a key).
_HOST_BITS = tuple((0xFF >> (p & 7)) if p & 7 else 0 for p in range(256))
_SIZES = {Afi.IPV4: _SIZE_V4, Afi.IPV6: _SIZE_V6}


def parse_prefixes(
    data: bytes,
    start: int,
    end: int,
    afi: int = Afi.IPV4,
    subcode: int = UpdateSubcode.INVALID_NETWORK_FIELD,
) -> list[bytes]:
    """Prefix keys of the NLRI field data[start:end].

    A prefix length beyond the address width or a prefix that overruns the field is
    a malformed NLRI field: RFC 7606 §5.3 says session reset, hence NotificationError
    (UPDATE_MESSAGE, ``subcode``; MP_REACH/MP_UNREACH callers pass
    MALFORMED_ATTRIBUTE_LIST). Host bits set on the wire are cleared in the key.
    """
    sizes = _SIZES.get(afi)
    if sizes is None:
        raise NotificationError(ErrorCode.UPDATE_MESSAGE, subcode, reason=f"NLRI of unknown AFI {afi}")
    if start < end:
        # Fast path: every prefix has the same whole-octet length (a /24-only UPDATE,
        # the bulk of a full table). Then the prefixes sit at a fixed stride: one C
        # check of every stride-th octet, and a comprehension of slices. Whole-octet
        # lengths cannot carry host bits.
        plen = data[start]
        size = sizes[plen]
        if size and not plen & 7:
            span = end - start
            count = span // size
            if count * size == span and data[start:end:size].count(plen) == count:
                return [data[i : i + size] for i in range(start, end, size)]
    host_bits = _HOST_BITS
    keys: list[bytes] = []
    append = keys.append
    i = start
    while i < end:
        plen = data[i]
        j = i + sizes[plen]
        if j > end or j == i:
            raise _malformed(data, i, end, plen, afi, subcode)
        if plen & 7 and data[j - 1] & host_bits[plen]:
            # rare: a speaker sent host bits; clear them so one prefix has one key
            append(data[i : j - 1] + bytes((data[j - 1] & ~host_bits[plen] & 0xFF,)))
        else:
            append(data[i:j])
        i = j
    return keys


def _malformed(data: bytes, i: int, end: int, plen: int, afi: int, subcode: int) -> NotificationError:
    width = 32 if afi == Afi.IPV4 else 128
    if plen > width:
        why = f"prefix length {plen} > {width}"
    else:
        why = f"prefix /{plen} at offset {i} overruns the NLRI field ({end - i} octets left)"
    return NotificationError(ErrorCode.UPDATE_MESSAGE, subcode, reason=f"malformed NLRI: {why}")


def normalize_key(key: bytes) -> bytes:
    """The canonical key of a (possibly host-bit-carrying) wire prefix."""
    plen = key[0]
    mask = _HOST_BITS[plen]
    if mask and len(key) > 1 and key[-1] & mask:
        return key[:-1] + bytes((key[-1] & ~mask & 0xFF,))
    return key


def encode_prefixes(keys: Iterable[bytes]) -> bytes:
    """The NLRI field for ``keys`` (keys already are the wire form)."""
    return b"".join(keys)
