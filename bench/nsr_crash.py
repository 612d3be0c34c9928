"""NSR crash benchmark: kill -9 of the active fcrd (crash guard, ``--nsr-holder``) under a
full table, then the recovering engine (``fcrd --nsr-holder PATH --recover``).

Set-up as bench/nsr_switchover.py (its helpers are imported, not copied): fcrd (AS 65000,
FIB disabled, embedded checkpoint store, hold 9 s / keepalive 3 s) in one namespace, raw BGP
speakers (one process, bench/feed.py's encoder, nothing of appliance/) on 10.77.1.1 ...
10.77.1.N in another; fcrd connects. R routes in total (R / N per peer, 16 per attribute
set), the first peer iBGP and every route NO_EXPORT, so that with N > 1 peer 1 gets
everything the others sent and the others nothing (one full Adj-RIB-Out). The initial feed is
paced as in nsr_switchover.py (unpaced for one peer, 100,000 routes/s up to 10, 10,000
above). The bench starts the socket holder itself (``python -m appliance.nsr.holder``, so
that it has its pid), then fcrd with ``--nsr-holder``.

Unlike nsr_switchover.py's speaker, this one advertises enhanced route refresh (RFC 7313,
capability 70) and answers a ROUTE-REFRESH as a peer would: BoRR, its routes again (the same
UPDATEs, without the End-of-RIB marker), EoRR; unpaced by default (``--refresh-rate``). The
recovering engine asks every peer for a ROUTE-REFRESH and holds its own output until every
peer's EoRR (or its relearn timeout, RELEARN_TIMEOUT = 10 s; without enhanced route refresh
it would release after 2 s with nothing re-learned: nsr_switchover.py's speaker advertises
plain route refresh only and does not answer it). The speaker also counts what FCR sends
between its BoRR and EoRR.

Per case: table complete and fcrd idle, the holder has every session; the speakers send a
KEEPALIVE every ``--probe-ms`` ms per session from ~2 s before the kill until the new engine
has the whole table again (so FCR's kernel ACKs all the time and "the last segment before
the kill" is within a delayed-ACK of it); tcpdump on the speakers' side of the veth. At a
random point of the keepalive cycle: SIGKILL to fcrd, then ``fcrd --recover`` with a new
engine id. Measured:

- peer-visible gap per session (capture): last segment from FCR (any, ACKs included) before
  the kill to the first segment with BGP payload from FCR after it (the recovered engine:
  the rest of a half-written message, or its KEEPALIVE), and to the first segment holding a
  KEEPALIVE or ROUTE-REFRESH marker in its first 256 captured bytes; kill to that first BGP
  payload (the capture's clock is the wall clock of the kill); the same from the speaker's
  own receive times (monotonic, application level) as a cross-check;
- kill to the new engine's control socket answering, to its ``nsr.recovered`` and
  ``bgp.output-released`` log events (the log's ms timestamps) with the release reason;
- kill to the new engine's RIB complete again (re-learned by route refresh) and to the EoRR
  from FCR at the table peer (its table re-sent);
- longest silence of FCR at the speakers (longest time between two BGP messages, from just
  before the kill until the end), to be compared with the 9 s hold time;
- sessions dropped: a speaker session closed, a NOTIFICATION, a speaker's hold timer
  expired (recorded, the speaker goes on), RST/FIN from FCR in the capture, a neighbor of the
  new engine not Established, ``bgp.recover-reset`` / ``nsr.recover-refused`` in its log;
- routes re-sent to the peers after the kill (prefixes and withdrawals counted by the
  speakers), BoRR / EoRR from FCR;
- VmHWM of the old fcrd (just before the kill) and of the new one (once idle).

    .venv/bin/python bench/nsr_crash.py                        # default cases
    .venv/bin/python bench/nsr_crash.py --cases 1x1000000,10x10000

Needs root. Logs, captures and results.json go to bench/results/nsr_crash-<time>/.
Everything started (holder, fcrd, speaker, tcpdump) is stopped by its pid and the namespaces
deleted on every exit path (return, exception, SIGINT/SIGTERM/SIGHUP).
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import json
import os
import random
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import nsr_switchover as sw  # noqa: E402  (bench helpers: speaker session, feed, pcap, driver)
from nsr_switchover import (  # noqa: E402
    FCR_ADDR,
    FCR_AS,
    PYTHON,
    Sess,
    build_feed,
    ctl,
    dropped_text,
    emit,
    fcr_config,
    feedmod,
    log,
    parse_cases,
    peer_addr,
    peer_as,
    proc_status,
    run_bench,
    speaker_parser,
    wait_for,
    wait_idle,
)

DEFAULT_CASES = "1x1000000,10x10000,10x1000000,100x1000000"
HOLD = sw.HOLD
ROUTE_REFRESH = 5
AFI_SAFI_V4 = struct.pack("!H", 1)  # AFI 1; then subtype; then SAFI 1


def route_refresh(subtype: int) -> bytes:
    return feedmod.message(ROUTE_REFRESH, AFI_SAFI_V4 + bytes([subtype, 1]))


def open_message_err(local_as: int, hold_time: int, router_id: str) -> bytes:
    """feed.open_message plus the enhanced route refresh capability (70, RFC 7313)."""
    caps = b"".join((
        b"\x01\x04" + struct.pack("!HBB", 1, 0, 1),  # multiprotocol IPv4 unicast
        b"\x02\x00",  # route refresh
        b"\x46\x00",  # enhanced route refresh
        b"\x41\x04" + struct.pack("!I", local_as),  # 4-octet AS
    ))
    params = b"\x02" + bytes([len(caps)]) + caps
    my_as = local_as if local_as <= 0xFFFF else feedmod.AS_TRANS
    body = struct.pack("!BHH4sB", 4, my_as, hold_time, socket.inet_aton(router_id), len(params))
    return feedmod.message(feedmod.OPEN, body + params)


# =========================================================================== speaker


class RrSess(Sess):
    """A speaker session that answers ROUTE-REFRESH (BoRR, the feed, EoRR) and records
    the route refreshes and message types it gets from FCR after ``arm``."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.requests: list[float] = []  # times of ROUTE-REFRESH requests from FCR
        self.borr: list[float] = []
        self.eorr: list[float] = []
        self.armed = 0.0
        self.first_after: dict[str, float] = {}  # first message of each type after arm
        self.last_before = 0.0  # last message from FCR before arm
        self.refresh_due = False
        self.refresh_sent: list[float] = []  # our EoRR handed to the kernel

    def parse(self, now: float) -> None:
        buf = self.rbuf
        off, end = 0, len(buf)
        names = {1: "open", 2: "update", 3: "notification", 4: "keepalive", 5: "route-refresh"}
        for _ in range(1_000_000):
            if off + 19 > end:
                break
            length, mtype = struct.unpack_from("!HB", buf, off + 16)
            if length < 19 or off + length > end:
                break
            if self.armed:
                key = names.get(mtype, str(mtype))
                if mtype == ROUTE_REFRESH and length >= 23:
                    key += {0: "", 1: "-borr", 2: "-eorr"}.get(buf[off + 21], "-other")
                self.first_after.setdefault(key, now)
                self.first_after.setdefault("any", now)
            if mtype == ROUTE_REFRESH and length >= 23:
                sub = buf[off + 21]
                if sub == 0:
                    self.requests.append(now)
                    self.refresh_due = True
                elif sub == 1:
                    self.borr.append(now)
                elif sub == 2:
                    self.eorr.append(now)
            off += length
        if self.armed == 0.0 and off:
            self.last_before = now
        super().parse(now)  # counts UPDATEs, KEEPALIVEs, NOTIFICATIONs (ROUTE-REFRESH as "other")

    def status(self) -> dict:
        return {**super().status(), "requests": self.requests, "borr": self.borr, "eorr": self.eorr,
                "first_after": self.first_after, "last_before": self.last_before,
                "refresh_sent": self.refresh_sent}


