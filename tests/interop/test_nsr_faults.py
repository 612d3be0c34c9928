"""NSR through NETCONF, and the fault cases, against FRR.

    fcr 10.0.93.1 ---- 10.0.93.2 frr     eBGP, TCP-MD5, hold 9 s

1. The fcr-nsr:switchover RPC over ncclient: fcr-mgmtd starts a new engine (ISSU), the
   NETCONF session stays up and keeps working with the new engine; FRR notices nothing.
2. The new engine dies half-way through adopting (after restoring the sockets, before it
   lifts the freeze): the RPC fails with the reason, the old engine resumes from its own
   checkpoint, FRR notices nothing.
3. The checkpoint store is unreachable: the switchover is refused with a clear error and
   the session is untouched.
4. A stale owner wakes up (SIGSTOP beyond its lease, the lease taken meanwhile): it finds a
   newer epoch and goes silent — no NOTIFICATION, no FIN, no RST from it.
"""

from __future__ import annotations

import signal
import time

import pytest
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

from appliance.nsr.agent import LEASE
from appliance.nsr.store import open_store
from tests.interop import nsr_peer
from tests.interop.nsr_peer import assert_unchanged
from tests.topotest import wait_until
from tests.topotest.fcr import FcrCtlError, FcrRouter, fcrd_path
from tests.topotest.frr import FrrRouter
from tests.topotest.mgmt import MgmtRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

A, B = "10.0.93.1", "10.0.93.2"
KEY = "nsr-faults"
USERS = {"admin": ("admin", "admin-pw")}
FRR_NETS = [f"10.77.{i}.0/24" for i in range(100)]
FCR_NETS = [f"172.31.{i}.0/24" for i in range(100)]
SWITCHOVER = '<switchover xmlns="urn:fcr:yang:fcr-nsr"/>'


def fcr_config() -> dict:
    return nsr_peer.fcr_config(B, KEY, FCR_NETS, bfd=False)


def frr_view(frr: FrrRouter) -> dict:
    return nsr_peer.frr_view(frr, A)


def setup(topology, workdir):
    h, f = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h, f, [f"{A}/24"], [f"{B}/24"])
    frr = FrrRouter(f, workdir / "frr", nsr_peer.frr_config(B, A, KEY, FRR_NETS))
    return h, f, frr


def unchanged(frr: FrrRouter, before: dict) -> None:
    assert_unchanged(frr_view(frr), before)


def mgmt_with_nsr(h, workdir, engine_env: str = "") -> MgmtRouter:
    store = str(workdir / "nsr.db")
    cmd = f"{engine_env} {fcrd_path()} --nsr-store {store}".strip()
    if engine_env:
        cmd = f"env {cmd}"
    return MgmtRouter(h, workdir / "fcr", fcr_config(), USERS,
                      fcrd_args=("--nsr-store", store, "--engine-id", "e0"),
                      mgmtd_args=("--engine-command", cmd, "--engine-log", str(workdir / "fcr" / "fcrd-new.log")))


def test_switchover_rpc_issu(topology, workdir):
    h, _f, frr = setup(topology, workdir)
    mr = mgmt_with_nsr(h, workdir)
    frr.wait_established(A, 60)
    wait_until(lambda: frr_view(frr)["prefixes-received"] == len(FCR_NETS), 30, 0.3, "FRR has our routes")
    before = frr_view(frr)
    with mr.netconf("admin") as m:
        reply = m.dispatch(to_ele(SWITCHOVER))
        assert "active-engine-id" in reply.xml and "fcrd-" in reply.xml, reply.xml
        unchanged(frr, before)
        # the same NETCONF session works with the new engine
        assert B in m.get_config("running").data_xml
        st = mr.ctl("nsr.status")
        assert st["active"] and st["engine-id"].startswith("fcrd-") and st["sessions"] == [B], st
        time.sleep(4)  # more than a keepalive interval: the new engine keeps the session
        unchanged(frr, before)
        # and twice more: the ISSU can be repeated from the upgraded engine
        for _ in range(2):
            m.dispatch(to_ele(SWITCHOVER))
            unchanged(frr, before)
    assert mr.mgmtd.poll() is None


