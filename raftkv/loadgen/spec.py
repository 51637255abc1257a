"""What load to offer: the workload, its size and its bounds, validated once here.

Rules: every run is bounded both in time (``duration_s``) and in operations (``max_ops``); every
bound has a ceiling so a typo cannot start an hour-long or unbounded run by accident.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MAX_CLIENTS = 4096
MAX_DURATION_S = 3600.0
MAX_OPS = 100_000_000
MAX_VALUE_BYTES = 1 << 20
MAX_KEY_SPACE = 100_000_000


class Workload(enum.StrEnum):
    """Which operations the workers issue."""

    WRITE = "write"  # puts
    READ = "read"  # linearizable gets
    STALE = "stale"  # stale gets (served by any node from its own state)
    MIXED = "mixed"  # linearizable gets with probability read_fraction, else puts


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadSpec:
    """One load run. Operations count toward results only after ``warmup_s``."""

    workload: Workload = Workload.WRITE
    clients: int = 16
    duration_s: float = 10.0
    max_ops: int = 10_000_000
    warmup_s: float = 1.0
    value_size_bytes: int = 256
    key_space: int = 10_000
    read_fraction: float = 0.9
    sequential_keys: bool = False
    """Each operation takes the next key (0, 1, 2, ... mod key_space) instead of a random one."""
    prefill: bool = True
    """Before a read or mixed run, write every key of ``key_space`` once (bounded, not timed)."""
    key_prefix: str = "bench/"
    op_timeout_s: float = 5.0
    seed: int = 1
    record_completions: bool = False
    """Keep the time of every successful write (for failover gap measurement)."""

    def __post_init__(self) -> None:
        if not 1 <= self.clients <= MAX_CLIENTS:
            raise ValueError(f"clients must be in 1..{MAX_CLIENTS}")
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise ValueError(f"duration_s must be in (0, {MAX_DURATION_S:g}]")
        if not 1 <= self.max_ops <= MAX_OPS:
            raise ValueError(f"max_ops must be in 1..{MAX_OPS}")
        if not 0 <= self.warmup_s < self.duration_s:
            raise ValueError("warmup_s must be >= 0 and shorter than duration_s")
        if not 0 <= self.value_size_bytes <= MAX_VALUE_BYTES:
            raise ValueError(f"value_size_bytes must be in 0..{MAX_VALUE_BYTES}")
        if not 1 <= self.key_space <= MAX_KEY_SPACE:
            raise ValueError(f"key_space must be in 1..{MAX_KEY_SPACE}")
        if not 0.0 <= self.read_fraction <= 1.0:
            raise ValueError("read_fraction must be in [0, 1]")
        if not 0 < self.op_timeout_s <= 600:
            raise ValueError("op_timeout_s must be in (0, 600]")

    @property
    def reads(self) -> bool:
        """Whether this workload reads (and so wants its keys written first)."""
        return self.workload is not Workload.WRITE

    def describe(self) -> str:
        """One stable line naming the run, e.g. ``write c=64 256B keys=10000 10s``."""
        mix = f" {self.read_fraction:.0%} reads" if self.workload is Workload.MIXED else ""
        return (
            f"{self.workload.value}{mix} c={self.clients} {self.value_size_bytes}B "
            f"keys={self.key_space} {self.duration_s:g}s"
        )
