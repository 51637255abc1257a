"""Thousands of seeded random fault schedules: safety after every step, then liveness.

The seeds are split into a few chunks (parametrized tests) that loop inside, which is far
cheaper than one pytest item per seed. Every failing seed is reported with the one-line command
that replays it.
"""

from __future__ import annotations

import pytest

from tests.sim.schedule import run_schedule

CHUNKS = 8
MAX_REPORTED = 5


def replay_command(seed: int) -> str:
    return f"pytest tests/sim/test_random.py --sim-seed {seed}"


def run_seeds(seeds: range) -> list[str]:
    failures: list[str] = []
    for seed in seeds:
        try:
            run_schedule(seed)
        except AssertionError as exc:
            failures.append(f"seed {seed} failed; replay: {replay_command(seed)}\n{exc}")
            if len(failures) >= MAX_REPORTED:
                break
    return failures


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_random_schedules(sim_seed_range: range, chunk: int) -> None:
    seeds = sim_seed_range[chunk::CHUNKS]
    if not seeds:
        pytest.skip("no seeds in this chunk")
    failures = run_seeds(seeds)
    assert not failures, "\n\n".join(failures)
