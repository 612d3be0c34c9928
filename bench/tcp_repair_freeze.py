"""NSR TCP hand-over: how long the peer sees a session stand still, for 1, 10 and 100 sessions.

Not a timed test. Needs root (network namespaces, TCP_REPAIR, nftables) and tcpdump.

    sudo .venv/bin/python bench/tcp_repair_freeze.py                     # 1, 10, 100 sessions
    .venv/bin/python bench/tcp_repair_freeze.py --sessions 1,10 --rounds 5 --family inet6
    .venv/bin/python bench/tcp_repair_freeze.py --burst 65536 --peer-rcvbuf 16384  # big queues

Topology: namespace ``fcr`` holds two worker processes (the old and the new owner of the
sessions, like two routing-engine processes), namespace ``peer`` one peer process; a veth
joins them; TCP-MD5 (``--no-md5`` to turn it off) and TCP_NODELAY (as FCR's sessions) on
every session. Each round, the hand-over the engine does, every step timed in the process
that does it:

    old owner: write a burst on every session (the last bytes it writes) → freeze all
               4-tuples (one NetLock, one nftables transaction) → dump every socket →
               close every socket silently → JSON → hand the state to the new owner over a
               Unix socket (the checkpoint store's place)
    new owner: parse → restore every socket (repair mode kept) → lift the freeze (by table
               name) → per session: leave repair mode (window probe, queued bytes pushed)
               and write a 19-byte message at once (the engine's KEEPALIVE)

Before each round the peer sends 4 KiB on every session that the owner does not read (so
every dump carries a receive queue); the burst (``--burst``, into a peer window set by
``--peer-rcvbuf``) can leave bytes unsent or unacknowledged in the old sockets. Every byte is
checked: the peer checks the stream each session sends it, the new owner the bytes it got
from the old owner's receive queue. Rounds are at least 0.6 s apart: Linux answers at most
one window probe per 500 ms per connection.

The freeze the peer sees, per session: the last data segment of the old socket before the
freeze to the first data segment of the new socket after it, on the peer's interface
(tcpdump, nanosecond timestamps, same clock as the workers' time.time()). Also printed:
the same from the processes' timestamps (old owner's last write() → new owner's first
write()), every step, and TCP counters of both namespaces (nstat). Sessions are moved
old → new → old ... ``--rounds`` times. Files: bench/results/tcp_repair_freeze-<time>/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PORT = 179
MD5_KEY = b"fcr-bench-md5"
UNREAD = 4096  # peer -> owner bytes left unread at every hand-over
BURST = 8192  # owner -> peer bytes written just before the freeze, per session (--burst)
KEEPALIVE = 19
HANDOVER_GAP = 0.6  # seconds between two hand-overs of the same sessions
NSTAT = ("TcpExtTCPWinProbe", "TcpExtTCPACKSkippedSeq", "TcpExtTCPLossProbes", "TcpExtTCPTimeouts",
         "TcpRetransSegs", "TcpExtTCPDSACKRecv", "TcpExtTCPMD5Failure", "TcpExtPAWSEstab",
         "TcpExtTCPZeroWindowDrop", "TcpExtTCPRcvQDrop", "TcpOutRsts", "TcpEstabResets")
SEED_OWNER, SEED_PEER = 0x0C0C0C0C0C0C0C0C, 0x5050505050505050


_PERIOD = 65521  # prime: a lost or repeated block of bytes shifts the pattern
_MAX_CHUNK = 1 << 20
_PATTERNS: dict[int, bytes] = {}


def gen(seed: int, offset: int, length: int) -> bytes:
    """Byte n of a stream is a function of n (period 65521): bytes lost, repeated or changed
    show (unless a multiple of the period). Slicing a precomputed pattern keeps the check
    cheap, so the peer is never the bottleneck."""
    pat = _PATTERNS.get(seed)
    if pat is None:
        base = random.Random(seed).randbytes(_PERIOD)
        pat = _PATTERNS[seed] = base * (2 + _MAX_CHUNK // _PERIOD)
    o = offset % _PERIOD
    return pat[o:o + length]


def _reply(**kw) -> None:
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def _commands():
    for line in sys.stdin:
        if line.strip():
            yield json.loads(line)


# -- peer (namespace "peer") --------------------------------------------------------------
def peer_main(family: str, listen: str, client: str, md5: bool, rcvbuf: int) -> None:
    from appliance.nsr import tcp_repair

    fam = socket.AF_INET6 if family == "inet6" else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf:  # a small window: the owner's bursts stay partly unsent in its kernel
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if md5:
        ls.setsockopt(socket.IPPROTO_TCP, tcp_repair.TCP_MD5SIG, tcp_repair.md5sig(client, MD5_KEY))
    ls.bind((listen, PORT))
    ls.listen(1024)
    conns: dict[int, dict] = {}  # fcr port -> {"sock", "rx", "tx", "errors"}
    _reply(listening=PORT)
    stdin = sys.stdin.fileno()
    buf = b""
    for _ in range(10**9):  # bounded; the bench stops us by pid
        rl = [stdin, ls] + [c["sock"] for c in conns.values()]
        r, _, _ = select.select(rl, [], [], 1.0)
        for s in r:
            if s is ls:
                c, addr = ls.accept()
                c.setblocking(False)
                conns[addr[1]] = {"sock": c, "rx": 0, "tx": 0, "errors": []}
            elif s is not stdin:
                port = s.getpeername()[1]
                st = conns[port]
                try:
                    data = s.recv(_MAX_CHUNK)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    st["errors"].append(f"recv: {exc}")
                    continue
                if not data:
                    st["errors"].append(f"EOF at {st['rx']}")
                    continue
                if data != gen(SEED_OWNER, st["rx"], len(data)):
                    st["errors"].append(f"bad bytes at {st['rx']}")
                st["rx"] += len(data)
        if stdin not in r:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            return
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            cmd = json.loads(line)
            if cmd["cmd"] == "count":
                _reply(n=len(conns))
            elif cmd["cmd"] == "push":  # small: fits the owner's receive buffer
                for st in conns.values():
                    st["sock"].setblocking(True)
                    st["sock"].sendall(gen(SEED_PEER, st["tx"], cmd["bytes"]))
                    st["sock"].setblocking(False)
                    st["tx"] += cmd["bytes"]
                _reply(ok=True)
            elif cmd["cmd"] == "stats":
                _reply(conns={p: {"rx": c["rx"], "tx": c["tx"], "errors": c["errors"][:3]}
                              for p, c in conns.items()})
            elif cmd["cmd"] == "exit":
                _reply(ok=True)
                return


# -- worker (namespace "fcr"): old or new owner of the sessions ----------------------------
def worker_main(pair_fd: int, md5: bool, burst: int) -> None:
    from appliance.nsr import netlock, tcp_repair

    pair = socket.socket(fileno=pair_fd)
    key = MD5_KEY if md5 else None
    sessions: dict[int, dict] = {}  # local port -> {"sock", "tx", "rx"}

    def give(cmd: dict) -> dict:
        t = {}
        socks = list(sessions.values())
        for st in socks:  # the last bytes the old owner writes (as much as the socket takes)
            data = gen(SEED_OWNER, st["tx"], burst)
            try:
                st["tx"] += st["sock"].send(data)
            except BlockingIOError:
                pass
        t["last_write"] = time.time()
        t0 = time.perf_counter()
        tuples = [st["sock"].getsockname()[:2] + st["sock"].getpeername()[:2] for st in socks]
        lock = netlock.NetLock(tuples)
        lock.acquire()
        t["frozen"] = time.time()  # from here nothing of these sessions leaves the box
        t1 = time.perf_counter()
        states = [tcp_repair.dump(st["sock"]) for st in socks]
        t2 = time.perf_counter()
        for st in socks:
            tcp_repair.close_silently(st["sock"])
        t3 = time.perf_counter()
        blob = json.dumps({"table": lock.table, "sessions": [
            {"tcp": s.to_dict(), "tx": st["tx"], "rx": st["rx"]}
            for s, st in zip(states, socks, strict=True)]}).encode()
        pair.sendall(struct.pack("!I", len(blob)) + blob)
        t4 = time.perf_counter()
        sessions.clear()  # the new owner lifts the freeze (by table name)
        queues = [(len(s.recv_queue), len(s.send_queue_sent), len(s.send_queue_unsent))
                  for s in states]
        t.update(prepare_ms=(t1 - t0) * 1e3 - lock.timings["freeze"] * 1e3,
                 freeze_ms=lock.timings["freeze"] * 1e3, dump_ms=(t2 - t1) * 1e3,
                 close_ms=(t3 - t2) * 1e3, ship_ms=(t4 - t3) * 1e3, state_bytes=len(blob),
                 recv_q=sum(q[0] for q in queues), sent_q=sum(q[1] for q in queues),
                 unsent_q=sum(q[2] for q in queues))
        return t

    def take(cmd: dict) -> dict:
        head = b""
        while len(head) < 4:
            head += pair.recv(4 - len(head))
        (n,) = struct.unpack("!I", head)
        t = {"got_state": time.time()}
        t0 = time.perf_counter()
        parts, got = [], 0
        while got < n:
            chunk = pair.recv(min(1 << 20, n - got))
            if not chunk:
                raise EOFError("state cut short")
            parts.append(chunk)
            got += len(chunk)
        doc = json.loads(b"".join(parts))
        states = [tcp_repair.TcpState.from_dict(x["tcp"]) for x in doc["sessions"]]
        t1 = time.perf_counter()
        socks = [tcp_repair.restore(s, md5_key=key, leave_repair_mode=False) for s in states]
        t2 = time.perf_counter()
        netlock.unfreeze(doc["table"])
        t["unfrozen"] = time.time()
        t3 = time.perf_counter()
        leave = send = 0.0
        for s, x in zip(socks, doc["sessions"], strict=True):
            a = time.perf_counter()
            tcp_repair.leave_repair(s)  # window probe, and what was queued unsent goes out
            b = time.perf_counter()
            s.send(gen(SEED_OWNER, x["tx"], KEEPALIVE))  # the engine's KEEPALIVE, at once
            x["tx"] += KEEPALIVE
            if "first_write" not in t:
                t["first_write"] = time.time()
            leave += b - a
            send += time.perf_counter() - b
        t["last_first_write"] = time.time()
        # untimed: read what the old owner left unread, check it
        errors = []
        for s, x, st in zip(socks, doc["sessions"], states, strict=True):
            s.settimeout(5)
            want = len(st.recv_queue)
            data = b""
            while len(data) < want:
                chunk = s.recv(want - len(data))
                if not chunk:
                    break
                data += chunk
            if data != gen(SEED_PEER, x["rx"], want):
                errors.append(f"port {s.getsockname()[1]}: receive queue bytes differ")
            x["rx"] += len(data)
            s.setblocking(False)
            sessions[s.getsockname()[1]] = {"sock": s, "tx": x["tx"], "rx": x["rx"]}
        t.update(parse_ms=(t1 - t0) * 1e3, restore_ms=(t2 - t1) * 1e3,
                 unfreeze_ms=(t3 - t2) * 1e3, leave_ms=leave * 1e3, send_ms=send * 1e3,
                 errors=errors)
        return t

    for cmd in _commands():
        c = cmd["cmd"]
        try:
            if c == "connect":
                fam = socket.AF_INET6 if ":" in cmd["remote"] else socket.AF_INET
                for _ in range(cmd["n"]):
                    s = socket.socket(fam, socket.SOCK_STREAM)
                    # as FCR's session sockets (appliance/bgp/transport.py); carried over
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if key:
                        s.setsockopt(socket.IPPROTO_TCP, tcp_repair.TCP_MD5SIG,
                                     tcp_repair.md5sig(cmd["remote"], key))
                    s.connect((cmd["remote"], PORT))
                    s.setblocking(False)
                    sessions[s.getsockname()[1]] = {"sock": s, "tx": 0, "rx": 0}
                _reply(ok=True, ports=sorted(sessions))
            elif c == "give":
                _reply(ok=True, **give(cmd))
            elif c == "take":
                _reply(ok=True, **take(cmd))
            elif c == "outq":
                _reply(ok=True, outq=sum(tcp_repair._ioctl_int(st["sock"], tcp_repair.SIOCOUTQ,
                                                               "outq") for st in sessions.values()),
                       tx={p: st["tx"] for p, st in sessions.items()})
            elif c == "exit":
                _reply(ok=True)
                return
        except Exception as exc:  # noqa: BLE001 - reported to the driver
            _reply(ok=False, error=f"{type(exc).__name__}: {exc}")


# -- driver ---------------------------------------------------------------------------------
class Proc:
    def __init__(self, host, argv: list[str], log: Path, **kw) -> None:
        self.p = host.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(log, "ab"), **kw)  # noqa: SIM115 - lives with the process
        self.log = log
        self.buf = b""

    def send(self, **cmd) -> None:
        self.p.stdin.write((json.dumps(cmd) + "\n").encode())
        self.p.stdin.flush()

    def read(self, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            if b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                rep = json.loads(line)
                if rep.get("ok") is False:
                    raise RuntimeError(f"{self.log.name}: {rep['error']}")
                return rep
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.p.stdout], [], [], max(left, 0))
            if not r:
                break
            chunk = os.read(self.p.stdout.fileno(), 1 << 20)
            if not chunk:
                break
            self.buf += chunk
        raise RuntimeError(f"no reply from {self.log.name}: {self.log.read_text()[-1500:]}")

    def call(self, **cmd) -> dict:
        self.send(**cmd)
        return self.read()


def read_pcap(path: Path) -> list[tuple[float, int, int, int]]:
    """(time, source port, destination port, payload bytes) of every TCP segment."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data, 0)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nsec = struct.unpack_from(endian + "I", data, 0)[0] == 0xA1B23C4D
    out, off = [], 24
    for _ in range(10**8):
        if off + 16 > len(data):
            break
        sec, frac, incl, _orig = struct.unpack_from(endian + "4I", data, off)
        pkt = data[off + 16: off + 16 + incl]
        off += 16 + incl
        etype = struct.unpack_from("!H", pkt, 12)[0]
        ip = pkt[14:]
        if etype == 0x0800 and ip[9] == 6:
            ihl = (ip[0] & 0x0F) * 4
            tcp, iplen = ip[ihl:], struct.unpack_from("!H", ip, 2)[0] - ihl
        elif etype == 0x86DD and ip[6] == 6:
            tcp, iplen = ip[40:], struct.unpack_from("!H", ip, 4)[0]
        else:
            continue
        sport, dport = struct.unpack_from("!HH", tcp, 0)
        out.append((sec + frac / (1e9 if nsec else 1e6), sport, dport,
                    iplen - (tcp[12] >> 4) * 4))
    return out


