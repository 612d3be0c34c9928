"""BGP full-table benchmark: FCR vs BIRD 2, FRR bgpd and GoBGP (issue 2).

One sender (bench/feed.py) feeds each receiver in turn, alone on the machine, with the same
1,000,000 IPv4 prefixes:

  feed A  62,500 attribute sets x 16 prefixes (one UPDATE per set)
  feed B  one attribute set, UPDATEs packed to 4096 octets

and, after feed A, the receiver advertises the full table to a fresh sink peer
(bench/sink.py): the "A->sink" row.

Topology (network namespaces from tests/topotest, veth pairs):

  [feed 10.0.1.1 AS65001] ---- [10.0.1.2 receiver AS65000 10.0.2.1] ---- [10.0.2.2 sink AS65002]

The receiver is passive towards both peers; the sender and the sink connect. See
bench/README.md for what is measured and the caveats.

    .venv/bin/python bench/bgp_table.py [--only fcr,bird,frr,gobgp] [--prefixes N] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import feed as feedmod  # noqa: E402

from tests.topotest.netns import Host, Topology, cleanup_stale_namespaces  # noqa: E402

PYTHON = sys.executable
FRR_DIR = "/usr/lib/frr"

FEED_ADDR, RCV_FEED_ADDR = "10.0.1.1", "10.0.1.2"
RCV_SINK_ADDR, SINK_ADDR = "10.0.2.1", "10.0.2.2"
FEED_AS, RCV_AS, SINK_AS = 65001, 65000, 65002
HOLD, KEEPALIVE = 180, 60

DAEMONS = ("fcr", "bird", "frr", "gobgp")
LABELS = {"fcr": "FCR", "bird": "BIRD 2", "frr": "FRR bgpd", "gobgp": "GoBGP"}
SECTION = "## BGP full table (issue 2)"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def vm_hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run_quiet(argv: list[str], timeout: float = 5.0) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (subprocess.TimeoutExpired, OSError):
        return None


# --------------------------------------------------------------------------- receivers


class Receiver:
    """A daemon under test in the receiver namespace. Subclasses: start, count, version."""

    name = ""

    def __init__(self, host: Host, workdir: Path, poll_timeout: float = 5.0):
        self.host = host
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self.proc: subprocess.Popen | None = None
        self.poll_timeout = poll_timeout

    def start(self) -> None:
        raise NotImplementedError

    def ready(self) -> bool:
        """Control interface answers (a feed-peer count of 0 is fine)."""
        return self.count() is not None

    def count(self) -> int | None:
        """IPv4-unicast prefixes in the receiver's RIB (None: could not ask)."""
        raise NotImplementedError

    def complete(self, n: int) -> bool:
        """Extra check once count() >= n (default: none)."""
        return True

    def poll(self, n: int) -> tuple[int | None, bool]:
        """One cheap progress poll: (prefix count or None when unknown, all n in the RIB)."""
        c = self.count()
        return c, c is not None and c >= n and self.complete(n)

    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            Host.stop_process(self.proc)

    def tail(self, lines: int = 30) -> str:
        out = []
        for p in sorted(self.workdir.glob("*.log")) + sorted(self.workdir.glob("*.out")):
            with contextlib.suppress(OSError):
                txt = p.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {p.name}\n" + "\n".join(txt))
        return "\n".join(out)

    @staticmethod
    def version() -> str:
        return "?"


