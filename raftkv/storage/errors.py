"""Errors raised by :mod:`raftkv.storage`: one hierarchy; messages name the file and the problem.

Every class derives from the core's ``StorageError`` so a caller that guards core reads also
catches ours. Messages are written for an operator: they name the data directory (or file), the
index where it applies, and what is wrong, because these errors end a node's start-up.
"""

from __future__ import annotations

from raftkv.core.storage import StorageError as CoreStorageError


class StorageError(CoreStorageError):
    """Base class of every error raised by :mod:`raftkv.storage`."""


class DataDirError(StorageError):
    """The data directory is missing pieces, malformed, or cannot be opened."""


class DataDirInUseError(DataDirError):
    """Another process (or another open handle in this one) holds the data directory."""


class IdentityMismatchError(DataDirError):
    """The data directory belongs to another node or another cluster."""


class CorruptDatabaseError(DataDirError):
    """LevelDB found a damaged block or record: one of its own checksums failed on a read."""


class CorruptLogError(StorageError):
    """A stored log record failed its checksum, is out of place, or the log has a gap."""


class CompactionRefusedError(StorageError):
    """Compaction was asked to drop entries that are not durably applied (or do not exist)."""


class SnapshotFormatError(StorageError):
    """A snapshot stream or backup file is truncated, malformed or fails its checksum."""
