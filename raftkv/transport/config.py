"""Transport bounds and timeouts, validated in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportConfig:
    rpc_timeout_s: float = 2.0
    """Deadline of each peer stream write (and of unary peer RPCs)."""
    max_outbox: int = 4096
    """Messages queued per peer; beyond it new messages are dropped (Raft resends)."""
    max_message_bytes: int = 64 << 20
    keepalive_time_ms: int = 10_000
    keepalive_timeout_ms: int = 5_000
    reconnect_backoff_ms: int = 100
    """Short, so a restarted peer is reached again within a heartbeat or two."""
    max_reconnect_backoff_ms: int = 1_000
    snapshot_chunk_bytes: int = 1 << 20
    snapshot_timeout_s: float = 600.0
    max_snapshot_bytes: int = 64 << 30
    """A snapshot stream longer than this is refused (a runaway or hostile sender)."""

    def __post_init__(self) -> None:
        if not 0 < self.rpc_timeout_s <= 60:
            raise ValueError("rpc_timeout_s must be in (0, 60]")
        if not 0 < self.snapshot_timeout_s <= 86_400:
            raise ValueError("snapshot_timeout_s must be in (0, 86400]")
        for name in (
            "max_outbox",
            "max_message_bytes",
            "keepalive_time_ms",
            "keepalive_timeout_ms",
            "reconnect_backoff_ms",
            "max_reconnect_backoff_ms",
            "snapshot_chunk_bytes",
            "max_snapshot_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.snapshot_chunk_bytes > self.max_message_bytes // 2:
            raise ValueError("snapshot_chunk_bytes must be at most half of max_message_bytes")

    def channel_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.keepalive_time_ms", self.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", self.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.initial_reconnect_backoff_ms", self.reconnect_backoff_ms),
            ("grpc.min_reconnect_backoff_ms", self.reconnect_backoff_ms),
            ("grpc.max_reconnect_backoff_ms", self.max_reconnect_backoff_ms),
        ]
