"""What an FRR peer says of its session to us, for the NSR tests (ISSU, standby box,
faults, crash): one reading of `show bgp neighbor json` and of bfdd, and the check that a
switchover left the session as it was."""

from __future__ import annotations

import ipaddress
import json

from tests.topotest.frr import FrrRouter

# what must not change when a switchover is invisible to the peer
SESSION_KEYS = ("state", "established-count", "dropped", "opens-sent", "opens-recv",
                "notifications-sent", "notifications-recv", "prefixes-received")


def prefixes(base: str, n: int) -> list[str]:
    """``n`` consecutive /24s from ``base``."""
    first = int(ipaddress.ip_network(base).network_address)
    return [f"{ipaddress.IPv4Address(first + (i << 8))}/24" for i in range(n)]


def frr_view(frr: FrrRouter, address: str) -> dict:
    """FRR's session to ``address`` (our side): state, counters, prefix counts."""
    n = frr.neighbor(address)
    ms = n.get("messageStats", {})
    af = n.get("addressFamilyInfo", {}).get("ipv4Unicast", {})
    return {
        "state": n.get("bgpState"),
        "established-epoch": n.get("bgpTimerUpEstablishedEpoch"),
        "established-count": n.get("connectionsEstablished"),
        "dropped": n.get("connectionsDropped"),
        "opens-sent": ms.get("opensSent"), "opens-recv": ms.get("opensRecv"),
        "notifications-sent": ms.get("notificationsSent"),
        "notifications-recv": ms.get("notificationsRecv"),
        "updates-recv": ms.get("updatesRecv"),
        "prefixes-received": af.get("acceptedPrefixCounter"),
        "prefixes-sent": af.get("sentPrefixCounter"),
    }


def frr_bfd(frr: FrrRouter, address: str, what: str = "peers") -> dict:
    """bfdd's session to ``address`` (``what``: "peers" or "peers counters")."""
    out = frr.vtysh(f"show bfd {what} json", daemon="bfdd").stdout
    peers = json.loads(out) if out.strip() else []
    return next((p for p in peers if p.get("peer") == address), {})


def assert_unchanged(view: dict, before: dict, keys: tuple[str, ...] = SESSION_KEYS, when: object = "") -> None:
    """The session is the one it was: same counters, and the same established time (FRR
    derives the epoch from its uptime in whole seconds: +-1 is rounding)."""
    assert abs(view["established-epoch"] - before["established-epoch"]) <= 1, (when, view, before)
    for k in keys:
        assert view[k] == before[k], (when, k, view, before)