class RrSpeaker(sw.Speaker):
    """nsr_switchover.py's speaker loop, plus route refresh answers and ``arm``."""

    def __init__(self, sessions: list[RrSess], max_seconds: float, refresh_rate: float) -> None:
        super().__init__(sessions, max_seconds)
        self.refresh_rate = refresh_rate
        for s in sessions:
            s.eorr_marker = None  # the EoRR of the answer being sent (its time: refresh_sent)

    def received(self, s: RrSess, t: float) -> None:
        if s.refresh_due:
            s.refresh_due = False
            emit(event="refresh-request", peer=s.local, t=t)
            s.wq.append(route_refresh(1))  # BoRR
            self.flush(s)
            s.eorr_marker = s.refresh[-1][0]
            self.start_feed(s, s.refresh, self.refresh_rate)
            if self.refresh_rate:
                self.rate = self.refresh_rate
                self.t_tokens = time.monotonic()

    def sent(self, s: RrSess, data: bytes) -> None:
        if data is s.eorr_marker:
            s.refresh_sent.append(time.monotonic())

    def command(self, c: dict) -> None:
        if c.get("cmd") == "arm":  # just before the kill: note what comes after
            t = time.monotonic()
            for s in self.sessions:
                s.max_gap = 0.0
                s.armed = t
            emit(event="armed", t=t)
        else:
            super().command(c)


