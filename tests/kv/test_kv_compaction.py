"""Compaction: a long write stream keeps the raft DB under threshold + trailing window, and the
log is never compacted past a durably applied index."""

from __future__ import annotations

from pathlib import Path

import pytest
from kvhelpers import M0, put

from raftkv.core.types import Entry, HardState, Index, Term
from raftkv.kv import open_node_storage
from raftkv.storage import CompactionRefusedError, codec


def raft_entry_keys(node: object) -> int:
    db = node.log._db  # type: ignore[attr-defined]
    return sum(1 for _ in db.keys(start=codec.ENTRY_PREFIX, stop=b"f"))


def test_long_stream_stays_bounded(tmp_path: Path) -> None:
    threshold, trailing = 500, 100
    node = open_node_storage(tmp_path / "n", cluster_id="c", node_id=1, initial_membership=M0)
    compactor = node.compactor(snapshot_threshold=threshold, trailing_entries=trailing)
    index, compactions, most = 0, 0, 0
    for batch in range(400):
        size = 1 + (batch * 7) % 40
        entries = [
            Entry(
                term=Term(1),
                index=Index(index + i + 1),
                data=put(b"k%d" % ((index + i) % 300), b"v%d" % (index + i)),
            )
            for i in range(size)
        ]
        index += size
        node.log.save(entries=entries, hard_state=HardState(term=Term(1), commit=Index(index)))
        node.state.apply(entries)
        if compactor.maybe_compact() is not None:
            compactions += 1
        count = (
            raft_entry_keys(node)
            if batch % 10 == 0
            else node.log.last_index() - node.log.first_index() + 1
        )
        most = max(most, count)
        assert count <= threshold + trailing, (batch, count)
    assert index > 8000 and compactions >= 10
    assert raft_entry_keys(node) == node.log.last_index() - node.log.first_index() + 1
    assert node.log.snapshot_meta().index <= node.state.durable_applied_index()
    node.close()
    # Everything still opens and replays consistently.
    node = open_node_storage(tmp_path / "n", cluster_id="c", node_id=1)
    assert node.state.applied_index() == index
    node.close()


def test_never_past_durably_applied(tmp_path: Path) -> None:
    node = open_node_storage(tmp_path / "n", cluster_id="c", node_id=1, initial_membership=M0)
    entries = [Entry(term=Term(1), index=Index(i), data=put(b"k", b"%d" % i)) for i in range(1, 51)]
    node.log.save(entries=entries)
    node.state.apply(entries[:30])
    with pytest.raises(CompactionRefusedError, match="only 0 is durably applied"):
        node.log.compact(Index(10), durably_applied=node.state.durable_applied_index())
    compactor = node.compactor(snapshot_threshold=10, trailing_entries=5)
    assert compactor.maybe_compact() == 25  # synced through 30, minus the window
    assert node.state.durable_applied_index() == 30
    assert node.log.first_index() == 26
    node.close()


def test_state_ahead_of_log_is_reconciled(tmp_path: Path) -> None:
    """A crash between swapping in a snapshot and resetting the log: the log follows the state."""
    from raftkv.kv import SnapshotInstaller, snapshot_chunks

    leader = open_node_storage(tmp_path / "a", cluster_id="c", node_id=1, initial_membership=M0)
    entries = [Entry(term=Term(3), index=Index(i), data=put(b"k", b"%d" % i)) for i in range(1, 41)]
    leader.log.save(entries=entries)
    leader.state.apply(entries)
    follower = open_node_storage(tmp_path / "b", cluster_id="c", node_id=2, initial_membership=M0)
    follower.log.save(entries=[Entry(term=Term(1), index=Index(1), data=b"")])
    installer = SnapshotInstaller(follower.state)
    for chunk in snapshot_chunks(leader.state):
        installer.add(chunk)
    installer.commit()
    follower.close()  # crash before log.save(snapshot=...)
    follower = open_node_storage(tmp_path / "b", cluster_id="c", node_id=2)
    assert follower.log.snapshot_meta() == leader.state.snapshot_meta()
    assert (follower.log.first_index(), follower.log.last_index()) == (41, 40)
    assert follower.state.get(b"k") == b"40"
    follower.close()
    leader.close()
