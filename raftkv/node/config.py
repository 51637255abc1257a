"""The driver's bounds and timing, validated in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class DriverConfig:
    tick_s: float = 0.010
    """One core tick (the core's heartbeat/election settings are in ticks)."""
    max_inbox: int = 65_536
    """Inputs waiting for the driver; peer messages beyond it are dropped (Raft retries), client
    requests are refused with Overloaded."""
    max_pending_proposals: int = 100_000
    max_pending_reads: int = 100_000
    max_inputs_per_iteration: int = 8_192
    """Inputs taken into one iteration (one fsync, one message batch, one apply batch)."""
    persist_on_loop_after_idle_s: float = 0.0005
    """Work that arrives after the driver idled this long has its log write (the fsync) run on
    the event loop, saving a lone write the two thread wake-ups of a hand-off. A busier node
    hands it to the storage thread, so requests arriving during the fsync are taken in and
    share the next one. -1: always hand off. A log write with a snapshot always goes to the
    storage thread."""
    apply_on_loop: bool = True
    """Apply committed entries on the event loop (the state machine must be safe to apply from
    that thread while its snapshot swaps run on the storage thread; KVAdapter locks for it)."""
    read_index_timeout_s: float = 0.5
    """A ReadIndex not confirmed by then is failed (retryable) rather than left to the caller's
    deadline: its request or answer was lost, or the leader was deposed."""
    snapshot_threshold: int = 10_000
    """Compact the log once this many applied entries sit in it."""
    snapshot_trailing: int = 1_000
    """Entries kept behind the applied index on compaction, for slightly slow followers."""

    def __post_init__(self) -> None:
        if not 0.0005 <= self.tick_s <= 1.0:
            raise ValueError("tick_s must be between 0.0005 and 1.0 seconds")
        for name in (
            "max_inbox",
            "max_pending_proposals",
            "max_pending_reads",
            "max_inputs_per_iteration",
            "snapshot_threshold",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not self.tick_s <= self.read_index_timeout_s <= 60:
            raise ValueError("read_index_timeout_s must be between tick_s and 60 seconds")
        if not 0 <= self.snapshot_trailing < self.snapshot_threshold:
            raise ValueError("snapshot_trailing must be >= 0 and below snapshot_threshold")