class BirdReceiver(Receiver):
    name = "bird"

    def start(self) -> None:
        conf = self.workdir / "bird.conf"
        self.sock = self.workdir / "bird.ctl"
        conf.write_text(
            f"""# written by bench/bgp_table.py
log "{self.workdir}/bird.log" {{ info, warning, error, fatal, bug }};
router id {RCV_FEED_ADDR};
protocol device {{ }}
protocol bgp feed {{
  local {RCV_FEED_ADDR} as {RCV_AS};
  neighbor {FEED_ADDR} as {FEED_AS};
  passive on;
  hold time {HOLD};
  keepalive time {KEEPALIVE};
  ipv4 {{ import all; export all; }};
}}
protocol bgp sink {{
  local {RCV_SINK_ADDR} as {RCV_AS};
  neighbor {SINK_ADDR} as {SINK_AS};
  passive on;
  hold time {HOLD};
  keepalive time {KEEPALIVE};
  ipv4 {{ import all; export all; }};
}}
"""
        )
        self.proc = self.host.popen(
            ["bird", "-f", "-c", conf, "-s", self.sock, "-P", self.workdir / "bird.pid"],
            log=self.workdir / "bird.out",
        )

    def count(self) -> int | None:
        # O(1) in BIRD: the protocol's import counter ("Routes: N imported, ..."). BIRD 2
        # imports into the table synchronously with the UPDATE, so this is the table's count.
        res = run_quiet(["birdc", "-s", str(self.sock), "show", "protocols", "all", "feed"],
                        self.poll_timeout)
        if res is None or res.returncode != 0:
            return None
        m = re.search(r"Routes:\s+(\d+) imported", res.stdout)
        if m:
            return int(m.group(1))
        return 0 if "feed" in res.stdout else None

    @staticmethod
    def version() -> str:
        res = run_quiet(["bird", "--version"])
        txt = (res.stdout + res.stderr) if res else ""
        m = re.search(r"BIRD version (\S+)", txt)
        return m.group(1) if m else "?"


class FrrReceiver(Receiver):
    """bgpd alone, started with -Z (--no_zebra): no zebra, so no FIB install."""

    name = "frr"

    def start(self) -> None:
        import pwd

        pw = pwd.getpwnam("frr")
        os.chown(self.workdir, pw.pw_uid, pw.pw_gid)
        conf = self.workdir / "bgpd.conf"
        neighbors = []
        for addr, asn in ((FEED_ADDR, FEED_AS), (SINK_ADDR, SINK_AS)):
            neighbors += [
                f" neighbor {addr} remote-as {asn}",
                f" neighbor {addr} passive",
                f" neighbor {addr} timers {KEEPALIVE} {HOLD}",
            ]
        conf.write_text(
            "\n".join(
                [
                    "! written by bench/bgp_table.py",
                    "frr defaults traditional",
                    "hostname rcv",
                    f"log file {self.workdir}/bgpd.log",
                    "!",
                    f"router bgp {RCV_AS}",
                    f" bgp router-id {RCV_FEED_ADDR}",
                    " no bgp ebgp-requires-policy",
                    *neighbors,
                    "!",
                    "line vty",
                    "!",
                    "",
                ]
            )
        )
        os.chown(conf, pw.pw_uid, pw.pw_gid)
        self.proc = self.host.popen(
            [
                f"{FRR_DIR}/bgpd", "-Z", "-u", "frr", "-g", "frr", "-f", conf,
                "-i", self.workdir / "bgpd.pid", "--vty_socket", self.workdir,
                "-z", self.workdir / "zserv.api", "-P", "0",
                "--log", f"file:{self.workdir}/bgpd.log",
            ],
            log=self.workdir / "bgpd.out",
        )

    def vtysh_json(self, cmd: str) -> dict | None:
        res = run_quiet(["vtysh", "--vty_socket", str(self.workdir), "-d", "bgpd", "-c", cmd],
                        self.poll_timeout)
        if res is None or res.returncode != 0 or not res.stdout.strip():
            return None
        try:
            return json.loads(res.stdout)
        except json.JSONDecodeError:
            return None

    def count(self) -> int | None:
        data = self.vtysh_json("show bgp ipv4 unicast summary json")
        if data is None:
            return None
        peer = data.get("peers", {}).get(FEED_ADDR)
        if peer is None:
            return 0 if "routerId" in data or data == {} else None
        return int(peer.get("pfxRcd", 0))

    def complete(self, n: int) -> bool:
        # pfxRcd counts the Adj-RIB-In; best-path selection runs later from bgpd's work
        # queue (roughly in arrival order). Require the last prefix of the feed to have a
        # selected best path as well.
        data = self.vtysh_json(f"show bgp ipv4 unicast {last_prefix(n)} json")
        if not data:
            return False
        return any(p.get("bestpath", {}).get("overall") for p in data.get("paths", []))

    @staticmethod
    def version() -> str:
        res = run_quiet([f"{FRR_DIR}/bgpd", "--version"])
        m = re.search(r"version (\S+)", res.stdout if res else "")
        return m.group(1) if m else "?"


