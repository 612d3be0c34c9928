"""A small mutation fuzzer for the codec's decoders.

Each fuzz target is a function ``target(data: bytes) -> None`` that feeds bytes to
one decoder. The only exception allowed out of a decoder is the codec's own
``BgpCodecError``; anything else is a bug and is reported with the input that
caused it (hex), so it can be pasted into a regression test.

Bounded by iteration count and by wall time; deterministic for a given seed.
`make test` runs a short pass (tests/unit/test_fuzz_*.py), `make fuzz` a long one
(``python -m tests.fuzz.runner --seconds 300``).
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
import time
from collections.abc import Callable, Iterable

from appliance.bgp.packet.errors import BgpCodecError

Target = Callable[[bytes], None]

# Modules that define fuzz targets: each exposes TARGETS = {name: (target, seeds)}.
TARGET_MODULES = ("tests.fuzz.fuzz_update", "tests.fuzz.fuzz_message", "tests.fuzz.fuzz_bfd")

_INTERESTING = (0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF)
_INTERESTING16 = (0, 1, 19, 4096, 4097, 0x7FFF, 0xFFFF)


class FuzzFailure(AssertionError):
    pass


def mutate(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        if op == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # interesting byte
            buf[rng.randrange(len(buf))] = rng.choice(_INTERESTING)
        elif op == 2 and len(buf) >= 2:  # interesting 16-bit value (lengths!)
            i = rng.randrange(len(buf) - 1)
            buf[i : i + 2] = rng.choice(_INTERESTING16).to_bytes(2, "big")
        elif op == 3 and buf:  # truncate
            del buf[rng.randrange(len(buf)) :]
        elif op == 4:  # insert random bytes
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 5 and buf:  # delete a range
            i = rng.randrange(len(buf))
            del buf[i : i + rng.randint(1, 8)]
        elif op == 6 and corpus:  # splice with another input
            other = rng.choice(corpus)
            i = rng.randrange(len(buf) + 1)
            j = rng.randrange(len(other) + 1)
            buf = buf[:i] + other[j:]
        elif op == 7 and buf:  # small arithmetic on a byte
            i = rng.randrange(len(buf))
            buf[i] = (buf[i] + rng.randint(-4, 4)) & 0xFF
        elif op == 8 and buf:  # duplicate a chunk
            i = rng.randrange(len(buf))
            buf[i:i] = buf[i : i + rng.randint(1, 16)]
    return bytes(buf)


def run(
    target: Target,
    seeds: Iterable[bytes],
    *,
    iterations: int = 20_000,
    seconds: float = 10.0,
    rng_seed: int = 0,
) -> int:
    """Fuzz ``target``; returns the number of inputs tried. Raises FuzzFailure on a bug."""
    rng = random.Random(rng_seed)
    corpus = [bytes(s) for s in seeds] or [b""]
    deadline = time.monotonic() + seconds
    done = 0
    while done < iterations:
        done += 1
        data = mutate(rng.choice(corpus), rng, corpus)
        try:
            target(data)
        except BgpCodecError:
            pass
        except Exception as exc:  # noqa: BLE001 - this is what we look for
            raise FuzzFailure(
                f"{target.__name__}: {type(exc).__name__}: {exc} on input {data.hex()}"
            ) from exc
        else:
            if len(corpus) < 4096 and rng.random() < 0.05:
                corpus.append(data)  # accepted inputs widen the search
        if time.monotonic() > deadline:
            break
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Fuzz every BGP decoder")
    ap.add_argument("--seconds", type=float, default=300.0, help="time per target")
    ap.add_argument("--iterations", type=int, default=10**9)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args(argv)
    failed = 0
    for modname in TARGET_MODULES:
        mod = importlib.import_module(modname)
        for name, (target, seeds) in mod.TARGETS.items():
            try:
                n = run(target, seeds(), iterations=args.iterations, seconds=args.seconds, rng_seed=args.seed)
                print(f"fuzz {name}: {n} inputs, no failure (seed {args.seed})")
            except FuzzFailure as exc:
                failed += 1
                print(f"fuzz {name}: FAILED (seed {args.seed}): {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
