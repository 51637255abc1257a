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


def replay_command(seed: int, *, membership: bool = False) -> str:
    which = "-k membership " if membership else "-k 'not membership' "
    return f"pytest tests/sim/test_random.py {which}--sim-seed {seed}"


MEMBERSHIP_SHARE = 2
"""Membership-churn schedules: one seed in this many of the range (they are slower)."""
MEMBERSHIP_CHUNKS = 2


def run_seeds(seeds: range, *, membership: bool = False) -> list[str]:
    failures: list[str] = []
    for seed in seeds:
        try:
            run_schedule(seed, membership=membership)
        except AssertionError as exc:
            replay = replay_command(seed, membership=membership)
            failures.append(f"seed {seed} failed; replay: {replay}\n{exc}")
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


@pytest.mark.parametrize("chunk", range(MEMBERSHIP_CHUNKS))
def test_random_schedules_with_membership_changes(sim_seed_range: range, chunk: int) -> None:
    """The same schedules plus random joint-consensus changes over a pool of n + 2 nodes."""
    if len(sim_seed_range) == 1:
        seeds = sim_seed_range
    else:
        seeds = sim_seed_range[: max(1, len(sim_seed_range) // MEMBERSHIP_SHARE)]
    seeds = seeds[chunk::MEMBERSHIP_CHUNKS]
    if not seeds:
        pytest.skip("no seeds in this chunk")
    failures = run_seeds(seeds, membership=True)
    assert not failures, "\n\n".join(failures)


def test_a_seed_replays_exactly() -> None:
    """One seed decides the whole run: two runs of a seed have the same trace and end state."""
    for seed in (7, 8):
        assert run_schedule(seed).fingerprint == run_schedule(seed).fingerprint
        first = run_schedule(seed, membership=True).fingerprint
        assert first == run_schedule(seed, membership=True).fingerprint
