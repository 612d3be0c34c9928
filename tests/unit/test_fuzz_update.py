"""A short, deterministic pass of the UPDATE fuzz targets (`make fuzz` runs the long one)."""

from __future__ import annotations

import pytest

from tests.fuzz.fuzz_update import TARGETS
from tests.fuzz.runner import run


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target(name: str) -> None:
    target, seeds = TARGETS[name]
    corpus = seeds()
    assert corpus, "every target needs valid seeds"
    for seed in corpus:  # seeds are valid input: they must decode
        target(seed)
    done = run(target, corpus, iterations=200_000, seconds=4.0, rng_seed=1234)
    assert done > 500
