"""Management plane operations: big commits, big get-config, many small commits.

    .venv/bin/python bench/mgmt_ops.py                 # all three, prints the table
    .venv/bin/python bench/mgmt_ops.py --cycles 200    # fewer edit+commit cycles
    .venv/bin/python bench/mgmt_ops.py --profile a     # cProfile of (a) (or b, c), top 25

ManagementPlane in a temp state directory with a fake engine whose config.apply returns at
once, so the numbers are the management plane's own (parse, edit, canonicalize, libyang
validation, history + startup.json with fsync, XML printing):

  (a) edit-config of one prefix set with 10,000 prefixes into candidate, then commit
  (b) get-config (XML, with-defaults explicit) of running holding ~100,000 data nodes
  (c) 1,000 cycles of edit-config (one neighbor's description) + commit on running

Nodes are counted on the RFC 7951 tree: every container, list entry, leaf and leaf-list
value is one node. Peak RSS is the process's high-water mark after each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.mgmt.plane import ManagementPlane  # noqa: E402

RP = 'xmlns="urn:fcr:yang:fcr-routing-policy"'
BGP = 'xmlns="urn:fcr:yang:fcr-bgp"'


class FakeEngine:
    """EngineLink interface; config.apply answers at once."""

    def __init__(self) -> None:
        self.on_restart = None
        self.applies = 0

    async def apply(self, config: dict[str, Any]) -> dict[str, Any]:
        self.applies += 1
        return {"added": [], "removed": [], "reset": []}

    async def call(self, method: str, **params: Any) -> Any:
        return {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


def prefix(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}/32"


def prefix_set_xml(name: str, n: int, start: int = 0) -> str:
    entries = "".join(f"<prefix><ip-prefix>{prefix(start + i)}</ip-prefix>"
                      f"<masklength-range>exact</masklength-range></prefix>" for i in range(n))
    return (f"<name>{name}</name><mode>ipv4</mode><prefixes>{entries}</prefixes>")


def config_xml(sets: list[tuple[str, int, int]]) -> str:
    body = "".join(f"<prefix-set>{prefix_set_xml(name, n, start)}</prefix-set>" for name, n, start in sets)
    # the children of <config>, as the NETCONF server hands them to the plane
    return (f"<routing-policy {RP}><defined-sets>"
            f"<prefix-sets>{body}</prefix-sets></defined-sets></routing-policy>")


def count_nodes(obj: Any) -> int:
    """Data nodes of an RFC 7951 tree (the dict's own top is not a node)."""
    n = 0
    for value in obj.values():
        if isinstance(value, dict):
            n += 1 + count_nodes(value)
        elif isinstance(value, list):
            for item in value:
                n += 1 + count_nodes(item) if isinstance(item, dict) else 1
        else:
            n += 1
    return n


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Profiler:
    def __init__(self, enabled: bool) -> None:
        self.prof = cProfile.Profile() if enabled else None

    def __enter__(self) -> Profiler:
        if self.prof:
            self.prof.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.prof:
            self.prof.disable()
            out = io.StringIO()
            pstats.Stats(self.prof, stream=out).sort_stats("cumulative").print_stats(25)
            print(out.getvalue(), file=sys.stderr)


async def bench_a(state: Path, n: int, profile: bool) -> dict[str, Any]:
    plane = ManagementPlane(state / "a", FakeEngine())
    await plane.start()
    sid = plane.open_session("bench", "netconf")
    xml = config_xml([("big", n, 0)])
    with Profiler(profile):
        t0 = time.perf_counter()
        await plane.edit_config(sid, "candidate", xml)
        t1 = time.perf_counter()
        await plane.commit(sid, comment="10k prefix set")
        t2 = time.perf_counter()
    nodes = count_nodes(plane.running)
    await plane.stop()
    return {"edit": t1 - t0, "commit": t2 - t1, "nodes": nodes, "rss": rss_mib()}


async def bench_b(state: Path, target_nodes: int, profile: bool) -> dict[str, Any]:
    plane = ManagementPlane(state / "b", FakeEngine())
    await plane.start()
    sid = plane.open_session("bench", "netconf")
    # each prefix = 3 nodes (entry, ip-prefix, masklength-range); each set = 4 more
    per_set = 5000
    sets, start = [], 0
    total = 3  # routing-policy, defined-sets, prefix-sets
    while total < target_nodes:
        k = min(per_set, max(1, (target_nodes - total - 4 + 2) // 3))
        sets.append((f"set-{len(sets):02d}", k, start))
        start += k
        total += 4 + 3 * k
    t0 = time.perf_counter()
    await plane.edit_config(sid, "candidate", config_xml(sets))
    await plane.commit(sid, comment="100k nodes")
    setup = time.perf_counter() - t0
    nodes = count_nodes(plane.running)
    with Profiler(profile):
        t0 = time.perf_counter()
        xml = plane.get_config("running")
        t1 = time.perf_counter()
    t2 = time.perf_counter()
    plane.get_config_json("running")
    t3 = time.perf_counter()
    await plane.stop()
    return {"get": t1 - t0, "get_json": t3 - t2, "setup": setup, "nodes": nodes, "bytes": len(xml),
            "prefixes": start, "sets": len(sets), "rss": rss_mib()}


async def bench_c(state: Path, cycles: int, neighbors: int, profile: bool) -> dict[str, Any]:
    plane = ManagementPlane(state / "c", FakeEngine())
    await plane.start()
    sid = plane.open_session("bench", "netconf")
    nbrs = "".join(f"<neighbor><neighbor-address>192.0.2.{i + 1}</neighbor-address><peer-as>{65001 + i}"
                   f"</peer-as><description>peer {i}</description></neighbor>" for i in range(neighbors))
    await plane.edit_config(sid, "candidate",
                            f"<bgp {BGP}><global><as>65000</as><router-id>10.255.0.1</router-id>"
                            f"</global><neighbors>{nbrs}</neighbors></bgp>")
    await plane.commit(sid)
    times_edit, times_commit = [], []
    with Profiler(profile):
        t_all = time.perf_counter()
        for c in range(cycles):
            i = c % neighbors
            xml = (f"<bgp {BGP}><neighbors><neighbor><neighbor-address>192.0.2.{i + 1}"
                   f"</neighbor-address><description>cycle {c}</description></neighbor></neighbors></bgp>")
            t0 = time.perf_counter()
            await plane.edit_config(sid, "candidate", xml)
            t1 = time.perf_counter()
            await plane.commit(sid, comment=f"cycle {c}")
            t2 = time.perf_counter()
            times_edit.append(t1 - t0)
            times_commit.append(t2 - t1)
        total = time.perf_counter() - t_all
    assert len(plane.history()) <= 100
    nodes = count_nodes(plane.running)
    await plane.stop()
    per = sorted(e + c for e, c in zip(times_edit, times_commit, strict=True))
    return {"total": total, "per_cycle": total / cycles, "edit": sum(times_edit) / cycles,
            "commit": sum(times_commit) / cycles, "p50": per[len(per) // 2],
            "p99": per[int(len(per) * 0.99) - 1], "max": per[-1], "nodes": nodes, "rss": rss_mib()}


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="fcr-bench-mgmt-", dir=args.tmp) as tmp:
        state = Path(tmp)
        rows = []
        if "a" in args.only:
            a = await bench_a(state, args.prefixes, args.profile == "a")
            rows += [(f"(a) edit-config candidate, prefix set of {args.prefixes:,} ({a['nodes']:,} nodes)",
                      a["edit"], a["rss"]),
                     ("(a) commit of it", a["commit"], a["rss"]),
                     ("(a) edit-config + commit", a["edit"] + a["commit"], a["rss"])]
        if "b" in args.only:
            b = await bench_b(state, args.nodes, args.profile == "b")
            rows += [(f"(b) get-config running, {b['nodes']:,} nodes ({b['sets']} sets x "
                      f"{b['prefixes'] // b['sets']:,} prefixes), XML {b['bytes'] / 1e6:.1f} MB",
                      b["get"], b["rss"]),
                     ("(b) get_config_json running (deep copy, no XML)", b["get_json"], b["rss"])]
        if "c" in args.only:
            c = await bench_c(state, args.cycles, args.neighbors, args.profile == "c")
            rows += [(f"(c) {args.cycles:,} x (edit-config + commit), {c['nodes']} nodes: per cycle",
                      c["per_cycle"], c["rss"]),
                     ("(c) of which edit-config", c["edit"], c["rss"]),
                     ("(c) of which commit", c["commit"], c["rss"]),
                     ("(c) cycle p50 / p99 / max", f"{c['p50']:.4f} / {c['p99']:.4f} / {c['max']:.4f}", c["rss"]),
                     (f"(c) all {args.cycles:,} cycles", c["total"], c["rss"])]
    width = max(len(r[0]) for r in rows)
    print(f"{'operation':<{width}}  {'seconds':>24}  {'peak RSS MiB':>12}")
    for name, secs, rss in rows:
        s = f"{secs:.4f}" if isinstance(secs, float) else secs
        print(f"{name:<{width}}  {s:>24}  {rss:>12.0f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="abc", help="phases to run (a, b, c)")
    ap.add_argument("--prefixes", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--neighbors", type=int, default=10)
    ap.add_argument("--profile", choices=["a", "b", "c"], help="cProfile one phase (to stderr)")
    ap.add_argument("--tmp", default=None, help="directory for the temp state dir (default: $TMPDIR)")
    return asyncio.run(main_async(ap.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
