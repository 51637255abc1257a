"""The data directory: identity checks, one process at a time, bootstrap order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from raftkv.core.membership import membership_of
from raftkv.kv import open_node_storage
from raftkv.storage import (
    DataDir,
    DataDirError,
    DataDirInUseError,
    IdentityMismatchError,
    RaftLogStore,
)

M0 = membership_of([1, 2, 3])
ROOT = Path(__file__).resolve().parents[2]


def test_bootstrap_then_reopen(tmp_path: Path) -> None:
    node = open_node_storage(tmp_path / "d", cluster_id="c1", node_id=2, initial_membership=M0)
    assert node.data_dir.identity.node_id == 2
    assert b'"format": 1' in (tmp_path / "d" / "identity").read_bytes()
    node.close()
    node = open_node_storage(tmp_path / "d", cluster_id="c1", node_id=2)
    assert node.log.snapshot_meta().membership == M0
    assert node.state.membership() == M0
    node.close()


def test_foreign_node_or_cluster_refused(tmp_path: Path) -> None:
    open_node_storage(tmp_path / "d", cluster_id="c1", node_id=2, initial_membership=M0).close()
    identity = tmp_path / "d" / "identity"
    with pytest.raises(IdentityMismatchError) as err:
        open_node_storage(tmp_path / "d", cluster_id="c1", node_id=3, initial_membership=M0)
    assert str(identity) in str(err.value) and "node 2, not node 3" in str(err.value)
    with pytest.raises(IdentityMismatchError) as err:
        open_node_storage(tmp_path / "d", cluster_id="other", node_id=2)
    assert str(identity) in str(err.value) and "'c1', not cluster 'other'" in str(err.value)
    # The refusal released the lock: the right node still opens it.
    open_node_storage(tmp_path / "d", cluster_id="c1", node_id=2).close()


def test_malformed_identity_refused(tmp_path: Path) -> None:
    open_node_storage(tmp_path / "d", cluster_id="c1", node_id=2, initial_membership=M0).close()
    (tmp_path / "d" / "identity").write_text("{not json")
    with pytest.raises(DataDirError, match=r"identity file .* is malformed"):
        open_node_storage(tmp_path / "d", cluster_id="c1", node_id=2)
    (tmp_path / "d" / "identity").write_text('{"format": 9, "cluster_id": "c1", "node_id": 2}')
    with pytest.raises(DataDirError, match="unknown format version 9"):
        open_node_storage(tmp_path / "d", cluster_id="c1", node_id=2)


def test_unbootstrapped_directory_needs_membership(tmp_path: Path) -> None:
    with pytest.raises(DataDirError, match="not bootstrapped"):
        open_node_storage(tmp_path / "d", cluster_id="c1", node_id=1)


def test_missing_raft_db_refused(tmp_path: Path) -> None:
    open_node_storage(tmp_path / "d", cluster_id="c1", node_id=1, initial_membership=M0).close()
    import shutil

    shutil.rmtree(tmp_path / "d" / "raft")
    with pytest.raises(DataDirError, match=r"raft log .* does not exist"):
        open_node_storage(tmp_path / "d", cluster_id="c1", node_id=1)


def test_second_process_refused(tmp_path: Path) -> None:
    node = open_node_storage(tmp_path / "d", cluster_id="c1", node_id=1, initial_membership=M0)
    code = (
        "import sys\n"
        "from raftkv.kv import open_node_storage\n"
        "from raftkv.storage import DataDirInUseError\n"
        "try:\n"
        f"    open_node_storage({str(tmp_path / 'd')!r}, cluster_id='c1', node_id=1)\n"
        "except DataDirInUseError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert f"data directory {tmp_path / 'd'} is already in use by another process" in proc.stdout
    node.close()
    # In-process too, and for a raw LevelDB that is held.
    node = open_node_storage(tmp_path / "d", cluster_id="c1", node_id=1)
    with pytest.raises(DataDirInUseError):
        DataDir.lock(tmp_path / "d")
    with pytest.raises(DataDirInUseError, match="already in use by another process"):
        RaftLogStore.open(tmp_path / "d" / "raft")
    node.close()
