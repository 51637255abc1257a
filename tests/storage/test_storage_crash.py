"""Crash safety: a child writes through RaftLogStore + KVStateMachine and is SIGKILLed at random
points; after each kill the data directory is reopened and checked.

The child (started by a forkserver) reports on a pipe only after a call returned:
``("D", last, term, commit)`` after save(), ``("A", applied)`` after apply(). After a kill the
parent checks: the log opens (checksums, contiguity), every entry is the one the child wrote for
its index and terms never decrease (a valid prefix), the hard state and the committed entries it
reported are there, the state DB has at least what was reported applied (a process crash loses
no written batch), never more than was committed, and equals the log replayed up to its applied
index. RAFTKV_CRASH_ITERATIONS sets the number of kills (RAFTKV_CRASH_SECONDS a time budget).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import random
import signal
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from raftkv.core.membership import membership_of
from raftkv.core.types import Entry, HardState, Index, NodeId, Term
from raftkv.kv import open_node_storage
from raftkv.pb import kv_pb2

M0 = membership_of([1])
KEYS = 50
ITERATIONS = int(os.environ.get("RAFTKV_CRASH_ITERATIONS", "200"))
BUDGET_S = float(os.environ.get("RAFTKV_CRASH_SECONDS", "35"))
"""On a loaded machine stop early after this long, but never before MIN_ITERATIONS kills."""
MIN_ITERATIONS = 60


def command(index: int) -> bytes:
    """Entry data depends only on the index, so the log and the state can be checked anywhere."""
    return kv_pb2.Command(
        put=kv_pb2.PutOp(key=b"k%02d" % (index % KEYS), value=b"v%d" % index)
    ).SerializeToString()


def open_node(path: Path):  # type: ignore[no-untyped-def]
    return open_node_storage(path, cluster_id="crash", node_id=1, initial_membership=M0)


def child(path: Path, seed: int, conn: Connection) -> None:
    rng = random.Random(seed)
    node = open_node(path)
    raft, state = node.log, node.state
    compactor = node.compactor(snapshot_threshold=120, trailing_entries=30)
    hs = raft.hard_state()
    term = max(hs.term, raft.term(raft.last_index()), 1)
    commit = hs.commit
    while True:
        last = raft.last_index()
        if rng.random() < 0.2 and last > commit:
            term += 1  # a new leader overwrites the uncommitted suffix
            lo = rng.randint(commit + 1, last)
        else:
            lo = last + 1
        n = rng.choice([1, 1, 2, 5, 16, 64])
        batch = [Entry(term=Term(term), index=Index(i), data=command(i)) for i in range(lo, lo + n)]
        commit = max(commit, min(lo + n - 1, commit + rng.randint(0, n + 5)))
        raft.save(
            hard_state=HardState(term=Term(term), vote=NodeId(1), commit=Index(commit)),
            entries=batch,
        )
        conn.send(("D", lo + n - 1, term, commit))
        applied = state.applied_index()
        if commit > applied:
            state.apply(raft.entries(Index(applied + 1), Index(commit + 1)))
            conn.send(("A", commit))
        compactor.maybe_compact()


# A forkserver starts children from a clean interpreter: forking pytest itself would copy
# whatever threads other tests started (gRPC, asyncio) into the child.
CONTEXT = multiprocessing.get_context("forkserver")
CONTEXT.set_forkserver_preload(["__main__", "raftkv.kv", "raftkv.pb.kv_pb2", __name__])


def run_and_kill(path: Path, seed: int, reports_before_kill: int) -> list[tuple[Any, ...]]:
    reader, writer = CONTEXT.Pipe(duplex=False)
    proc = CONTEXT.Process(target=child, args=(path, seed, writer), daemon=True)
    proc.start()
    writer.close()
    reports: list[tuple[Any, ...]] = []
    try:
        while len(reports) < reports_before_kill:
            reports.append(reader.recv())
    except EOFError:
        pass
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL, "the child died on its own (see its traceback)"
    # What it reported before the kill is still in the pipe; a message cut by the kill is not
    # a report (it was not fully sent).
    try:
        while True:
            reports.append(reader.recv())
    except (EOFError, OSError, pickle.UnpicklingError):
        pass
    reader.close()
    return reports


def check(path: Path, reports: list[tuple[Any, ...]], floor: dict[str, int]) -> None:
    durable = [r for r in reports if r[0] == "D"]
    applied_reports = [r[1] for r in reports if r[0] == "A"]
    node = open_node(path)
    try:
        raft, state = node.log, node.state
        hs = raft.hard_state()
        if durable:
            _, _last, term, commit = durable[-1]
            floor["commit"] = max(floor["commit"], commit)
            assert hs.term >= term
        if applied_reports:
            floor["applied"] = max(floor["applied"], *applied_reports)
        assert hs.commit >= floor["commit"], (hs, floor)
        assert raft.last_index() >= hs.commit
        first = raft.first_index()
        entries = raft.entries(first, Index(raft.last_index() + 1))
        previous = raft.snapshot_meta().term
        for entry in entries:
            assert entry.data == command(entry.index)
            assert entry.term >= previous
            previous = entry.term
        applied = state.applied_index()
        assert floor["applied"] <= applied <= hs.commit
        expected = {}
        for j in range(KEYS):
            i = applied - ((applied - j) % KEYS)
            if i >= 1:
                expected[b"k%02d" % j] = b"v%d" % i
        assert dict(state.scan(limit=10_000).items) == expected
        assert raft.snapshot_meta().index <= state.durable_applied_index()
    finally:
        node.close()


def test_sigkill_at_random_points(tmp_path: Path) -> None:
    rng = random.Random(20261127)
    path = tmp_path / "node"
    floor = {"commit": 0, "applied": 0}
    deadline = time.monotonic() + BUDGET_S
    for i in range(ITERATIONS):
        reports = run_and_kill(path, seed=i, reports_before_kill=rng.choice([0, 1, 2, 5, 20, 60]))
        check(path, reports, floor)
        if i + 1 >= MIN_ITERATIONS and time.monotonic() > deadline:
            break
    node = open_node(path)
    # The run went far enough to exercise compaction and truncation many times over.
    assert node.log.snapshot_meta().index > 0
    node.close()
