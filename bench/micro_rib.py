"""Micro-benchmark of the RIB hot paths (not a timed test; prints numbers).

One eBGP peer sends 1,000,000 IPv4 prefixes under 62,500 attribute sets, 16
prefixes per UPDATE (as a full-table transfer looks after decoding). We time:
  - ingest: AdjRibIn.announce + LocRib.announce per UPDATE (the RIB work);
  - ingest+: the same plus Path interning and queueing the changes for one
    other established peer (what the speaker adds per UPDATE);
  - a new peer: AdjRibOut.enqueue_full + build_messages until drained;
  - session down: AdjRibIn.clear + LocRib.withdraw;
and report peak RSS (VmHWM) of the process.

    .venv/bin/python bench/micro_rib.py [prefixes] [sets]
"""

from __future__ import annotations

import gc
import sys
import time

from appliance.bgp.family import IPV4_UNICAST
from appliance.bgp.packet.constants import AsPathSegment
from appliance.bgp.packet.pathattrs import PathAttributes
from appliance.bgp.rib.adj_in import AdjRibIn
from appliance.bgp.rib.adj_out import AdjRibOut
from appliance.bgp.rib.export import ExportContext
from appliance.bgp.rib.loc_rib import LocRib
from appliance.bgp.rib.path import PathInterner, PeerSource


def status(field: str) -> int:
    """A /proc/self/status value in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    sets = int(sys.argv[2]) if len(sys.argv) > 2 else 62_500
    per = n // sets
    fam = IPV4_UNICAST
    src = PeerSource("192.0.2.2", bytes([192, 0, 2, 2]), 0xC0000202, 64502, 65000, ebgp=True)
    other = PeerSource("192.0.2.3", bytes([192, 0, 2, 3]), 0xC0000203, 64503, 65000, ebgp=True)
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
    # /24s from 1.0.0.0 on, as the decoder would slice them out of the NLRI field
    keys = [bytes((24, 1 + (i >> 16), (i >> 8) & 0xFF, i & 0xFF)) for i in range(n)]
    batches = [(attrs[j], keys[j * per : (j + 1) * per]) for j in range(sets)]
    gc.collect()
    rss0 = status("VmRSS")

    interner = PathInterner()
    adj_in = AdjRibIn()
    loc = LocRib(fam)
    paths = [(interner.get(src, a), ks) for a, ks in batches]
    # with the default cyclic-GC thresholds (the RIB itself makes no cycles)
    t0 = time.perf_counter()
    for path, ks in paths:
        loc.announce(path, adj_in.announce(fam, path, ks))
    t_ingest = time.perf_counter() - t0
    rss1 = status("VmRSS")
    assert len(loc) == n and adj_in.count(fam) == n
    t0 = time.perf_counter()
    gc.collect()
    t_gc = time.perf_counter() - t0

    # the same into fresh tables with the cyclic GC off during the burst
    adj_in3, loc3 = AdjRibIn(), LocRib(fam)
    gc.disable()
    t0 = time.perf_counter()
    for path, ks in paths:
        loc3.announce(path, adj_in3.announce(fam, path, ks))
    t_ingest_nogc = time.perf_counter() - t0
    gc.enable()
    del adj_in3, loc3
    gc.collect()

    # the same with interning and one peer's queueing, into fresh tables
    interner2 = PathInterner()
    adj_in2, loc2, out2 = AdjRibIn(), LocRib(fam), AdjRibOut()
    gc.disable()
    t0 = time.perf_counter()
    for a, ks in batches:
        path = interner2.get(src, a)
        out2.enqueue_many(fam, loc2.announce(path, adj_in2.announce(fam, path, ks)))
    t_ingest_plus = time.perf_counter() - t0
    gc.enable()
    del adj_in2, loc2, out2, interner2
    gc.collect()

    ctx = ExportContext(65000, 0xC0000201, bytes([192, 0, 2, 1]), other,
                        local_address_v4=bytes([192, 0, 2, 1]))
    out = AdjRibOut()
    t0 = time.perf_counter()
    out.enqueue_full(fam, loc.items())
    msgs = nbytes = 0
    while out.has_pending():
        batch = out.build_messages(ctx, max_messages=1000)
        msgs += len(batch)
        nbytes += sum(map(len, batch))
    t_out = time.perf_counter() - t0
    rss2 = status("VmRSS")

    t0 = time.perf_counter()
    removed = adj_in.clear()
    changes = loc.withdraw(src, removed[fam])
    t_down = time.perf_counter() - t0
    assert len(changes) == n and len(loc) == 0

    kib = 1024
    print(f"prefixes {n}, attribute sets {sets}, {per} prefixes per UPDATE")
    print(f"ingest  AdjRibIn.announce + LocRib.announce : {t_ingest:.3f} s "
          f"({t_ingest / n * 1e9:.0f} ns/prefix)")
    print(f"ingest  the same with gc disabled           : {t_ingest_nogc:.3f} s")
    print(f"ingest+ with Path interning + 1 peer queued  : {t_ingest_plus:.3f} s (gc disabled)")
    print(f"one full gc.collect() with the tables alive  : {t_gc:.3f} s")
    print(f"new peer: {msgs} UPDATEs, {nbytes / kib / kib:.1f} MiB built in {t_out:.3f} s "
          f"({t_out / n * 1e9:.0f} ns/prefix)")
    print(f"session down (clear + withdraw {n})     : {t_down:.3f} s")
    print(f"memory: Adj-RIB-In + Loc-RIB {(rss1 - rss0) * kib / n:.0f} B/prefix (beyond the keys), "
          f"+ Adj-RIB-Out sent {(rss2 - rss1) * kib / n:.0f} B/prefix")
    print(f"peak RSS (VmHWM): {status('VmHWM') / kib:.0f} MiB")


if __name__ == "__main__":
    main()
