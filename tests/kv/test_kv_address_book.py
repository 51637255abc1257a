"""The replicated address book: applied with commands, survives reopen, travels in snapshots."""

from __future__ import annotations

from pathlib import Path

from kvhelpers import M0, Log, put

from raftkv.kv import (
    KVStateMachine,
    backup_to_file,
    open_node_storage,
    restore_backup,
    snapshot_chunks,
)
from raftkv.kv.snapshot import install_stream
from raftkv.pb import kv_pb2


def set_address(node_id: int, address: str) -> bytes:
    op = kv_pb2.SetMemberAddressOp(node_id=node_id, address=address)
    return kv_pb2.Command(member_address=op).SerializeToString()


def test_addresses_apply_persist_and_travel_in_snapshots(tmp_path: Path) -> None:
    sm = KVStateMachine.open(tmp_path / "a", initial_membership=M0)
    log = Log()
    assert sm.addresses() == {}
    version = sm.addresses_version
    outcomes = sm.apply(
        log.entries(set_address(4, "127.0.0.1:7004"), put(b"k", b"v"), set_address(5, "h:5"))
    )
    assert outcomes[0].result is not None and outcomes[0].result.ok
    assert sm.addresses() == {4: "127.0.0.1:7004", 5: "h:5"}
    assert sm.addresses_version > version
    sm.apply(log.entries(set_address(4, "127.0.0.1:8004")))
    assert sm.addresses()[4] == "127.0.0.1:8004"
    assert sm.get(b"k") == b"v"
    assert sm.scan(prefix=b"", start=b"", end=b"", limit=10).items == [(b"k", b"v")]
    sm.sync()
    sm.close()

    reopened = KVStateMachine.open(tmp_path / "a")
    assert reopened.addresses() == {4: "127.0.0.1:8004", 5: "h:5"}
    other = KVStateMachine.open(tmp_path / "b", initial_membership=M0)
    before = other.addresses_version
    install_stream(other, (c.data for c in snapshot_chunks(reopened, 1 << 16)))
    assert other.addresses() == {4: "127.0.0.1:8004", 5: "h:5"}
    assert other.addresses_version > before
    reopened.close()
    other.close()


def test_restore_drops_the_old_clusters_addresses(tmp_path: Path) -> None:
    sm = KVStateMachine.open(tmp_path / "a", initial_membership=M0)
    sm.apply(Log().entries(set_address(4, "old:4"), put(b"k", b"v")))
    backup_to_file(sm, tmp_path / "backup")
    sm.close()
    restore_backup(tmp_path / "backup", tmp_path / "new", cluster_id="c", node_id=1, membership=M0)
    storage = open_node_storage(tmp_path / "new", cluster_id="c", node_id=1)
    assert storage.state.addresses() == {}
    assert storage.state.get(b"k") == b"v"
    storage.close()
