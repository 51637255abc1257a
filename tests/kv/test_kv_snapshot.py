"""Snapshots of the state DB: streaming, installing, crash at every install step, backup/restore."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kvhelpers import M0, Log, put

from raftkv.core.membership import membership_of
from raftkv.core.types import Entry, EntryKind, Index, Term
from raftkv.kv import (
    KVStateMachine,
    SnapshotChunk,
    SnapshotInstaller,
    backup_to_file,
    open_node_storage,
    restore_backup,
    snapshot_chunks,
    verify_backup_file,
)
from raftkv.kv.errors import SnapshotFormatError, StateMachineError
from raftkv.kv.snapshot import install_stream, read_file_pieces
from raftkv.storage import DataDirError


def fill(
    sm: KVStateMachine, n: int, *, prefix: bytes = b"key", batch: int = 5000, term: int = 2
) -> None:
    log = Log(start=sm.applied_index(), term=term)
    for lo in range(0, n, batch):
        sm.apply(
            [
                log.entry(
                    put(b"%s%08d" % (prefix, i), b"value-%d" % i, client=1 + i % 7, seq=1 + i // 7)
                )
                for i in range(lo, min(n, lo + batch))
            ]
        )


def contents(sm: KVStateMachine) -> list[tuple[bytes, bytes]]:
    return sm.scan(limit=10**9).items


@pytest.fixture
def leader(tmp_path: Path) -> Iterator[KVStateMachine]:
    sm = KVStateMachine.open(tmp_path / "leader" / "state", initial_membership=M0)
    fill(sm, 300)
    yield sm
    sm.close()


def test_install_100k_keys_between_two_storages(tmp_path: Path) -> None:
    leader = KVStateMachine.open(tmp_path / "a" / "state", initial_membership=M0)
    fill(leader, 100_000)
    follower = KVStateMachine.open(tmp_path / "b" / "state", initial_membership=M0)
    fill(follower, 10, prefix=b"stale")
    chunks = snapshot_chunks(leader, chunk_bytes=256 * 1024)
    first = next(chunks)
    # The snapshot is point-in-time: writes after it started are not in it.
    fill(leader, 5, prefix=b"late")
    installer = SnapshotInstaller(follower)
    sizes = []
    for chunk in [first, *chunks]:
        sizes.append(len(chunk.data))
        installer.add(chunk)
    meta = installer.commit()
    assert max(sizes) <= 256 * 1024
    assert meta.index == 100_000 and meta.term == 2 and meta.membership == M0
    assert follower.applied_index() == 100_000
    assert follower.snapshot_meta() == meta
    items = contents(follower)
    assert len(items) == 100_000
    assert items == [kv for kv in contents(leader) if not kv[0].startswith(b"late")]
    assert follower.session_count() == 7
    # The follower goes on applying after the snapshot, sessions included: client 1's last
    # command (i = 99995) retried is a duplicate; its first is too old to tell.
    retry = put(b"key00099995", b"value-99995", client=1, seq=1 + 99995 // 7)
    out = follower.apply(
        [
            Entry(term=Term(2), index=Index(100_001), data=retry),
            Entry(
                term=Term(2),
                index=Index(100_002),
                data=put(b"key00000000", b"value-0", client=1, seq=1),
            ),
        ]
    )
    assert [o.status.value for o in out] == ["duplicate", "session-expired"]
    leader.close()
    follower.close()


def test_chunks_are_bounded_and_checksummed(leader: KVStateMachine) -> None:
    chunks = list(snapshot_chunks(leader, chunk_bytes=100))
    assert all(len(c.data) <= 100 for c in chunks)
    assert [c.done for c in chunks] == [False] * (len(chunks) - 1) + [True]
    offsets = [c.offset for c in chunks]
    assert offsets == sorted(offsets) and offsets[0] == 0
    assert chunks[-1].checksum != 0


@pytest.mark.parametrize("damage", ["flip", "truncate", "wrong-checksum", "offset"])
def test_damaged_stream_refused_and_old_state_kept(
    tmp_path: Path, leader: KVStateMachine, damage: str
) -> None:
    follower = KVStateMachine.open(tmp_path / "f" / "state", initial_membership=M0)
    fill(follower, 3, prefix=b"old")
    before = contents(follower)
    chunks = list(snapshot_chunks(leader, chunk_bytes=512))
    if damage == "flip":
        c = chunks[1]
        chunks[1] = SnapshotChunk(
            meta=c.meta,
            offset=c.offset,
            done=c.done,
            data=c.data[:10] + bytes([c.data[10] ^ 1]) + c.data[11:],
        )
    elif damage == "truncate":
        chunks = chunks[:-1]
    elif damage == "wrong-checksum":
        c = chunks[-1]
        chunks[-1] = SnapshotChunk(
            meta=c.meta, offset=c.offset, data=c.data, done=True, checksum=c.checksum ^ 1
        )
    else:
        chunks = [chunks[0], *chunks[2:]]
    installer = SnapshotInstaller(follower)
    with pytest.raises(SnapshotFormatError):
        for chunk in chunks:
            installer.add(chunk)
        installer.commit()
    installer.abort()
    assert contents(follower) == before
    follower.close()
    follower = KVStateMachine.open(tmp_path / "f" / "state")
    assert contents(follower) == before
    assert not (tmp_path / "f" / "state.new").exists()
    follower.close()


class Crash(Exception):
    pass


@pytest.mark.parametrize("step", SnapshotInstaller.STEPS)
def test_crash_at_every_install_step_leaves_old_or_new(
    tmp_path: Path, leader: KVStateMachine, step: str
) -> None:
    path = tmp_path / "f" / "state"
    follower = KVStateMachine.open(path, initial_membership=M0)
    fill(follower, 20, prefix=b"old")
    follower.sync()
    old, new = contents(follower), contents(leader)

    def fault(at: str) -> None:
        if at == step:
            raise Crash(at)

    installer = SnapshotInstaller(follower, fault=fault)
    for chunk in snapshot_chunks(leader, chunk_bytes=1024):
        installer.add(chunk)
    with pytest.raises(Crash):
        installer.commit()
    # The process "dies" here: drop every handle without cleanup, then start again.
    follower.close()
    installer._db.close()
    reopened = KVStateMachine.open(path)
    found = contents(reopened)
    assert found in (old, new)
    # Once the old directory is moved aside, the new state is the only complete one.
    expect_new = SnapshotInstaller.STEPS.index(step) >= SnapshotInstaller.STEPS.index("moved-old")
    assert found == (new if expect_new else old)
    assert reopened.applied_index() == (leader.applied_index() if expect_new else 20)
    assert sorted(os.listdir(path.parent)) == ["state"]
    reopened.close()


def test_backup_and_restore_into_a_new_cluster(tmp_path: Path, leader: KVStateMachine) -> None:
    backup = tmp_path / "backup.snap"
    meta = backup_to_file(leader, backup)
    assert meta == leader.snapshot_meta()
    assert verify_backup_file(backup) == meta
    new_members = membership_of([1, 2])
    start = restore_backup(
        backup, tmp_path / "n1", cluster_id="new", node_id=1, membership=new_members
    )
    assert (start.index, start.term, start.membership) == (meta.index, meta.term, new_members)
    node = open_node_storage(tmp_path / "n1", cluster_id="new", node_id=1)
    assert contents(node.state) == contents(leader)
    assert node.state.membership() == new_members
    assert node.log.snapshot_meta() == start
    assert (node.log.first_index(), node.log.last_index()) == (meta.index + 1, meta.index)
    assert node.log.hard_state().commit == meta.index
    node.close()
    with pytest.raises(DataDirError, match="already initialized"):
        restore_backup(backup, tmp_path / "n1", cluster_id="new", node_id=1, membership=new_members)
    # A damaged backup is refused and leaves no bootstrapped directory behind.
    damaged = tmp_path / "damaged.snap"
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(SnapshotFormatError):
        verify_backup_file(damaged)
    with pytest.raises(SnapshotFormatError):
        restore_backup(
            damaged, tmp_path / "n2", cluster_id="new", node_id=2, membership=new_members
        )
    assert not (tmp_path / "n2" / "identity").exists()


def test_install_stream_from_backup_file(tmp_path: Path, leader: KVStateMachine) -> None:
    backup = tmp_path / "b.snap"
    backup_to_file(leader, backup)
    follower = KVStateMachine.open(tmp_path / "f" / "state", initial_membership=M0)
    follower.apply([Entry(term=Term(1), index=Index(1), kind=EntryKind.NORMAL, data=b"")])
    meta = install_stream(follower, read_file_pieces(backup, 7))
    assert meta == leader.snapshot_meta()
    assert contents(follower) == contents(leader)
    follower.close()


def test_older_snapshot_refused(tmp_path: Path, leader: KVStateMachine) -> None:
    follower = KVStateMachine.open(tmp_path / "f" / "state", initial_membership=M0)
    fill(follower, 400, prefix=b"newer")
    before = contents(follower)
    installer = SnapshotInstaller(follower)
    for chunk in snapshot_chunks(leader):
        installer.add(chunk)
    with pytest.raises(StateMachineError, match="behind the applied index 400"):
        installer.commit()
    installer.abort()
    assert contents(follower) == before and follower.applied_index() == 400
    follower.close()
