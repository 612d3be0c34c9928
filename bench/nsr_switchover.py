"""NSR switchover benchmark: ISSU (appliance.nsr.issu.run_issu) under a full table.

For each case (N peers, R routes) an active fcrd (FIB disabled, embedded checkpoint store,
hold time 9 s / keepalive 3 s like tests/interop/test_nsr_issu.py) holds N BGP sessions with
raw BGP speakers (one process, ``speaker`` sub-command, independent of the code under test:
bench/feed.py's encoder); the speakers announce R routes in total (R / N each, 16 prefixes per
attribute set as in feed A). fcrd connects to the speakers (they listen), as in the FRR ISSU
test; with ``--fcr-passive`` the speakers connect (the sessions then use FCR's port 179, which
the new engine's listener must share: broken before 1d65717).

Who gets FCR's table: FCR never sends a route back to the peer it came from, so with one peer
nothing goes back. With more, the first ``--table-peers`` peers (default 1) get everything the
others sent, the others get nothing, so that there is one full Adj-RIB-Out and not N:

- ``--filter no-export`` (default): every route carries NO_EXPORT and the table peers are
  iBGP (AS 65000; NO_EXPORT stops eBGP only). FCR drops these per attribute set.
- ``--filter policy``: all eBGP, the other peers have ``default-export-policy reject-route``.
  FCR runs the export hook per prefix and per peer; with 10 peers and 1M routes it starves its
  keepalives (see the docs), so it is not the default.

The speakers pace their feed (``--feed-rate``; unpaced for one peer): unpaced, fcrd with 10 or
more peers goes more than the 9 s hold time without sending a KEEPALIVE while it ingests.

    fcr ns: fcrd 10.77.0.1/16 AS 65000 ---- peers ns: 10.77.1.1 ... 10.77.1.N/16

Measured per case:

- peer-visible freeze, per session, from a packet capture on the peers' side of the veth
  (tcpdump -w, read back here): while the switchover runs every speaker sends a KEEPALIVE every
  ``--probe-ms`` ms on every session, so FCR's side answers (ACKs) all the time; the freeze is
  the longest gap between two segments from FCR's side (any segment: the last one of the old
  socket, the first of the restored one, normally its window probe) from the last segment
  before the release's nftables freeze (``frozen-at``) to the new engine's first BGP message.
  (Before the RIB mirror it was the longest gap starting between the release and the end of
  the adopt; that one is still in results.json as ``window_gap_ms``: with the switchover's
  own gap under ~20 ms it is the ACK cadence of the probes.) Also: the time from the start of that gap to the first
  BGP message of the new engine (its KEEPALIVE); the gap between the last BGP message of the
  old engine and the first of the new one (the literal "last byte of the old, first byte of
  the new": it includes the time since the old engine's last KEEPALIVE, up to 3 s); and the
  longest gap between two BGP messages from FCR in the capture (3.5 s before the ISSU to
  1 s after the old fcrd exited), to be compared with the keepalive interval and hold time;
- box-side freeze from the engines' timings: nftables freeze taken (release ``frozen-at``)
  to sockets restored and unfrozen (adopt ``sockets-restored``), RPC time included;
- run_issu's timings: ``wait-ready`` (standby started until in sync: its RIB mirror has the
  whole table), ``switchover`` (release start to adopt done), ``total``, and the release
  (``rib-state``, ``mirror-flushed``, ``standby-synced``, ``frozen-at``, ``released``) and
  adopt (``records-read``, ``sockets-restored``, ``bgp-adopted``, ``done``) timing dicts;
- peak RSS (VmHWM) of the old fcrd (read before it is stopped) and of the new one (after its
  CPU went idle after the adopt); how long the old one takes to exit after SIGTERM;
- dropped sessions: a speaker session closed, a NOTIFICATION, the speaker's hold timer
  expired (recorded, the speaker goes on), a RST or FIN from FCR in the capture, a neighbor of
  the new engine not Established or with another established transition, routes lost; and
  what FCR re-sent to the peers after the switchover (it should send nothing).

``--churn PxR[,...]``: the RIB mirror under churn, no switchover (each case twice: fcrd
alone, then fcrd with a standby ``fcrd --standby`` started as run_issu starts it and in sync
before the feed). The speakers announce R routes (phase ``announce``), then the same R routes
with one more community (phase ``churn``: every route changes), unpaced unless
``--churn-rate``. Measured per phase:

- ingest: from the feed's start until fcrd has it all (every neighbor's received UPDATE count
  and, with more than one peer, what the table peer got back), with and without the standby
  (the mirror's cost on the active; both on the same 2 cores here), and CPU seconds of each;
- from the checkpoint store itself (read-only SQLite polls every ``--store-poll-ms`` ms,
  nothing of appliance/): each mirror batch (a new newest base/delta record) and when the
  standby's ack (``nsr/mirror/<id>`` ``applied``, what a release waits for) covered it; when
  the last batch was written and acknowledged after fcrd had all the routes;
- from nsr.status of both engines every ``--sample-ms`` ms: the active's ``written`` /
  ``journaled-keys``, the standby's ``applied``, and per ``written`` value the time until the
  standby's ``applied`` reached it (coarse: a busy engine answers late, the call times are in
  results.json);
- VmHWM of both, the longest silence of FCR at the speakers, and after the churn one
  ``nsr.release`` to the standby (refused or not, and why) and its ``nsr.adopt``.

The checkpoint store's own throughput is bench/checkpoint_store.py.

    .venv/bin/python bench/nsr_switchover.py                       # default cases, ~4 min
    .venv/bin/python bench/nsr_switchover.py --churn 1x1000000,10x1000000   # ~4 min
    .venv/bin/python bench/nsr_switchover.py --cases 1x100000      # one quick case
    .venv/bin/python bench/nsr_switchover.py --cases 10x1000000 --hold 90

Needs root (network namespaces ``fcrt-*``, veth, tcpdump). Logs, captures and results.json
go to bench/results/nsr_switchover-<time>/. Everything started is stopped and the
namespaces deleted on every exit path (return, exception, SIGINT/SIGTERM/SIGHUP).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import queue
import selectors
import shlex
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import feed as feedmod  # noqa: E402  (bench-local encoder, independent of the code under test)
import sink as sinkmod  # noqa: E402

PYTHON = sys.executable
FCR_ADDR = "10.77.0.1"
PREFIXLEN = 16
FCR_AS = 65000
PEER_AS0 = 65101
NO_EXPORT = 0xFFFFFF01
CHUNK_SETS = 64  # attribute sets (UPDATEs) per feed chunk: 1,024 routes
HOLD = 9  # default --hold; keepalive interval = hold / 3
DEFAULT_CASES = "1x1000000,10x1000000,100x1000000,10x10000,10x100000"
AIM_FREEZE_MS = 50.0
AIM_SWITCHOVER_S = 1.0


def peer_addr(i: int) -> str:
    return f"10.77.{1 + i // 250}.{1 + i % 250}"


def peer_as(i: int, table_peers: int, filt: str) -> int:
    """``--filter no-export``: the table peers are iBGP (NO_EXPORT stops only eBGP)."""
    return FCR_AS if filt == "no-export" and i < table_peers else PEER_AS0 + i


def emit(**ev) -> None:
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


# =========================================================================== speaker


class Sess:
    """One raw BGP session of the speaker process (non-blocking after the handshake)."""

    def __init__(self, idx: int, local: str, asn: int, hold: int) -> None:
        self.idx, self.local, self.asn, self.hold = idx, local, asn, hold
        self.keepalive = hold / 3
        self.max_gap = 0.0  # longest time without a message from FCR (since the last reset)
        self.sock: socket.socket | None = None
        self.listener: socket.socket | None = None
        self.rbuf = bytearray()
        self.wq: collections.deque = collections.deque()
        self.woff = 0
        self.feed: list = []
        self.feeds: list = []
        self.rx = {"updates": 0, "nlri": 0, "withdrawn": 0, "keepalives": 0, "bytes": 0,
                   "eor": 0, "other": 0}
        self.last_rx = 0.0
        self.last_update_rx = 0.0
        self.next_ka = 0.0
        self.lost: str | None = None  # the session is unusable (closed, NOTIFICATION, ...)
        self.hold_expired: str | None = None  # a real peer would have dropped it (we go on)

    def listen(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((self.local, 179))
        self.listener.listen(1)

    def handshake(self, remote: str, timeout: float) -> None:
        """Connect to FCR (``--fcr-passive``) or accept FCR's connection, then OPEN/KEEPALIVE."""
        if self.listener is not None:
            self.listener.settimeout(timeout)
            s, _addr = self.listener.accept()
            self.listener.close()
            self.listener = None
        else:
            s = self._connect(remote, timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(timeout)
        s.sendall(feedmod.open_message(self.asn, self.hold, self.local))
        got_open = False
        for _ in range(100):
            mtype, body = self._read_blocking(s)
            if mtype == feedmod.OPEN:
                got_open = True
                s.sendall(feedmod.keepalive())
            elif mtype == feedmod.KEEPALIVE and got_open:
                break
            elif mtype == feedmod.NOTIFICATION:
                raise RuntimeError(f"{self.local}: NOTIFICATION {body[:2].hex()}")
        else:
            raise RuntimeError(f"{self.local}: no Established")
        s.setblocking(False)
        self.sock = s
        now = time.monotonic()
        self.last_rx = now
        self.next_ka = now + self.keepalive

    def _connect(self, remote: str, timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        for _ in range(int(timeout / 0.1) + 1):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((self.local, 0))
            try:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                s.connect((remote, 179))
                return s
            except OSError as exc:
                last = exc
                s.close()
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.local}: cannot connect to {remote}: {last!r}")

    def _read_blocking(self, s: socket.socket) -> tuple[int, bytes]:
        for _ in range(10_000):
            if len(self.rbuf) >= 19:
                (length,) = struct.unpack_from("!H", self.rbuf, 16)
                if len(self.rbuf) >= length:
                    mtype, body = self.rbuf[18], bytes(self.rbuf[19:length])
                    del self.rbuf[:length]
                    return mtype, body
            data = s.recv(65536)
            if not data:
                raise RuntimeError(f"{self.local}: closed during the handshake")
            self.rbuf += data
        raise RuntimeError("handshake: no message")

    def parse(self, now: float) -> None:
        buf = self.rbuf
        off, end = 0, len(buf)
        rx = self.rx
        unpack = struct.unpack_from
        while off + 19 <= end:
            length, mtype = unpack("!HB", buf, off + 16)
            if length < 19:
                self.lost = self.lost or f"bad message length {length}"
                break
            mend = off + length
            if mend > end:
                break
            if mtype == feedmod.UPDATE:
                rx["updates"] += 1
                self.last_update_rx = now
                wlen = (buf[off + 19] << 8) | buf[off + 20]
                if wlen:
                    rx["withdrawn"] += sinkmod.count_nlri(bytes(buf[off + 21:off + 21 + wlen]))
                p = off + 21 + wlen
                alen = (buf[p] << 8) | buf[p + 1]
                nstart = p + 2 + alen
                if mend > nstart:
                    rx["nlri"] += sinkmod.count_nlri(bytes(buf[nstart:mend]))
                elif alen == 0 and wlen == 0:
                    rx["eor"] += 1
            elif mtype == feedmod.KEEPALIVE:
                rx["keepalives"] += 1
            elif mtype == feedmod.NOTIFICATION:
                body = bytes(buf[off + 19:mend])
                self.lost = self.lost or f"NOTIFICATION {body[:2].hex()} {body[2:]!r}"
            else:
                rx["other"] += 1
            off = mend
        del buf[:off]

    def status(self) -> dict:
        return {"peer": self.local, "lost": self.lost, "hold_expired": self.hold_expired, **self.rx,
                "max_gap": self.max_gap,
                "last_update_rx": self.last_update_rx, "queued": len(self.wq)}


def build_feed(idx: int, lo: int, hi: int, nlri: bytes, asn: int, next_hop: str,
               ibgp: bool = False, no_export: bool = False, gen: int = 0) -> list:
    """UPDATEs for prefixes [lo, hi) of ``nlri`` (4 octets each), 16 per attribute set.
    ``gen`` > 0 (``--churn``): the same prefixes with one more community (64999:gen), so
    every route of the generation replaces the previous one (new attributes)."""
    parts = []
    per = feedmod.PREFIXES_PER_SET
    for j, start in enumerate(range(lo, hi, per)):
        stop = min(hi, start + per)
        s = start // per  # global set number: attribute sets differ across peers too
        path = [] if ibgp else [asn]  # iBGP: FCR's own AS must not be in the path
        path.append(4200000000 + s)
        path.extend(64512 + ((s >> 4) + k) % 400 for k in range(s % 3))
        comms = [(asn & 0xFFFF) << 16 | (j & 0xFFFF), (64512 << 16) | (100 + s % 7)]
        if gen:
            comms.append((64999 << 16) | gen)
        if no_export:
            comms.append(NO_EXPORT)
        attrs = feedmod.path_attributes(path, next_hop, s, comms)
        if ibgp:
            attrs += feedmod._attr(0x40, 5, struct.pack("!I", 100))  # LOCAL_PREF (mandatory on iBGP)
        parts.append(feedmod.update(attrs, nlri[4 * start:4 * stop]))
    parts.append(feedmod.end_of_rib_ipv4())
    # (bytes, routes) of CHUNK_SETS attribute sets each: the unit of the paced feed
    return [(b"".join(parts[k:k + CHUNK_SETS]),
             max(0, min(hi, lo + (k + CHUNK_SETS) * per) - (lo + k * per)))
            for k in range(0, len(parts), CHUNK_SETS)]


class Speaker:
    """The speaker process's loop over its sessions (``run``): the commands on stdin (JSON
    lines: ``send``, ``probe``, ``reset-gap``, ``status``, ``stop``), the paced or unpaced
    feed, probe and hold-time KEEPALIVEs, events on stdout. bench/nsr_crash.py subclasses it
    (``command``, ``received``, ``sent``) to answer ROUTE-REFRESH."""

    def __init__(self, sessions: list[Sess], max_seconds: float) -> None:
        self.sessions = sessions
        self.max_seconds = max_seconds
        self.sel = selectors.DefaultSelector()
        self.probe = 0.0  # seconds between probe KEEPALIVEs (0: off)
        self.next_probe = 0.0
        self.rate = self.tokens = self.t_tokens = 0.0  # paced feed: routes per second, routes allowed now
        self.rr = 0
        self.sending = False  # a "send" not yet all handed to the kernel ("sent" event when it is)
        self.stop = False

    # -- hooks for subclasses
    def received(self, s: Sess, t: float) -> None:
        """After ``s.parse`` of what arrived at ``t`` (the session not lost)."""

    def sent(self, s: Sess, data: bytes) -> None:
        """``data`` (one queued item) is all handed to the kernel."""

    # -- the session's output
    def want_write(self, s: Sess) -> None:
        if s.sock is not None and s.lost is None:
            self.sel.modify(s.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if s.wq else 0), s)

    def flush(self, s: Sess) -> None:
        for _ in range(10_000):
            if not s.wq or s.lost is not None:
                break
            head = s.wq[0]
            try:
                sent = s.sock.send(head[s.woff:])
            except BlockingIOError:
                break
            except OSError as exc:
                self.lose(s, f"send: {exc}")
                return
            s.woff += sent
            if s.woff >= len(head):
                s.wq.popleft()
                s.woff = 0
                self.sent(s, head)
        self.want_write(s)

    def lose(self, s: Sess, why: str) -> None:
        if s.lost is None:
            s.lost = why
        emit(event="lost", peer=s.local, why=s.lost, t=time.monotonic())
        with contextlib.suppress(Exception):
            self.sel.unregister(s.sock)

    def start_feed(self, s: Sess, items: list, rate: float) -> None:
        """Queue ``items`` [(bytes, routes)]: all at once (``rate`` 0) or for the pacer."""
        if not rate:
            s.wq.extend(b for b, _r in items)
            self.flush(s)
        else:
            s.feed = list(reversed(items))  # pop() from the end

    def command(self, c: dict) -> None:
        what = c.get("cmd")
        if what == "send":
            self.rate = float(c.get("rate") or 0)
            self.tokens, self.t_tokens = 0.0, time.monotonic()
            gen = int(c.get("gen") or 0)
            for s in self.sessions:
                s.feed = []
                self.start_feed(s, s.feeds[gen], self.rate)
            self.sending = True
            emit(event="sending", t=time.monotonic(), rate=self.rate)
        elif what == "probe":
            self.probe = float(c.get("ms", 0)) / 1000.0
            self.next_probe = time.monotonic()
            emit(event="probe", ms=c.get("ms", 0), t=time.monotonic())
        elif what == "reset-gap":
            for s in self.sessions:
                s.max_gap = 0.0
            emit(event="reset-gap", t=time.monotonic())
        elif what == "status":
            emit(event="status", t=time.monotonic(), sessions=[s.status() for s in self.sessions])
        elif what == "stop":
            self.stop = True

    def run(self, connect: str, listen: bool, t_built: float) -> int:
        """Listen (or not: the sessions connect), the handshakes, then the loop until
        ``stop``, stdin's end or ``max_seconds``. ``t_built``: when the feeds' build began."""
        sessions, sel = self.sessions, self.sel
        try:
            if listen:
                for s in sessions:
                    s.listen()
            emit(event="built", seconds=round(time.monotonic() - t_built, 3))
            for s in sessions:
                s.handshake(connect, 30.0)
            emit(event="established", n=len(sessions), t=time.monotonic())
            for s in sessions:
                sel.register(s.sock, selectors.EVENT_READ, s)
            stdin_fd = sys.stdin.fileno()
            os.set_blocking(stdin_fd, False)
            sel.register(stdin_fd, selectors.EVENT_READ, None)
            cmdbuf = b""
            deadline = time.monotonic() + self.max_seconds
            chunk = bytearray(1 << 20)
            view = memoryview(chunk)
            for _ in range(1_000_000_000):
                now = time.monotonic()
                if self.stop or now > deadline:
                    break
                nxt = min([s.next_ka for s in sessions if s.lost is None] or [now + 0.5])
                if self.rate:
                    nxt = min(nxt, now + 0.005)
                if self.probe:
                    nxt = min(nxt, self.next_probe)
                for key, ev in sel.select(max(0.0, min(0.2, nxt - now))):
                    s = key.data
                    if s is None:
                        try:
                            data = os.read(stdin_fd, 65536)
                        except BlockingIOError:
                            continue
                        if not data:
                            self.stop = True
                            continue
                        cmdbuf += data
                        while b"\n" in cmdbuf:
                            line, cmdbuf = cmdbuf.split(b"\n", 1)
                            if line.strip():
                                self.command(json.loads(line))
                        continue
                    if ev & selectors.EVENT_READ and s.lost is None:
                        try:
                            got = s.sock.recv_into(view)
                        except BlockingIOError:
                            got = -1
                        except OSError as exc:
                            self.lose(s, f"recv: {exc}")
                            continue
                        if got == 0:
                            self.lose(s, "connection closed by FCR")
                            continue
                        if got > 0:
                            t = time.monotonic()
                            s.rx["bytes"] += got
                            s.max_gap = max(s.max_gap, t - s.last_rx)
                            s.last_rx = t
                            s.rbuf += view[:got]
                            s.parse(t)
                            if s.lost is not None:
                                self.lose(s, s.lost)
                                continue
                            self.received(s, t)
                    if ev & selectors.EVENT_WRITE and s.lost is None:
                        self.flush(s)
                now = time.monotonic()
                if self.rate:
                    self.tokens = min(self.tokens + self.rate * (now - self.t_tokens), max(self.rate * 0.05, 2048.0))
                    self.t_tokens = now
                    left = [s for s in sessions if s.feed and s.lost is None]
                    for _ in range(100_000):
                        if not left or self.tokens <= 0:
                            break
                        s = left[self.rr % len(left)]
                        self.rr += 1
                        data, nroutes = s.feed.pop()
                        s.wq.append(data)
                        self.tokens -= max(nroutes, 1)
                        self.flush(s)
                        if not s.feed:
                            left.remove(s)
                    if not left:
                        self.rate = 0.0
                if self.sending and not any(s.feed or s.wq for s in sessions if s.lost is None):
                    self.sending = False  # the last UPDATE is in the kernel (sent, maybe not yet read)
                    emit(event="sent", t=now)
                probing = self.probe and now >= self.next_probe
                if probing:
                    self.next_probe = now + self.probe
                for s in sessions:
                    if s.lost is not None:
                        continue
                    if now - s.last_rx > s.hold and s.hold_expired is None:
                        # A real peer sends a NOTIFICATION and closes here; we record it and keep
                        # the session (so the measurement of the rest goes on).
                        s.hold_expired = f"hold timer expired ({now - s.last_rx:.1f} s without a message)"
                        emit(event="lost", peer=s.local, why=s.hold_expired, t=now)
                    if (probing and not s.wq) or now >= s.next_ka:
                        s.wq.append(feedmod.keepalive())
                        s.next_ka = now + s.keepalive
                        self.flush(s)
            emit(event="stopped", t=time.monotonic(), sessions=[s.status() for s in sessions])
            return 0
        except Exception as exc:  # noqa: BLE001 - reported to the driver
            emit(event="error", error=repr(exc), t=time.monotonic())
            return 1
        finally:
            for s in sessions:
                for sk in (s.sock, s.listener):
                    if sk is not None:
                        with contextlib.suppress(OSError):
                            sk.close()


