"""FIB programming benchmark: N IPv4 /24s into a namespace's kernel table through FCR's FIB
(appliance/rib), side by side with FRR zebra installing the same N routes (fed to bgpd by
bench/feed.py's sender), plus FCR's reconcile of an unchanged table after a restart.

    .venv/bin/python bench/fib_install.py --prefixes 100000          # quick
    .venv/bin/python bench/fib_install.py                            # 1,000,000
    .venv/bin/python bench/fib_install.py --only fcr --pyroute2 2000 # + pyroute2 per-route cost

Each FCR phase runs in a child process (its own peak RSS, VmHWM). Times: seconds from the
first route handed to the RIB (FCR) / the sender's Established (zebra) until a netlink dump
of the table counts N routes (polled every --poll seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import feed as feedmod  # noqa: E402
from bgp_table import FEED_ADDR, FEED_AS, HOLD, RCV_AS, RCV_FEED_ADDR, vm_hwm_kib  # noqa: E402

from appliance.rib import netlink  # noqa: E402
from tests.topotest.netns import Topology, cleanup_stale_namespaces  # noqa: E402

TABLE = 100


def count_routes(ns: str, table: int, proto: int | None) -> int:
    sock = netlink.RouteSocket(ns, timeout=60)
    try:
        return len(sock.dump_routes_all(4, table, proto))
    finally:
        sock.close()


def child(args) -> int:
    """One FCR run in this process: --child install|reconcile; prints a JSON line."""
    from appliance.rib import RibManager, RoutingConfig

    n = args.prefixes
    prefixes = [(p << 8 << 8) | 24 for p in feedmod.prefix_slash24s(n)]  # int keys
    rib = RibManager(RoutingConfig(table=TABLE), netns=args.ns)
    rib.start()
    t0 = time.monotonic()
    step = 10_000  # one call per batch of UPDATEs, as the speaker does
    for i in range(0, n, step):
        rib.update_bgp("ipv4", [(k, ("10.0.1.1",), True, 0) for k in prefixes[i:i + step]])
    t_rib = time.monotonic() - t0
    rib.fib_converged()
    ok = rib.fib_wait(600)
    t_fib = time.monotonic() - t0
    stats = rib.fib.counts()
    rib.stop()
    kernel = count_routes(args.ns, TABLE, 196)
    print(json.dumps({"phase": args.child, "rib_s": round(t_rib, 2), "total_s": round(t_fib, 2),
                      "ok": ok, "kernel": kernel, "rss_kib": vm_hwm_kib(os.getpid()),
                      "stats": stats}), flush=True)
    return 0


def run_fcr(ns: str, n: int, phase: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", phase, "--ns", ns,
                          "--prefixes", str(n)], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_pyroute2(ns: str, n: int) -> float:
    from pyroute2 import IPRoute

    ipr = IPRoute(netns=ns)
    try:
        t0 = time.monotonic()
        for i in range(n):
            ipr.route("add", dst=f"100.{i >> 8 & 255}.{i & 255}.0/24", gateway="10.0.1.1",
                      table=TABLE + 1)
        return (time.monotonic() - t0) / n * 1e6
    finally:
        ipr.close()


def run_zebra(topo: Topology, h_feed, h_rcv, n: int, poll: float, workdir: Path) -> dict:
    from tests.topotest.frr import FrrRouter

    conf = FrrRouter.render_bgp(RCV_AS, RCV_FEED_ADDR, [
        {"address": FEED_ADDR, "remote_as": FEED_AS, "passive": True, "timers": (60, HOLD)}])
    frr = FrrRouter(h_rcv, workdir / "frr", conf)
    feed_file = feedmod.ensure_feed("a", n, FEED_ADDR, FEED_AS)
    sender = h_feed.popen(
        [sys.executable, BENCH / "feed.py", "send", "--connect", RCV_FEED_ADDR,
         "--local-address", FEED_ADDR, "--local-as", str(FEED_AS), "--router-id", FEED_ADDR,
         "--hold-time", str(HOLD), "--feed-file", feed_file, "--connect-timeout", "30",
         "--max-seconds", "1200"], stdout=subprocess.PIPE)
    t_est = None
    for _ in range(100):  # bounded: JSON lines until Established
        line = sender.stdout.readline()
        if not line:
            break
        ev = json.loads(line)
        if ev.get("event") == "established":
            t_est = ev["t"]
            break
    if t_est is None:
        raise RuntimeError("sender did not establish with FRR")
    deadline = time.monotonic() + 1200
    got = 0
    while time.monotonic() < deadline:
        got = count_routes(h_rcv.ns, 254, 186)  # RTPROT_BGP
        if got >= n:
            break
        time.sleep(poll)
    t = time.monotonic() - t_est
    zebra_pid = int((workdir / "frr" / "zebra.pid").read_text())
    res = {"total_s": round(t, 2), "kernel": got, "rss_kib": vm_hwm_kib(zebra_pid),
           "bgpd_rss_kib": vm_hwm_kib(frr.bgpd_pid)}
    topo.hosts  # noqa: B018 - processes stopped by topo.close()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefixes", type=int, default=1_000_000)
    ap.add_argument("--only", default="fcr,zebra")
    ap.add_argument("--poll", type=float, default=0.5)
    ap.add_argument("--pyroute2", type=int, default=0, help="also time N pyroute2 route adds")
    ap.add_argument("--child")
    ap.add_argument("--ns")
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    only = set(args.only.split(","))
    cleanup_stale_namespaces()
    workdir = Path(f"/tmp/fcrt-fib-{os.getpid()}")
    workdir.mkdir(mode=0o755)
    results = {"prefixes": args.prefixes}
    with Topology() as topo:
        h_feed, h_rcv, h_fcr = topo.add_host("feed"), topo.add_host("rcv"), topo.add_host("fcr")
        topo.link(h_feed, h_rcv, [f"{FEED_ADDR}/24"], [f"{RCV_FEED_ADDR}/24"])
        topo.link(h_fcr, h_feed, ["10.0.1.2/24"], ["10.0.1.1/24"])
        if "fcr" in only:
            results["fcr"] = run_fcr(h_fcr.ns, args.prefixes, "install")
            print("fcr install", results["fcr"], flush=True)
            results["fcr_reconcile"] = run_fcr(h_fcr.ns, args.prefixes, "reconcile")
            print("fcr reconcile", results["fcr_reconcile"], flush=True)
            if args.pyroute2:
                results["pyroute2_us_per_route"] = round(run_pyroute2(h_fcr.ns, args.pyroute2), 1)
                print("pyroute2 µs/route", results["pyroute2_us_per_route"], flush=True)
        if "zebra" in only:
            results["zebra"] = run_zebra(topo, h_feed, h_rcv, args.prefixes, args.poll, workdir)
            print("zebra", results["zebra"], flush=True)
    if "fcr" in results and "zebra" in results:
        results["ratio_fcr_to_zebra"] = round(results["fcr"]["total_s"]
                                              / results["zebra"]["total_s"], 2)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