class GobgpReceiver(Receiver):
    name = "gobgp"
    API = "127.0.0.1:50051"

    def start(self) -> None:
        conf = self.workdir / "gobgpd.toml"
        neighbors = ""
        for addr, asn in ((FEED_ADDR, FEED_AS), (SINK_ADDR, SINK_AS)):
            neighbors += f"""
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{addr}"
    peer-as = {asn}
  [neighbors.transport.config]
    passive-mode = true
  [neighbors.timers.config]
    hold-time = {HOLD}
    keepalive-interval = {KEEPALIVE}
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
"""
        conf.write_text(
            f"""# written by bench/bgp_table.py
[global.config]
  as = {RCV_AS}
  router-id = "{RCV_FEED_ADDR}"
  port = 179
{neighbors}"""
        )
        self.proc = self.host.popen(
            ["gobgpd", "-f", conf, "-t", "toml", "--api-hosts", self.API, "--pprof-disable",
             "-p", "-l", "info"],
            log=self.workdir / "gobgpd.log",
        )

    def gobgp(self, *args: str) -> subprocess.CompletedProcess | None:
        host, port = self.API.split(":")
        return run_quiet(self.host.wrap(["gobgp", "-u", host, "-p", port, *args]),
                         self.poll_timeout)

    def poll(self, n: int) -> tuple[int | None, bool]:
        # Counting is O(table) in gobgpd (`global rib summary` and `neighbor` both walk the
        # table in the server's main loop); polled every 100 ms it slows gobgpd down several
        # times over. gobgpd handles one peer's UPDATEs in order, so poll for the feed's last
        # prefix in the global RIB (a map lookup) and count once it is there.
        res = self.gobgp("global", "rib", "-a", "ipv4", last_prefix(n))
        if res is None or res.returncode != 0 or last_prefix(n) not in res.stdout:
            return None, False
        c = self.count()
        return c, c is not None and c >= n

    def count(self) -> int | None:
        # The global (Loc-)RIB: "Table ipv4-unicast / Destination: N, Path: N".
        res = self.gobgp("global", "rib", "summary", "-a", "ipv4")
        if res is None or res.returncode != 0:
            return None
        m = re.search(r"Destination:\s*(\d+)", res.stdout)
        return int(m.group(1)) if m else None

    @staticmethod
    def version() -> str:
        res = run_quiet(["gobgpd", "--version"])
        m = re.search(r"version (\S+)", res.stdout if res else "")
        return m.group(1) if m else "?"


