"""NSR: in-service software upgrade on one box, against FRR (bgpd + bfdd).

    fcr 10.0.91.1 ---- 10.0.91.2 frr     eBGP, TCP-MD5, BFD 300 ms x 3

The active fcrd (engine e0, embedded checkpoint store) has 10,000 routes from FRR and
sends it 10,000. `run_issu` starts a new fcrd as standby, the old one releases every
session through the store, the new one adopts them, the old one exits. FRR must not
notice: same established time (bgpTimerUpEstablishedEpoch), no NOTIFICATION, no new OPEN,
prefix counts unchanged, no withdrawal (FRR's UPDATE counters grow only by what we send
on purpose: nothing), BFD never left Up, and no RST or FIN in a capture on FRR's side.
"""

from __future__ import annotations

import signal
import time

import pytest

from appliance.nsr.issu import run_issu
from tests.interop import nsr_peer
from tests.interop.nsr_peer import FRR_AS, assert_unchanged, prefixes
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter, fcrd_env, fcrd_path
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(420)]

A, B = "10.0.91.1", "10.0.91.2"
KEY = "nsr-s3cret"
N_ROUTES = 10_000
ISSU_REPEAT = 20


FRR_NETS = prefixes("10.128.0.0/9", N_ROUTES)
FCR_NETS = prefixes("172.16.0.0/12", N_ROUTES)


def fcr_config() -> dict:
    return nsr_peer.fcr_config(B, KEY, FCR_NETS)


def frr_config() -> str:
    return nsr_peer.frr_config(B, A, KEY, FRR_NETS, bfd_profile="nsr")


def frr_view(frr: FrrRouter, address: str = A) -> dict:
    return nsr_peer.frr_view(frr, address)


def frr_bfd(frr: FrrRouter, what: str = "peers") -> dict:
    return nsr_peer.frr_bfd(frr, A, what)


def start_standby(h, workdir, store: str, active_control: str, n: int):
    def start(engine_id: str, control: str):
        log = workdir / f"fcrd-{n}.log"
        return h.popen([fcrd_path(), "--config", str(workdir / "fcr0" / "fcrd.json"),
                        "--control", control, "--nsr-store", store, "--engine-id", engine_id,
                        "--standby", "--control-after-adopt", active_control],
                       log=log, env=fcrd_env())
    return start


def test_issu_frr(topology, workdir):
    h, f = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h, f, [f"{A}/24"], [f"{B}/24"])
    frr = FrrRouter(f, workdir / "frr", frr_config(), bfd=True)
    res = frr.vtysh("configure terminal", "bfd", "profile nsr", "receive-interval 300",
                    "transmit-interval 300", "detect-multiplier 3", daemon="bfdd")
    assert "%" not in res.stdout, res.stdout
    store = str(workdir / "nsr.db")
    fcr = FcrRouter(h, workdir / "fcr0", fcr_config(),
                    extra_args=["--nsr-store", store, "--engine-id", "e0"])
    fcr.wait_established(B, 60)
    wait_until(lambda: frr_view(frr)["prefixes-received"] == N_ROUTES, 60, 0.5, "FRR has our routes")
    wait_until(lambda: fcr.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES, 60, 0.5,
               "FCR has FRR's routes and its own")
    wait_until(lambda: frr_bfd(frr).get("status") == "up", 20, 0.2, "BFD up")
    time.sleep(1)
    before = frr_view(frr)
    bfd_before = frr_bfd(frr)
    cap = workdir / "frr.pcap"
    tcpdump = f.popen(["tcpdump", "-i", "eth0", "-n", "-U", "-w", str(cap), "tcp port 179"],
                      log=workdir / "tcpdump.log")
    time.sleep(1.0)
    control = str(fcr.control)
    timings = []
    for i in range(ISSU_REPEAT):
        out = run_issu(control, start_standby(h, workdir, store, control, i))
        timings.append(out)
        print(f"ISSU {i}: total {out['total']:.3f} s switchover {out['switchover']:.3f} s "
              f"release {out['released']['timing']} adopt {out['adopted']['timing']}")
        assert out["adopted"]["peers"] == [B]
        assert fcr.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES
        assert_unchanged(frr_view(frr), before, when=i)
        assert frr_bfd(frr).get("status") == "up"
    time.sleep(4)  # a keepalive interval more: the last engine keeps the session
    view = frr_view(frr)
    assert_unchanged(view, before)
    assert view["updates-recv"] == before["updates-recv"], (view, before)  # nothing re-sent or withdrawn
    bfd_after = frr_bfd(frr)
    assert bfd_after.get("status") == "up" and bfd_after.get("uptime", 0) >= bfd_before.get("uptime", 0), \
        (bfd_before, bfd_after)
    ctr = frr_bfd(frr, "peers counters")
    assert ctr.get("session-down-events", 0) == 0, ctr
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.wait(10)
    flags = f.run(["tcpdump", "-r", str(cap), "-n", "tcp[tcpflags] & (tcp-rst|tcp-fin) != 0"]).stdout
    assert flags.strip() == "", flags


