"""Shared numbers and small helpers of the FCR interop tests."""

from __future__ import annotations

from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter

FCR_AS = 65001
FCR_ID = "10.255.0.1"
FCR_NET4 = "192.0.2.0/24"
FCR_NET6 = "2001:db8:f00::/48"


def family_of(prefix: str) -> str:
    return "ipv6-unicast" if ":" in prefix else "ipv4-unicast"


def wait_fcr_routes(fcr: FcrRouter, prefixes, timeout: float = 15.0) -> dict:
    """Wait until every prefix is in FCR's RIB; returns {prefix: rib entry}."""
    prefixes = list(prefixes)
    fam = family_of(prefixes[0])

    def have():
        rib = fcr.rib(fam)
        return all(p in rib for p in prefixes) and rib

    return wait_until(have, timeout, 0.25, message=f"{prefixes} in FCR RIB")


def wait_fcr_gone(fcr: FcrRouter, prefix: str, timeout: float = 15.0) -> None:
    wait_until(lambda: prefix not in fcr.rib(family_of(prefix)), timeout, 0.25,
               message=f"{prefix} withdrawn from FCR RIB")
