"""Micro benchmark of the UPDATE decoder's hot path (not a timed test).

Builds 62,500 UPDATE bodies, each with its own attribute set (ORIGIN, AS_PATH of
3 ASNs, NEXT_HOP, MED, COMMUNITIES) and 16 /24 prefixes - 1,000,000 prefixes in
all, the shape of the receive benchmark - and times decoding all of them with a
cold attribute cache (every set decoded once) and a warm one (every set a hit, as
for a second peer sending the same routes).

    .venv/bin/python bench/micro_update_decode.py [--sets 62500] [--per-update 16]
"""

from __future__ import annotations

import argparse
import gc
import time

from appliance.bgp.family import IPV4_UNICAST
from appliance.bgp.packet.pathattrs import PathAttributes
from appliance.bgp.packet.update import AttrCache, UpdateDecoder, encode_attributes, pack_updates


def build_bodies(sets: int, per_update: int) -> list[bytes]:
    bodies = []
    n = 0
    for i in range(sets):
        attrs = PathAttributes(
            origin=0,
            as_path=((2, (65001, 64512 + (i % 1000), 100000 + i)),),
            next_hop=bytes((10, 0, (i >> 8) & 0xFF, i & 0xFF or 1)),
            med=i,
            communities=(65001 << 16 | 1, 65001 << 16 | (i & 0xFFFF)),
        )
        ab = encode_attributes(attrs, four_octet_as=True, family=IPV4_UNICAST)
        keys = []
        for _ in range(per_update):
            keys.append(bytes((24, 1 + (n >> 16) % 223, (n >> 8) & 0xFF, n & 0xFF)))
            n += 1
        (msg,) = pack_updates(IPV4_UNICAST, ab, attrs.next_hop, keys)
        bodies.append(msg[19:])
    return bodies


def time_decode(bodies: list[bytes], decoder: UpdateDecoder) -> tuple[float, int]:
    if gc.isenabled():
        gc.collect()
    decode = decoder.decode
    t0 = time.perf_counter()
    prefixes = 0
    for body in bodies:
        upd = decode(body)
        prefixes += len(upd.announced[0][2])
    return time.perf_counter() - t0, prefixes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=62_500)
    ap.add_argument("--per-update", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    bodies = build_bodies(args.sets, args.per_update)
    cold, warm, nogc = [], [], []
    for _ in range(args.rounds):
        gc.disable()  # what a speaker gets with gc.freeze() + a high gen-0 threshold
        try:
            t, _ = time_decode(bodies, UpdateDecoder(four_octet_as=True, ebgp=True))
        finally:
            gc.enable()
        nogc.append(t)
        cache = AttrCache()
        dec = UpdateDecoder(four_octet_as=True, ebgp=True, cache=cache)
        t, n = time_decode(bodies, dec)
        cold.append(t)
        t, _ = time_decode(bodies, UpdateDecoder(four_octet_as=True, ebgp=True, cache=cache))
        warm.append(t)
    print(f"updates={len(bodies)} prefixes={n} attribute-sets={args.sets}")
    print(f"cold cache (every set decoded): {min(cold):.3f} s  ({n / min(cold) / 1e6:.2f} M prefixes/s)")
    print(f"cold cache, GC disabled:        {min(nogc):.3f} s  ({n / min(nogc) / 1e6:.2f} M prefixes/s)")
    print(f"warm cache (every set a hit):   {min(warm):.3f} s  ({n / min(warm) / 1e6:.2f} M prefixes/s)")


if __name__ == "__main__":
    main()
