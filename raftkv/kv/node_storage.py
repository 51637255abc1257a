"""Open (or bootstrap) everything a node keeps on disk: data dir, raft log, state machine.

Rules:
- The directory is locked and its identity checked before any database is opened.
- Bootstrap creates raft/ and state/ first and writes the identity last: a directory without an
  identity was never fully created and may be bootstrapped again.
- Start-up reconciles the two databases: an InstallSnapshot swaps the state in before the log is
  reset, so a crash between the two leaves a state ahead of the log; the log is then reset to
  the state's snapshot. A state behind the log start (entries missing) is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from raftkv.core.membership import Membership
from raftkv.kv.compaction import Compactor
from raftkv.kv.sessions import SessionConfig
from raftkv.kv.state_machine import KVStateMachine
from raftkv.storage.datadir import DataDir, Identity
from raftkv.storage.errors import CorruptLogError, DataDirError
from raftkv.storage.log_store import DEFAULT_TAIL_ENTRIES, RaftLogStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class NodeStorage:
    data_dir: DataDir
    log: RaftLogStore
    state: KVStateMachine

    def compactor(
        self, *, snapshot_threshold: int = 10_000, trailing_entries: int = 1_000
    ) -> Compactor:
        return Compactor(
            self.log,
            self.state,
            snapshot_threshold=snapshot_threshold,
            trailing_entries=trailing_entries,
        )

    def close(self) -> None:
        self.state.close()
        self.log.close()
        self.data_dir.close()


def open_node_storage(
    path: Path,
    *,
    cluster_id: str,
    node_id: int,
    initial_membership: Membership | None = None,
    sessions: SessionConfig | None = None,
    tail_entries: int = DEFAULT_TAIL_ENTRIES,
) -> NodeStorage:
    """Open the node's data directory; bootstrap it with ``initial_membership`` if it has no
    identity yet (without one, an unbootstrapped directory is an error)."""
    data_dir = DataDir.lock(Path(path))
    raft: RaftLogStore | None = None
    try:
        if data_dir.is_bootstrapped:
            data_dir.check_identity(cluster_id=cluster_id, node_id=node_id)
            raft = RaftLogStore.open(data_dir.raft_path, tail_entries=tail_entries)
            state = KVStateMachine.open(data_dir.state_path, sessions=sessions)
        else:
            if initial_membership is None:
                raise DataDirError(
                    f"data directory {data_dir.path} is not bootstrapped (no identity file "
                    f"{data_dir.identity_path}); give the initial membership to create it"
                )
            raft = RaftLogStore.open(
                data_dir.raft_path, initial_membership=initial_membership, tail_entries=tail_entries
            )
            state = KVStateMachine.open(
                data_dir.state_path, initial_membership=initial_membership, sessions=sessions
            )
            data_dir.write_identity(Identity(cluster_id=cluster_id, node_id=node_id))
        try:
            reconcile(raft, state)
        except BaseException:
            state.close()
            raise
    except BaseException:
        if raft is not None:
            raft.close()
        data_dir.close()
        raise
    return NodeStorage(data_dir=data_dir, log=raft, state=state)


def reconcile(raft: RaftLogStore, state: KVStateMachine) -> None:
    """Make the log consistent with a state that may be ahead of it (see the module rules)."""
    applied = state.applied_index()
    start = raft.snapshot_meta().index
    if applied < start:
        raise CorruptLogError(
            f"raft log {raft.path} starts after {start} but the state DB {state.path} has applied "
            f"only {applied}: entries {applied + 1}..{start} are missing"
        )
    if applied <= raft.last_index() and raft.term(applied) == state.applied_term():
        return
    log.warning(
        "state DB is at %d (term %d) beyond the raft log (last %d): resetting the log "
        "to start there",
        applied,
        state.applied_term(),
        raft.last_index(),
    )
    raft.save(snapshot=state.snapshot_meta())
