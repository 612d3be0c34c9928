"""Checkpoint store benchmark (issue 5): write rate from one thread, large values, a
follower's lag.

    .venv/bin/python bench/checkpoint_store.py                  # embedded store, both durabilities
    .venv/bin/python bench/checkpoint_store.py --records 200000 --repeat 5 --lag-records 500000
    FCR_MONGODB_URI=mongodb://... .venv/bin/python bench/checkpoint_store.py --mongodb

Write rate: records of ~150 bytes (a 21-character key in namespace ``bgp/adj-in/192.0.2.1``,
a 128-byte value, like one Adj-RIB-In entry of a checkpoint) put with ``put_many`` in batches
of 1, 100 and 1000, first as new keys (``insert``) and then over the same keys again
(``overwrite``, the steady state of continuous checkpointing). One thread, timed around the
``put_many`` calls only (the record tuples are built beforehand). Each measurement is made
``--repeat`` times on a fresh store; the tables give the median and the best run (the machines
these benchmarks run on are shared, single runs are noisy). Goal: 200,000 records/s.

Large values: one record of ``--big-mb`` MB of bytes (a RIB snapshot as one blob) put and read
back, and one dict of 200,000 routes (JSON-encoded by the store) put and read back.

Follower lag: a writer at full speed (batches of 1000, ``--lag-keys`` keys overwritten until
``--lag-records`` writes) and a reader in another process following ``changes(follow=True)``.
Every value starts with the writer's CLOCK_MONOTONIC time at ``put_many`` (shared by the
processes), so the reader measures, for every change it gets, the time since it was handed to
the store (ms), and every 1000 changes how many sequences it is behind ``last_seq()``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.nsr.store import EmbeddedStore, MongoStore  # noqa: E402

NS = "bgp/adj-in/192.0.2.1"
DURABILITY_TEXT = {
    "process": "WAL, synchronous=NORMAL: on disk (page cache) at return; survives kill -9, not power loss",
    "power": "WAL, synchronous=FULL: fsync of the WAL per batch; survives power loss",
    "mongodb": "w=majority, j=true: in the journal of a majority of the replica set",
}


def make_records(n: int, tag: int = 0) -> list[tuple[str, str, bytes]]:
    pad = os.urandom(120)
    return [(NS, f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}/24#{tag:03d}"[:21],
             struct.pack("<Q", i) + pad) for i in range(n)]


def rate(store, records, batch: int) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(0, len(records), batch):
        store.put_many(records[i:i + batch])
    return time.perf_counter() - t0, time.process_time() - c0


def write_rates(open_store, label: str, durability: str, sizes: dict[int, int],
                repeat: int) -> list[dict]:
    rows = []
    for batch, n in sizes.items():
        runs: dict[str, list[tuple[float, float]]] = {"insert": [], "overwrite": []}
        for _ in range(repeat):
            store = open_store()
            records = make_records(n, batch % 1000)
            for phase in ("insert", "overwrite"):
                secs, cpu = rate(store, records, batch)
                runs[phase].append((secs, cpu))
                print(f"  {label:9} {durability:8} batch {batch:5} {phase:9} {n:8,} records "
                      f"{secs:7.2f} s {n / secs:11,.0f} rec/s (CPU {cpu:.2f} s)", flush=True)
            store.close()
        for phase, got in runs.items():
            got.sort()
            med_secs, med_cpu = got[len(got) // 2]
            best_secs, best_cpu = got[0]
            rows.append({"backend": label, "durability": durability, "batch": batch,
                         "phase": phase, "records": n, "runs": len(got),
                         "seconds": med_secs, "rate": n / med_secs, "best": n / best_secs,
                         "cpu": med_cpu, "cpu_rate": n / med_cpu if med_cpu else 0.0})
    return rows


def large_values(path: Path, durability: str, mb: int, repeat: int) -> list[dict]:
    """put + get of one big bytes value and of one big dict, best of ``repeat``."""
    store = EmbeddedStore(path, durability=durability)
    blob = os.urandom(mb << 20)
    rib = {f"{10 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.0/24":
           {"next-hop": "192.0.2.1", "as-path": [65001, 65002, i & 0xffff], "med": i & 255}
           for i in range(200_000)}
    rows = []
    for what, ns, value in (("bytes", "rib/blob", blob), ("dict 200,000 routes", "rib/json", rib)):
        put_s = get_s = float("inf")
        for i in range(repeat):
            t0 = time.perf_counter()
            store.put(ns, "snapshot", value)
            t1 = time.perf_counter()
            got = store.get(ns, "snapshot")
            t2 = time.perf_counter()
            put_s, get_s = min(put_s, t1 - t0), min(get_s, t2 - t1)
            if i == 0:
                assert got.value == value
        size = len(blob) if what == "bytes" else len(json.dumps(rib, separators=(",", ":")))
        rows.append({"durability": durability, "what": what, "mb": size / 1e6,
                     "put_s": put_s, "get_s": get_s})
        print(f"  large value {durability:8} {what:20} {size / 1e6:6.1f} MB  put {put_s * 1000:7.1f} ms"
              f"  get {get_s * 1000:7.1f} ms", flush=True)
    store.close()
    return rows


# -- follower lag ----------------------------------------------------------------------------


def _reader(open_args, total_writes: int, out) -> None:
    store = _open(*open_args)
    lags_ms: list[float] = []
    behind: list[int] = []
    seen = 0
    last_seq = 0
    t_first = None
    for ch in store.changes(0, follow=True, poll_interval=0.001, timeout=10):
        now = time.clock_gettime(time.CLOCK_MONOTONIC)
        if t_first is None:
            t_first = now
        (stamp,) = struct.unpack_from("<d", ch.value, 0)
        lags_ms.append((now - stamp) * 1000)
        seen += 1
        last_seq = ch.seq
        if seen % 1000 == 0:
            behind.append(store.last_seq() - ch.seq)
        if ch.key == "END":
            break
    out.put({"lags_ms": lags_ms, "behind": behind, "seen": seen, "last_seq": last_seq,
             "done_at": time.clock_gettime(time.CLOCK_MONOTONIC)})
    store.close()


def _open(kind: str, arg: str, durability: str):
    if kind == "embedded":
        return EmbeddedStore(arg, durability=durability)
    return MongoStore(arg, database="fcrbench")


def follower_lag(kind: str, arg: str, durability: str, writes: int, keys: int) -> dict:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    writer = _open(kind, arg, durability)
    reader = ctx.Process(target=_reader, args=((kind, arg, durability), writes, out))
    reader.start()
    time.sleep(1.0)  # let the reader start polling
    pad = os.urandom(112)
    batch = 1000
    written = 0
    t0 = time.perf_counter()
    while written < writes:
        stamp = struct.pack("<d", time.clock_gettime(time.CLOCK_MONOTONIC))
        recs = [(NS, f"k{(written + j) % keys:09d}", stamp + pad) for j in range(batch)]
        writer.put_many(recs)
        written += batch
    stamp = struct.pack("<d", time.clock_gettime(time.CLOCK_MONOTONIC))
    writer.put(NS, "END", stamp + pad)
    t_end = time.clock_gettime(time.CLOCK_MONOTONIC)
    wsecs = time.perf_counter() - t0
    res = out.get(timeout=120)
    reader.join(10)
    writer.close()
    lags = sorted(res["lags_ms"])
    behind = sorted(res["behind"]) or [0]

    def pct(xs, p):
        return xs[min(len(xs) - 1, int(len(xs) * p))]

    row = {"writes": written, "keys": keys, "writer_seconds": wsecs, "writer_rate": written / wsecs,
           "delivered": res["seen"], "lag_ms_p50": pct(lags, 0.5), "lag_ms_p99": pct(lags, 0.99),
           "lag_ms_max": lags[-1], "behind_p50": pct(behind, 0.5), "behind_p99": pct(behind, 0.99),
           "behind_max": behind[-1], "catch_up_ms": (res["done_at"] - t_end) * 1000}
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000, help="records per batch size (batch 1: a twentieth)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (median and best are shown)")
    ap.add_argument("--big-mb", type=int, default=50, help="size of the large bytes value (MB)")
    ap.add_argument("--lag-records", type=int, default=1_000_000, help="writes in the lag test")
    ap.add_argument("--lag-keys", type=int, default=100_000, help="distinct keys in the lag test")
    ap.add_argument("--dir", default=None, help="directory for the store files (default: a temp dir under /var/tmp)")
    ap.add_argument("--mongodb", action="store_true", help="also FCR_MONGODB_URI (a real replica set)")
    ap.add_argument("--skip-lag", action="store_true")
    args = ap.parse_args()

    base = Path(args.dir or tempfile.mkdtemp(prefix="fcr-store-bench-", dir="/var/tmp"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"# load average {os.getloadavg()[0]:.2f};"
          f" checkpoint store bench, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores,"
          f" Python {platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version},"
          f" files in {base}", flush=True)
    sizes = {1: max(1000, args.records // 20), 100: args.records, 1000: args.records}
    rows = []
    try:
        for durability in ("process", "power"):
            counter = iter(range(100))

            def open_embedded(d=durability, counter=counter):
                return EmbeddedStore(base / f"w-{d}-{next(counter)}.db", durability=d)

            rows += write_rates(open_embedded, "embedded", durability, sizes, args.repeat)
        uri = os.environ.get("FCR_MONGODB_URI", "")
        if args.mongodb:
            if not uri:
                print("  mongodb: FCR_MONGODB_URI not set, skipped")
            else:
                def open_mongo():
                    s = MongoStore(uri, database="fcrbench")
                    s.client.drop_database("fcrbench")
                    return MongoStore(uri, database="fcrbench")

                rows += write_rates(open_mongo, "mongodb", "mongodb",
                                    {1: 2000, 100: 50_000, 1000: 100_000}, args.repeat)
        big = []
        for durability in ("process", "power"):
            big += large_values(base / f"big-{durability}.db", durability, args.big_mb, args.repeat)
        print()
        print(f"Write rate, one thread, median of {args.repeat} runs (best run; goal 200,000 records/s):")
        print()
        print("| backend | durability | batch | phase | records | records/s median | best"
              " | CPU s (median) | records per CPU s |")
        print("|---|---|---:|---|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['backend']} | {r['durability']} | {r['batch']} | {r['phase']} |"
                  f" {r['records']:,} | {r['rate']:,.0f} | {r['best']:,.0f} |"
                  f" {r['cpu']:.2f} | {r['cpu_rate']:,.0f} |")
        print()
        for d in ("process", "power"):
            print(f"- {d}: {DURABILITY_TEXT[d]}")
        print()
        print(f"Large values, best of {args.repeat}:")
        print()
        print("| durability | value | MB | put ms | get ms | put MB/s | get MB/s |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for r in big:
            print(f"| {r['durability']} | {r['what']} | {r['mb']:.1f} | {r['put_s'] * 1000:.0f} |"
                  f" {r['get_s'] * 1000:.0f} | {r['mb'] / r['put_s']:,.0f} | {r['mb'] / r['get_s']:,.0f} |")
        if not args.skip_lag:
            print()
            lag_rows = []
            for durability in ("process", "power"):
                path = base / f"lag-{durability}.db"
                r = follower_lag("embedded", str(path), durability, args.lag_records, args.lag_keys)
                r["label"] = f"embedded {durability}"
                lag_rows.append(r)
                print(f"  lag {durability}: {r}", flush=True)
            if args.mongodb and uri:
                MongoStore(uri, database="fcrbench").client.drop_database("fcrbench")
                r = follower_lag("mongodb", uri, "mongodb", min(args.lag_records, 200_000), args.lag_keys)
                r["label"] = "mongodb"
                lag_rows.append(r)
            print()
            print("| store | writes (keys) | writer rec/s | delivered | lag ms p50 / p99 / max"
                  " | behind (seqs) p50 / p99 / max | catch-up after last write ms |")
            print("|---|---:|---:|---:|---|---|---:|")
            for r in lag_rows:
                print(f"| {r['label']} | {r['writes']:,} ({r['keys']:,}) | {r['writer_rate']:,.0f} |"
                      f" {r['delivered']:,} | {r['lag_ms_p50']:.1f} / {r['lag_ms_p99']:.1f} /"
                      f" {r['lag_ms_max']:.1f} | {r['behind_p50']:,} / {r['behind_p99']:,} /"
                      f" {r['behind_max']:,} | {r['catch_up_ms']:.1f} |")
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