def cmd_speaker(args) -> int:
    feedmod._install_signal_exit()
    feedmod.open_message = open_message_err  # (this process only: Sess.handshake's OPEN)
    n, total = args.peers, args.routes
    t0 = time.monotonic()
    nlri = feedmod.nlri_blob(total)
    sessions = [RrSess(i, peer_addr(i), peer_as(i, 1, "no-export"), args.hold) for i in range(n)]
    eor = feedmod.end_of_rib_ipv4()
    for i, s in enumerate(sessions):
        s.feeds = [build_feed(i, total * i // n, total * (i + 1) // n, nlri, s.asn, s.local,
                              ibgp=s.asn == FCR_AS, no_export=True)]
        last, r = s.feeds[0][-1]
        assert last.endswith(eor)
        # the refresh answer: the same UPDATEs without End-of-RIB, then EoRR
        s.refresh = [*s.feeds[0][:-1], (last[:-len(eor)], r), (route_refresh(2), 0)]
    del nlri
    return RrSpeaker(sessions, args.max_seconds, args.refresh_rate).run(args.connect, True, t0)


# =========================================================================== capture


def read_pcap_head(path: Path, fcr: str) -> dict[str, list]:
    """Per peer address: FCR->peer segments [(t, payload_len, flags, first payload bytes)].
    (nsr_switchover.read_pcap keeps no payload bytes; message types are needed here.)"""
    out: dict[str, list] = {}
    fcr_b = socket.inet_aton(fcr)
    for t, ip in sw.pcap_ipv4_tcp(path):
        if ip[12:16] != fcr_b:
            continue
        ihl = (ip[0] & 15) * 4
        total = (ip[2] << 8) | ip[3]
        tcp = ip[ihl:]
        if len(tcp) < 20:
            continue
        doff = (tcp[12] >> 4) * 4
        out.setdefault(socket.inet_ntoa(ip[16:20]), []).append((t, total - ihl - doff, tcp[13], bytes(tcp[doff:])))
    return out


MARKER = b"\xff" * 16


def has_type(head: bytes, types: tuple[int, ...]) -> bool:
    """A BGP message of one of ``types`` starts in these captured bytes."""
    i = head.find(MARKER)
    for _ in range(64):
        if i < 0 or i + 19 > len(head):
            return False
        # a run of more than 16 0xff (the end of a previous marker-like field): step on
        if head[i + 18] in types and head[i + 16:i + 18] != b"\xff\xff":
            return True
        i = head.find(MARKER, i + 1)
    return False


def gap_of(segs: list, t_kill: float) -> dict:
    res = {"segments": len(segs), "rst_fin": sum(1 for _t, _p, f, _h in segs if f & 0x05)}
    before = [t for t, _p, _f, _h in segs if t <= t_kill]
    after = [(t, h) for t, p, _f, h in segs if p > 0 and t > t_kill]
    if not before or not after:
        return res
    t_b = before[-1]
    res["last_before_kill_ms"] = (t_kill - t_b) * 1000
    res["gap_first_bgp_ms"] = (after[0][0] - t_b) * 1000
    res["kill_to_first_bgp_ms"] = (after[0][0] - t_kill) * 1000
    ka = next((t for t, h in after if has_type(h, (4, 5))), None)
    if ka is not None:
        res["gap_first_ka_rr_ms"] = (ka - t_b) * 1000
        res["kill_to_first_ka_rr_ms"] = (ka - t_kill) * 1000
    pay = [t for t, p, _f, _h in segs if p > 0]
    if len(pay) >= 2:
        res["max_bgp_gap_ms"] = max(pay[j + 1] - pay[j] for j in range(len(pay) - 1)) * 1000
    return res


