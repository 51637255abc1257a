"""raftkv.storage: LevelDB persistence (the only package that imports plyvel).

- :mod:`~raftkv.storage.datadir`: data directory layout, identity record, process lock
- :mod:`~raftkv.storage.log_store`: :class:`RaftLogStore`, the core's LogStorage on LevelDB
- :mod:`~raftkv.storage.codec`: raft DB key layout and record codecs
- :mod:`~raftkv.storage.leveldb`: the typed plyvel wrapper used by every LevelDB user
- :mod:`~raftkv.storage.state_dir`: atomic swap of the state directory (snapshot installs)
- :mod:`~raftkv.storage.errors`: the :class:`StorageError` hierarchy
"""

from raftkv.storage.datadir import DataDir, Identity
from raftkv.storage.errors import (
    CompactionRefusedError,
    CorruptLogError,
    DataDirError,
    DataDirInUseError,
    IdentityMismatchError,
    SnapshotFormatError,
    StorageError,
)
from raftkv.storage.log_store import RaftLogStore

__all__ = [
    "CompactionRefusedError",
    "CorruptLogError",
    "DataDir",
    "DataDirError",
    "DataDirInUseError",
    "Identity",
    "IdentityMismatchError",
    "RaftLogStore",
    "SnapshotFormatError",
    "StorageError",
]
