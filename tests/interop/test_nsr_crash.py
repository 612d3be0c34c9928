"""NSR switchover 3: the routing engine is killed (kill -9), against FRR (bgpd + bfdd).

    fcr 10.0.94.1 ---- 10.0.94.2 frr     eBGP, TCP-MD5, hold 9 s, BFD 300 ms x 3

fcrd runs with a socket holder (``--nsr-holder``; fcrd starts it on first use) that keeps
a duplicate of the session's socket and the BFD worker's pipes. 10,000 routes each way.
The test kills fcrd with SIGKILL at a random moment (a second round: in the middle of a
soft clear, while UPDATEs stream both ways), starts a new fcrd with ``--recover`` and
checks that FRR saw nothing: same established time and count, no NOTIFICATION, no new
OPEN, its prefix counts never dip, BFD never leaves Up, and no RST or FIN on the wire;
and that the new engine ends with the same routes (both tables complete).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time

import pytest

from appliance.nsr.holder import query as holder_query
from tests.interop import nsr_peer
from tests.interop.nsr_peer import assert_unchanged, prefixes
from tests.topotest import wait_until
from tests.topotest.fcr import FcrRouter
from tests.topotest.frr import FrrRouter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

A, B = "10.0.94.1", "10.0.94.2"
KEY = "crash-s3cret"
N_ROUTES = 10_000
HOLD = 9
ROUNDS = (False, True, False, True)  # quiet / busy kills
KILLS: list[float] = []  # wall-clock time of each kill (to read the capture)


FRR_NETS = prefixes("10.128.0.0/9", N_ROUTES)
FCR_NETS = prefixes("172.16.0.0/12", N_ROUTES)


def fcr_config() -> dict:
    return nsr_peer.fcr_config(B, KEY, FCR_NETS, hold=HOLD)


def frr_config(nets: list[str] = FRR_NETS) -> str:
    return nsr_peer.frr_config(B, A, KEY, nets, hold=HOLD, bfd_profile="crash")


def frr_view(frr: FrrRouter) -> dict:
    return nsr_peer.frr_view(frr, A)


def frr_bfd(frr: FrrRouter, what: str = "peers") -> dict:
    return nsr_peer.frr_bfd(frr, A, what)


class Watch:
    """Samples FRR's view of the session every 0.2 s in a thread (bounded by stop())."""

    def __init__(self, frr: FrrRouter) -> None:
        self.frr = frr
        self.samples: list[tuple[float, dict, str]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.samples.append((time.monotonic(), frr_view(self.frr), frr_bfd(self.frr).get("status", "")))
            self._stop.wait(0.2)

    def stop(self) -> list[tuple[float, dict, str]]:
        self._stop.set()
        self._t.join(10)
        return self.samples


def _kill(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def crash_and_recover(h, workdir, holder: str, store: str, old: FcrRouter, n: int, *,
                      during=None) -> tuple[FcrRouter, float]:
    """SIGKILL the running fcrd (after ``during()`` started something, if given), start the
    next one with --recover; returns it and the seconds from the kill to its control socket."""
    if during is not None:
        during()
    os.kill(old.fcrd_pid, signal.SIGKILL)
    KILLS.append(time.time())
    old.proc.wait(10)
    t_kill = time.monotonic()
    st = holder_query(holder)
    assert st is not None and all(s["orphan"] for s in st["sessions"]), st
    new = start_recovering(h, workdir / f"fcr{n}", store, f"e{n}", holder)
    return new, time.monotonic() - t_kill


def start_frr(f, workdir, config: str) -> FrrRouter:
    """FRR with bgpd and bfdd (the crash profile: 300 ms x 3)."""
    frr = FrrRouter(f, workdir / "frr", config, bfd=True)
    res = frr.vtysh("configure terminal", "bfd", "profile crash", "receive-interval 300",
                    "transmit-interval 300", "detect-multiplier 3", daemon="bfdd")
    assert "%" not in res.stdout, res.stdout
    return frr


def start_recovering(h, wd, store: str, engine_id: str, holder: str) -> FcrRouter:
    """``fcrd --recover``: a new engine that takes the orphaned sessions from the holder."""
    new = FcrRouter(h, wd, fcr_config(), extra_args=[
        "--nsr-store", store, "--engine-id", engine_id, "--nsr-holder", holder, "--recover"], start=False)
    new.start(timeout=30)
    return new


def peer_saw_nothing(frr: FrrRouter, before: dict, new: FcrRouter) -> None:
    """A hold time after the recovery: FRR's session and BFD as they were, ``new`` active."""
    time.sleep(HOLD + 1)
    assert_unchanged(frr_view(frr), before)
    assert frr_bfd(frr).get("status") == "up"
    assert frr_bfd(frr, "peers counters").get("session-down-events", 0) == 0
    assert new.ctl("nsr.status")["active"] is True


def queues_busy(h, timeout: float) -> str:
    """Wait (bounded) until bytes wait in a queue of the BGP socket (a table is streaming)."""
    end = time.monotonic() + timeout
    line = ""
    while time.monotonic() < end:
        line = h.run(["ss", "-Htn", "state", "established", "( sport = :179 or dport = :179 )"]).stdout
        cols = line.split()
        if len(cols) >= 2 and (cols[0] != "0" or cols[1] != "0"):
            break
    return line


def recovery_line(fcr: FcrRouter) -> str:
    """The new engine's own account of the recovery (its log)."""
    lines = fcr.log.read_text(errors="replace").splitlines()
    keep = [ln.split("event=", 1)[1] for ln in lines if "event=nsr.recovered" in ln
            or "event=nsr.continued" in ln or "event=bgp.output-released" in ln]
    return " | ".join(keep)


def test_crash_frr(topology, workdir):
    h, f = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h, f, [f"{A}/24"], [f"{B}/24"])
    frr = start_frr(f, workdir, frr_config())
    store = str(workdir / "nsr.db")
    holder = str(workdir / "run" / "holder.sock")
    fcr = FcrRouter(h, workdir / "fcr0", fcr_config(), extra_args=[
        "--nsr-store", store, "--engine-id", "e0", "--nsr-holder", holder])
    routers = [fcr]
    holder_pid = bfd_pid = None
    tcpdump = None
    try:
        fcr.wait_established(B, 60)
        wait_until(lambda: frr_view(frr)["prefixes-received"] == N_ROUTES, 60, 0.5, "FRR has our routes")
        wait_until(lambda: fcr.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES, 60, 0.5,
                   "FCR has FRR's routes and its own")
        wait_until(lambda: frr_bfd(frr).get("status") == "up", 20, 0.2, "BFD up")
        st = wait_until(lambda: (s := holder_query(holder)) and s["sessions"] and s["bfd"] and s, 10, 0.1,
                        "the holder keeps the session and the BFD worker")
        holder_pid, bfd_pid = st["pid"], st["bfd"][0]["pid"]
        assert [s["key"] for s in st["sessions"]] == [B] and not st["sessions"][0]["orphan"], st
        time.sleep(1)
        before = frr_view(frr)
        bfd_before = frr_bfd(frr)
        # a peek-mode reader once left bytes unread at a collision close (RST, FRR flapped)
        if before["established-count"] != 1:
            # One start-up flap is not an RST of ours: when FRR resolves the connection
            # collision its bfdd re-registers the session and sends Down, and FCR's BFD
            # tracking then closes the young session with Cease/BFD Down (RFC 9384). Seen
            # under load after 120a912 made the collision itself clean.
            fcr_log = (workdir / "fcr0" / "fcrd.log").read_text()
            frr_log = (workdir / "frr" / "bgpd.log").read_text()
            assert before["established-count"] == 2, before
            assert "event=bgp.bfd-down" in fcr_log and "diag=neighbor-signaled-session-down" in fcr_log, before
            assert "Connection reset by peer" not in frr_log, before
        elif before["notifications-sent"]:
            # Both sides connected at once and FRR closed the losing connection with
            # Cease/7 (RFC 4271 §6.8): counted by FRR, but no session was lost. Nothing else.
            fcr_log = (workdir / "fcr0" / "fcrd.log").read_text()
            assert before["notifications-sent"] == 1 and before["dropped"] == 0, before
            assert f"event=bgp.notification-received peer={B} code=6 subcode=7" in fcr_log, before
            assert "reason='closed by the peer (collision)'" in fcr_log, before
        cap = workdir / "frr.pcap"
        tcpdump = f.popen(["tcpdump", "-i", "eth0", "-n", "-U", "-w", str(cap), "tcp port 179"],
                          log=workdir / "tcpdump.log")
        time.sleep(1.0)

        # kill -9 at a random point of the keepalive cycle (quiet rounds), or while a soft
        # clear streams 10,000 routes each way (busy rounds: messages half read, half written)
        watch = Watch(frr)
        cur = fcr
        for n, busy in enumerate(ROUNDS, start=1):
            during = None
            if busy:
                def during(cur=cur) -> None:
                    frr.vtysh(f"clear bgp ipv4 unicast {A} soft")
                    cur.clear(B, "out")
                    queues_busy(h, 1.0)  # kill while a table streams
            else:
                time.sleep(random.uniform(0, 3))
            cur, t_ready = crash_and_recover(h, workdir, holder, store, cur, n, during=during)
            routers.append(cur)
            wait_until(lambda c=cur: c.neighbor_state(B) == "Established", 10, 0.1, "session adopted")
            wait_until(lambda c=cur: c.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES, 30, 0.2,
                       "FRR's routes re-learned by route refresh")
            rec = recovery_line(cur)
            print(f"crash {n} ({'busy' if busy else 'quiet'}): new engine answering {t_ready:.2f} s "
                  f"after the kill; {rec}")
        time.sleep(HOLD + 1)  # longer than the hold time: the session is really kept
        samples = watch.stop()
        for r in routers[1:]:
            print(r.workdir.name, recovery_line(r))

        view = frr_view(frr)
        print("FRR before", before, "\nFRR after ", view)
        assert_unchanged(view, before)
        dips = [(round(t, 2), v) for t, v, _b in samples
                if v["state"] != "Established" or v["prefixes-received"] != N_ROUTES]
        assert not dips, dips[:5]
        assert all(b == "up" for _t, _v, b in samples), [b for _t, _v, b in samples if b != "up"][:5]
        bfd_after = frr_bfd(frr)
        assert bfd_after.get("status") == "up" and bfd_after.get("uptime", 0) >= bfd_before.get("uptime", 0), \
            (bfd_before, bfd_after)
        assert frr_bfd(frr, "peers counters").get("session-down-events", 0) == 0
        nb = cur.neighbor(B)
        assert nb["state"] == "Established" and nb["prefixes-received"] == N_ROUTES, nb
        assert cur.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES
        sessions = cur.ctl("bfd.sessions")["sessions"]
        assert [s["state"] for s in sessions] == ["Up"], sessions
        st = holder_query(holder)
        assert st["pid"] == holder_pid and [s["key"] for s in st["sessions"]] == [B], st
        assert not st["sessions"][0]["orphan"] and st["bfd"][0]["pid"] == bfd_pid, st
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(10)
        tcpdump = None
        flags = f.run(["tcpdump", "-r", str(cap), "-n", "tcp[tcpflags] & (tcp-rst|tcp-fin) != 0"]).stdout
        assert flags.strip() == "", flags
        # on the wire: from each kill to the first BGP bytes of the next engine
        ours = [float(ln.split()[0]) for ln in f.run(["tcpdump", "-r", str(cap), "-n", "-tt",
                f"src host {A} and tcp src port 179 or src host {A} and tcp dst port 179"]).stdout.splitlines()
                if "length" in ln and not ln.rstrip().endswith("length 0")]
        gaps = [round(next((t for t in ours if t > k), float("nan")) - k, 3) for k in KILLS[-len(ROUNDS):]]
        print("seconds from each kill to the next BGP message from FCR:", gaps)
        assert all(g < HOLD - 3 for g in gaps), gaps  # within hold time - keepalive interval

        # a session that ends normally is dropped by the holder first: the FIN goes out,
        # and the new session is the one held
        frr.vtysh(f"clear bgp ipv4 unicast {A}")
        wait_until(lambda: cur.neighbor(B).get("established-transitions", 0) > nb["established-transitions"]
                   and cur.neighbor_state(B) == "Established", 30, 0.2, "session re-established")
        wait_until(lambda: h.run(["ss", "-Htan", "state", "close-wait"]).stdout.strip() == ""
                   and h.run(["ss", "-Htan", "state", "fin-wait-2"]).stdout.strip() == "", 10, 0.2,
                   "the old connection closed on our side")
        st = wait_until(lambda: (s := holder_query(holder)) and len(s["sessions"]) == 1 and s, 10, 0.1, "held")
        est = [ln for ln in h.run(["ss", "-Htan", "state", "established", "( sport = :179 or dport = :179 )"]
                                  ).stdout.splitlines() if ln.strip()]
        assert len(est) == 1, est
    finally:
        if tcpdump is not None:
            with contextlib.suppress(Exception):
                tcpdump.kill()
        for r in reversed(routers):
            r.stop()
        _kill(holder_pid)
        if bfd_pid and _alive(bfd_pid):
            _kill(bfd_pid)


def test_issu_then_crash_frr(topology, workdir):
    """The holder follows the sessions through in-service upgrades (the old engine drops
    its duplicates before the sockets are closed in repair mode, the new engine puts its
    restored ones); then the upgraded engine is killed and a new one recovers."""
    from appliance.nsr.issu import run_issu
    from tests.topotest.fcr import fcrd_env, fcrd_path

    h, f = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h, f, [f"{A}/24"], [f"{B}/24"])
    frr = start_frr(f, workdir, frr_config())
    store = str(workdir / "nsr.db")
    holder = str(workdir / "run" / "holder.sock")
    fcr = FcrRouter(h, workdir / "fcr0", fcr_config(), extra_args=[
        "--nsr-store", store, "--engine-id", "e0", "--nsr-holder", holder])
    routers = [fcr]
    holder_pid = None
    pids: list[int] = []
    try:
        fcr.wait_established(B, 60)
        wait_until(lambda: frr_view(frr)["prefixes-received"] == N_ROUTES, 60, 0.5, "FRR has our routes")
        wait_until(lambda: fcr.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES, 60, 0.5, "FCR has all")
        wait_until(lambda: frr_bfd(frr).get("status") == "up", 20, 0.2, "BFD up")
        holder_pid = wait_until(lambda: (s := holder_query(holder)) and s["sessions"] and s["pid"], 10, 0.1,
                                "held")
        time.sleep(1)
        before = frr_view(frr)
        control = str(fcr.control)
        for i in range(2):
            def start(engine_id: str, ctl: str, i=i):
                return h.popen([fcrd_path(), "--config", str(workdir / "fcr0" / "fcrd.json"),
                                "--control", ctl, "--nsr-store", store, "--engine-id", engine_id,
                                "--nsr-holder", holder, "--standby", "--control-after-adopt", control],
                               log=workdir / f"issu-{i}.log", env=fcrd_env())
            out = run_issu(control, start)
            pids.append(out["pid"])
            assert out["adopted"]["peers"] == [B]
            st = wait_until(lambda eid=out["engine-id"]: (s := holder_query(holder)) and s["sessions"]
                            and s["sessions"][0]["engine-id"] == eid and s, 10, 0.1,
                            "the new engine's socket is held")
            assert len(st["sessions"]) == 1 and not st["sessions"][0]["orphan"], st
            print(f"ISSU {i}: switchover {out['switchover']:.3f} s; holder {st['sessions']}")
        os.kill(pids[-1], signal.SIGKILL)
        t_kill = time.monotonic()
        wait_until(lambda: all(s["orphan"] for s in holder_query(holder)["sessions"]), 5, 0.05, "orphaned")
        new = start_recovering(h, workdir / "fcr9", store, "e9", holder)
        routers.append(new)
        t_ready = time.monotonic() - t_kill
        wait_until(lambda: new.neighbor_state(B) == "Established", 10, 0.1, "adopted")
        wait_until(lambda: new.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES, 30, 0.2, "re-learned")
        print(f"crash after ISSU: new engine answering {t_ready:.2f} s after the kill; {recovery_line(new)}")
        peer_saw_nothing(frr, before, new)
    finally:
        for r in reversed(routers):
            r.stop()
        for pid in pids:
            _kill(pid)
        _kill(holder_pid)


