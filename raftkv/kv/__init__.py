"""raftkv.kv: the replicated KV state machine on the state DB.

- :mod:`~raftkv.kv.state_machine`: :class:`KVStateMachine` (apply, get, scan, sync)
- :mod:`~raftkv.kv.sessions`: client sessions (at-most-once), :class:`SessionConfig`
- :mod:`~raftkv.kv.snapshot`: snapshot streaming, :class:`SnapshotInstaller`, backup files
- :mod:`~raftkv.kv.restore`: seed a new data directory from a backup
- :mod:`~raftkv.kv.compaction`: :class:`Compactor`, when and how far to compact the log
- :mod:`~raftkv.kv.node_storage`: :func:`open_node_storage`, everything a node keeps on disk
"""

from raftkv.kv.compaction import Compactor
from raftkv.kv.errors import StateMachineError
from raftkv.kv.node_storage import NodeStorage, open_node_storage, reconcile
from raftkv.kv.restore import restore_backup
from raftkv.kv.sessions import SessionConfig
from raftkv.kv.snapshot import (
    SnapshotChunk,
    SnapshotInstaller,
    backup_to_file,
    install_stream,
    snapshot_chunks,
    verify_backup_file,
    write_backup_file,
)
from raftkv.kv.state_machine import ApplyOutcome, ApplyStatus, KVStateMachine, ScanPage

__all__ = [
    "ApplyOutcome",
    "ApplyStatus",
    "Compactor",
    "KVStateMachine",
    "NodeStorage",
    "ScanPage",
    "SessionConfig",
    "SnapshotChunk",
    "SnapshotInstaller",
    "StateMachineError",
    "backup_to_file",
    "install_stream",
    "open_node_storage",
    "reconcile",
    "restore_backup",
    "snapshot_chunks",
    "verify_backup_file",
    "write_backup_file",
]