class FcrReceiver(Receiver):
    """fcrd with its control socket (JSON lines): bgp.summary -> rib.ipv4-unicast."""

    name = "fcr"
    FCRD = ROOT / ".venv" / "bin" / "fcrd"

    def start(self) -> None:
        conf = self.workdir / "fcrd.json"
        self.sock_path = self.workdir / "fcrd.ctl"
        neighbors = [
            {
                "neighbor-address": addr,
                "peer-as": asn,
                "transport": {"passive-mode": True},
                "timers": {"hold-time": HOLD, "keepalive-interval": KEEPALIVE},
                "afi-safis": {"afi-safi": [{"afi-safi-name": "ipv4-unicast"}]},
            }
            for addr, asn in ((FEED_ADDR, FEED_AS), (SINK_ADDR, SINK_AS))
        ]
        conf.write_text(
            json.dumps(
                {
                    "fcr-system:system": {"hostname": "rcv"},
                    "fcr-bgp:bgp": {
                        "global": {
                            "as": RCV_AS,
                            "router-id": RCV_FEED_ADDR,
                            "listen": {"address": ["0.0.0.0"], "port": 179},
                        },
                        "neighbors": {"neighbor": neighbors},
                    },
                    # Like FRR's bgpd -Z and BIRD without a kernel protocol: the BGP
                    # path alone (FIB programming has its own bench, bench/fib_install.py).
                    "fcr-routing:routing": {"fib": {"enabled": False}},
                },
                indent=2,
            )
        )
        self.proc = self.host.popen(
            [self.FCRD, "--config", conf, "--control", self.sock_path],
            log=self.workdir / "fcrd.log",
        )
        self._conn: socket.socket | None = None
        self._rfile = None
        self._id = 0

    def _call(self, method: str) -> dict | None:
        """One request on a persistent connection (reconnects once if the server closed it)."""
        for _attempt in range(2):
            try:
                if self._conn is None:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.settimeout(self.poll_timeout)
                    s.connect(str(self.sock_path))
                    self._conn, self._rfile = s, s.makefile("rb")
                self._id += 1
                req = {"id": self._id, "method": method, "params": {}}
                self._conn.sendall(json.dumps(req).encode() + b"\n")
                line = self._rfile.readline()
                if not line:
                    raise ConnectionResetError("control socket closed")
                reply = json.loads(line)
                if reply.get("id") != self._id or "result" not in reply:
                    return None
                return reply["result"]
            except (OSError, ValueError):
                self._close_conn()
        return None

    def _close_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._rfile.close()
                self._conn.close()
        self._conn = self._rfile = None

    def count(self) -> int | None:
        res = self._call("bgp.summary")
        if res is None:
            return None
        rib = res.get("rib", {}).get("ipv4-unicast")
        if rib is not None:
            return int(rib)
        for n in res.get("neighbors", []):
            if n.get("neighbor-address") == FEED_ADDR:
                return int(n.get("prefixes-accepted", n.get("prefixes-received", 0)))
        return 0

    def stop(self) -> None:
        self._close_conn()
        super().stop()

    @classmethod
    def version(cls) -> str:
        res = run_quiet([str(cls.FCRD), "--version"])
        if res is not None and res.returncode == 0 and res.stdout.strip():
            return res.stdout.strip().splitlines()[0]
        res = run_quiet(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
        return f"git {res.stdout.strip()}" if res and res.returncode == 0 else "?"


RECEIVERS = {"fcr": FcrReceiver, "bird": BirdReceiver, "frr": FrrReceiver,
             "gobgp": GobgpReceiver}


_LAST: dict[int, str] = {}


def last_prefix(n: int) -> str:
    """Text form of the feed's last prefix (the n-th /24; bounded loop, ~0.1 s for 1M)."""
    if n not in _LAST:
        net = 0
        for net in feedmod.prefix_slash24s(n):  # noqa: B007
            pass
        _LAST[n] = f"{socket.inet_ntoa((net << 8).to_bytes(4, 'big'))}/24"
    return _LAST[n]


# --------------------------------------------------------------------------- helpers


class JsonLines:
    """Reads a child's stdout (one JSON object per line) into a queue from a thread."""

    def __init__(self, proc: subprocess.Popen, logpath: Path):
        self.q: queue.Queue = queue.Queue()
        self.proc = proc
        self.logpath = logpath
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        with open(self.logpath, "a") as logf:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").strip()
                logf.write(line + "\n")
                logf.flush()
                try:
                    self.q.put(json.loads(line))
                except ValueError:
                    continue
        self.q.put({"event": "eof"})

    def wait_event(self, names: tuple[str, ...], timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                ev = self.q.get(timeout=left)
            except queue.Empty:
                return None
            if ev.get("event") in names or ev.get("event") in ("error", "eof"):
                return ev
        return None

    def pending_error(self) -> dict | None:
        for _ in range(1000):
            try:
                ev = self.q.get_nowait()
            except queue.Empty:
                return None
            if ev.get("event") in ("error", "eof"):
                return ev
        return None


class Bench:
    def __init__(self, args):
        self.args = args
        self.n = args.prefixes
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.rundir = BENCH / "results" / f"bgp_table-{stamp}"
        self.rundir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.rundir, 0o755)
        self.topo: Topology | None = None
        self.results: list[dict] = []

    # -- topology -------------------------------------------------------------------------
    def build_topology(self) -> None:
        cleanup_stale_namespaces()
        self.topo = Topology()
        self.h_feed = self.topo.add_host("feed")
        self.h_rcv = self.topo.add_host("rcv")
        self.h_sink = self.topo.add_host("sink")
        self.topo.link(self.h_feed, self.h_rcv, [f"{FEED_ADDR}/24"], [f"{RCV_FEED_ADDR}/24"])
        self.topo.link(self.h_rcv, self.h_sink, [f"{RCV_SINK_ADDR}/24"], [f"{SINK_ADDR}/24"])

    def close(self) -> None:
        if self.topo is not None:
            self.topo.close()
            self.topo = None

    # -- one receiver ---------------------------------------------------------------------
    def start_sender(self, host: Host, feed_file: str, tag: str) -> tuple[subprocess.Popen, JsonLines]:
        proc = host.popen(
            [PYTHON, BENCH / "feed.py", "send", "--connect", RCV_FEED_ADDR, "--local-address",
             FEED_ADDR, "--local-as", str(FEED_AS), "--router-id", FEED_ADDR, "--hold-time",
             str(HOLD), "--feed-file", feed_file, "--connect-timeout", "20",
             "--max-seconds", str(self.args.timeout * 3 + 120)],
            stdout=subprocess.PIPE, stderr=open(self.rundir / f"{tag}.sender.err", "ab"),
        )
        return proc, JsonLines(proc, self.rundir / f"{tag}.sender.jsonl")

    def run_one(self, daemon: str, feed: str) -> list[dict]:
        """Start `daemon`, feed it, measure; for feed A also the sink phase. Returns rows."""
        tag = f"{daemon}-{feed}"
        wd = self.rundir / tag
        rcv = RECEIVERS[daemon](self.h_rcv, wd)
        rows: list[dict] = []
        row = {"daemon": daemon, "feed": feed.upper(), "prefixes": self.n,
               "loadavg_before": os.getloadavg()[0]}
        sender = None
        try:
            log(f"{daemon}: start (feed {feed.upper()})")
            rcv.start()
            deadline = time.monotonic() + 30
            for _ in range(300):
                if not rcv.alive():
                    raise RuntimeError(f"{daemon} exited at start\n{rcv.tail()}")
                if rcv.ready() or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            if not rcv.ready():
                raise RuntimeError(f"{daemon} control interface not ready\n{rcv.tail()}")
            time.sleep(self.args.settle)
            feed_file = feedmod.ensure_feed(feed, self.n, FEED_ADDR, FEED_AS)
            est = None
            for attempt in range(5):
                sender, events = self.start_sender(self.h_feed, feed_file, f"{tag}-{attempt}")
                est = events.wait_event(("established",), 40)
                if est is not None and est.get("event") == "established":
                    break
                log(f"{daemon}: sender attempt {attempt} failed: {est}")
                Host.stop_process(sender)
                sender, est = None, None
                time.sleep(1.0)
            if est is None:
                raise RuntimeError(f"sender could not establish with {daemon}\n{rcv.tail()}")
            t_est = est["t"]
            cpu0 = cpu_seconds(rcv.pid())
            res = self.poll_until_complete(rcv, t_est, events)
            row.update(res)
            row["rss_kib"] = vm_hwm_kib(rcv.pid())
            cpu1 = cpu_seconds(rcv.pid())
            if cpu0 is not None and cpu1 is not None:
                row["daemon_cpu_s"] = round(cpu1 - cpu0, 2)
            log(f"{daemon} feed {feed.upper()}: {self.fmt_result(row)}")
            rows.append(row)
            if feed == "a" and not self.args.no_sink:
                if row["status"] == "ok":
                    rows.append(self.sink_phase(rcv, tag))
                else:
                    rows.append({"daemon": daemon, "feed": "A->sink", "prefixes": self.n,
                                 "status": "skipped", "count": 0, "seconds": None})
        except Exception as exc:  # noqa: BLE001 - reported as a failed row, bench continues
            detail = str(exc).splitlines()
            more = f" (logs: {wd}/tail.txt)" if len(detail) > 1 else ""
            first = detail[0] if detail else repr(exc)
            log(f"{daemon} feed {feed.upper()}: FAILED: {first}{more}")
            row.update(status="error", error=str(exc).splitlines()[0][:200], seconds=None,
                       count=row.get("count", 0))
            if not rows:
                rows.append(row)
        finally:
            if sender is not None:
                Host.stop_process(sender)
            rcv.stop()
            with contextlib.suppress(OSError):
                (wd / "tail.txt").write_text(rcv.tail(60))
        return rows

    def poll_until_complete(self, rcv: Receiver, t_est: float, events: JsonLines) -> dict:
        interval = self.args.poll_interval
        deadline = t_est + self.args.timeout
        last = 0
        polls = 0
        max_polls = int(self.args.timeout / interval) + 100
        for _ in range(max_polls):
            t0 = time.monotonic()
            c, done = rcv.poll(self.n)
            polls += 1
            now = time.monotonic()
            if c is not None:
                last = c
            if done:
                return {"status": "ok", "seconds": now - t_est, "count": c, "polls": polls}
            ev = events.pending_error()
            if ev is not None:
                return {"status": "error", "seconds": None, "count": last, "polls": polls,
                        "error": f"sender: {ev.get('error', ev.get('event'))}"}
            if not rcv.alive():
                return {"status": "error", "seconds": None, "count": last, "polls": polls,
                        "error": "receiver exited"}
            if now > deadline:
                break
            time.sleep(max(0.0, interval - (time.monotonic() - t0)))
        c = rcv.count()  # one full count for the report (cheap polls may not count)
        return {"status": "timeout", "seconds": None, "count": max(last, c or 0), "polls": polls}

    def sink_phase(self, rcv: Receiver, tag: str) -> dict:
        row = {"daemon": rcv.name, "feed": "A->sink", "prefixes": self.n,
               "loadavg_before": os.getloadavg()[0]}
        cpu0 = cpu_seconds(rcv.pid())
        proc = self.h_sink.popen(
            [PYTHON, BENCH / "sink.py", "--connect", RCV_SINK_ADDR, "--local-address",
             SINK_ADDR, "--local-as", str(SINK_AS), "--router-id", SINK_ADDR, "--hold-time",
             str(HOLD), "--expect", str(self.n), "--timeout", str(self.args.timeout)],
            stdout=subprocess.PIPE, stderr=open(self.rundir / f"{tag}.sink.err", "ab"),
        )
        try:
            events = JsonLines(proc, self.rundir / f"{tag}.sink.jsonl")
            est = events.wait_event(("established",), 40)
            if est is None or est.get("event") != "established":
                row.update(status="error", seconds=None, count=0,
                           error=f"sink did not establish: {est}")
                return row
            end = events.wait_event(("done", "timeout"), self.args.timeout + 30)
            if end is None:
                row.update(status="timeout", seconds=None, count=0)
            elif end["event"] == "done":
                status = "ok" if end["count"] >= self.n else "incomplete"
                row.update(status=status, seconds=end["t"] - est["t"], count=end["count"],
                           distinct=end.get("distinct"), eor=end.get("eor"),
                           first_update_s=(end["t_first"] - est["t"]) if end.get("t_first")
                           else None,
                           p99_s=(end["t_99"] - est["t"]) if end.get("t_99") else None)
            else:
                row.update(status=end["event"] if end["event"] == "timeout" else "error",
                           seconds=None, count=end.get("count", 0), error=end.get("error"))
            row["rss_kib"] = vm_hwm_kib(rcv.pid())
            cpu1 = cpu_seconds(rcv.pid())
            if cpu0 is not None and cpu1 is not None:
                row["daemon_cpu_s"] = round(cpu1 - cpu0, 2)
            if end is not None and end.get("cpu_s") is not None:
                row["sink_cpu_s"] = end["cpu_s"]
            log(f"{rcv.name} A->sink: {self.fmt_result(row)}")
            return row
        finally:
            Host.stop_process(proc)

    @staticmethod
    def fmt_result(row: dict) -> str:
        if row.get("status") == "ok":
            rss = row.get("rss_kib")
            return (f"{row['seconds']:.2f} s, {row['count']} prefixes"
                    + (f", VmHWM {rss / 1024:.0f} MiB" if rss else "")
                    + (f", daemon cpu {row['daemon_cpu_s']} s" if "daemon_cpu_s" in row else "")
                    + (f", sink cpu {row['sink_cpu_s']} s" if "sink_cpu_s" in row else ""))
        return f"{row.get('status')} ({row.get('count', 0)} prefixes) {row.get('error', '')}"

    # -- whole run ------------------------------------------------------------------------
    def run(self) -> None:
        for feed in ("a", "b"):
            t0 = time.monotonic()
            path = feedmod.ensure_feed(feed, self.n, FEED_ADDR, FEED_AS)
            log(f"feed {feed.upper()}: {path} ({os.path.getsize(path)} octets, "
                f"{time.monotonic() - t0:.2f} s)")
        self.build_topology()
        for daemon in self.args.only:
            for feed in self.args.feeds:
                self.results.extend(self.run_one(daemon, feed))


# --------------------------------------------------------------------------- report


def machine_info(daemons: list[str]) -> dict:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem": mem,
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "versions": {d: RECEIVERS[d].version() for d in daemons},
    }


