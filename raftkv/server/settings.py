"""A node's settings, as ``raftkv serve`` parses them: every bound validated here, once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from raftkv.core.config import RaftConfig
from raftkv.core.types import Index, NodeId
from raftkv.node.config import DriverConfig
from raftkv.transport.config import TransportConfig

TICK_MS = 10


class SettingsError(ValueError):
    """A flag or environment variable is wrong; the message names it and says how to fix it."""


def parse_address(text: str, flag: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{flag}: {text!r} is not HOST:PORT (e.g. 127.0.0.1:7001)")
    return host, int(port)


def parse_cluster(text: str) -> dict[NodeId, str]:
    """``1=127.0.0.1:7001,2=127.0.0.1:7002`` -> {1: "127.0.0.1:7001", ...}."""
    members: dict[NodeId, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        node, sep, address = part.partition("=")
        if not sep or not node.strip().isdigit() or int(node) < 1:
            raise SettingsError(
                f"--cluster: {part!r} is not ID=HOST:PORT with a positive integer id"
            )
        parse_address(address.strip(), "--cluster")
        if NodeId(int(node)) in members:
            raise SettingsError(f"--cluster: node {int(node)} is listed twice")
        members[NodeId(int(node))] = address.strip()
    if not members:
        raise SettingsError("--cluster: no members (e.g. 1=127.0.0.1:7001,2=...,3=...)")
    if len(set(members.values())) != len(members):
        raise SettingsError("--cluster: two members share an address")
    return members


def cluster_id_for(members: dict[NodeId, str]) -> str:
    """Deterministic, so every node bootstrapped from the same --cluster agrees on it."""
    canonical = ",".join(f"{n}={a}" for n, a in sorted(members.items()))
    return "raftkv-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    max_key_bytes: int = 4096
    max_value_bytes: int = 1 << 20
    default_scan_limit: int = 1000
    max_scan_limit: int = 10_000
    max_batch_ops: int = 1024
    """Operations in one KV.Batch call."""
    forward_batch_ops: int = 256
    """Operations a follower puts in one forwarded batch (<= max_batch_ops)."""
    forward_batches_in_flight: int = 4
    """Forwarded batches outstanding per leader; more operations wait for the next batch."""
    max_forward_queue: int = 65_536
    """Operations waiting to be forwarded; beyond it requests are refused (RESOURCE_EXHAUSTED)."""

    def __post_init__(self) -> None:
        for name in (
            "max_key_bytes",
            "max_value_bytes",
            "default_scan_limit",
            "max_scan_limit",
            "max_batch_ops",
            "forward_batch_ops",
            "forward_batches_in_flight",
            "max_forward_queue",
            "max_request_bytes",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be >= 1")
        if self.forward_batch_ops > self.max_batch_ops:
            raise SettingsError("forward_batch_ops must be <= max_batch_ops")
        if self.default_scan_limit > self.max_scan_limit:
            raise SettingsError("default_scan_limit must be <= max_scan_limit")

    max_request_bytes: int = (1 << 20) + (64 << 10)
    """gRPC's receive limit: a maximal value plus a maximal key and framing fits."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    node_id: NodeId
    listen: str
    cluster: dict[NodeId, str]
    data_dir: Path
    advertise: str = ""
    metrics_listen: str = ""
    heartbeat_ms: int = 50
    election_timeout_ms: int = 150
    snapshot_threshold: int = 10_000
    log_level: str = "info"
    log_format: str = "text"
    shutdown_grace_s: float = 3.0
    auto_promote_lag: int = 1000
    """The leader promotes a learner within this many entries of its log (0: never)."""
    limits: Limits = field(default_factory=Limits)
    transport: TransportConfig = field(default_factory=TransportConfig)

    def __post_init__(self) -> None:
        parse_address(self.listen, "--listen")
        if self.advertise:
            parse_address(self.advertise, "--advertise")
        if self.metrics_listen:
            parse_address(self.metrics_listen, "--metrics-listen")
        if self.node_id not in self.cluster:
            raise SettingsError(
                f"--id {self.node_id} is not in --cluster (members: {sorted(self.cluster)})"
            )
        if self.heartbeat_ms < TICK_MS or self.heartbeat_ms % TICK_MS:
            raise SettingsError(f"--heartbeat-ms must be a multiple of {TICK_MS} (>= {TICK_MS})")
        if self.election_timeout_ms <= self.heartbeat_ms or self.election_timeout_ms % TICK_MS:
            raise SettingsError(
                f"--election-timeout-ms must exceed --heartbeat-ms and be a multiple of {TICK_MS}"
            )
        if self.snapshot_threshold < 2:
            raise SettingsError("--snapshot-threshold must be >= 2")
        if self.log_format not in ("text", "json"):
            raise SettingsError("--log-format must be text or json")
        if self.auto_promote_lag < 0:
            raise SettingsError("--auto-promote-lag must be >= 0 (0 disables auto-promotion)")

    @property
    def advertised(self) -> str:
        return self.advertise or self.cluster[self.node_id]

    @property
    def cluster_id(self) -> str:
        return cluster_id_for(self.cluster)

    def raft_config(self, applied: Index) -> RaftConfig:
        return RaftConfig(
            node_id=self.node_id,
            heartbeat_ticks=self.heartbeat_ms // TICK_MS,
            election_ticks=self.election_timeout_ms // TICK_MS,
            applied=applied,
        )

    def driver_config(self) -> DriverConfig:
        return DriverConfig(
            tick_s=TICK_MS / 1000,
            snapshot_threshold=self.snapshot_threshold,
            snapshot_trailing=min(1000, self.snapshot_threshold // 2),
        )
