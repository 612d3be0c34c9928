"""Graceful Restart helper mode (RFC 4724) against FRR whose bgpd is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.interop.common import FCR_AS, FCR_ID, FCR_NET4, wait_fcr_gone, wait_fcr_routes
from tests.topotest import fcr as fcrcfg
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

FRR_AS = 65002
FCR_ADDR, FRR_ADDR = "10.0.22.1", "10.0.22.2"
KEEP = ["10.22.1.0/24", "10.22.2.0/24"]
DROP = "10.22.3.0/24"
GR_LINES = [
    "bgp graceful-restart",
    "bgp graceful-restart preserve-fw-state",   # F bit set: stale routes live until EoR
    "bgp graceful-restart restart-time 30",
    "bgp graceful-restart select-defer-time 5",  # FRR, restarting, waits at most this for our EoR
]


def frr_conf(networks):
    return FrrRouter.render_bgp(
        FRR_AS, FRR_ADDR, [{"address": FCR_ADDR, "remote_as": FCR_AS, "connect_retry": 1}],
        {"ipv4": networks}, extra=GR_LINES,
    )


def stale_flags(fcr: FcrRouter, prefixes) -> dict:
    rib = fcr.rib("ipv4-unicast")
    return {p: (rib[p]["best"] or {}).get("stale", False) if p in rib else None for p in prefixes}


def test_graceful_restart_helper(topology, workdir):
    h_fcr, h_frr = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h_fcr, h_frr, [f"{FCR_ADDR}/24"], [f"{FRR_ADDR}/24"])
    frr = FrrRouter(h_frr, workdir / "frr", frr_conf(KEEP + [DROP]))
    fcr = FcrRouter(h_fcr, workdir / "fcr", fcrcfg.config(
        FCR_AS, FCR_ID, [fcrcfg.neighbor(FRR_ADDR, FRR_AS, connect_retry=1)], [FCR_NET4],
    ))
    fcr.wait_established(FRR_ADDR, 30)
    frr.wait_established(FCR_ADDR, 10)
    wait_fcr_routes(fcr, KEEP + [DROP])
    assert not any(stale_flags(fcr, KEEP + [DROP]).values())

    # FCR advertises Graceful Restart, and FRR sees it
    n_frr = frr.neighbor(FCR_ADDR)
    caps = n_frr.get("neighborCapabilities", {})
    assert caps.get("gracefulRestart") == "advertisedAndReceived", caps
    gri = n_frr.get("gracefulRestartInfo", {})
    assert gri.get("remoteGrMode") in ("Helper", "Restart"), gri
    assert "ipv4Unicast" in caps.get("gracefulRestartCapability", {}) or gri, n_frr

    # SIGKILL: no NOTIFICATION, the TCP connection is closed by the kernel
    pid = frr.bgpd_pid
    os.kill(pid, signal.SIGKILL)
    frr.procs["bgpd"].wait(10)
    wait_until(lambda: fcr.neighbor_state(FRR_ADDR) != "Established", 10, 0.2,
               message="FCR notices the dead session")
    n = fcr.neighbor(FRR_ADDR)
    assert n["last-notification-received"] in (None, {}), n
    # the routes are kept (helper mode) ...
    time.sleep(1.0)
    flags = stale_flags(fcr, KEEP + [DROP])
    assert all(v is not None for v in flags.values()), f"routes withdrawn, not kept: {flags}"
    # ... and shown as stale (checked at the end so the rest of the scenario still runs)
    problems = []
    if not all(v is True for v in flags.values()):
        problems.append(f"routes kept in helper mode are not marked stale in bgp.rib: {flags}")
    adj = fcr.ctl("bgp.adj-rib", neighbor=FRR_ADDR, family="ipv4-unicast", direction="in")
    adj_routes = adj.get("routes", adj) if isinstance(adj, dict) else adj
    if not all(r.get("stale") is True for r in adj_routes):
        problems.append(f"bgp.adj-rib in does not mark them stale either: {adj_routes}")

    # bgpd comes back with the same config minus DROP
    conf = frr._write_conf("bgpd", frr_conf(KEEP))
    frr._spawn("bgpd", frr._daemon_cmd("bgpd", conf))
    wait_until(lambda: frr.running("bgpd") and frr._vtysh_ok(), 15, 0.2, message="bgpd restarted")
    fcr.wait_established(FRR_ADDR, 30)

    # after FRR's End-of-RIB: KEEP fresh, DROP gone
    wait_fcr_gone(fcr, DROP, 20)
    flags = wait_until(lambda: (f := stale_flags(fcr, KEEP)) and not any(f.values()) and f, 10,
                       message="routes fresh again")
    assert all(v is False for v in flags.values()), flags
    n = fcr.neighbor(FRR_ADDR)
    assert n["established-transitions"] == 2, n
    assert n["prefixes-received"] == len(KEEP), n
    log = fcr.log.read_text(errors="replace")
    assert "event=bgp.gr-helper" in log, log[-2000:]
    assert "event=bgp.end-of-rib" in log
    # and FRR has our route again
    wait_until(lambda: frr.best_path(FCR_NET4), 15, message="FCR network in restarted FRR")
    assert not problems, problems