def wire_gaps(pkts, ports, t_frozen: float, t_unfrozen: float) -> tuple[list[float], int]:
    """Per session: last data segment it sent before the freeze → first one after; and
    how many segments of these sessions crossed while frozen (must be 0)."""
    gaps, leaked = [], 0
    ports = set(ports)
    by_port: dict[int, list[float]] = {p: [] for p in ports}
    for t, sp, _dp, n in pkts:
        if t_frozen < t < t_unfrozen and sp in ports:
            leaked += 1
        if sp in ports and n > 0:
            by_port[sp].append(t)
    for ts in by_port.values():
        before = [t for t in ts if t < t_frozen]
        after = [t for t in ts if t > t_unfrozen]
        if before and after:
            gaps.append((min(after) - max(before)) * 1e3)
    return gaps, leaked


def run_size(topo_mod, n: int, args, out_dir: Path) -> dict:
    from appliance.nsr import netlock

    v6 = args.family == "inet6"
    fcr_addr, peer_addr = ("2001:db8:79::1", "2001:db8:79::2") if v6 else ("10.0.79.1", "10.0.79.2")
    plen = 64 if v6 else 24
    me, py = str(Path(__file__).resolve()), sys.executable
    with topo_mod.Topology() as topo:
        h_fcr, h_peer = topo.add_host("fcr"), topo.add_host("peer")
        _, peer_if = topo.link(h_fcr, h_peer, [f"{fcr_addr}/{plen}"], [f"{peer_addr}/{plen}"])
        pcap, dlog = out_dir / f"peer-{n}.pcap", out_dir / f"tcpdump-{n}.log"
        dump = h_peer.popen(["tcpdump", "-i", peer_if, "-n", "-U", "--immediate-mode",
                             "--time-stamp-precision=nano", "-s", "96", "-B", "32768",
                             "-w", str(pcap), "tcp"], log=dlog)
        for _ in range(200):
            if "listening on" in dlog.read_text():
                break
            time.sleep(0.05)
        md5 = "1" if args.md5 else "0"
        peer = Proc(h_peer, [py, me, "peer", args.family, peer_addr, fcr_addr, md5,
                             str(args.peer_rcvbuf)],
                    out_dir / f"peer-{n}.log")
        peer.read()
        a_end, b_end = socket.socketpair()
        workers = [Proc(h_fcr, [py, me, "worker", str(end.fileno()), md5, str(args.burst)],
                        out_dir / f"worker{i}-{n}.log", pass_fds=(end.fileno(),))
                   for i, end in enumerate((a_end, b_end))]
        a_end.close()
        b_end.close()
        try:
            ports = workers[0].call(cmd="connect", n=n, remote=peer_addr)["ports"]
            for _ in range(100):
                if peer.call(cmd="count")["n"] == n:
                    break
                time.sleep(0.05)
            rounds = []
            owner, spare = workers
            last = 0.0
            for _r in range(args.rounds):
                # a session's hand-overs >= 0.6 s apart: Linux answers at most one window
                # probe per 500 ms per connection (net.ipv4.tcp_invalid_ratelimit)
                time.sleep(max(0.0, last + HANDOVER_GAP - 0.2 - time.time()))
                peer.call(cmd="push", bytes=UNREAD)
                time.sleep(0.2)  # delivered; the owner's queues settle
                spare.send(cmd="take")
                g = owner.call(cmd="give")
                tk = spare.read()
                assert not tk["errors"], tk["errors"]
                rounds.append({"give": g, "take": tk})
                last = tk["unfrozen"]
                owner, spare = spare, owner
                for _ in range(100):  # everything delivered before the next round
                    if owner.call(cmd="outq")["outq"] == 0:
                        break
                    time.sleep(0.02)
            time.sleep(0.3)
            stats = peer.call(cmd="stats")["conns"]
            sent = owner.call(cmd="outq")["tx"]
            errors = [c["errors"] for c in stats.values() if c["errors"]]
            assert not errors, errors
            for port, c in stats.items():
                assert c["rx"] == sent[port], (port, c["rx"], sent[port])
            counters = {h.name: _nstat(h) for h in (h_fcr, h_peer)}
            for w in (*workers, peer):
                w.call(cmd="exit")
            leftover = netlock.tables(h_fcr.ns)  # (the namespace goes with its tables anyway)
            assert leftover == [], leftover
        finally:
            h_peer.stop_process(dump)
        pkts = read_pcap(pcap)
        text = dlog.read_text()
    for r in rounds:
        g, tk = r["give"], r["take"]
        gaps, r["leaked"] = wire_gaps(pkts, ports, g["frozen"], tk["unfrozen"])
        r["wire_median"] = statistics.median(gaps) if gaps else float("nan")
        r["wire_max"] = max(gaps) if gaps else float("nan")
        r["wire_n"] = len(gaps)
        r["app_ms"] = (tk["first_write"] - g["last_write"]) * 1e3
        r["app_all_ms"] = (tk["last_first_write"] - g["last_write"]) * 1e3
    return {"n": n, "rounds": rounds, "tcpdump": text.strip().splitlines()[-3:],
            "nstat": counters}


