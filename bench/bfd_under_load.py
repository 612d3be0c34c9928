"""BFD under CPU load: 3 sessions at 50 ms × 3 to FRR bfdd while FCR's process ingests
a full table (UpdateDecoder + AdjRibIn + LocRib, ~1M prefixes per round) in its main thread.

Not a timed test. Needs root (namespaces) and FRR's bfdd. Prints: false downs seen by
FCR and by FRR (must be 0), the worst inter-packet gap of FCR's packets as captured in
FRR's namespace (AF_PACKET) during the load, FCR's own worst TX gap and loop lateness.

    .venv/bin/python bench/bfd_under_load.py [--load-seconds 10] [--switchinterval 0.005]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

N = 3
FAST = 50_000


def child(args) -> int:
    """Runs inside FCR's namespace: BFD thread + CPU-heavy main thread."""
    sys.setswitchinterval(args.switchinterval)
    if args.gc_freeze:
        import gc
        gc.disable()
    from appliance.bfd import BfdManager, SessionConfig
    from appliance.bfd.worker import BfdProcess
    from appliance.bgp.family import IPV4_UNICAST
    from appliance.bgp.packet.update import UpdateDecoder
    from appliance.bgp.rib.adj_in import AdjRibIn
    from appliance.bgp.rib.loc_rib import LocRib
    from appliance.bgp.rib.path import PathInterner, PeerSource
    from bench.micro_update_decode import build_bodies

    downs: list = []
    mgr = BfdProcess() if args.mode == "process" else BfdManager()
    mgr.add_listener(lambda p, o, n, d: downs.append((time.monotonic(), p, o, n, d)) if o == "Up" else None)
    mgr.start()
    peers = [f"10.0.{i + 1}.2" for i in range(N)]
    for i, p in enumerate(peers):
        mgr.add_session(SessionConfig(p, local_address=f"10.0.{i + 1}.1", interface=f"eth{i}",
                                      desired_min_tx=FAST, required_min_rx=FAST, detect_mult=3))
    ok = all(mgr.wait_state(p, "Up", 20) for p in peers)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        mgr.session(p)["detection-time"] != 3 * FAST for p in peers
    ):
        time.sleep(0.05)
    time.sleep(1.0)
    bodies = build_bodies(62_500, 16)              # 1,000,000 prefixes
    src = PeerSource("192.0.2.2", bytes([192, 0, 2, 2]), 0xC0000202, 64502, 65000, ebgp=True)
    base = {s["peer-address"]: s["tx-max-gap-ms"] for s in mgr.sessions()}
    print(json.dumps({"event": "load-start", "up": ok, "monotonic": time.monotonic()}), flush=True)
    t0 = time.monotonic()
    rounds = prefixes = 0
    while time.monotonic() - t0 < args.load_seconds and rounds < 100:
        dec = UpdateDecoder(four_octet_as=True, ebgp=True)
        interner = PathInterner()
        adj_in, loc = AdjRibIn(), LocRib(IPV4_UNICAST)
        for body in bodies:
            upd = dec.decode(body)
            for fam, attrs, keys in upd.announced:
                path = interner.get(src, attrs)
                loc.announce(path, adj_in.announce(fam, path, keys))
                prefixes += len(keys)
        rounds += 1
        del adj_in, loc, interner, dec
    load = time.monotonic() - t0
    print(json.dumps({"event": "load-end", "monotonic": time.monotonic()}), flush=True)
    time.sleep(1.0)
    res = {
        "event": "result", "up": ok, "load_seconds": round(load, 2), "rounds": rounds,
        "prefixes_per_s": round(prefixes / load), "false_downs": len(downs), "downs": downs,
        "switchinterval_ms": args.switchinterval * 1000, "mode": args.mode, "tx_gap_before_load": base,
        "sessions": [{k: s[k] for k in ("peer-address", "state", "tx-max-gap-ms", "rx-max-gap-ms",
                                        "counters")} for s in mgr.sessions()],
        "loop_max_lateness_ms": mgr.stats["loop-max-lateness-ms"],
    }
    print(json.dumps(res), flush=True)
    mgr.stop()
    return 0


class Capture(threading.Thread):
    """Arrival times of FCR's BFD packets on FRR's interfaces (AF_PACKET, in FRR's ns)."""

    def __init__(self, host, ifname: str):
        super().__init__(daemon=True)
        self.sock = host.socket(socket.AF_PACKET, socket.SOCK_DGRAM)
        self.sock.bind((ifname, 0x0800))
        self.sock.settimeout(0.2)
        self.times: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            if addr[2] == socket.PACKET_OUTGOING or len(data) < 28 or data[9] != 17:
                continue
            ihl = (data[0] & 0xF) * 4
            if struct.unpack("!H", data[ihl + 2 : ihl + 4])[0] == 3784:
                self.times.append(now)

    def worst_gap(self, t0: float, t1: float) -> float:
        ts = [t for t in self.times if t0 <= t <= t1]
        return max((b - a for a, b in zip(ts, ts[1:], strict=False)), default=float("nan"))


