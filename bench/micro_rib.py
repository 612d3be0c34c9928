"""Micro-benchmark of the RIB hot paths (not a timed test; prints numbers).

One eBGP peer sends 1,000,000 IPv4 prefixes under 62,500 attribute sets, 16
prefixes per UPDATE (as a full-table transfer looks after decoding). We time:
  - ingest: AdjRibIn.announce + LocRib.announce per UPDATE (the RIB work),
    with the cyclic GC at its defaults and disabled;
  - ingest+: the same plus Path interning and queueing the changes for one
    other established peer (what the speaker adds per UPDATE);
  - a new peer: AdjRibOut.enqueue_full + build_messages until drained;
  - session down: AdjRibIn.clear + LocRib.withdraw;
and report peak RSS (VmHWM) of the process. Each timing is the best of
``--repeat`` runs, as wall and CPU seconds (on a busy machine CPU is the
steadier number).

    .venv/bin/python bench/micro_rib.py [--prefixes N] [--sets N] [--repeat N]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable

from appliance.bgp.family import IPV4_UNICAST
from appliance.bgp.packet.constants import AsPathSegment
from appliance.bgp.packet.pathattrs import PathAttributes
from appliance.bgp.rib.adj_in import AdjRibIn
from appliance.bgp.rib.adj_out import AdjRibOut
from appliance.bgp.rib.export import ExportContext
from appliance.bgp.rib.loc_rib import LocRib
from appliance.bgp.rib.path import PathInterner, PeerSource

FAM = IPV4_UNICAST
SRC = PeerSource("192.0.2.2", bytes([192, 0, 2, 2]), 0xC0000202, 64502, 65000, ebgp=True)
OTHER = PeerSource("192.0.2.3", bytes([192, 0, 2, 3]), 0xC0000203, 64503, 65000, ebgp=True)


def status(field: str) -> int:
    """A /proc/self/status value in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    w, c = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - w, time.process_time() - c, result


def best_of(repeat: int, fn: Callable[[], object], gc_on: bool = True) -> tuple[float, float, object]:
    best: tuple[float, float, object] | None = None
    for _ in range(repeat):
        gc.collect()
        if not gc_on:
            gc.disable()
        try:
            r = timed(fn)
        finally:
            gc.enable()
        if best is None or r[1] < best[1]:
            best = r
        del r
    assert best is not None
    return best


