"""A short, deterministic pass of every message fuzz target (make fuzz runs long ones)."""

from __future__ import annotations

import pytest

from tests.fuzz import runner
from tests.fuzz.fuzz_message import TARGETS


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_message_target(name):
    target, seeds = TARGETS[name]
    n = runner.run(target, seeds(), iterations=30_000, seconds=2.0, rng_seed=1234)
    assert n > 100