_TS = re.compile(r"ts=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z")


def log_events(path: Path, names: tuple[str, ...]) -> dict[str, tuple[float, str]]:
    """First occurrence of each event in an fcrd log: (wall-clock time, the line)."""
    out: dict[str, tuple[float, str]] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            for name in names:
                if name not in out and f"event={name} " in line + " ":
                    m = _TS.search(line)
                    if m:
                        t = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) + int(m.group(2)) / 1000
                        out[name] = (t, line)
    return out


def count_events(path: Path, name: str) -> int:
    with contextlib.suppress(OSError):
        return sum(1 for ln in path.read_text(errors="replace").splitlines() if f"event={name} " in ln + " ")
    return 0


def summ_ms(xs: list[float]) -> dict | None:
    xs = sorted(xs)
    return {"median": statistics.median(xs), "max": xs[-1], "min": xs[0]} if xs else None


# =========================================================================== driver


class Bench(sw.Bench):
    """nsr_switchover.Bench's namespaces, fcrd, speaker and capture; run_case is the crash."""

    speaker_script = Path(__file__).resolve()  # the speaker with route refresh (RrSpeaker)

    def __init__(self, args) -> None:
        args.churn = []
        super().__init__(args)
        old = self.rundir
        self.rundir = BENCH / "results" / f"nsr_crash-{time.strftime('%Y%m%d-%H%M%S')}"
        self.rundir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.rundir, 0o755)
        with contextlib.suppress(OSError):
            old.rmdir()

    def run(self) -> None:
        for n, r in self.args.cases:
            self.results.append(self.run_case(n, r))
            (self.rundir / "results.json").write_text(json.dumps(
                {"command": self.args.command, "results": self.results}, indent=1))

    def run_case(self, n: int, routes: int) -> dict:
        from appliance.nsr.holder import query as holder_query
        from tests.topotest.fcr import fcrd_env
        from tests.topotest.netns import Host

        a = self.args
        tag = f"{n}x{routes}"
        wd = self.case_dir(tag)
        (wd / "run").mkdir()
        (wd / "fcrd.json").write_text(json.dumps(fcr_config(n, 1, False, a.hold, "no-export"), indent=1))
        ctl0, ctl1 = str(wd / "fcrd0.ctl"), str(wd / "fcrd1.ctl")
        store, holder = str(wd / "nsr.db"), str(wd / "run" / "holder.sock")
        probe_ms = a.probe_ms or (10 if n <= 10 else 20)
        rate = a.feed_rate if a.feed_rate >= 0 else (0 if n == 1 else 100_000 if n <= 10 else 10_000)
        row: dict = {"peers": n, "routes": routes, "hold": a.hold, "probe_ms": probe_ms, "feed_rate": rate,
                     "refresh_rate": a.refresh_rate, "loadavg_before": round(os.getloadavg()[0], 2),
                     "status": "error"}
        procs: list[subprocess.Popen] = []
        tcpdump = None
        ev = None

        def share(i: int) -> int:
            return routes * (i + 1) // n - routes * i // n

        expect_out = routes - share(0) if n > 1 else 0  # what peer 1 (iBGP) gets back

        try:
            hp = self.h_fcr.popen([PYTHON, "-m", "appliance.nsr.holder", "--socket", holder],
                                  log=wd / "holder.log", env=fcrd_env())
            procs.append(hp)
            wait_for(lambda: holder_query(holder), 10, "holder", hp)
            log(f"{tag}: holder pid {hp.pid}; start fcrd (active, crash guard)")
            old = self.start_fcrd(wd, ["--control", ctl0, "--nsr-store", store, "--engine-id", "e0",
                                       "--nsr-holder", holder], "0")
            procs.append(old)
            wait_for(lambda: ctl(ctl0, "nsr.status").get("active"), 30, "fcrd active", old)
            ev = self.start_speaker(wd, procs, n, routes, 3 * a.case_timeout + 300,
                                    ["--refresh-rate", str(a.refresh_rate)])
            log(f"{tag}: {n} sessions Established; feeding {routes:,} routes (rate {rate or 'unpaced'})")
            t_feed = time.monotonic()
            ev.send(cmd="send", rate=rate)
            self.wait_table(old, ctl0, ev, routes, {0: expect_out}, t_feed, row, tag)
            st = wait_for(lambda: (s := holder_query(holder)) and len(s["sessions"]) == n
                          and not any(x["orphan"] for x in s["sessions"]) and s, 30, "holder has every session")
            row["holder_sessions"] = len(st["sessions"])
            log(f"{tag}: table complete in {row['feed_s']} s; the holder has {n} sessions")
            before = {s["peer"]: s for s in ev.status()}
            before_fcr = {x["neighbor-address"]: x for x in ctl(ctl0, "bgp.summary", timeout=60)["neighbors"]}

            tcpdump, cap = self.start_capture(wd, 320, 65536)
            ev.send(cmd="probe", ms=probe_ms)
            ev.wait("probe", 10)
            time.sleep(2.0 + random.uniform(0, a.hold / 3))  # a random point of the keepalive cycle
            ev.send(cmd="arm")
            ev.wait("armed", 10)
            row["rss_old_kib"] = proc_status(old.pid, "VmHWM")
            # -- the crash
            w_kill = time.time()
            t_kill = time.monotonic()
            os.kill(old.pid, signal.SIGKILL)
            old.wait(10)
            wait_for(lambda: all(x["orphan"] for x in holder_query(holder)["sessions"]), 5, "orphaned", period=0.01)
            t_new = time.monotonic()
            new = self.start_fcrd(wd, ["--control", ctl1, "--nsr-store", store, "--engine-id", "e1",
                                       "--nsr-holder", holder, "--recover"], "1")
            procs.append(new)
            row["kill_to_start_s"] = round(t_new - t_kill, 3)
            wait_for(lambda: ctl(ctl1, "nsr.status", timeout=2).get("active"), 60, "new fcrd active", new,
                     period=0.02)
            row["kill_to_control_s"] = round(time.monotonic() - t_kill, 3)
            # -- recovery: RIB complete (polled every 50 ms), output released, the table peer
            # got its table again
            rib_t = None
            for _ in range(10_000):
                if new.poll() is not None:
                    raise RuntimeError(f"new fcrd exited with {new.returncode}")
                with contextlib.suppress(OSError):
                    if ctl(ctl1, "bgp.summary", timeout=30)["rib"]["ipv4-unicast"] >= routes:
                        rib_t = time.monotonic()
                        break
                if time.monotonic() > t_kill + a.case_timeout:
                    break
                time.sleep(0.05)
            row["kill_to_rib_complete_s"] = None if rib_t is None else round(rib_t - t_kill, 2)
            ev.send(cmd="probe", ms=0)
            log(f"{tag}: new fcrd active {row['kill_to_control_s']} s after the kill, RIB complete "
                f"{row['kill_to_rib_complete_s']} s after it")
            l1 = wd / "fcrd-1.log"
            evs = wait_for(lambda: (e := log_events(l1, ("nsr.recovered", "bgp.recovered", "bgp.output-released")))
                           and "bgp.output-released" in e and e, 60, "bgp.output-released", new, 0.2)
            if n > 1:
                with contextlib.suppress(RuntimeError):
                    wait_for(lambda: ev.status()[0]["eorr"], max(10.0, t_kill + a.case_timeout - time.monotonic()),
                             "EoRR from FCR at the table peer", new, 0.5)
            # at least a hold time after the kill, so an expiry would show
            time.sleep(max(0.0, t_kill + a.hold + 1 - time.monotonic()))
            idle = wait_idle(new.pid, 180)
            row["settle_after_s"] = None if idle is None else round(idle, 2)
            row["rss_new_kib"] = proc_status(new.pid, "VmHWM")
            after = {s["peer"]: s for s in ev.status()}
            row["tcpdump"] = self.stop_capture(tcpdump, wd)
            for name, (t, _line) in evs.items():
                row[f"kill_to_{name}_s"] = round(t - w_kill, 3)
            rel = evs["bgp.output-released"][1]
            m = re.search(r"reason=(\S+)", rel)
            row["release_reason"] = m.group(1) if m else None
            row["recovered_line"] = evs.get("nsr.recovered", (0, ""))[1].split("event=", 1)[-1]
            # -- checks
            summ = ctl(ctl1, "bgp.summary", timeout=60)
            row["rib_after"] = summ["rib"]["ipv4-unicast"]
            problems = []
            for x in summ["neighbors"]:
                addr = x["neighbor-address"]
                if x.get("state") != "Established":
                    problems.append(f"{addr}: {x.get('state')} on the new engine")
                b = before_fcr.get(addr, {})
                if x.get("established-transitions") != b.get("established-transitions"):
                    row.setdefault("transitions_changed", []).append(
                        [addr, b.get("established-transitions"), x.get("established-transitions")])
            if row["rib_after"] != routes:
                problems.append(f"RIB {row['rib_after']} after, {routes} expected")
            for name in ("bgp.recover-reset", "nsr.recover-refused"):
                c = count_events(l1, name)
                if c:
                    problems.append(f"{c} x {name}")
            resent = withdrawn = 0
            spk_first, spk_ka, spk_gap = [], [], []
            for peer, s in after.items():
                for k in ("lost", "hold_expired"):
                    if s[k]:
                        problems.append(f"{peer}: {s[k]}")
                b = before[peer]
                resent += s["nlri"] - b["nlri"]
                withdrawn += s["withdrawn"] - b["withdrawn"]
                fa = s["first_after"]
                if "any" in fa:
                    spk_first.append((fa["any"] - t_kill) * 1000)
                    spk_gap.append((fa["any"] - s["last_before"]) * 1000)
                if "keepalive" in fa:
                    spk_ka.append((fa["keepalive"] - t_kill) * 1000)
            row["resent_prefixes"] = resent
            row["resent_withdrawn"] = withdrawn
            row["borr_from_fcr"] = sum(len(s["borr"]) for s in after.values())
            row["eorr_from_fcr"] = sum(len(s["eorr"]) for s in after.values())
            row["rr_requests"] = sum(len(s["requests"]) for s in after.values())
            eorr0 = after[peer_addr(0)]["eorr"]
            row["kill_to_table_eorr_s"] = round(eorr0[-1] - t_kill, 2) if n > 1 and eorr0 else None
            ours = [t for s in after.values() for t in s["refresh_sent"]]
            row["kill_to_peers_refresh_sent_s"] = round(max(ours) - t_kill, 2) if ours else None
            row["max_silence_s"] = round(max(s["max_gap"] for s in after.values()), 3)
            row["speaker_kill_to_first_ms"] = summ_ms(spk_first)
            row["speaker_kill_to_keepalive_ms"] = summ_ms(spk_ka)
            row["speaker_gap_ms"] = summ_ms(spk_gap)
            segs = read_pcap_head(cap, FCR_ADDR)
            per = {p: gap_of(segs.get(p, []), w_kill) for p in (peer_addr(i) for i in range(n))}
            rst = sum(v["rst_fin"] for v in per.values())
            if rst:
                problems.append(f"{rst} RST/FIN from FCR in the capture")
            missing = [p for p, v in per.items() if "gap_first_bgp_ms" not in v]
            if missing:
                problems.append(f"no capture for {len(missing)} sessions: {missing[:3]}")
            for k in ("gap_first_bgp_ms", "gap_first_ka_rr_ms", "kill_to_first_bgp_ms", "kill_to_first_ka_rr_ms",
                      "last_before_kill_ms"):
                row[k] = summ_ms([v[k] for v in per.values() if k in v])
            row["per_session"] = per
            row["problems"] = problems
            row["status"] = "ok"
            log(f"{tag}: gap {fmt(row['gap_first_bgp_ms'])} ms, kill->first msg {fmt(row['kill_to_first_bgp_ms'])} ms, "
                f"output released {row.get('kill_to_bgp.output-released_s')} s ({row['release_reason']}), "
                f"RIB {row['kill_to_rib_complete_s']} s, silence {row['max_silence_s']} s, re-sent {resent:,}, "
                f"VmHWM new {row['rss_new_kib'] // 1024} MiB; problems: {problems or 'none'}")
            with contextlib.suppress(Exception):
                ev.send(cmd="stop")
            return row
        except Exception as exc:  # noqa: BLE001 - reported as a failed row, the bench goes on
            log(f"{tag}: FAILED: {exc!r}")
            row["error"] = repr(exc)[:500]
            return row
        finally:
            if tcpdump is not None:
                Host.stop_process(tcpdump)
            for p in reversed(procs):  # new fcrd, speaker, old fcrd (dead), holder
                Host.stop_process(p)


