"""BFD for a BGP neighbor: fcrd against FRR (bgpd + bfdd), 50 ms x 3 both sides.

    fcr 10.0.61.1 ---- 10.0.61.2 frr     eBGP with `bfd` on both sides

The BFD session comes up for the BGP neighbor; then FRR's BFD packets are dropped by an
nftables rule in FRR's namespace: fcrd's BFD session goes Down within the detection time
(150 ms) and the BGP session goes down with it (NOTIFICATION Cease / BFD Down, RFC 9384
subcode 10). Times are taken from fcrd's log (millisecond timestamps of the `bfd.state`
and `bgp.state` events) against the wall clock at the moment the rule went in, and printed.
With the rule gone BFD comes back Up and BGP re-establishes. Finally fcrd is stopped by
SIGTERM (exit 0) and, after a restart, killed with SIGKILL: its BFD worker process goes
away both times.
"""

from __future__ import annotations

import os
import re
import signal
import time
from datetime import UTC, datetime

import pytest

from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

FCR_AS, FRR_AS = 65001, 65002
FCR_ADDR, FRR_ADDR = "10.0.61.1", "10.0.61.2"
DETECT = 0.150
_TS = re.compile(r"^ts=(\S+)Z ")


def log_events(path, event: str) -> list[tuple[float, str]]:
    """(wall-clock seconds, line) of every `event=<event>` line in fcrd's log."""
    out = []
    for line in path.read_text().splitlines():
        if f"event={event} " not in line:
            continue
        m = _TS.match(line)
        if m:
            ts = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
            out.append((ts.timestamp(), line))
    return out


def fcr_bfd(fcr: FcrRouter) -> dict:
    return next((s for s in fcr.ctl("bfd.sessions")["sessions"] if s["peer-address"] == FRR_ADDR), {})


def frr_bfd(frr: FrrRouter) -> dict:
    import json

    out = frr.vtysh("show bfd peers json", daemon="bfdd").stdout
    peers = json.loads(out) if out.strip() else []
    return next((p for p in peers if p.get("peer") == FCR_ADDR), {})