def table(results: list[dict]) -> str:
    ref = {}
    for r in results:
        if r.get("status") == "ok" and r["daemon"] in ("bird", "frr"):
            ref[(r["daemon"], r["feed"])] = r["seconds"]
    lines = [
        "| daemon | feed | seconds | prefixes/s | ratio to BIRD | ratio to FRR | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    order = {"A": 0, "B": 1, "A->sink": 2}
    for r in sorted(results, key=lambda r: (order.get(r["feed"], 9), DAEMONS.index(r["daemon"]))):
        rss = f"{r['rss_kib'] / 1024:.0f}" if r.get("rss_kib") else "-"
        if r.get("status") == "ok":
            s = r["seconds"]
            secs, rate = f"{s:.2f}", f"{r['count'] / s:,.0f}"
            rb = ref.get(("bird", r["feed"]))
            rf = ref.get(("frr", r["feed"]))
            rbird = f"{s / rb:.2f}x" if rb else "-"
            rfrr = f"{s / rf:.2f}x" if rf else "-"
        else:
            secs = f"{r.get('status')} ({r.get('count', 0):,} prefixes)"
            rate = rbird = rfrr = "-"
        lines.append(f"| {LABELS[r['daemon']]} | {r['feed']} | {secs} | {rate} | {rbird} | "
                     f"{rfrr} | {rss} |")
    return "\n".join(lines)


def sink_detail(results: list[dict]) -> str:
    parts = []
    for r in results:
        if r["feed"] == "A->sink" and r.get("status") == "ok":
            bits = []
            if r.get("first_update_s") is not None:
                bits.append(f"first UPDATE {r['first_update_s']:.2f} s")
            if r.get("p99_s") is not None:
                bits.append(f"99 % {r['p99_s']:.2f} s")
            bits.append("End-of-RIB seen" if r.get("eor") else "no End-of-RIB before the last prefix")
            parts.append(f"{LABELS[r['daemon']]}: " + ", ".join(bits))
    if not parts:
        return ""
    return "\nA->sink timeline (from the sink's Established): " + "; ".join(parts) + ".\n"


def section_text(results: list[dict], info: dict, command: str, n: int, poll: float) -> str:
    v = info["versions"]
    versions = ", ".join(f"{LABELS[d]} {v[d]}" for d in v)
    return f"""{SECTION}

Measured {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} on {info['nproc']} cores
({info['cpu']}), {info['mem']} RAM, Linux {info['kernel']}, Python {info['python']};
{versions}.

Command: `{command}`

{table(results)}
{sink_detail(results)}
- Feed A: {n:,} distinct IPv4 /24s in {n // 16:,} attribute sets of 16 prefixes (one UPDATE
  per set; sets differ in AS_PATH, MED and COMMUNITIES). Feed B: the same prefixes under one
  attribute set, packed into 4096-octet UPDATEs. Both end with End-of-RIB.
- A / B: seconds from the sender's session reaching Established (the sender's clock; the
  receiver reaches Established with the same KEEPALIVE exchange) until the receiver reports all
  {n:,} prefixes in its RIB, polled every {poll * 1000:.0f} ms with the daemon's own CLI/API
  (the polling cost is part of the measurement; resolution is one poll interval). BIRD: `birdc
  show protocols all` imported count; FRR: `show bgp ipv4 unicast summary json` pfxRcd, then
  the last prefix must have a best path; GoBGP: lookup of the feed's last prefix in the global
  RIB, then `gobgp global rib summary` destinations (counting every poll is O(table) in
  gobgpd and slowed it several times over); FCR: control socket `bgp.summary`
  rib.ipv4-unicast.
- A->sink: after feed A, a new sink peer connects; seconds from the sink's Established until
  it has received all {n:,} prefixes (counted in the sink; End-of-RIB also ends the count).
- Peak RSS is VmHWM of the daemon process only: `bird`, `bgpd` (FRR runs without zebra:
  `bgpd -Z`), `gobgpd`, `fcrd`. For A->sink it is the peak after the advertisement.
- No kernel FIB programming anywhere: FRR bgpd runs with `-Z` (no zebra), BIRD has no kernel
  protocol, GoBGP has no zebra integration configured, FCR runs with
  `fcr-routing:routing/fib/enabled false` (FIB programming: bench/fib_install.py). All numbers are the BGP receive/advertise path only. Each daemon runs alone (one
  receiver at a time) with default settings apart from what the benchmark needs (passive
  sessions, hold time {HOLD} s, FRR `no bgp ebgp-requires-policy`, BIRD `import all; export
  all`).
- The machine may be shared: the 1-minute load average before each run is in results.json
  (max here: {max((r.get("loadavg_before") or 0) for r in results):.1f}); other work on the two
  cores inflates the numbers, BIRD's sub-second ones most. Single runs, no repetitions.
- A->sink includes the daemons' own timers: FRR and GoBGP send nothing for the first seconds
  (update-group coalescing / building the Adj-RIB-Out); BIRD sends one prefix per UPDATE for
  feed A and the last ~1 % after its main loop's 3 s poll timeout.
- Ratios are seconds divided by BIRD's (FRR's) seconds for the same row kind: above 1 is slower.
"""


def write_section(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else "# Performance\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.strip() == SECTION), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + text + ("\n" + tail if tail else "")
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="BGP full-table benchmark (FCR, BIRD, FRR, GoBGP)")
    p.add_argument("--only", default=",".join(DAEMONS),
                   help="comma-separated subset of: " + ",".join(DAEMONS))
    p.add_argument("--prefixes", type=int, default=1_000_000)
    p.add_argument("--feeds", default="a,b", help="a, b or a,b")
    p.add_argument("--timeout", type=float, default=180.0, help="per-run seconds")
    p.add_argument("--poll-interval", type=float, default=0.1)
    p.add_argument("--settle", type=float, default=1.0,
                   help="seconds between the daemon answering and the feed connecting")
    p.add_argument("--no-sink", action="store_true", help="skip the A->sink phase")
    p.add_argument("--no-write", action="store_true", help="do not update docs/performance.md")
    args = p.parse_args(argv)
    args.only = [d.strip() for d in args.only.split(",") if d.strip()]
    bad = [d for d in args.only if d not in DAEMONS]
    if bad:
        p.error(f"unknown daemon(s): {bad}")
    args.feeds = [f.strip() for f in args.feeds.split(",") if f.strip()]
    if any(f not in ("a", "b") for f in args.feeds):
        p.error("--feeds: a, b or a,b")
    if not 16 <= args.prefixes <= 5_000_000:
        p.error("--prefixes: 16..5000000")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/bgp_table.py needs root (network namespaces)", file=sys.stderr)
        return 2

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/bgp_table.py",
                                                  *(sys.argv[1:] if argv is None else argv)])
    bench = Bench(args)
    try:
        bench.run()
    finally:
        bench.close()
    info = machine_info(args.only)
    print()
    print(table(bench.results))
    out = {"command": command, "machine": info, "prefixes": args.prefixes,
           "poll_interval": args.poll_interval, "results": bench.results}
    (bench.rundir / "results.json").write_text(json.dumps(out, indent=2))
    print(f"\nlogs and results.json: {bench.rundir}")
    if not args.no_write:
        write_section(ROOT / "docs" / "performance.md",
                      section_text(bench.results, info, command, args.prefixes,
                                   args.poll_interval))
        print("updated docs/performance.md")
    return 0 if all(r.get("status") == "ok" for r in bench.results) else 1


if __name__ == "__main__":
    sys.exit(main())
