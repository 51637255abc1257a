"""Seed a new node's data directory from a backup file (``raftkv restore``), as etcdutl does.

Rules: the target directory must be empty of raft/state data and unbootstrapped; the state is
loaded and verified, its membership replaced by the new cluster's, swapped in atomically, the
raft log made to start at the backup's index and term, and the identity written last, so an
interrupted restore leaves a directory that is plainly not bootstrapped (restore again). The old
cluster's address book is dropped: the new cluster's addresses come from its --cluster.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from raftkv.core.membership import Membership
from raftkv.core.types import HardState, SnapshotMeta
from raftkv.kv import address_book, layout
from raftkv.kv.snapshot import load_stream, read_file_pieces
from raftkv.storage.datadir import DataDir, Identity
from raftkv.storage.errors import DataDirError
from raftkv.storage.log_store import RaftLogStore
from raftkv.storage.state_dir import create_fresh, recover_state_dir, seal, swap_in

log = logging.getLogger(__name__)


def restore_backup(
    backup: Path, data_dir: Path, *, cluster_id: str, node_id: int, membership: Membership
) -> SnapshotMeta:
    """Create ``data_dir`` for node ``node_id`` of a new cluster from ``backup``."""
    with DataDir.lock(Path(data_dir)) as dd:
        if dd.is_bootstrapped:
            raise DataDirError(
                f"data directory {dd.path} is already initialized (identity file "
                f"{dd.identity_path} exists); restore needs a new directory"
            )
        recover_state_dir(dd.state_path)
        for part in (dd.raft_path, dd.state_path):
            if part.exists():
                raise DataDirError(f"data directory {dd.path} is not empty ({part} exists)")
        db = create_fresh(dd.state_path)
        try:
            meta = load_stream(db, read_file_pieces(Path(backup)))
            raw = db.get(layout.META_KEY)
            assert raw is not None  # load_stream checked that the metadata record is there
            state_meta = replace(layout.StateMeta.decode(raw), membership=membership)
            stale = list(
                db.keys(
                    start=address_book.ADDRESS_PREFIX,
                    stop=layout.prefix_end(address_book.ADDRESS_PREFIX),
                )
            )
            with db.batch(sync=False) as batch:
                batch.put(layout.META_KEY, state_meta.encode())
                for key in stale:
                    batch.delete(key)
        except BaseException:
            db.close()
            raise
        seal(db)
        swap_in(dd.state_path)
        start = SnapshotMeta(index=meta.index, term=meta.term, membership=membership)
        raft = RaftLogStore.open(dd.raft_path, initial_membership=membership)
        try:
            raft.save(snapshot=start, hard_state=HardState(term=meta.term, commit=meta.index))
        finally:
            raft.close()
        dd.write_identity(Identity(cluster_id=cluster_id, node_id=node_id))
    log.info("restored %s into %s at index %d term %d", backup, data_dir, meta.index, meta.term)
    return start
