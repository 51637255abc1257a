"""The data directory: layout, identity record and the process lock.

Layout::

    DATA_DIR/
      LOCK        flock()ed while a process has the directory open
      identity    JSON {"format": 1, "cluster_id": ..., "node_id": ...}, written at bootstrap
      raft/       LevelDB: the raft log (raftkv.storage.log_store)
      raft.journal  its write-ahead journal (raftkv.storage.journal)
      state/      LevelDB: the state machine (raftkv.kv)

Rules:
- A node never starts on another node's or another cluster's directory: :meth:`DataDir.open`
  compares the identity record and raises :class:`IdentityMismatchError` naming the file.
- One process at a time: the LOCK file is flock()ed (non-blocking) before anything else is read;
  a second process gets "data directory X is already in use by another process".
- Bootstrap writes the identity last (atomically), so a directory with an identity file is fully
  created; one without it is treated as never bootstrapped.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from raftkv.storage.errors import DataDirError, DataDirInUseError, IdentityMismatchError
from raftkv.storage.fsutil import fsync_dir, write_atomically

log = logging.getLogger(__name__)

IDENTITY_FORMAT = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    cluster_id: str
    node_id: int

    def encode(self) -> bytes:
        record = {"format": IDENTITY_FORMAT, "cluster_id": self.cluster_id, "node_id": self.node_id}
        return (json.dumps(record, sort_keys=True) + "\n").encode()

    @classmethod
    def decode(cls, path: Path, data: bytes) -> Identity:
        try:
            record = json.loads(data)
            if not isinstance(record, dict):
                raise TypeError("not a JSON object")
            version = record["format"]
            cluster_id = record["cluster_id"]
            node_id = record["node_id"]
        except (ValueError, TypeError, KeyError) as exc:
            raise DataDirError(f"identity file {path} is malformed: {exc}") from None
        if version != IDENTITY_FORMAT:
            raise DataDirError(f"identity file {path} has unknown format version {version!r}")
        if not isinstance(cluster_id, str) or not isinstance(node_id, int) or node_id <= 0:
            raise DataDirError(f"identity file {path} has an invalid cluster id or node id")
        return cls(cluster_id=cluster_id, node_id=node_id)


class DataDir:
    """An open, locked data directory: :meth:`lock` or :meth:`open` it, :meth:`close` to unlock."""

    def __init__(self, path: Path, lock_fd: int, identity: Identity | None) -> None:
        self.path = path
        self._lock_fd: int | None = lock_fd
        self._identity = identity

    # -- paths ------------------------------------------------------------------------------------
    @property
    def raft_path(self) -> Path:
        return self.path / "raft"

    @property
    def state_path(self) -> Path:
        return self.path / "state"

    @property
    def identity_path(self) -> Path:
        return self.path / "identity"

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            raise DataDirError(f"data directory {self.path} has no identity (not bootstrapped)")
        return self._identity

    @property
    def is_bootstrapped(self) -> bool:
        return self._identity is not None

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def lock(cls, path: Path) -> DataDir:
        """Create ``path`` if needed, lock it, and read its identity (None if not bootstrapped)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirInUseError(
                f"data directory {path} is already in use by another process"
            ) from None
        identity_path = path / "identity"
        try:
            identity = (
                Identity.decode(identity_path, identity_path.read_bytes())
                if identity_path.exists()
                else None
            )
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, identity)

    @classmethod
    def open(cls, path: Path, *, cluster_id: str | None, node_id: int) -> DataDir:
        """Open a bootstrapped directory, refusing one of another node or cluster.

        ``cluster_id=None`` skips the cluster check (e.g. a tool that knows only the node id).
        """
        data_dir = cls.lock(path)
        try:
            data_dir.check_identity(cluster_id=cluster_id, node_id=node_id)
        except BaseException:
            data_dir.close()
            raise
        return data_dir

    def check_identity(self, *, cluster_id: str | None, node_id: int) -> None:
        found = self.identity
        if found.node_id != node_id:
            raise IdentityMismatchError(
                f"identity file {self.identity_path} says this data directory belongs to node "
                f"{found.node_id}, not node {node_id}"
            )
        if cluster_id is not None and found.cluster_id != cluster_id:
            raise IdentityMismatchError(
                f"identity file {self.identity_path} says this data directory belongs to cluster "
                f"{found.cluster_id!r}, not cluster {cluster_id!r}"
            )

    def write_identity(self, identity: Identity) -> None:
        """Record the identity (the last step of bootstrap); refuses to overwrite another one."""
        if self._identity is not None:
            self.check_identity(cluster_id=identity.cluster_id, node_id=identity.node_id)
            return
        write_atomically(self.identity_path, identity.encode())
        fsync_dir(self.path)
        self._identity = identity
        log.info(
            "bootstrapped data directory %s for node %d of cluster %r",
            self.path,
            identity.node_id,
            identity.cluster_id,
        )

    def close(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> DataDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