def fmt(name: str, wall: float, cpu: float, n: int) -> str:
    return f"{name:46s} {wall:6.3f} s wall {cpu:6.3f} s cpu ({cpu / n * 1e9:5.0f} ns/prefix cpu)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefixes", type=int, default=1_000_000)
    ap.add_argument("--sets", type=int, default=62_500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, sets = args.prefixes, args.sets
    per = n // sets
    seq = AsPathSegment.AS_SEQUENCE
    attrs = [
        PathAttributes(
            as_path=((seq, (64502, 1000 + i % 5000, 2000 + i // 5000)),),
            next_hop=bytes([192, 0, 2, 2]),
            med=i % 7,
            communities=((64502 << 16) | (i % 100),),
        )
        for i in range(sets)
    ]

    def fresh_batches() -> list[tuple[PathAttributes, list[bytes]]]:
        # new key objects per run, as the decoder slices them (hashes not yet cached)
        keys = [bytes((24, 1 + (i >> 16), (i >> 8) & 0xFF, i & 0xFF)) for i in range(n)]
        return [(attrs[j], keys[j * per : (j + 1) * per]) for j in range(sets)]

    interner = PathInterner()

    def ingest(batches) -> tuple[AdjRibIn, LocRib]:
        adj_in, loc = AdjRibIn(), LocRib(FAM)
        for a, ks in batches:
            path = interner.get(SRC, a)
            loc.announce(path, adj_in.announce(FAM, path, ks))
        return adj_in, loc

    def rib_only(batches) -> Callable[[], object]:
        paths = [(interner.get(SRC, a), ks) for a, ks in batches]

        def run() -> tuple[AdjRibIn, LocRib]:
            adj_in, loc = AdjRibIn(), LocRib(FAM)
            for path, ks in paths:
                loc.announce(path, adj_in.announce(FAM, path, ks))
            return adj_in, loc

        return run

    results = []
    for gc_on in (True, False):
        best = None
        for _ in range(args.repeat):
            run = rib_only(fresh_batches())
            r = best_of(1, run, gc_on)
            if best is None or r[1] < best[1]:
                best = (r[0], r[1])
            del run, r
        results.append(best)

    def ingest_plus(batches) -> Callable[[], object]:
        def run() -> None:
            adj_in, loc, out = AdjRibIn(), LocRib(FAM), AdjRibOut()
            for a, ks in batches:
                path = interner.get(SRC, a)
                out.enqueue_many(FAM, loc.announce(path, adj_in.announce(FAM, path, ks)))
        return run

    plus = min((best_of(1, ingest_plus(fresh_batches()))[:2] for _ in range(args.repeat)),
               key=lambda r: r[1])

    gc.collect()
    rss0 = status("VmRSS")
    adj_in, loc = ingest(fresh_batches())
    gc.collect()
    rss1 = status("VmRSS")
    assert len(loc) == n and adj_in.count(FAM) == n
    gc_wall, _, _ = timed(gc.collect)
    # structural sizes (private attributes read on purpose: this is a measurement);
    # pymalloc rounds the 37-octet key objects of /24s up to 40
    key_bytes = sum(((sys.getsizeof(k) + 7) & ~7) for k in loc.items().mapping)
    adj_in_bytes = sys.getsizeof(adj_in._tables[FAM])
    loc_bytes = sys.getsizeof(loc._best)

    ctx = ExportContext(65000, 0xC0000201, bytes([192, 0, 2, 1]), OTHER,
                        local_address_v4=bytes([192, 0, 2, 1]))

    def new_peer() -> tuple[AdjRibOut, int, int]:
        out = AdjRibOut()
        out.enqueue_full(FAM, loc.items())
        msgs = nbytes = 0
        while out.has_pending():
            batch = out.build_messages(ctx, max_messages=1000)
            msgs += len(batch)
            nbytes += sum(map(len, batch))
        return out, msgs, nbytes

    out_w, out_c, (out, msgs, nbytes) = best_of(args.repeat, new_peer)  # type: ignore[misc]
    gc.collect()
    rss2 = status("VmRSS")
    sent_count = out.advertised_count(FAM)
    sent_dict_bytes = sys.getsizeof(out._sent[FAM])
    del out

    def down() -> None:
        removed = adj_in.clear()
        assert len(loc.withdraw(SRC, removed[FAM])) == n

    down_w, down_c, _ = timed(down)
    assert len(loc) == 0

    print(f"prefixes {n}, attribute sets {sets}, {per} prefixes per UPDATE, "
          f"best of {args.repeat}, loadavg {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(fmt("ingest  AdjRibIn + LocRib.announce (gc on)", *results[0], n))
    print(fmt("ingest  AdjRibIn + LocRib.announce (gc off)", *results[1], n))
    print(fmt("ingest+ + Path interning + 1 peer queued", *plus, n))
    print(fmt(f"new peer: {msgs} UPDATEs, {nbytes / 2**20:.1f} MiB", out_w, out_c, n))
    print(fmt("session down: clear + withdraw", down_w, down_c, n))
    print(f"one full gc.collect() with the tables alive: {gc_wall:.3f} s")
    print(f"memory (structures): key {key_bytes / n:.0f} + Adj-RIB-In {adj_in_bytes / n:.0f} + "
          f"Loc-RIB {loc_bytes / n:.0f} B/prefix; Adj-RIB-Out sent {sent_dict_bytes / n:.0f} "
          f"B/prefix per peer")
    print(f"memory (RSS growth): keys + Adj-RIB-In + Loc-RIB {(rss1 - rss0) * 1024 / n:.0f} B/prefix, "
          f"Adj-RIB-Out {(rss2 - rss1) * 1024 / sent_count:.0f} B/prefix per peer")
    print(f"peak RSS (VmHWM): {status('VmHWM') / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
