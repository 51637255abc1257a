"""Errors raised by :mod:`raftkv.kv` (the storage layer's hierarchy, extended)."""

from __future__ import annotations

from raftkv.storage.errors import SnapshotFormatError, StorageError


class StateMachineError(StorageError):
    """The state DB is missing, malformed, or was asked to apply out of order."""


__all__ = ["SnapshotFormatError", "StateMachineError", "StorageError"]
