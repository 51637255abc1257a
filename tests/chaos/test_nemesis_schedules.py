"""The pure parts of the nemeses: partition shapes and the fault log (no cluster needed)."""

from __future__ import annotations

import random

import pytest

from tests.chaos.nemesis import NEMESES, FaultLog, bridge_pairs, ring_pairs


def visible(n: int, cut: list[tuple[int, int]]) -> dict[int, set[int]]:
    """node -> the nodes it can exchange packets with (itself included)."""
    blocked = {frozenset(p) for p in cut}
    return {
        a: {b for b in range(n) if a == b or frozenset((a, b)) not in blocked} for a in range(n)
    }


@pytest.mark.parametrize("seed", range(20))
def test_ring_of_five_gives_every_node_a_different_majority(seed: int) -> None:
    order, cut = ring_pairs(5, random.Random(seed))
    seen = visible(5, cut)
    assert sorted(order) == list(range(5))
    assert all(len(group) == 3 for group in seen.values())  # itself and two neighbours
    assert len({frozenset(group) for group in seen.values()}) == 5


@pytest.mark.parametrize(("n", "seed"), [(n, s) for n in (3, 5) for s in range(10)])
def test_bridge_node_sees_everyone_and_the_halves_do_not_meet(n: int, seed: int) -> None:
    bridge, cut = bridge_pairs(n, random.Random(seed))
    seen = visible(n, cut)
    assert seen[bridge] == set(range(n))
    others = [i for i in range(n) if i != bridge]
    majority = n // 2 + 1
    # Each non-bridge node still sees a majority (its half plus the bridge), but not the same one.
    assert all(len(seen[i]) == majority for i in others)
    assert len({frozenset(seen[i]) for i in others}) == 2


def test_fault_log_records_windows_on_the_monotonic_clock() -> None:
    log = FaultLog()
    entry = log.begin("pause-leader", node=2)
    log.end(entry, note="resumed")
    (record,) = log.records
    assert record["name"] == "pause-leader"
    assert record["end_s"] >= record["start_s"]
    assert record["detail"] == {"node": 2, "note": "resumed"}
    assert "pause-leader" in log.describe(record["start_s"])


def test_every_nemesis_the_issue_names_is_registered() -> None:
    assert set(NEMESES) >= {
        "kill-leader", "kill-random", "kill-majority", "restart-all", "pause-leader",
        "pause-random", "isolate-leader", "partition-majority-minority", "partition-bridge",
        "partition-ring", "one-way-drop", "packet-loss", "delay", "transfer-leader",
    }
