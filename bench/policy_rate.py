"""Routing-policy evaluation rate (not a timed test; prints numbers).

1,000,000 IPv4 /24s under 62,500 attribute sets (16 prefixes each, as a full table
arrives: realistic AS paths of 2-7 ASNs, 0-4 communities, some large communities)
through a 10-statement import policy: bogon and too-specific prefix sets, AS-path
regexes, AS-path length, community matches (exact and regex), set local-pref, MED +N,
community add/remove, AS-path prepend, and a prefix-dependent accept.

Modes (each the best of --repeat, CPU seconds):
  batch     ImportHook.filter_batch per attribute set (what the speaker calls per UPDATE)
  per-route ImportHook(key, ...) per prefix, with the per-attrs cache
  no-cache  the same compiled chain with PolicyEngine(cache=False): every statement per prefix

    .venv/bin/python bench/policy_rate.py [--sets N] [--per-set N] [--repeat N]
"""

from __future__ import annotations

import argparse
import gc
import random
import time

from appliance.bgp.family import IPV4_UNICAST
from appliance.bgp.packet.pathattrs import PathAttributes
from appliance.bgp.rib.path import PeerSource
from appliance.policy import PolicyEngine, make_import_hook, parse_routing_policy

SRC = PeerSource("192.0.2.2", bytes([192, 0, 2, 2]), 0xC0000202, 64500, 65000, ebgp=True)


def pfx(name: str, entries: list[tuple[str, str]]) -> dict:
    return {"name": name, "prefixes": {"prefix": [{"ip-prefix": p, "masklength-range": r} for p, r in entries]}}


def stmt(name: str, cond: dict, result: str, bgp: dict | None = None) -> dict:
    act: dict = {"policy-result": result}
    if bgp:
        act["bgp-actions"] = bgp
    return {"name": name, "conditions": cond, "actions": act}


CONFIG = {
    "defined-sets": {
        "prefix-sets": {"prefix-set": [
            pfx("bogons", [("0.0.0.0/8", "8..32"), ("10.0.0.0/8", "8..32"), ("127.0.0.0/8", "8..32"),
                           ("172.16.0.0/12", "12..32"), ("192.168.0.0/16", "16..32"), ("224.0.0.0/3", "3..32"),
                           ("100.64.0.0/10", "10..32"), ("169.254.0.0/16", "16..32")]),
            pfx("too-specific", [("0.0.0.0/0", "25..32")]),
            pfx("customers", [("3.0.0.0/8", "16..24"), ("5.128.0.0/9", "20..24"), ("7.7.7.0/24", "exact")]),
        ]},
        "bgp-defined-sets": {
            "as-path-sets": {"as-path-set": [
                {"name": "private", "member": ["_6451[0-9]_", "_4200000[0-9]+_"]},
                {"name": "via-transit", "member": ["^64500_(3356|174|1299)_"]},
            ]},
            "community-sets": {"community-set": [
                {"name": "blackhole", "member": ["65000:666", "blackhole"]},
                {"name": "prefer", "member": ["^65001:1[0-9]$"]},
                {"name": "strip", "member": ["65001:.*", "65002:9"]},
            ]},
            "large-community-sets": {"large-community-set": [{"name": "prepend", "member": ["65000:1:.*"]}]},
        },
    },
    "policy-definitions": {"policy-definition": [{"name": "in", "statements": {"statement": [
        stmt("bogons", {"match-prefix-set": {"prefix-set": "bogons"}}, "reject-route"),
        stmt("too-specific", {"match-prefix-set": {"prefix-set": "too-specific"}}, "reject-route"),
        stmt("private-as", {"bgp-conditions": {"match-as-path-set": {"as-path-set": "private"}}}, "reject-route"),
        stmt("long-path", {"bgp-conditions": {"as-path-length": {"operator": "ge", "value": 7}}}, "reject-route"),
        stmt("blackhole", {"bgp-conditions": {"match-community-set": {"community-set": "blackhole"}}}, "reject-route"),
        stmt("prefer", {"bgp-conditions": {"match-community-set": {"community-set": "prefer"}}}, "next-statement",
             {"set-local-pref": 200}),
        stmt("transit", {"bgp-conditions": {"match-as-path-set": {"as-path-set": "via-transit"}}}, "next-statement",
             {"set-med": "+10", "set-community": {"options": "add", "communities": ["65000:100"]}}),
        stmt("customers", {"match-prefix-set": {"prefix-set": "customers"}}, "accept-route",
             {"set-local-pref": 300}),
        stmt("prepend", {"bgp-conditions": {"match-large-community-set": {"large-community-set": "prepend"}}},
             "next-statement", {"set-as-path-prepend": {"repeat-n": 2}}),
        stmt("clean", {}, "accept-route", {"set-community": {"options": "remove", "community-set-ref": "strip"}}),
    ]}}]},
}


