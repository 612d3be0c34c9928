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


FCR_AS, FRR_AS = 65001, 65002


def fcr_config(neighbor: str, key: str, nets: list[str], *, hold: int = 9, bfd: bool = True,
               local_address: str | None = None) -> dict:
    """The NSR tests' fcrd: one eBGP neighbor (FRR), TCP-MD5, our ``nets`` announced, FIB
    off; BFD 300 ms x 3 unless ``bfd`` is False."""
    n: dict = {
        "neighbor-address": neighbor, "peer-as": FRR_AS,
        "timers": {"connect-retry": 1, "hold-time": hold, "keepalive-interval": 3},
        "transport": {"tcp-md5-key": key, **({"local-address": local_address} if local_address else {})},
        "afi-safis": {"afi-safi": [{"afi-safi-name": "ipv4-unicast"}]},
    }
    if bfd:
        n["bfd"] = {"enabled": True, "desired-min-tx-interval": 300000,
                    "required-min-rx-interval": 300000, "detection-multiplier": 3}
    return {
        "fcr-system:system": {"hostname": "fcr"},
        "fcr-routing:routing": {"fib": {"enabled": False}},
        "fcr-bgp:bgp": {
            "global": {"as": FCR_AS, "router-id": "10.255.0.1"},
            "neighbors": {"neighbor": [n]},
            "networks": {"network": [{"prefix": p} for p in nets]},
        },
    }


def frr_config(frr_address: str, fcr_address: str, key: str, nets: list[str], *, hold: int = 9,
               bfd_profile: str | None = None) -> str:
    """FRR's bgpd facing that fcrd (BFD with ``bfd_profile`` when given)."""
    extra = [f"password {key}"] + (["bfd", f"bfd profile {bfd_profile}"] if bfd_profile else [])
    return FrrRouter.render_bgp(
        FRR_AS, frr_address, [{"address": fcr_address, "remote_as": FCR_AS, "connect_retry": 1,
                               "timers": (3, hold), "extra": extra}], {"ipv4": nets})


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
