"""Address text in one canonical form, so peers named by configuration, by BFD and by the
checkpoint store compare equal ("2001:DB8::1" and "2001:db8:0::1" are one peer)."""

from __future__ import annotations

import ipaddress


def canonical_ip(addr: str) -> str:
    """The compressed form of an IP address (a "%zone" suffix dropped); anything that is
    not an address is returned as it is."""
    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]).compressed
    except ValueError:
        return addr