def test_standby_that_lags_is_refused(topology, workdir):
    """A standby whose copy of the RIBs stopped following is refused with the reason, and
    the sessions stay with the active engine, untouched."""
    from tests.topotest.fcr import FcrCtlError

    h, f = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h, f, [f"{A}/24"], [f"{B}/24"])
    frr = FrrRouter(f, workdir / "frr", frr_config(), bfd=True)
    store = str(workdir / "nsr.db")
    fcr = FcrRouter(h, workdir / "fcr0", fcr_config(),
                    extra_args=["--nsr-store", store, "--engine-id", "e0"])
    fcr.wait_established(B, 60)
    wait_until(lambda: fcr.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES, 60, 0.5, "FCR has FRR's routes")
    env = dict(fcrd_env(), FCR_NSR_FAULT="mirror-stall")
    standby = h.popen([fcrd_path(), "--config", str(workdir / "fcr0" / "fcrd.json"),
                       "--control", str(workdir / "e1.sock"), "--nsr-store", store, "--engine-id", "e1",
                       "--standby"], log=workdir / "fcrd-e1.log", env=env)
    try:
        def mirror() -> dict:
            st = fcr.ctl("nsr.status")
            return next((s for s in st["standbys"] if s.get("engine-id") == "e1" and s.get("fresh")), {})

        wait_until(lambda: mirror().get("synchronized"), 60, 0.2, "standby e1 in sync")
        # FRR announces one more prefix: the active engine's mirror moves on, e1's does not
        res = frr.vtysh("configure terminal", f"router bgp {FRR_AS}", "address-family ipv4 unicast",
                        "network 10.1.0.0/24")
        assert "%" not in res.stdout, res.stdout
        wait_until(lambda: fcr.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES + 1, 30, 0.2, "new route")
        wait_until(lambda: (fcr.ctl("nsr.status").get("rib-mirror") or {}).get("written", 0)
                   > (mirror().get("rib-mirror") or {}).get("applied", 0), 10, 0.1, "e1 behind")
        time.sleep(0.5)
        before = frr_view(frr)
        t0 = time.monotonic()
        with pytest.raises(FcrCtlError) as err:
            fcr.ctl("nsr.release", to="e1", timeout=30)
        took = time.monotonic() - t0
        msg = str(err.value)
        print(f"refused after {took:.2f} s: {msg}")
        assert "refused" in msg and "lags" in msg, msg
        assert took < 10
        st = fcr.ctl("nsr.status")
        assert st["active"] and st["engine-id"] == "e0" and st["sessions"] == [B], st
        time.sleep(4)  # a keepalive interval: the session goes on with e0
        assert_unchanged(frr_view(frr), before)
        assert fcr.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES + 1
    finally:
        standby.terminate()
        standby.wait(10)