def parent(args) -> int:
    from tests.topotest.frr import FrrRouter
    from tests.topotest.netns import Topology

    workdir = Path(tempfile.mkdtemp(prefix="fcrt-bfdbench-", dir="/tmp"))
    os.chmod(workdir, 0o755)
    try:
        return _run_parent(args, workdir, Topology, FrrRouter)
    finally:
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


def _run_parent(args, workdir: Path, Topology, FrrRouter) -> int:  # noqa: N803
    with Topology() as topo:
        fcr, frr_h = topo.add_host("fcr"), topo.add_host("frr")
        ifs = [topo.link(fcr, frr_h, [f"10.0.{i + 1}.1/24"], [f"10.0.{i + 1}.2/24"]) for i in range(N)]
        frr = FrrRouter(frr_h, workdir / "frr", "", bfd=True)
        lines = ["configure terminal", "bfd"]
        for i, (_, if_b) in enumerate(ifs):
            lines += [f"peer 10.0.{i + 1}.1 local-address 10.0.{i + 1}.2 interface {if_b}",
                      "receive-interval 50", "transmit-interval 50", "detect-multiplier 3", "exit"]
        frr.vtysh(*lines, daemon="bfdd")
        caps = [Capture(frr_h, if_b) for _, if_b in ifs]
        for c in caps:
            c.start()
        env = dict(os.environ, PYTHONPATH=str(REPO))
        cmd = fcr.wrap([sys.executable, str(Path(__file__).resolve()), "--child",
                        "--load-seconds", str(args.load_seconds),
                        "--switchinterval", str(args.switchinterval), "--mode", args.mode] + (["--gc-off"] if args.gc_freeze else []))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, cwd=str(REPO))
        events, counters, peers = [], [], []
        deadline = time.monotonic() + args.load_seconds + 120
        for line in proc.stdout:                     # ends when the child exits
            if line.startswith("{"):
                events.append(json.loads(line))
                if events[-1]["event"] == "load-end":   # FRR's view while FCR still runs
                    counters = json.loads(frr.vtysh("show bfd peers counters json", daemon="bfdd").stdout)
                    peers = json.loads(frr.vtysh("show bfd peers json", daemon="bfdd").stdout)
            if time.monotonic() > deadline:
                proc.kill()
                break
        proc.wait(30)
        for c in caps:
            c.stop.set()
        if proc.returncode != 0 or not counters:
            print(events, proc.stderr.read())
            return 1
        ev = {e["event"]: e for e in events}
        t0, t1 = ev["load-start"]["monotonic"], ev["load-end"]["monotonic"]
        res = ev["result"]
        frr_downs = sum(v for p in counters for k, v in p.items() if "down" in k and isinstance(v, int))
        gaps = [round(c.worst_gap(t0, t1) * 1000, 1) for c in caps]
        print(f"BFD {res['mode']}; load: {res['load_seconds']} s in FCR's main thread, {res['rounds']} rounds of "
              f"1M-prefix ingest ({res['prefixes_per_s']:,} prefixes/s), "
              f"switch interval {res['switchinterval_ms']:.1f} ms")
        print(f"FCR downs: {[d[1:] for d in res['downs']]}")
        print(f"FCR false downs: {res['false_downs']}   FRR session-down events: {frr_downs}   "
              f"FRR states: {[p['status'] for p in peers]}")
        print(f"worst gap of FCR's packets captured at FRR during load (ms): {gaps}")
        print(f"FCR worst TX gap (ms): {[s['tx-max-gap-ms'] for s in res['sessions']]}   "
              f"BFD loop worst lateness: {res['loop_max_lateness_ms']} ms")
        ok = res["up"] and res["false_downs"] == 0 and frr_downs == 0
        print("PASS" if ok else "FAIL")
        frr.stop()
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load-seconds", type=float, default=10.0)
    ap.add_argument("--switchinterval", type=float, default=0.005)
    ap.add_argument("--mode", choices=("process", "thread"), default="process",
                    help="BFD in a worker process (default, what the engine uses) or a thread")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gc-off", dest="gc_freeze", action="store_true", help="cyclic GC off in the loaded process")
    args = ap.parse_args()
    return child(args) if args.child else parent(args)


if __name__ == "__main__":
    sys.exit(main())