def test_new_engine_dies_mid_restore_old_resumes(topology, workdir):
    h, _f, frr = setup(topology, workdir)
    mr = mgmt_with_nsr(h, workdir, engine_env="FCR_NSR_FAULT=adopt-after-restore")
    frr.wait_established(A, 60)
    wait_until(lambda: frr_view(frr)["prefixes-received"] == len(FCR_NETS), 30, 0.3, "FRR has our routes")
    before = frr_view(frr)
    with mr.netconf("admin") as m:
        with pytest.raises(RPCError) as err:
            m.dispatch(to_ele(SWITCHOVER))
        assert "resumed" in str(err.value), str(err.value)
    st = mr.ctl("nsr.status")
    assert st["engine-id"] == "e0" and st["active"] and st["sessions"] == [B], st
    unchanged(frr, before)
    time.sleep(4)
    unchanged(frr, before)
    assert "event=nsr.resumed" in (workdir / "fcr" / "fcrd.log").read_text()
    assert "event=nsr.fault-injected" in (workdir / "fcr" / "fcrd-new.log").read_text()


def test_store_unreachable_refused(topology, workdir):
    h, _f, frr = setup(topology, workdir)
    fcr = FcrRouter(h, workdir / "fcr", fcr_config(), extra_args=[
        "--nsr-store", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300", "--engine-id", "e0"])
    frr.wait_established(A, 60)
    before = frr_view(frr)
    t0 = time.monotonic()
    with pytest.raises(FcrCtlError) as err:
        fcr.ctl("nsr.release", to="e1")
    assert time.monotonic() - t0 < 15
    msg = str(err.value)
    print(f"refused after {time.monotonic() - t0:.2f} s: {msg}")
    assert "switchover refused" in msg and "store" in msg and "unreachable" in msg, msg
    st = fcr.ctl("nsr.status")
    assert st["store-connected"] is False and st["sessions"] == [B], st
    unchanged(frr, before)


def test_stale_owner_stays_silent(topology, workdir):
    h, f, frr = setup(topology, workdir)
    store = str(workdir / "nsr.db")
    fcr = FcrRouter(h, workdir / "fcr", fcr_config(), extra_args=[
        "--nsr-store", store, "--engine-id", "e0", "--nsr-lease-ttl", "2"])
    frr.wait_established(A, 60)
    wait_until(lambda: fcr.ctl("nsr.status")["active"], 10, 0.2, "e0 holds the lease")
    cap = workdir / "frr.pcap"
    tcpdump = f.popen(["tcpdump", "-i", "eth0", "-n", "-U", "-w", str(cap), f"tcp port 179 and src host {A}"],
                      log=workdir / "tcpdump.log")
    time.sleep(1.0)
    fcr.signal(signal.SIGSTOP)
    try:
        time.sleep(2.5)  # the lease expires; another engine takes it (a newer epoch)
        with open_store(store) as st:
            lease = st.acquire_lease(LEASE, "e1", 30)
        assert lease.epoch >= 2 and lease.owner == "e1"
        before = frr_view(frr)
        t_wake = time.time()
    finally:
        fcr.signal(signal.SIGCONT)
    wait_until(lambda: "event=nsr.fenced" in fcr.tail("fcrd.log", 200), 10, 0.1, "e0 fenced")
    time.sleep(1.0)
    view = frr_view(frr)
    assert view["notifications-recv"] == before["notifications-recv"], (view, before)
    assert fcr.ctl("nsr.status")["role"] == "fenced"
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.wait(10)
    out = f.run(["tcpdump", "-r", str(cap), "-n", "-tt"]).stdout.splitlines()
    after = [ln for ln in out if float(ln.split()[0]) > t_wake + 0.5]
    # nothing at all from the stale owner once it found the newer epoch (a keepalive may
    # have left in the instant between waking and the failed renewal)
    assert not [ln for ln in out if "[F" in ln or "[R" in ln], out
    assert len(after) == 0, after
