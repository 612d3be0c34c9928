"""Address families and the compact prefix key used everywhere in the RIBs.

A prefix is held as its NLRI wire encoding: one length octet followed by the
minimum number of address octets (RFC 4271 §4.3), e.g. 10.1.0.0/16 is
b"\\x10\\x0a\\x01". This is the cheapest form to produce from an UPDATE (a slice),
it hashes fast, and it re-encodes for Adj-RIB-Out with a join. Keys are only
compared within one address family, so IPv4 and IPv6 keys never collide.
Trailing bits beyond the prefix length are zeroed by the decoder, so one
prefix has exactly one key.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

from .packet.constants import Afi, Safi


class AfiSafi(NamedTuple):
    afi: int
    safi: int

    @property
    def name(self) -> str:
        return FAMILY_NAMES.get(self, f"afi{self.afi}-safi{self.safi}")


IPV4_UNICAST = AfiSafi(Afi.IPV4, Safi.UNICAST)
IPV6_UNICAST = AfiSafi(Afi.IPV6, Safi.UNICAST)
FAMILY_NAMES = {IPV4_UNICAST: "ipv4-unicast", IPV6_UNICAST: "ipv6-unicast"}
FAMILY_BY_NAME = {v: k for k, v in FAMILY_NAMES.items()}
ADDRESS_BITS = {Afi.IPV4: 32, Afi.IPV6: 128}

PrefixKey = bytes


def prefix_to_key(prefix: str | ipaddress.IPv4Network | ipaddress.IPv6Network) -> PrefixKey:
    """'10.1.0.0/16' -> b'\\x10\\x0a\\x01' (host bits must be zero)."""
    net = ipaddress.ip_network(prefix) if isinstance(prefix, str) else prefix
    plen = net.prefixlen
    nbytes = (plen + 7) >> 3
    return bytes((plen,)) + net.network_address.packed[:nbytes]


def key_to_prefix(key: PrefixKey, afi: int) -> str:
    """b'\\x10\\x0a\\x01' -> '10.1.0.0/16'."""
    plen = key[0]
    width = 4 if afi == Afi.IPV4 else 16
    addr = key[1:] + b"\x00" * (width - len(key) + 1)
    if afi == Afi.IPV4:
        return f"{ipaddress.IPv4Address(addr)}/{plen}"
    return f"{ipaddress.IPv6Address(addr)}/{plen}"


def family_of_prefix(prefix: str) -> AfiSafi:
    return IPV4_UNICAST if ipaddress.ip_network(prefix, strict=False).version == 4 else IPV6_UNICAST