def test_killed_mid_release_frr(topology, workdir, monkeypatch):
    """Killed in the middle of a switchover, after its sockets were dumped (in repair mode,
    4-tuples frozen by nftables) but before the lease moved: the standby gets nothing, the
    recovering engine lifts the freeze, leaves repair mode and continues; FRR sees nothing."""
    from appliance.engine.client import ControlError
    from appliance.nsr.issu import IssuError, run_issu
    from tests.topotest.fcr import fcrd_env, fcrd_path

    h, f = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h, f, [f"{A}/24"], [f"{B}/24"])
    frr = start_frr(f, workdir, frr_config())
    store = str(workdir / "nsr.db")
    holder = str(workdir / "run" / "holder.sock")
    monkeypatch.setenv("FCR_NSR_FAULT", "release-after-dump")
    fcr = FcrRouter(h, workdir / "fcr0", fcr_config(), extra_args=[
        "--nsr-store", store, "--engine-id", "e0", "--nsr-holder", holder])
    monkeypatch.delenv("FCR_NSR_FAULT")
    routers = [fcr]
    holder_pid = None
    standby: list = []
    try:
        fcr.wait_established(B, 60)
        wait_until(lambda: frr_view(frr)["prefixes-received"] == N_ROUTES, 60, 0.5, "FRR has our routes")
        wait_until(lambda: fcr.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES, 60, 0.5, "FCR has all")
        wait_until(lambda: frr_bfd(frr).get("status") == "up", 20, 0.2, "BFD up")
        holder_pid = wait_until(lambda: (s := holder_query(holder)) and s["sessions"] and s["bfd"]
                                and s["pid"], 10, 0.1, "held")
        time.sleep(1)
        before = frr_view(frr)
        control = str(fcr.control)

        def start(engine_id: str, ctl: str):
            p = h.popen([fcrd_path(), "--config", str(workdir / "fcr0" / "fcrd.json"),
                         "--control", ctl, "--nsr-store", store, "--engine-id", engine_id,
                         "--nsr-holder", holder, "--standby", "--control-after-adopt", control],
                        log=workdir / "standby.log", env=fcrd_env())
            standby.append(p)
            return p

        with pytest.raises((IssuError, ControlError, OSError)):
            run_issu(control, start)
        assert fcr.proc.wait(10) == 70
        t_kill = time.monotonic()
        for p in standby:
            _stop(p)
        assert "fcr_nsr" in h.run(["nft", "list", "tables"]).stdout  # still frozen
        new = start_recovering(h, workdir / "fcr1", store, "e1", holder)
        routers.append(new)
        t_ready = time.monotonic() - t_kill
        wait_until(lambda: new.neighbor_state(B) == "Established", 10, 0.1, "adopted")
        wait_until(lambda: new.summary()["rib"]["ipv4-unicast"] == 2 * N_ROUTES, 30, 0.2, "re-learned")
        print(f"killed mid-release: new engine answering {t_ready:.2f} s after; {recovery_line(new)}")
        assert "fcr_nsr" not in h.run(["nft", "list", "tables"]).stdout
        peer_saw_nothing(frr, before, new)
    finally:
        for r in reversed(routers):
            r.stop()
        for p in standby:
            _stop(p)
        _kill(holder_pid)


