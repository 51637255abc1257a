"""When and how far to compact the raft log (DESIGN "Snapshots and compaction").

Rules: compact when the log holds more than ``snapshot_threshold`` entries beyond its start;
first sync the state DB, then drop entries up to the durably applied index minus
``trailing_entries`` (kept for slow followers). Never past a durably applied index: the log store
refuses that too. Between compactions the log holds at most threshold + the entries of one write
beyond it; right after one, trailing + (last - applied).
"""

from __future__ import annotations

import logging

from raftkv.core.types import Index
from raftkv.kv.state_machine import KVStateMachine
from raftkv.storage.log_store import RaftLogStore

log = logging.getLogger(__name__)


class Compactor:
    def __init__(
        self,
        raft: RaftLogStore,
        state: KVStateMachine,
        *,
        snapshot_threshold: int = 10_000,
        trailing_entries: int = 1_000,
    ) -> None:
        if snapshot_threshold < 1 or trailing_entries < 0:
            raise ValueError("snapshot_threshold must be >= 1 and trailing_entries >= 0")
        self._raft = raft
        self._state = state
        self.snapshot_threshold = snapshot_threshold
        self.trailing_entries = trailing_entries

    def should_compact(self) -> bool:
        start = self._raft.snapshot_meta().index
        if self._raft.last_index() - start <= self.snapshot_threshold:
            return False
        return self._target(self._state.applied_index()) > start

    def maybe_compact(self) -> Index | None:
        """Compact if due; returns the new log start index, or None if nothing was done."""
        if not self.should_compact():
            return None
        durable = self._state.sync()
        target = self._target(durable)
        if target <= self._raft.snapshot_meta().index:
            return None
        self._raft.compact(target, durably_applied=durable)
        log.info("compacted the raft log through %d (durably applied %d)", target, durable)
        return target

    def _target(self, applied: int) -> Index:
        return Index(min(applied, self._raft.last_index()) - self.trailing_entries)