def test_bfd_takes_bgp_down(topology, workdir):
    h_fcr, h_frr = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h_fcr, h_frr, [f"{FCR_ADDR}/24"], [f"{FRR_ADDR}/24"])
    frr = FrrRouter(h_frr, workdir / "frr", FrrRouter.render_bgp(
        FRR_AS, FRR_ADDR, [{"address": FCR_ADDR, "remote_as": FCR_AS, "connect_retry": 1,
                            "extra": ["bfd", "bfd profile fast"]}],
        {"ipv4": ["10.61.1.0/24"]}), bfd=True)
    res = frr.vtysh("configure terminal", "bfd", "profile fast", "receive-interval 50",
                    "transmit-interval 50", "detect-multiplier 3", daemon="bfdd")
    assert "%" not in res.stdout, res.stdout
    fcr = FcrRouter(h_fcr, workdir / "fcr", {
        "fcr-system:system": {"hostname": "fcr"},
        "fcr-bgp:bgp": {
            "global": {"as": FCR_AS, "router-id": "10.255.0.1"},
            "neighbors": {"neighbor": [{
                "neighbor-address": FRR_ADDR, "peer-as": FRR_AS, "timers": {"connect-retry": 1},
                "bfd": {"enabled": True, "desired-min-tx-interval": 50000,
                        "required-min-rx-interval": 50000, "detection-multiplier": 3}}]},
        },
    })
    fcr.wait_established(FRR_ADDR, 30)
    frr.wait_established(FCR_ADDR, 10)

    # -- the session comes up, at 50 ms x 3 on both sides -------------------------------
    s = wait_until(lambda: (x := fcr_bfd(fcr)).get("state") == "Up" and x.get("detection-time") == 150_000
                   and x, 20, 0.1, "FCR BFD Up at 50 ms x 3")
    assert s["clients"] == ["bgp"], s
    p = wait_until(lambda: (x := frr_bfd(frr)).get("status") == "up" and x, 10, 0.1, "FRR BFD up")
    assert p.get("remote-receive-interval") == 50 and p.get("remote-transmit-interval") == 50, p
    time.sleep(1.0)
    assert fcr_bfd(fcr)["counters"]["down_count"] == 0
    n0 = fcr.neighbor(FRR_ADDR)
    assert n0["state"] == "Established" and n0["established-transitions"] == 1, n0

    # -- drop FRR's BFD packets: BFD down within the detection time, BGP with it ---------
    h_frr.run(["nft", "add", "table", "inet", "bfdt"])
    h_frr.run(["nft", "add", "chain", "inet", "bfdt", "output", "{ type filter hook output priority 0 ; }"])
    t0 = time.time()
    h_frr.run(["nft", "add", "rule", "inet", "bfdt", "output", "udp", "dport", "3784", "drop"])
    wait_until(lambda: fcr.neighbor(FRR_ADDR)["state"] != "Established", 5, 0.02, "BGP down")
    time.sleep(0.2)  # the log lines are written by now; let them land
    bfd_down = next(ts for ts, ln in log_events(fcr.log, "bfd.state") if ts >= t0 - 0.01 and "to=Down" in ln)
    bgp_down = next(ts for ts, ln in log_events(fcr.log, "bgp.state")
                    if ts >= t0 - 0.01 and "from=Established" in ln)
    detect, bgp = bfd_down - t0, bgp_down - t0
    print(f"\nBFD detection (drop rule -> FCR BFD Down): {detect * 1000:.0f} ms "
          f"(detection time {DETECT * 1000:.0f} ms); BGP session down at {bgp * 1000:.0f} ms "
          f"({(bgp_down - bfd_down) * 1000:.1f} ms after BFD)")
    assert detect <= DETECT + 0.100, detect
    assert 0 <= bgp_down - bfd_down <= 0.100, (bfd_down, bgp_down)
    bfd_line = next(ln for ts, ln in log_events(fcr.log, "bgp.bfd-down") if ts >= t0 - 0.01)
    assert f"peer={FRR_ADDR}" in bfd_line
    n1 = fcr.neighbor(FRR_ADDR)
    sent = n1.get("last-notification-sent") or {}
    assert (sent.get("code"), sent.get("subcode")) == (6, 10), n1  # Cease / BFD Down
    wait_until(lambda: frr.neighbor(FCR_ADDR).get("bgpState") != "Established", 5, 0.05, "FRR's BGP down")
    frr_n = frr.neighbor(FCR_ADDR)
    print(f"FRR: lastNotificationReason={frr_n.get('lastNotificationReason')!r} "
          f"lastResetDueTo={frr_n.get('lastResetDueTo')!r}")

    # -- drop rule gone: BFD and BGP come back -----------------------------------------
    h_frr.run(["nft", "delete", "table", "inet", "bfdt"])
    wait_until(lambda: fcr_bfd(fcr).get("state") == "Up", 15, 0.1, "FCR BFD Up again")
    n2 = fcr.wait_established(FRR_ADDR, 20)
    assert n2["established-transitions"] == 2, n2

    # -- the BFD worker never outlives fcrd: SIGTERM (exit 0), then kill -9 ---------------
    worker = bfd_worker(fcr.fcrd_pid)
    fcr.signal(signal.SIGTERM)
    assert fcr.wait_exit(15) == 0
    wait_until(lambda: not alive(worker), 5, 0.05, "BFD worker gone after SIGTERM")
    fcr.start()
    wait_until(lambda: fcr_bfd(fcr).get("state") == "Up", 20, 0.1, "BFD Up after the restart")
    worker = bfd_worker(fcr.fcrd_pid)
    os.kill(fcr.fcrd_pid, signal.SIGKILL)
    fcr.wait_exit(5)
    wait_until(lambda: not alive(worker), 5, 0.05, "BFD worker gone after kill -9 of fcrd")


def bfd_worker(ppid: int) -> int:
    """The pid of fcrd's BFD worker (its child running appliance.bfd.worker)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) != ppid:
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"appliance.bfd.worker" in f.read():
                    return int(pid)
        except (OSError, ValueError, IndexError):
            continue
    raise AssertionError(f"no BFD worker under fcrd {ppid}")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