def make_feed(n_sets: int, per_set: int, seed: int = 1) -> list[tuple[PathAttributes, list[bytes]]]:
    rnd = random.Random(seed)
    transit = [3356, 174, 1299, 2914, 6939, 6453, 3257]
    origins = list(range(1000, 60000, 7)) + [64512, 64515, 4200000001]
    comm_pool = [65000 << 16 | 100, 65000 << 16 | 666, 65001 << 16 | 12, 65001 << 16 | 7, 65002 << 16 | 9,
                 65003 << 16 | 1, 3356 << 16 | 3, 174 << 16 | 21000]
    feed = []
    i = 0
    for s in range(n_sets):
        path = [64500, rnd.choice(transit)] + [rnd.choice(origins) for _ in range(rnd.randint(0, 5))]
        comms = tuple(sorted(set(rnd.sample(comm_pool, rnd.randint(0, 4)))))
        large = ((65000, 1, s % 50),) if s % 7 == 0 else ()
        attrs = PathAttributes(origin=0, as_path=((2, tuple(path)),), next_hop=bytes([192, 0, 2, 2]),
                               med=rnd.choice([None, 0, 50]), communities=comms, large_communities=large)
        keys = []
        for _ in range(per_set):
            a = 1 + (i >> 16)
            keys.append(bytes((24, a, (i >> 8) & 255, i & 255)))
            i += 1
        feed.append((attrs, keys))
    return feed


def rss_peak_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def best(repeat: int, fn) -> tuple[float, float, int]:
    out = None
    for _ in range(repeat):
        gc.collect()
        w, c = time.perf_counter(), time.process_time()
        n = fn()
        r = (time.perf_counter() - w, time.process_time() - c, n)
        if out is None or r[1] < out[1]:
            out = r
    return out  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", type=int, default=62_500)
    ap.add_argument("--per-set", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-nocache", action="store_true")
    args = ap.parse_args()
    cfg = parse_routing_policy(CONFIG)
    feed = make_feed(args.sets, args.per_set)
    total = args.sets * args.per_set

    def run_batch(engine: PolicyEngine) -> int:
        hook = make_import_hook(engine, ["in"], "reject-route")
        fb = hook.filter_batch
        n = 0
        for attrs, keys in feed:
            for _a, ks in fb(IPV4_UNICAST, SRC, attrs, keys):
                n += len(ks)
        return n

    def run_each(engine: PolicyEngine) -> int:
        hook = make_import_hook(engine, ["in"], "reject-route")
        n = 0
        for attrs, keys in feed:
            for k in keys:
                if hook(k, IPV4_UNICAST, SRC, attrs) is not None:
                    n += 1
        return n

    rows = []
    # cold: a new engine per run (the cache fills during the run); warm: reused engine
    rows.append(("batch, cold cache", *best(args.repeat, lambda: run_batch(PolicyEngine(cfg)))))
    warm = PolicyEngine(cfg)
    run_batch(warm)
    rows.append(("batch, warm cache", *best(args.repeat, lambda: run_batch(warm))))
    rows.append(("per-route, cold cache", *best(args.repeat, lambda: run_each(PolicyEngine(cfg)))))
    if not args.skip_nocache:
        rows.append(("per-route, no cache", *best(1, lambda: run_each(PolicyEngine(cfg, cache=False)))))
    accepted = {r[3] for r in rows}
    assert len(accepted) == 1, f"modes disagree: {rows}"
    print(f"{total:,} routes, {args.sets:,} attribute sets x {args.per_set}, 10-statement policy; "
          f"accepted {rows[0][3]:,}")
    print(f"{'mode':<24} {'wall s':>8} {'cpu s':>8} {'routes/s (cpu)':>16}")
    for name, w, c, _n in rows:
        print(f"{name:<24} {w:8.2f} {c:8.2f} {total / c:16,.0f}")
    print(f"peak RSS {rss_peak_mib():.0f} MiB")


if __name__ == "__main__":
    main()