def cmd_speaker(args) -> int:
    feedmod._install_signal_exit()
    n, total = args.peers, args.routes
    t0 = time.monotonic()
    nlri = feedmod.nlri_blob(total)
    no_export = args.filter == "no-export"
    sessions = [Sess(i, peer_addr(i), peer_as(i, args.table_peers, args.filter), args.hold) for i in range(n)]
    for i, s in enumerate(sessions):
        # one feed per generation (``--gens``, default 1): gen 0 announces, the next ones churn
        s.feeds = [build_feed(i, total * i // n, total * (i + 1) // n, nlri, s.asn, s.local,
                              ibgp=s.asn == FCR_AS, no_export=no_export, gen=g)
                   for g in range(args.gens)]
    del nlri
    return Speaker(sessions, args.max_seconds).run(args.connect, not args.active, t0)


def speaker_parser(prog: str) -> argparse.ArgumentParser:
    """The ``speaker`` sub-command's arguments common to this bench and nsr_crash.py."""
    sp = argparse.ArgumentParser(prog=prog)
    sp.add_argument("--connect", required=True)
    sp.add_argument("--peers", type=int, required=True)
    sp.add_argument("--routes", type=int, required=True)
    sp.add_argument("--max-seconds", type=float, default=1800)
    sp.add_argument("--hold", type=int, default=HOLD)
    return sp


