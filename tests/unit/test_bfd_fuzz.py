"""A short, deterministic pass of the BFD fuzz target (`make fuzz` runs a long one)."""

from __future__ import annotations

import pytest

from tests.fuzz.fuzz_bfd import TARGETS
from tests.fuzz.runner import run


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_bfd(name: str) -> None:
    target, seeds = TARGETS[name]
    corpus = seeds()
    for seed in corpus:
        target(seed)
    done = run(target, corpus, iterations=100_000, seconds=3.0, rng_seed=1234)
    assert done > 500
