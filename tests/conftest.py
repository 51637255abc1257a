"""Shared pytest options and fixtures.

``--sim-seeds N``: how many seeded random schedules the simulator runs (default 2000).
``--sim-seed S``: replay exactly one seed (the command a failure prints).
"""

from __future__ import annotations

import pytest

DEFAULT_SIM_SEEDS = 2000


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("raftkv simulator")
    group.addoption(
        "--sim-seeds",
        type=int,
        default=DEFAULT_SIM_SEEDS,
        help=f"number of random simulator schedules to run (default {DEFAULT_SIM_SEEDS})",
    )
    group.addoption(
        "--sim-seed",
        type=int,
        default=None,
        help="replay only this simulator seed",
    )
    group.addoption(
        "--sim-first-seed",
        type=int,
        default=0,
        help="first seed of the range (to explore beyond the default seeds)",
    )


@pytest.fixture
def sim_seed_range(request: pytest.FixtureRequest) -> range:
    """The seeds a randomized simulator test runs: one seed, or a range."""
    seed = request.config.getoption("--sim-seed")
    if seed is not None:
        return range(seed, seed + 1)
    first = request.config.getoption("--sim-first-seed")
    return range(first, first + request.config.getoption("--sim-seeds"))