# =========================================================================== driver helpers


def log(msg: str) -> None:
    print(f"[nsr-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def proc_status(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def wait_idle(pid: int, timeout: float, window: float = 1.0, busy: float = 0.05) -> float | None:
    """Seconds until the process used < ``busy`` of a CPU over ``window`` s (None: timeout)."""
    t0 = time.monotonic()
    c0 = cpu_seconds(pid)
    for _ in range(int(timeout / window) + 1):
        time.sleep(window)
        c1 = cpu_seconds(pid)
        if c0 is None or c1 is None:
            return None
        if c1 - c0 < busy * window:
            return time.monotonic() - t0 - window
        c0 = c1
        if time.monotonic() - t0 > timeout:
            break
    return None


class Events:
    """The speaker's stdout (JSON lines) read into a queue by a thread."""

    def __init__(self, proc: subprocess.Popen, logpath: Path) -> None:
        self.proc = proc
        self.q: queue.Queue = queue.Queue()
        self.lost: list[dict] = []
        self.sent: list[float] = []  # times of the "sent" events (kept: wait() drops others)
        self.logpath = logpath
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        with open(self.logpath, "a") as logf:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").strip()
                if not line:
                    continue
                logf.write(line[:2000] + "\n")
                logf.flush()
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("event") == "lost":
                    self.lost.append(ev)
                elif ev.get("event") == "sent":
                    self.sent.append(ev["t"])
                self.q.put(ev)
        self.q.put({"event": "eof"})

    def wait(self, name: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        for _ in range(1_000_000):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                ev = self.q.get(timeout=left)
            except queue.Empty:
                break
            if ev.get("event") == name:
                return ev
            if ev.get("event") in ("error", "eof"):
                raise RuntimeError(f"speaker: {ev}")
        raise RuntimeError(f"speaker: no {name!r} within {timeout} s")

    def send(self, **cmd) -> None:
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    def status(self, timeout: float = 30.0) -> list[dict]:
        self.send(cmd="status")
        return self.wait("status", timeout)["sessions"]


def ctl(path: str, method: str, timeout: float = 30.0, **params):
    from appliance.nsr.issu import call

    return call(path, method, timeout=timeout, **params)


# --------------------------------------------------------------------------- pcap


def pcap_ipv4_tcp(path: Path):
    """The IPv4 TCP packets of a pcap file (Ethernet or Linux cooked capture): (time, IP packet)."""
    data = path.read_bytes()
    if len(data) < 24:
        return
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        endian = "<"
    else:
        endian = ">"
        magic = struct.unpack_from(">I", data, 0)[0]
    scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    off = 24
    rec = struct.Struct(endian + "IIII")
    for _ in range(100_000_000):
        if off + 16 > len(data):
            break
        sec, frac, incl, _orig = rec.unpack_from(data, off)
        off += 16
        pkt = data[off:off + incl]
        off += incl
        t = sec + frac * scale
        if linktype == 1:  # Ethernet
            if len(pkt) < 14 or pkt[12:14] != b"\x08\x00":
                continue
            ip = pkt[14:]
        elif linktype == 113:  # Linux cooked
            if len(pkt) < 16 or pkt[14:16] != b"\x08\x00":
                continue
            ip = pkt[16:]
        else:
            continue
        if len(ip) < 20 or ip[9] != 6:
            continue
        yield t, ip


def read_pcap(path: Path, fcr: str) -> dict[str, dict[str, list]]:
    """Per peer address: FCR->peer segments [(t, payload, flags)] and peer->FCR [(t, payload)]."""
    out: dict[str, dict[str, list]] = collections.defaultdict(lambda: {"from_fcr": [], "to_fcr": []})
    fcr_b = socket.inet_aton(fcr)
    for t, ip in pcap_ipv4_tcp(path):
        ihl = (ip[0] & 15) * 4
        total = (ip[2] << 8) | ip[3]
        tcp = ip[ihl:]
        if len(tcp) < 20:
            continue
        doff = (tcp[12] >> 4) * 4
        payload = total - ihl - doff
        flags = tcp[13]
        src, dst = ip[12:16], ip[16:20]
        if src == fcr_b:
            out[socket.inet_ntoa(dst)]["from_fcr"].append((t, payload, flags))
        elif dst == fcr_b:
            out[socket.inet_ntoa(src)]["to_fcr"].append((t, payload))
    return out


def freeze_of(segs: dict[str, list], window: tuple[float, float], switch: tuple[float, float],
              t_frozen: float | None = None) -> dict:
    """The switchover gap of one session (see the module doc). ``window``: wall-clock times
    of probing on and off; ``switch``: wall-clock release start and adopt done;
    ``t_frozen``: wall-clock time of the release's nftables freeze (an early estimate: the
    release start as the driver sent it plus the engine's ``frozen-at``).

    ``freeze_ms``: the longest gap between FCR's segments from the last one before
    ``t_frozen`` (nothing of the old socket gets out after it) to the new engine's first
    BGP message. ``window_gap_ms``: the longest gap that starts during the switchover
    (the definition before the RIB mirror; it is also the ACK cadence, ~21 ms with 10 ms
    probes, once the switchover's own gap is shorter than that)."""
    allfr = segs["from_fcr"]
    res = {"segments": len(allfr), "rst_fin": sum(1 for _t, _p, f in allfr if f & 0x05)}
    fr = [x for x in allfr if window[0] <= x[0] <= window[1]]
    if len(fr) < 2:
        return res
    gaps = [(fr[i + 1][0] - fr[i][0], i) for i in range(len(fr) - 1)
            if switch[0] <= fr[i + 1][0] and fr[i][0] <= switch[1]]
    if not gaps:
        return res
    g, i = max(gaps)
    res["window_gap_ms"] = g * 1000
    if t_frozen is not None:
        lo = max((j for j, x in enumerate(fr) if x[0] <= t_frozen), default=0)
        hi = next((j for j, x in enumerate(fr) if j > lo and x[1] > 0 and x[0] >= t_frozen), None)
        if hi is not None:
            g, i = max((fr[j + 1][0] - fr[j][0], j) for j in range(lo, hi))
    res["freeze_ms"] = g * 1000
    t_before, t_after = fr[i][0], fr[i + 1][0]
    before = [t for t, p, _f in allfr if p > 0 and t <= t_before]
    after = [t for t, p, _f in allfr if p > 0 and t >= t_after]
    if after:
        res["first_bgp_ms"] = (after[0] - t_before) * 1000
    if before and after:
        res["payload_gap_ms"] = (after[0] - before[-1]) * 1000
    pay = [t for t, p, _f in allfr if p > 0]
    if len(pay) >= 2:
        res["max_bgp_gap_ms"] = max(pay[j + 1] - pay[j] for j in range(len(pay) - 1)) * 1000
    return res


# =========================================================================== driver


def fcr_config(n: int, table_peers: int, passive: bool, hold: int, filt: str) -> dict:
    neighbors = []
    for i in range(n):
        fam = {"afi-safi-name": "ipv4-unicast"}
        if i >= table_peers and filt == "policy":
            fam["default-export-policy"] = "reject-route"
        neighbors.append({
            "neighbor-address": peer_addr(i), "peer-as": peer_as(i, table_peers, filt),
            "transport": {"passive-mode": passive},
            "timers": {"hold-time": hold, "keepalive-interval": hold // 3, "connect-retry": 1},
            "afi-safis": {"afi-safi": [fam]},
        })
    return {
        "fcr-system:system": {"hostname": "fcr"},
        "fcr-routing:routing": {"fib": {"enabled": False}},
        "fcr-bgp:bgp": {"global": {"as": FCR_AS, "router-id": "10.255.0.1",
                                   "listen": {"address": ["0.0.0.0"], "port": 179}},
                        "neighbors": {"neighbor": neighbors}},
    }


class Bench:
    def __init__(self, args) -> None:
        from tests.topotest.netns import Topology, cleanup_stale_namespaces

        self.args = args
        self.rundir = BENCH / "results" / f"nsr_switchover-{time.strftime('%Y%m%d-%H%M%S')}"
        self.rundir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.rundir, 0o755)
        cleanup_stale_namespaces()
        self.topo = Topology()
        self.results: list[dict] = []
        self.churn: list[dict] = []
        max_n = max(n for n, _r in [*args.cases, *args.churn])
        self.h_fcr = self.topo.add_host("fcr")
        self.h_peers = self.topo.add_host("peers")
        self.if_fcr, self.if_peers = self.topo.link(self.h_fcr, self.h_peers,
                                                    [f"{FCR_ADDR}/{PREFIXLEN}"],
                                                    [f"{peer_addr(0)}/{PREFIXLEN}"])
        batch = "".join(f"addr add {peer_addr(i)}/{PREFIXLEN} dev {self.if_peers}\n"
                        for i in range(1, max_n))
        if batch:
            self.h_peers.run(["ip", "-batch", "-"], input=batch)

    def close(self) -> None:
        self.topo.close()

    def start_fcrd(self, wd: Path, extra: list[str], tag: str) -> subprocess.Popen:
        from tests.topotest.fcr import fcrd_env, fcrd_path

        return self.h_fcr.popen([fcrd_path(), "--config", str(wd / "fcrd.json"), *extra],
                                log=wd / f"fcrd-{tag}.log", env=fcrd_env())

    def case_dir(self, tag: str) -> Path:
        wd = self.rundir / tag
        wd.mkdir()
        os.chmod(wd, 0o755)
        return wd

    def wait_table(self, old: subprocess.Popen, control: str, ev: Events, routes: int,
                   expect_out: dict[int, int], t_feed: float, row: dict, tag: str) -> int:
        """Until fcrd has ``routes`` in its RIB and speaker i got ``expect_out[i]`` back,
        then until fcrd's CPU is idle (row: feed_s, feed_max_ctl_s, settle_before_s).
        Returns the RIB size."""
        deadline = t_feed + self.args.case_timeout
        rib = 0
        for _ in range(100_000):
            if old.poll() is not None:
                raise RuntimeError(f"fcrd exited with {old.returncode}")
            if ev.lost:
                raise RuntimeError(f"session lost while feeding: {ev.lost[:3]}")
            tq = time.monotonic()
            try:
                summ = ctl(control, "bgp.summary", timeout=max(1.0, deadline - tq))
            except OSError as exc:  # includes a timeout: the engine's loop did not answer
                log(f"{tag}: bgp.summary: {exc!r} after {time.monotonic() - tq:.1f} s")
                summ = None
            finally:
                row["feed_max_ctl_s"] = round(max(row.get("feed_max_ctl_s", 0), time.monotonic() - tq), 2)
            if summ is not None:
                rib = summ["rib"]["ipv4-unicast"]
                if rib >= routes:
                    st = ev.status()
                    if all(st[i]["nlri"] >= c for i, c in expect_out.items()):
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"table not complete after {self.args.case_timeout} s: rib {rib}")
            time.sleep(0.5)
        row["feed_s"] = round(time.monotonic() - t_feed, 2)
        idle = wait_idle(old.pid, 120)
        row["settle_before_s"] = None if idle is None else round(idle, 2)
        return rib

    # the script whose ``speaker`` subcommand runs the peers (nsr_crash.py has its own)
    speaker_script = Path(__file__).resolve()

    def start_speaker(self, wd: Path, procs: list, n: int, routes: int, max_seconds: float,
                      extra: list[str], built_timeout: float = 120.0) -> Events:
        """The speakers' process in the peers' namespace, until its n sessions are up."""
        spk = self.h_peers.popen(
            [PYTHON, self.speaker_script, "speaker", "--connect", FCR_ADDR, "--peers", str(n),
             "--routes", str(routes), "--max-seconds", str(max_seconds), "--hold", str(self.args.hold),
             *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(wd / "speaker.err", "ab"))
        procs.append(spk)
        ev = Events(spk, wd / "speaker.jsonl")
        ev.wait("built", built_timeout)
        ev.wait("established", 60 + n)
        return ev

    def start_capture(self, wd: Path, snaplen: int, buffer_kib: int) -> tuple[subprocess.Popen, Path]:
        """tcpdump of the BGP traffic on the peers' side, once it is listening."""
        cap = wd / "peers.pcap"
        tcpdump = self.h_peers.popen(
            ["tcpdump", "-i", self.if_peers, "-n", "-U", "--immediate-mode", "-s", str(snaplen),
             "-B", str(buffer_kib), "-w", str(cap), "tcp port 179"], log=wd / "tcpdump.log")
        wait_for(lambda: "listening on" in (wd / "tcpdump.log").read_text(errors="replace"), 5, "tcpdump",
                 tcpdump, period=0.05)
        return tcpdump, cap

    @staticmethod
    def stop_capture(tcpdump: subprocess.Popen, wd: Path) -> str:
        """Stop it (SIGINT: the file is complete); its packet counts."""
        from tests.topotest.netns import Host

        tcpdump.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            tcpdump.wait(10)
        Host.stop_process(tcpdump)
        tdlog = (wd / "tcpdump.log").read_text(errors="replace")
        return " ".join(ln.strip() for ln in tdlog.splitlines() if "packets" in ln)

    def run_case(self, n: int, routes: int) -> dict:
        from appliance.nsr.issu import run_issu
        from tests.topotest.netns import Host

        a = self.args
        tag = f"{n}x{routes}"
        wd = self.case_dir(tag)
        table_peers = min(a.table_peers, n)
        (wd / "fcrd.json").write_text(json.dumps(fcr_config(n, table_peers, a.fcr_passive, a.hold, a.filter), indent=1))
        control = str(wd / "fcrd.ctl")
        store = str(wd / "nsr.db")
        probe_ms = a.probe_ms or (10 if n <= 10 else 20)
        row: dict = {"peers": n, "routes": routes, "table_peers": table_peers, "probe_ms": probe_ms,
                     "filter": a.filter, "hold": a.hold,
                     "loadavg_before": round(os.getloadavg()[0], 2), "status": "error"}
        procs: list[subprocess.Popen] = []
        tcpdump = None
        try:
            log(f"{tag}: start fcrd (active)")
            old = self.start_fcrd(wd, ["--control", control, "--nsr-store", store, "--engine-id", "e0"], "0")
            procs.append(old)
            deadline = time.monotonic() + 30
            for _ in range(600):
                if old.poll() is not None:
                    raise RuntimeError(f"fcrd exited with {old.returncode}")
                with contextlib.suppress(Exception):
                    if os.path.exists(control) and ctl(control, "nsr.status").get("active"):
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("fcrd not active after 30 s")
                time.sleep(0.1)
            ev = self.start_speaker(wd, procs, n, routes, a.case_timeout + 300,
                                    ["--table-peers", str(table_peers), "--filter", a.filter,
                                     *(["--active"] if a.fcr_passive else [])])
            log(f"{tag}: {n} sessions Established; feeding {routes:,} routes")
            t_feed = time.monotonic()
            rate = a.feed_rate if a.feed_rate >= 0 else (0 if n == 1 else 100_000 if n <= 10 else 10_000)
            row["feed_rate"] = rate
            ev.send(cmd="send", rate=rate)
            def share(i: int) -> int:
                return routes * (i + 1) // n - routes * i // n

            if a.filter == "no-export":  # iBGP table peers: nothing from each other (no RR)
                expect_out = {i: routes - sum(share(j) for j in range(table_peers)) for i in range(table_peers)}
            else:  # split horizon: all but their own
                expect_out = {i: routes - share(i) for i in range(table_peers)}
            rib = self.wait_table(old, control, ev, routes, expect_out, t_feed, row, tag)
            row["rss_old_before_kib"] = proc_status(old.pid, "VmHWM")
            log(f"{tag}: table complete in {row['feed_s']} s (RIB {rib:,}, table peers got "
                f"{sum(expect_out.values()):,}); old fcrd VmHWM {row['rss_old_before_kib'] // 1024} MiB")
            before = {s["peer"]: s for s in ev.status()}
            row["feed_max_silence_s"] = round(max(s["max_gap"] for s in before.values()), 3)
            ev.send(cmd="reset-gap")
            ev.wait("reset-gap", 10)
            before_fcr = {x["neighbor-address"]: x for x in ctl(control, "bgp.summary", timeout=60)["neighbors"]}

            tcpdump, cap = self.start_capture(wd, 128, 32768)
            ev.send(cmd="probe", ms=probe_ms)
            ev.wait("probe", 10)
            probe_on = time.time() + 0.05
            time.sleep(a.pre_capture)

            def start_standby(engine_id: str, ctl_path: str):
                p = self.start_fcrd(wd, ["--control", ctl_path, "--nsr-store", store, "--engine-id",
                                         engine_id, "--standby", "--control-after-adopt", control], "1")
                procs.append(p)
                return p

            log(f"{tag}: run_issu")
            t_issu = time.monotonic()
            w_issu = time.time()
            res = run_issu(control, start_standby, ready_timeout=60.0, stop_old=False)
            row["issu_wall_s"] = round(time.monotonic() - t_issu, 3)
            new = procs[-1]
            time.sleep(0.5)
            probe_off = time.time()
            ev.send(cmd="probe", ms=0)
            row["rss_old_kib"] = proc_status(old.pid, "VmHWM")
            # what run_issu does with stop_old (SIGTERM), after reading VmHWM; timed
            t_term = time.monotonic()
            Host.stop_process(old, grace=60.0)
            row["old_exit"] = old.returncode
            row["old_exit_s"] = round(time.monotonic() - t_term, 2)
            time.sleep(a.post_capture)
            row["tcpdump"] = self.stop_capture(tcpdump, wd)
            idle = wait_idle(new.pid, 180)
            row["settle_after_s"] = None if idle is None else round(idle, 2)
            row["rss_new_kib"] = proc_status(new.pid, "VmHWM")
            rel, adp = res["released"], res["adopted"]
            rt, at = rel["timing"], adp["timing"]
            row.update({
                "wait_ready_s": res["wait-ready"], "switchover_s": res["switchover"], "total_s": res["total"],
                "release": rt, "adopt": at,
                "box_freeze_ms": (res["switchover"] - rt["frozen-at"] - (at["done"] - at["sockets-restored"])) * 1000,
                "adopted_peers": len(adp["peers"]),
            })
            # -- checks
            after = {s["peer"]: s for s in ev.status()}
            row["issu_max_silence_s"] = round(max(s["max_gap"] for s in after.values()), 3)
            summ = ctl(control, "bgp.summary", timeout=60)
            row["rib_after"] = summ["rib"]["ipv4-unicast"]
            problems = []
            if len(adp["peers"]) != n:
                problems.append(f"adopted {len(adp['peers'])} of {n}")
            for x in summ["neighbors"]:
                addr = x["neighbor-address"]
                b = before_fcr.get(addr, {})
                if x.get("state") != "Established":
                    problems.append(f"{addr}: {x.get('state')} on the new engine")
                if x.get("established-transitions") != b.get("established-transitions"):
                    problems.append(f"{addr}: established-transitions {b.get('established-transitions')}"
                                    f" -> {x.get('established-transitions')}")
            if row["rib_after"] != routes:
                problems.append(f"RIB {row['rib_after']} after, {routes} expected")
            resent = 0
            for peer, s in after.items():
                for k in ("lost", "hold_expired"):
                    if s[k]:
                        problems.append(f"{peer}: {s[k]}")
                b = before[peer]
                resent += s["nlri"] - b["nlri"] + s["withdrawn"] - b["withdrawn"]
            row["resent_prefixes"] = resent
            sessions = read_pcap(cap, FCR_ADDR)
            switch = (w_issu + res["wait-ready"], w_issu + res["total"])
            t_frozen = switch[0] + rt["frozen-at"]
            row["wall"] = {"probe": [probe_on, probe_off], "switch": list(switch), "frozen": t_frozen}
            per = {p: freeze_of(sessions[p], (probe_on, probe_off), switch, t_frozen)
                   for p in (peer_addr(i) for i in range(n))}
            rst = sum(v["rst_fin"] for v in per.values())
            if rst:
                problems.append(f"{rst} RST/FIN from FCR in the capture")
            missing = [p for p, v in per.items() if "freeze_ms" not in v]
            if missing:
                problems.append(f"no capture for {len(missing)} sessions: {missing[:3]}")
            fz = sorted(v["freeze_ms"] for v in per.values() if "freeze_ms" in v)
            fb = sorted(v["first_bgp_ms"] for v in per.values() if "first_bgp_ms" in v)
            if fb:
                row["first_bgp_ms"] = {"median": statistics.median(fb), "max": fb[-1]}
            pg = sorted(v["payload_gap_ms"] for v in per.values() if "payload_gap_ms" in v)
            mg = sorted(v["max_bgp_gap_ms"] for v in per.values() if "max_bgp_gap_ms" in v)
            if fz:
                row["freeze_ms"] = {"median": statistics.median(fz), "max": fz[-1], "min": fz[0]}
            wg = sorted(v["window_gap_ms"] for v in per.values() if "window_gap_ms" in v)
            if wg:
                row["window_gap_ms"] = {"median": statistics.median(wg), "max": wg[-1]}
            if pg:
                row["payload_gap_ms"] = {"median": statistics.median(pg), "max": pg[-1]}
            if mg:
                row["max_bgp_gap_ms"] = mg[-1]
            row["per_session"] = per
            row["problems"] = problems
            row["dropped"] = bool(problems)
            row["status"] = "ok"
            log(f"{tag}: {summary_line(row)}")
            for p in problems:
                log(f"{tag}: PROBLEM {p}")
            with contextlib.suppress(Exception):
                ev.send(cmd="stop")
            return row
        except Exception as exc:  # noqa: BLE001 - reported as a failed row, the bench goes on
            from tests.topotest.netns import netns_list

            gone = [h.ns for h in (self.h_fcr, self.h_peers) if h.ns not in netns_list()]
            if gone:  # seen once: another session's clean-up deleted them
                exc = RuntimeError(f"namespaces {gone} were deleted from outside ({exc!r})")
            log(f"{tag}: FAILED: {exc!r}")
            row["error"] = repr(exc)[:500]
            return row
        finally:
            if tcpdump is not None:
                Host.stop_process(tcpdump)
            for p in reversed(procs):
                Host.stop_process(p)

    def run(self) -> None:
        for n, r in self.args.cases:
            self.results.append(self.run_case(n, r))
            self._save()
        for n, r in self.args.churn:
            for standby in (False, True):
                self.churn.append(self.run_churn(n, r, standby))
                self._save()

    def _save(self) -> None:
        (self.rundir / "results.json").write_text(json.dumps(
            {"command": self.args.command, "results": self.results, "churn": self.churn}, indent=1))

    # ------------------------------------------------------------------- --churn
    def run_churn(self, n: int, routes: int, with_standby: bool) -> dict:
        """The RIB mirror under churn (module doc, ``--churn``): an active fcrd, with or
        without a synced standby, takes ``routes`` routes (gen 0) and then the same routes
        with new attributes (gen 1); nsr.status of both engines is sampled every
        ``--sample-ms`` ms throughout."""
        from tests.topotest.netns import Host

        a = self.args
        tag = f"churn-{n}x{routes}-{'standby' if with_standby else 'alone'}"
        wd = self.case_dir(tag)
        table_peers = min(a.table_peers, n)
        (wd / "fcrd.json").write_text(json.dumps(fcr_config(n, table_peers, a.fcr_passive, a.hold, a.filter), indent=1))
        control, sb_control = str(wd / "fcrd.ctl"), str(wd / "standby.ctl")
        store = str(wd / "nsr.db")
        rate = a.churn_rate if a.churn_rate >= 0 else 0
        row: dict = {"peers": n, "routes": routes, "standby": with_standby, "table_peers": table_peers,
                     "filter": a.filter, "hold": a.hold, "feed_rate": rate, "sample_ms": a.sample_ms,
                     "loadavg_before": round(os.getloadavg()[0], 2), "status": "error", "phases": {}}
        procs: list[subprocess.Popen] = []
        stop = threading.Event()
        samples: list[tuple] = []  # (t_active, written, journaled, t_standby, applied, synced, call_a_s, call_s_s)
        store_samples: list[tuple] = []  # (t, newest mirror record's seq, standby's acked applied)
        sampler = None
        try:
            log(f"{tag}: start fcrd (active)")
            act = self.start_fcrd(wd, ["--control", control, "--nsr-store", store, "--engine-id", "e0"], "0")
            procs.append(act)
            wait_for(lambda: ctl(control, "nsr.status").get("active"), 30, "fcrd active", act)
            sb = None
            if with_standby:  # as run_issu starts it (bench run_case's start_standby)
                log(f"{tag}: start fcrd (standby)")
                sb = self.start_fcrd(wd, ["--control", sb_control, "--nsr-store", store, "--engine-id",
                                          "sb1", "--standby"], "1")
                procs.append(sb)
                t_sb = time.monotonic()
                wait_for(lambda: any(x.get("engine-id") == "sb1" and x.get("fresh") and x.get("synchronized")
                                     and x.get("ready") for x in ctl(control, "nsr.status").get("standbys", [])),
                         60, "standby in sync", sb)
                row["standby_ready_s"] = round(time.monotonic() - t_sb, 3)
            ev = self.start_speaker(wd, procs, n, routes, a.case_timeout * 2 + 300,
                                    ["--table-peers", str(table_peers), "--filter", a.filter, "--gens", "2",
                                     *(["--active"] if a.fcr_passive else [])], built_timeout=300)
            log(f"{tag}: {n} sessions Established")

            def share(i: int) -> int:
                return routes * (i + 1) // n - routes * i // n

            per = feedmod.PREFIXES_PER_SET
            updates = {peer_addr(i): -(-share(i) // per) + 1 for i in range(n)}  # UPDATEs per gen, EoR incl.
            if a.filter == "no-export":
                expect_out = {i: routes - sum(share(j) for j in range(table_peers)) for i in range(table_peers)}
            else:
                expect_out = {i: routes - share(i) for i in range(table_peers)}
            expect_out = {i: c for i, c in expect_out.items() if c}

            def sample_loop() -> None:
                period = a.sample_ms / 1000.0
                for _ in range(100_000_000):
                    if stop.is_set():
                        return
                    t0 = time.monotonic()
                    try:
                        ra = ctl(control, "nsr.status", timeout=30).get("rib-mirror") or {}
                        t1 = time.monotonic()
                        rs, t2, t3 = {}, t1, t1
                        if with_standby:
                            rs = ctl(sb_control, "nsr.status", timeout=30).get("rib-mirror") or {}
                            t3 = time.monotonic()
                        samples.append(((t0 + t1) / 2, ra.get("written"), ra.get("journaled-keys"),
                                        (t2 + t3) / 2, rs.get("applied"), rs.get("synced"), t1 - t0, t3 - t2))
                    except Exception as exc:  # noqa: BLE001 - recorded, sampling goes on
                        samples.append((time.monotonic(), None, None, None, None, None, repr(exc)[:200], None))
                    time.sleep(max(0.0, period - (time.monotonic() - t0)))

            def store_loop() -> None:
                """The store itself (read-only SQLite, nothing of appliance/): the newest
                mirror record present (what a standby applies) and the standby's ack
                (``nsr/mirror/sb1``: what a release waits for), every --store-poll-ms."""
                import sqlite3

                db = None
                period = a.store_poll_ms / 1000.0
                for _ in range(100_000_000):
                    if stop.is_set():
                        break
                    t0 = time.monotonic()
                    try:
                        if db is None:
                            db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1.0)
                        w = db.execute(STORE_Q_WRITTEN).fetchone()[0]
                        row_ = db.execute(STORE_Q_ACK).fetchone()
                        applied = json.loads(row_[0]).get("applied") if row_ and row_[0] else None
                        store_samples.append((time.monotonic(), w, applied))
                    except Exception as exc:  # noqa: BLE001 - recorded, polling goes on
                        store_samples.append((time.monotonic(), None, repr(exc)[:200]))
                    time.sleep(max(0.0, period - (time.monotonic() - t0)))
                if db is not None:
                    db.close()

            sampler = threading.Thread(target=sample_loop, daemon=True)
            sampler.start()
            poller = None
            if with_standby:
                poller = threading.Thread(target=store_loop, daemon=True)
                poller.start()
            time.sleep(0.5)
            for gen, name in ((0, "announce"), (1, "churn")):
                ph: dict = {}
                row["phases"][name] = ph
                i0, j0 = len(samples), len(store_samples)
                log(f"{tag}: {name}: {routes:,} routes, feed rate {rate or 'unpaced'}")
                cpu0 = (cpu_seconds(act.pid), cpu_seconds(sb.pid) if sb is not None else None)
                t_send = time.monotonic()
                ev.send(cmd="send", rate=rate, gen=gen)
                ev.wait("sending", 30)
                t_sent = None
                deadline = t_send + a.case_timeout
                for _ in range(1_000_000):
                    if act.poll() is not None:
                        raise RuntimeError(f"fcrd exited with {act.returncode}")
                    if ev.lost:
                        ph["lost"] = ev.lost[:3]
                    if ev.proc.poll() is not None:
                        raise RuntimeError(f"speaker exited with {ev.proc.returncode}")
                    summ = ctl(control, "bgp.summary", timeout=max(1.0, deadline - time.monotonic()))
                    nb = {x["neighbor-address"]: x for x in summ["neighbors"]}
                    done = (summ["rib"]["ipv4-unicast"] >= routes and all(
                        nb[p]["messages"]["received"].get("update", 0) >= (gen + 1) * u for p, u in updates.items()))
                    if done and expect_out:
                        st = ev.status()
                        done = all(st[i]["nlri"] >= (gen + 1) * c for i, c in expect_out.items())
                    if done:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name}: not complete after {a.case_timeout} s")
                    time.sleep(0.05)
                t_done = time.monotonic()
                for _ in range(600):
                    t_sent = next((t for t in ev.sent if t >= t_send), None)
                    if t_sent is not None:
                        break
                    time.sleep(0.1)
                ph["ingest_s"] = round(t_done - t_send, 3)
                cpu1 = (cpu_seconds(act.pid), cpu_seconds(sb.pid) if sb is not None else None)
                ph["cpu_ingest_s"] = {"active": cpu1[0] - cpu0[0],  # CPU seconds while ingesting
                                      "standby": None if cpu0[1] is None else cpu1[1] - cpu0[1]}
                ph["last_update_sent_s"] = None if t_sent is None else round(t_sent - t_send, 3)
                log(f"{tag}: {name}: FCR has it all after {ph['ingest_s']} s "
                    f"(last UPDATE handed to the kernel at {ph['last_update_sent_s']} s)")
                # settle: the active's journals empty and the standby at its written sequence
                t_settle = time.monotonic()
                settled = None
                for _ in range(100_000 if with_standby else 0):
                    # settled: an nsr.status of the active asked after fcrd had it all shows
                    # nothing journaled, and a later poll of the store has the standby's ack
                    # at the newest mirror record (not nsr.status' written: see the docs)
                    time.sleep(0.1)
                    fresh = [x for x in samples[i0:] if isinstance(x[6], float) and x[0] - x[6] / 2 >= t_done]
                    if fresh and fresh[-1][2] == 0:
                        t_q = fresh[-1][0] - fresh[-1][6] / 2
                        polls = [x for x in store_samples[j0:] if x[0] >= t_q and isinstance(x[2], int)]
                        if polls and polls[-1][1] is not None and polls[-1][2] >= polls[-1][1]:
                            settled = time.monotonic() - t_settle
                            break
                    if time.monotonic() - t_settle > a.settle_timeout:
                        break
                time.sleep(1.0)  # a quiet second of samples after it
                ph["settled_after_ingest_s"] = None if settled is None else round(settled, 3)
                cpu2 = (cpu_seconds(act.pid), cpu_seconds(sb.pid) if sb is not None else None)
                ph["cpu_phase_s"] = {"active": cpu2[0] - cpu0[0],  # ingest + settle + 1 s
                                     "standby": None if cpu0[1] is None else cpu2[1] - cpu0[1]}
                ph["status_active"] = ctl(control, "nsr.status").get("rib-mirror")
                if with_standby:
                    ph["status_standby"] = ctl(sb_control, "nsr.status").get("rib-mirror")
                ph.update(lag_metrics(samples[i0:], t_send, t_sent, with_standby))
                if with_standby:
                    ph["store"] = store_lag(store_samples[j0:], t_send + ph["ingest_s"], t_sent)
                log(f"{tag}: {name}: {json.dumps({k: v for k, v in ph.items() if k != 'lags'})}")
            stop.set()
            sampler.join(5)
            after = {s["peer"]: s for s in ev.status()}
            row["max_silence_s"] = round(max(s["max_gap"] for s in after.values()), 3)
            row["problems"] = [f"{p}: {s[k]}" for p, s in after.items() for k in ("lost", "hold_expired") if s[k]]
            row["rss_active_kib"] = proc_status(act.pid, "VmHWM")
            row["rss_standby_kib"] = proc_status(sb.pid, "VmHWM") if sb is not None else None
            if with_standby and a.churn_release:
                # after the churn: a release to the standby (what the lag means for a switchover)
                t0 = time.monotonic()
                try:
                    rel = ctl(control, "nsr.release", timeout=60, to="sb1")
                    row["release_after"] = {"ok": True, "rpc_s": round(time.monotonic() - t0, 3),
                                            "timing": rel.get("timing")}
                    t1 = time.monotonic()
                    adp = ctl(sb_control, "nsr.adopt", timeout=120)
                    row["adopt_after"] = {"rpc_s": round(time.monotonic() - t1, 3), "timing": adp.get("timing"),
                                          "peers": len(adp.get("peers", []))}
                except Exception as exc:  # noqa: BLE001 - the result is the refusal
                    row["release_after"] = {"ok": False, "rpc_s": round(time.monotonic() - t0, 3),
                                            "error": str(exc)[:500]}
                log(f"{tag}: release after the churn: {row['release_after']}")
            row["status"] = "ok"
            with contextlib.suppress(Exception):
                ev.send(cmd="stop")
            return row
        except Exception as exc:  # noqa: BLE001 - reported as a failed row
            log(f"{tag}: FAILED: {exc!r}")
            row["error"] = repr(exc)[:500]
            return row
        finally:
            stop.set()
            row["samples"] = len(samples)
            with contextlib.suppress(Exception):
                (wd / "samples.json").write_text(json.dumps({"status": samples, "store": store_samples}))
            for p in reversed(procs):
                Host.stop_process(p)


def wait_for(pred, timeout: float, what: str, proc: subprocess.Popen | None = None, period: float = 0.1):
    """``pred()``'s first true value, polled every ``period`` s (its exceptions count as
    false); RuntimeError after ``timeout`` s or if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / period) + 10):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        with contextlib.suppress(Exception):
            v = pred()
            if v:
                return v
        if time.monotonic() > deadline:
            break
        time.sleep(period)
    raise RuntimeError(f"{what}: not after {timeout} s")


STORE_Q_WRITTEN = ("SELECT max(k.seq) FROM kv k JOIN namespaces n ON k.ns = n.id WHERE k.value IS NOT NULL AND "
                   "(n.name IN ('nsr.ribdelta', 'nsr.ribbase') OR (n.name = 'nsr' AND k.key = 'mirror-writer'))")
STORE_Q_ACK = "SELECT k.value FROM kv k JOIN namespaces n ON k.ns = n.id WHERE n.name = 'nsr' AND k.key = 'mirror/sb1'"


def store_lag(samples: list[tuple], t_ingested: float, t_sent: float | None) -> dict:
    """From the store polls of one phase: per mirror batch (a new highest mirror record in
    the store), the time until the standby's ack covered it; and when the last batch was
    written and acknowledged, after FCR had all the routes (``t_ingested``)."""
    ok = [x for x in samples if x[1] is not None and isinstance(x[2], int)]
    out: dict = {"polls": len(ok), "poll_errors": len(samples) - len(ok)}
    if not ok:
        return out
    firsts: list[tuple[int, float]] = []
    top = -1
    for t, w, _a in ok:
        if w > top:
            top = w
            firsts.append((w, t))
    lags, never = [], 0
    for w, tw in firsts:
        hit = next((t for t, _w, ap in ok if ap >= w and t >= tw), None)
        if hit is None:
            never += 1
        else:
            lags.append((hit - tw) * 1000)
    out["batches"] = len(firsts)
    out["never_acked"] = never
    if lags:
        out["ack_lag_ms"] = {"median": statistics.median(lags), "p90": _pct(lags, 0.9), "max": max(lags)}
    out["ack_lags"] = [round(x, 1) for x in lags]
    w_final, t_wf = firsts[-1]
    out["last_written_after_ingest_s"] = round(t_wf - t_ingested, 3)
    t_ack = next((t for t, _w, ap in ok if ap >= w_final), None)
    out["acked_after_ingest_s"] = None if t_ack is None else round(t_ack - t_ingested, 3)
    if t_sent is not None and t_ack is not None:
        out["acked_after_sent_s"] = round(t_ack - t_sent, 3)
    behind = [ap for _t, w, ap in ok if ap < w]
    out["polls_behind"] = len(behind)
    return out


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def lag_metrics(samples: list[tuple], t_send: float, t_sent: float | None, standby: bool) -> dict:
    """From the nsr.status samples of one phase (see run_churn): the standby's catch-up
    after the feed's last UPDATE, and its time-lag behind the active's written sequence."""
    ok = [s for s in samples if isinstance(s[6], float)]
    out: dict = {"samples": len(ok), "sample_errors": len(samples) - len(ok)}
    if not ok:
        return out
    call_a = [s[6] for s in ok]
    out["status_call_ms_active"] = {"median": statistics.median(call_a) * 1000, "max": max(call_a) * 1000}
    if not standby:  # (no standby: no writer, no rib-mirror in nsr.status)
        return out
    ok = [s for s in ok if s[1] is not None]
    if not ok:
        return out
    w_final = ok[-1][1]
    out["written_final"] = w_final
    out["written_batches"] = len({s[1] for s in ok})
    t_last_w = next((s[0] for s in ok if s[1] == w_final), None)
    ref = t_sent if t_sent is not None else t_send
    out["active_last_written_after_sent_s"] = None if t_last_w is None else round(t_last_w - ref, 3)
    out["journaled_keys_max"] = max((s[2] or 0) for s in ok)
    call_s = [s[7] for s in ok if s[7] is not None]
    if call_s:
        out["status_call_ms_standby"] = {"median": statistics.median(call_s) * 1000, "max": max(call_s) * 1000}
    out["applied_final"] = ok[-1][4]
    # (a) catch-up: the feed's last UPDATE sent -> the standby at the active's final
    # written sequence with nothing journaled
    caught = next((s for s in ok if s[4] is not None and s[4] >= w_final and s[2] == 0), None)
    out["caught_up_after_sent_s"] = None if caught is None else round(caught[3] - ref, 3)
    a_final = ok[-1][4]
    t_af = next((s[3] for s in ok if s[4] == a_final), None)
    out["standby_last_applied_after_sent_s"] = None if t_af is None else round(t_af - ref, 3)
    # (b) time-lag: for each written value the active showed (first sample of it), when
    # the standby's applied first reached it
    firsts: dict[int, float] = {}
    for s in ok:
        if s[1] and s[1] not in firsts:
            firsts[s[1]] = s[0]
    lags, never = [], 0
    for w, tw in sorted(firsts.items()):
        hit = next((s[3] for s in ok if s[4] is not None and s[4] >= w), None)
        if hit is None:
            never += 1
        else:
            lags.append(max(0.0, hit - tw) * 1000)
    out["lag_written_values"] = len(firsts)
    out["lag_never_reached"] = never
    if lags:
        out["lag_ms"] = {"median": statistics.median(lags), "p90": _pct(lags, 0.9), "max": max(lags)}
    out["lags"] = [round(x, 1) for x in lags]
    # sequences: the largest gap (written - applied) seen in one sample pair
    gaps = [s[1] - s[4] for s in ok if s[4] is not None]
    out["max_seq_gap"] = max(gaps) if gaps else None
    return out


def fmt_ms(d: dict | None, key: str) -> str:
    return "-" if not d or key not in d else f"{d[key]:.1f}"


def summary_line(r: dict) -> str:
    return (f"freeze median {fmt_ms(r.get('freeze_ms'), 'median')} ms max {fmt_ms(r.get('freeze_ms'), 'max')} ms; "
            f"switchover {r['switchover_s']:.3f} s, total {r['total_s']:.3f} s, wait-ready "
            f"{r['wait_ready_s']:.3f} s; release {fmt_timing(r['release'])}; adopt {fmt_timing(r['adopt'])}; "
            f"VmHWM old {r['rss_old_kib'] // 1024} MiB new {r['rss_new_kib'] // 1024} MiB; "
            f"dropped {'yes' if r['dropped'] else 'none'}")


def fmt_timing(t: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in t.items())


def _t(d: dict, key: str) -> str:
    return "-" if d.get(key) is None else f"{d[key]:.3f}"


def dropped_text(r: dict) -> str:
    """A row's "sessions dropped" cell: the hold timers that expired at the peers counted,
    then the first three other problems."""
    holds = sum(1 for p in r["problems"] if "hold timer expired" in p)
    other = [p for p in r["problems"] if "hold timer expired" not in p]
    return "none" if not r["problems"] else ", ".join(
        ([f"{holds} of {r['peers']} hold timers expired at the peers"] if holds else []) + other[:3])


def table(results: list[dict]) -> str:
    """The markdown table of docs/performance.md ("NSR switchover")."""
    lines = [
        "| peers x routes | hold s | freeze ms median / max (aim <= 50) | new engine's first BGP msg ms max "
        "| box-side freeze ms | switchover s (aim <= 1) | total s | wait-ready s "
        "| release: rib-state / mirror-flushed / standby-synced / frozen-at / released s "
        "| adopt: records-read / sockets-restored / bgp-adopted / done s "
        "| longest silence of FCR s | VmHWM old / new MiB | sessions dropped |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---|---:|---|---|",
    ]
    for r in results:
        case = f"{r['peers']} x {r['routes']:,}"
        if r.get("status") != "ok":
            lines.append(f"| {case} | {r.get('hold', '')} | error: {r.get('error', '')[:100]} "
                         "| | | | | | | | | | |")
            continue
        rt, at = r["release"], r["adopt"]
        fz = r.get("freeze_ms") or {}
        ok_f = "" if not fz else (" ✓" if fz["max"] <= AIM_FREEZE_MS else " ✗")
        ok_s = " ✓" if r["switchover_s"] <= AIM_SWITCHOVER_S else " ✗"
        dropped = dropped_text(r)
        lines.append(
            f"| {case} | {r['hold']} | {fmt_ms(fz, 'median')} / {fmt_ms(fz, 'max')}{ok_f} "
            f"| {fmt_ms(r.get('first_bgp_ms'), 'max')} | {r['box_freeze_ms']:.0f} "
            f"| {r['switchover_s']:.3f}{ok_s} | {r['total_s']:.3f} | {r['wait_ready_s']:.3f} "
            f"| {_t(rt, 'rib-state')} / {_t(rt, 'mirror-flushed')} / {_t(rt, 'standby-synced')} "
            f"/ {_t(rt, 'frozen-at')} / {_t(rt, 'released')} "
            f"| {_t(at, 'records-read')} / {_t(at, 'sockets-restored')} / {_t(at, 'bgp-adopted')} / {_t(at, 'done')} "
            f"| {r['issu_max_silence_s']:.1f} | {r['rss_old_kib'] / 1024:.0f} / {r['rss_new_kib'] / 1024:.0f} "
            f"| {dropped} |")
    return "\n".join(lines)


def churn_table(rows: list[dict]) -> str:
    """The markdown table of the --churn cases (docs/performance.md, "NSR switchover")."""
    lines = [
        "| peers x routes | standby | phase | ingest s | active's last mirror batch in the store, s after "
        "ingest | standby acked it, s after ingest | per batch: written to acked ms, median / p90 / max "
        "(batches) | nsr.status: written to applied ms, median / max | journaled keys max "
        "| longest silence of FCR s | VmHWM active / standby MiB |",
        "|---|---|---|---:|---:|---:|---|---|---:|---:|---|",
    ]

    def f(v):
        return "-" if v is None else f"{v:.3f}"

    for r in rows:
        case = f"{r['peers']} x {r['routes']:,}"
        sb = "yes" if r["standby"] else "no"
        if r.get("status") != "ok":
            lines.append(f"| {case} | {sb} | error: {r.get('error', '')[:100]} | | | | | | | | |")
            continue
        rss = f"{r['rss_active_kib'] / 1024:.0f} / " + (
            f"{r['rss_standby_kib'] / 1024:.0f}" if r.get("rss_standby_kib") else "-")
        for name, ph in r["phases"].items():
            st = ph.get("store") or {}
            lag = st.get("ack_lag_ms")
            lag_s = "-" if not lag else (f"{lag['median']:.0f} / {lag['p90']:.0f} / {lag['max']:.0f} "
                                         f"({st['batches']}"
                                         + (f", {st['never_acked']} never" if st.get("never_acked") else "") + ")")
            sl = ph.get("lag_ms")
            sl_s = "-" if not sl else f"{sl['median']:.0f} / {sl['max']:.0f}"
            jm = "-" if ph.get("journaled_keys_max") is None else f"{ph['journaled_keys_max']:,}"
            acked = st.get("acked_after_ingest_s")
            acked_s = f(acked) if acked is not None or not r["standby"] else "never"
            lines.append(
                f"| {case} | {sb} | {name} | {f(ph.get('ingest_s'))} "
                f"| {f(st.get('last_written_after_ingest_s')) if r['standby'] else '-'} "
                f"| {acked_s if r['standby'] else '-'} | {lag_s} | {sl_s} | {jm} "
                f"| {r.get('max_silence_s', 0):.1f} | {rss} |")
    return "\n".join(lines)


def parse_cases(text: str) -> list[tuple[int, int]]:
    out = []
    for part in filter(None, (x.strip() for x in text.split(","))):
        n, r = part.strip().lower().split("x")
        n, r = int(n), int(r)
        if not (1 <= n <= 1000 and n * feedmod.PREFIXES_PER_SET <= r <= 5_000_000):
            raise ValueError(f"bad case {part!r}: 1..1000 peers, 16 x peers .. 5,000,000 routes")
        out.append((n, r))
    return out


def run_bench(bench_cls, args, script: str, argv: list[str]):
    """``bench_cls(args).run()``, closed on every exit path (SIGINT/SIGTERM/SIGHUP raise
    SystemExit); returns the bench and results.json's common fields (None: not root)."""
    args.command = " ".join(shlex.quote(x) for x in [".venv/bin/python", script, *argv])
    if os.geteuid() != 0:
        print(f"{script} needs root (network namespaces, tcpdump)", file=sys.stderr)
        return None

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    t0 = time.monotonic()
    bench = None
    try:
        bench = bench_cls(args)
        bench.run()
    finally:
        if bench is not None:
            bench.close()
    git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    return bench, {"command": args.command, "git": git, "nproc": os.cpu_count(), "kernel": os.uname().release,
                   "python": sys.version.split()[0], "seconds": round(time.monotonic() - t0, 1),
                   "results": bench.results}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "speaker":
        sp = speaker_parser("nsr_switchover.py speaker")
        sp.add_argument("--table-peers", type=int, default=1)
        sp.add_argument("--filter", choices=("policy", "no-export"), default="policy")
        sp.add_argument("--active", action="store_true", help="connect to FCR (else: listen, FCR connects)")
        sp.add_argument("--gens", type=int, default=1, help="feeds to build: 0 announces, 1.. churn")
        return cmd_speaker(sp.parse_args(argv[1:]))
    p = argparse.ArgumentParser(description="NSR switchover (ISSU) benchmark")
    p.add_argument("--cases", default=None,
                   help=f"peers x routes, comma separated (default {DEFAULT_CASES}; none with --churn)")
    p.add_argument("--churn", default="",
                   help="peers x routes, comma separated: RIB-mirror lag cases (see the module doc); each runs "
                        "twice, without and with a standby")
    p.add_argument("--churn-rate", type=float, default=-1,
                   help="--churn: routes per second all speakers together send (default: unpaced)")
    p.add_argument("--sample-ms", type=float, default=20.0, help="--churn: nsr.status sampling period")
    p.add_argument("--store-poll-ms", type=float, default=10.0,
                   help="--churn: period of the read-only polls of the checkpoint store (SQLite)")
    p.add_argument("--settle-timeout", type=float, default=30.0,
                   help="--churn: seconds to wait, after FCR has the routes, for the standby to catch up")
    p.add_argument("--no-churn-release", dest="churn_release", action="store_false",
                   help="--churn: no release to the standby after the churn")
    p.add_argument("--table-peers", type=int, default=1,
                   help="how many peers get FCR's table (the others get nothing: see --filter)")
    p.add_argument("--probe-ms", type=float, default=0,
                   help="KEEPALIVE period per session during the switchover (default 10, 20 above 10 peers)")
    p.add_argument("--case-timeout", type=float, default=300.0, help="seconds to feed one case")
    p.add_argument("--filter", choices=("policy", "no-export"), default="no-export",
                   help="how the other peers are kept from getting the table: 'policy' = their "
                        "default-export-policy reject-route; 'no-export' = every route carries "
                        "NO_EXPORT and the table peers are iBGP (default)")
    p.add_argument("--feed-rate", type=float, default=-1,
                   help="routes per second all speakers together send (0: as fast as FCR reads; "
                        "default: 0 for one peer, 100000 up to 10 peers, 10000 above; see "
                        "docs/performance.md, 'NSR switchover')")
    p.add_argument("--hold", type=int, default=HOLD,
                   help=f"BGP hold time of every session, keepalive = hold / 3 (default {HOLD})")
    p.add_argument("--fcr-passive", action="store_true",
                   help="FCR passive, the speakers connect to it (sessions on FCR's port 179)")
    p.add_argument("--pre-capture", type=float, default=3.5, help="seconds captured before run_issu")
    p.add_argument("--post-capture", type=float, default=1.0, help="seconds captured after the old fcrd exits")
    args = p.parse_args(argv)
    try:
        args.cases = parse_cases(args.cases if args.cases is not None else "" if args.churn else DEFAULT_CASES)
        args.churn = parse_cases(args.churn)
    except ValueError as exc:
        p.error(str(exc))
    got = run_bench(Bench, args, "bench/nsr_switchover.py", argv)
    if got is None:
        return 2
    bench, out = got
    out["churn"] = bench.churn
    (bench.rundir / "results.json").write_text(json.dumps(out, indent=1))
    print()
    if bench.results:
        print(table(bench.results))
    if bench.churn:
        print()
        print(churn_table(bench.churn))
    print(f"\n{len(bench.results)} + {len(bench.churn)} cases in {out['seconds']} s (git {out['git']}); "
          f"logs, captures and results.json: {bench.rundir}")
    return 0 if all(r.get("status") == "ok" and not r.get("dropped") and not r.get("problems")
                    for r in [*bench.results, *bench.churn]) else 1


if __name__ == "__main__":
    sys.exit(main())