def _stop(proc) -> None:
    from tests.topotest.netns import Host

    Host.stop_process(proc)


def test_crash_keeps_the_fib(topology, workdir):
    """With the FIB on (1,000 routes from FRR in the kernel, protocol 196): the kernel routes
    stay through the crash and the recovery (reconcile, no flush: `ip monitor route` shows
    no deletion), and the new engine converges once FRR's routes are back (EoRR)."""
    n_frr = 1000
    frr_nets = prefixes("10.128.0.0/9", n_frr)
    cfg = fcr_config()
    cfg["fcr-routing:routing"] = {}
    cfg["fcr-bgp:bgp"]["networks"]["network"] = [{"prefix": p} for p in FCR_NETS[:100]]
    h, f = topology.add_host("fcr"), topology.add_host("frr")
    topology.link(h, f, [f"{A}/24"], [f"{B}/24"])
    frr = start_frr(f, workdir, frr_config(frr_nets))
    holder = str(workdir / "run" / "holder.sock")
    fcr = FcrRouter(h, workdir / "fcr0", cfg, extra_args=["--engine-id", "e0", "--nsr-holder", holder])
    routers = [fcr]
    holder_pid = None

    def kernel() -> int:
        out = h.run(["ip", "-4", "route", "show", "proto", "196"]).stdout
        return sum(1 for ln in out.splitlines() if ln.strip())

    try:
        fcr.wait_established(B, 60)
        wait_until(lambda: kernel() == n_frr, 60, 0.5, "FRR's routes in the kernel")
        wait_until(lambda: fcr.ctl("rib.routes", limit=0)["converged"], 30, 0.5, "converged")
        holder_pid = wait_until(lambda: (s := holder_query(holder)) and s["sessions"] and s["bfd"]
                                and s["pid"], 10, 0.1, "held")
        before = frr_view(frr)
        mon = h.popen(["ip", "monitor", "route"], log=workdir / "monitor.log")
        time.sleep(0.5)
        os.kill(fcr.fcrd_pid, signal.SIGKILL)
        fcr.proc.wait(10)
        assert kernel() == n_frr  # nothing removed with the engine
        new = FcrRouter(h, workdir / "fcr1", cfg, extra_args=[
            "--engine-id", "e1", "--nsr-holder", holder, "--recover"], start=False)
        new.start(timeout=30)
        routers.append(new)
        wait_until(lambda: new.neighbor(B).get("prefixes-received") == n_frr, 30, 0.2, "re-learned")
        wait_until(lambda: new.ctl("rib.routes", limit=0)["converged"], 30, 0.2, "converged again")
        time.sleep(1)
        mon.send_signal(signal.SIGINT)
        mon.wait(5)
        assert kernel() == n_frr
        deleted = [ln for ln in (workdir / "monitor.log").read_text().splitlines() if ln.startswith("Deleted")]
        assert deleted == [], deleted[:5]
        print(f"FIB kept through the crash: {kernel()} routes; {recovery_line(new)}")
        view = frr_view(frr)
        for k in ("state", "established-count", "dropped", "opens-recv", "notifications-recv"):
            assert view[k] == before[k], (k, view, before)
    finally:
        for r in reversed(routers):
            r.stop()
        _kill(holder_pid)
