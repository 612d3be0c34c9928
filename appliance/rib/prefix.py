"""Prefix keys of the RIB: one Python int per prefix, ``(network << 8) | length``.

An int is the cheapest hashable a dict can hold for a million prefixes (no tuple, no
ipaddress object). Each family has its own tables, so the key does not carry the family.
The BGP speaker may hand prefixes as text, as these ints, or as its NLRI wire keys
(``bytes``: one length octet plus the minimum address octets, see bgp/family.py).
"""

from __future__ import annotations

import ipaddress
import socket

V4, V6 = 4, 6
BITS = {V4: 32, V6: 128}
AF = {V4: socket.AF_INET, V6: socket.AF_INET6}


def family_of(family) -> int:
    """Normalise a family given as 4/6, AF_INET/AF_INET6, "ipv4"/"ipv6-unicast", an AfiSafi."""
    if family in (V4, V6):
        return family
    if family == socket.AF_INET:
        return V4
    if family == socket.AF_INET6:
        return V6
    if isinstance(family, str):
        if family.startswith("ipv4"):
            return V4
        if family.startswith("ipv6"):
            return V6
    afi = getattr(family, "afi", None)
    if afi in (1, 2):
        return V4 if afi == 1 else V6
    raise ValueError(f"unknown address family {family!r}")


def make_key(net: int, plen: int) -> int:
    return (net << 8) | plen


def split_key(key: int) -> tuple[int, int]:
    return key >> 8, key & 0xFF


def to_key(fam: int, prefix) -> int:
    """Text ("10.0.0.0/8"), int key (returned as is) or NLRI bytes -> int key.

    Host bits are cleared (a prefix "10.0.0.1/8" is 10.0.0.0/8)."""
    if isinstance(prefix, int):
        return prefix
    bits = BITS[fam]
    if isinstance(prefix, (bytes, bytearray, memoryview)):
        prefix = bytes(prefix)
        plen = prefix[0]
        if plen > bits:
            raise ValueError(f"prefix length {plen} > {bits}")
        raw = prefix[1:]
        net = int.from_bytes(raw, "big") << (bits - 8 * len(raw)) if raw else 0
    else:
        n = ipaddress.ip_network(prefix, strict=False)
        if n.version != fam:
            raise ValueError(f"{prefix} is not an IPv{fam} prefix")
        net, plen = int(n.network_address), n.prefixlen
    mask = ((1 << plen) - 1) << (bits - plen) if plen else 0
    return ((net & mask) << 8) | plen


def to_text(fam: int, key: int) -> str:
    net, plen = key >> 8, key & 0xFF
    if fam == V4:
        return f"{ipaddress.IPv4Address(net)}/{plen}"
    return f"{ipaddress.IPv6Address(net)}/{plen}"


def addr_int(fam: int, addr: str) -> int:
    a = ipaddress.ip_address(addr)
    if a.version != fam:
        raise ValueError(f"{addr} is not an IPv{fam} address")
    return int(a)


def addr_family(addr: str) -> int:
    return ipaddress.ip_address(addr).version


def contains(fam: int, key: int, addr: int) -> bool:
    net, plen = key >> 8, key & 0xFF
    shift = BITS[fam] - plen
    return (addr >> shift) == (net >> shift)