def fmt(d: dict | None, key: str = "median") -> str:
    return "-" if not d else f"{d[key]:.0f}"


def table(results: list[dict]) -> str:
    lines = [
        "| peers x routes | gap: last segment before the kill to the first BGP message, ms median / max "
        "| same, to the first KEEPALIVE / ROUTE-REFRESH, ms median / max | kill to first BGP message ms, max "
        "| kill to new engine answering s | kill to output released s (reason) | kill to RIB re-learned s "
        "| kill to table re-sent (EoRR at peer 1) s | longest silence of FCR s | routes re-sent "
        "| VmHWM old / new MiB | sessions dropped |",
        "|---|---|---|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        case = f"{r['peers']} x {r['routes']:,}"
        if r.get("status") != "ok":
            lines.append(f"| {case} | error: {r.get('error', '')[:120]} | | | | | | | | | | |")
            continue
        g, k = r["gap_first_bgp_ms"], r["gap_first_ka_rr_ms"]
        dropped = dropped_text(r)
        rel = r.get("kill_to_bgp.output-released_s")
        eorr = r.get("kill_to_table_eorr_s")
        lines.append(
            f"| {case} | {fmt(g)} / {fmt(g, 'max')} | {fmt(k)} / {fmt(k, 'max')} "
            f"| {fmt(r['kill_to_first_bgp_ms'], 'max')} | {r['kill_to_control_s']:.2f} "
            f"| {'-' if rel is None else f'{rel:.2f}'} ({r['release_reason']}) "
            f"| {'-' if r['kill_to_rib_complete_s'] is None else r['kill_to_rib_complete_s']} "
            f"| {'-' if eorr is None else eorr} | {r['max_silence_s']:.1f} "
            f"| {r['resent_prefixes']:,} | {r['rss_old_kib'] / 1024:.0f} / {r['rss_new_kib'] / 1024:.0f} "
            f"| {dropped} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "speaker":
        sp = speaker_parser("nsr_crash.py speaker")
        sp.add_argument("--refresh-rate", type=float, default=0)
        return cmd_speaker(sp.parse_args(argv[1:]))
    p = argparse.ArgumentParser(description="NSR crash (kill -9) benchmark")
    p.add_argument("--cases", default=DEFAULT_CASES, help=f"peers x routes, comma separated (default {DEFAULT_CASES})")
    p.add_argument("--feed-rate", type=float, default=-1,
                   help="initial feed, routes per second all speakers together (default as nsr_switchover.py)")
    p.add_argument("--refresh-rate", type=float, default=0,
                   help="route refresh answers, routes per second all speakers together (default 0: unpaced)")
    p.add_argument("--probe-ms", type=float, default=0,
                   help="KEEPALIVE period per session around the kill (default 10, 20 above 10 peers)")
    p.add_argument("--case-timeout", type=float, default=300.0, help="seconds to feed / re-learn one case")
    p.add_argument("--hold", type=int, default=HOLD, help=f"hold time (default {HOLD}), keepalive = hold / 3")
    args = p.parse_args(argv)
    try:
        args.cases = parse_cases(args.cases)
    except ValueError as exc:
        p.error(str(exc))
    got = run_bench(Bench, args, "bench/nsr_crash.py", argv)
    if got is None:
        return 2
    bench, out = got
    (bench.rundir / "results.json").write_text(json.dumps(out, indent=1))
    print()
    print(table(bench.results))
    print(f"\n{len(bench.results)} cases in {out['seconds']} s (git {out['git']}); "
          f"logs, captures and results.json: {bench.rundir}")
    return 0 if all(r.get("status") == "ok" and not r.get("problems") for r in bench.results) else 1


if __name__ == "__main__":
    sys.exit(main())