def _nstat(host) -> dict:
    """TCP counters of a namespace (absolute; the namespace is new, so the whole run)."""
    out = host.run(["nstat", "-asz"], check=False).stdout
    vals = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in NSTAT:
            vals[parts[0]] = int(parts[1])
    return vals


def report(results: list[dict], args) -> str:
    def med(rs, f):
        return statistics.median(f(r) for r in rs)

    cols = [
        ("freeze: nft (ms)", lambda r: r["give"]["freeze_ms"]),
        ("dump all", lambda r: r["give"]["dump_ms"]),
        ("close all", lambda r: r["give"]["close_ms"]),
        ("JSON + hand to new owner", lambda r: r["give"]["ship_ms"]),
        ("receive + parse", lambda r: r["take"]["parse_ms"]),
        ("restore all", lambda r: r["take"]["restore_ms"]),
        ("unfreeze: nft", lambda r: r["take"]["unfreeze_ms"]),
        ("leave repair + push, all sessions", lambda r: r["take"]["leave_ms"]),
        ("first write (KEEPALIVE), all sessions", lambda r: r["take"]["send_ms"]),
        ("**old owner's last write → new owner's first write (first session)**",
         lambda r: r["app_ms"]),
        ("**... (last session)**", lambda r: r["app_all_ms"]),
        ("**peer sees: freeze per session, median**", lambda r: r["wire_median"]),
        ("**peer sees: freeze per session, worst**", lambda r: r["wire_max"]),
    ]
    head = "| step (median of rounds, ms) | " + " | ".join(f"{r['n']} session{'s' if r['n'] > 1 else ''}"
                                                        for r in results) + " |"
    lines = [head, "|---|" + "---|" * len(results)]
    for name, f in cols:
        lines.append(f"| {name} | " + " | ".join(f"{med(r['rounds'], f):.1f}" for r in results) + " |")
    lines.append("| state size (bytes), queues recv/sent/unsent at dump (bytes, all sessions) | " + " | ".join(
        f"{int(med(r['rounds'], lambda x: x['give']['state_bytes']))}, "
        f"{int(med(r['rounds'], lambda x: x['give']['recv_q']))}/"
        f"{int(med(r['rounds'], lambda x: x['give']['sent_q']))}/"
        f"{int(med(r['rounds'], lambda x: x['give']['unsent_q']))}" for r in results) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", default="1,10,100")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--family", choices=("inet", "inet6"), default="inet")
    ap.add_argument("--no-md5", dest="md5", action="store_false")
    ap.add_argument("--burst", type=int, default=BURST,
                    help="bytes each session writes right before the freeze")
    ap.add_argument("--peer-rcvbuf", type=int, default=0,
                    help="peer's SO_RCVBUF (small: bursts stay partly unsent at the dump)")
    ap.add_argument("--json", action="store_true", help="print every round as JSON too")
    args = ap.parse_args()
    from tests.topotest import netns as topo_mod

    ok, why = topo_mod.netns_usable()
    if not ok:
        print(f"needs network namespaces: {why}", file=sys.stderr)
        return 2
    out_dir = REPO / "bench" / "results" / f"tcp_repair_freeze-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for n in (int(x) for x in args.sessions.split(",")):
        res = run_size(topo_mod, n, args, out_dir)
        results.append(res)
        print(f"{n} sessions: peer-visible freeze per round (median/worst session, ms): " + ", ".join(
            f"{r['wire_median']:.1f}/{r['wire_max']:.1f}" for r in res["rounds"]), flush=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\n{args.family}, TCP-MD5 {'on' if args.md5 else 'off'}, {args.rounds} rounds, burst "
          f"{args.burst} B/session, peer SO_RCVBUF {args.peer_rcvbuf or 'default'}, "
          f"{os.cpu_count()} CPUs; files in {out_dir}\n")
    print(report(results, args))
    for r in results:
        print(f"nstat, {r['n']} sessions: {r['nstat']}")
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "peer":
        peer_main(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1", int(sys.argv[6]))
    elif len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker_main(int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4]))
    else:
        sys.exit(main())
