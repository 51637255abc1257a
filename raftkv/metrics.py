"""Every Prometheus metric raftkv exports, defined once, on a registry the caller injects.

Rules: names follow Prometheus conventions (``raftkv_`` prefix, base units, ``_total`` counters,
``_seconds`` durations); labels are bounded (method, code, role, peer id, reason), never keys or
values. Metrics observe and never steer: hooks are cheap and never raise. :class:`Metrics`
implements the observer protocols of the driver, the peer client and the Raft servicer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

# This module imports nothing of raftkv (layering): it sees the core through a small protocol
# and names roles and replication states by their stable string values.
ROLES = ("follower", "pre-candidate", "candidate", "leader")
REPLICATION_STATES = ("probe", "replicate", "snapshot")


class NodeView(Protocol):
    """What metrics read from a Raft core (raftkv.core.raft.RaftNode satisfies it)."""

    @property
    def term(self) -> int: ...

    @property
    def leader_id(self) -> int: ...

    @property
    def role(self) -> Any: ...

    @property
    def commit_index(self) -> int: ...

    @property
    def applied_index(self) -> int: ...

    @property
    def last_index(self) -> int: ...

    def status(self) -> Any: ...


_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_COUNT = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    def __init__(self, registry: CollectorRegistry, *, tick_s: float = 0.01) -> None:
        r = registry
        self._tick_s = tick_s
        self.term = Gauge("raftkv_term", "Current Raft term.", registry=r)
        self.role = Gauge("raftkv_role", "1 for this node's current role.", ["role"], registry=r)
        self.leader = Gauge("raftkv_leader_id", "Leader id this node knows (0: none).", registry=r)
        self.is_leader = Gauge("raftkv_is_leader", "1 if this node leads.", registry=r)
        self.commit_index = Gauge("raftkv_commit_index", "Commit index.", registry=r)
        self.applied_index = Gauge("raftkv_applied_index", "Applied index.", registry=r)
        self.last_index = Gauge("raftkv_last_log_index", "Last log index.", registry=r)
        self.first_index = Gauge("raftkv_log_start_index", "First index in the log.", registry=r)
        self.voters = Gauge("raftkv_members", "Members by kind.", ["kind"], registry=r)
        self.leader_changes = Counter(
            "raftkv_leader_changes_total", "Leader changes this node saw.", registry=r
        )
        self.proposals = Counter(
            "raftkv_proposals_total", "Proposals by result.", ["result"], registry=r
        )
        self.client_requests = Counter(
            "raftkv_client_requests_total",
            "Client requests by method and gRPC code.",
            ["method", "code"],
            registry=r,
        )
        self.client_latency = Histogram(
            "raftkv_client_request_duration_seconds",
            "Client request latency by method.",
            ["method"],
            buckets=_LATENCY,
            registry=r,
        )
        self.forwarded = Counter(
            "raftkv_forwarded_requests_total",
            "Requests forwarded to the leader.",
            ["method"],
            registry=r,
        )
        self.fsync = Histogram(
            "raftkv_fsync_duration_seconds",
            "Synced raft-log WriteBatch latency.",
            buckets=_LATENCY,
            registry=r,
        )
        self.entries_per_persist = Histogram(
            "raftkv_persist_entries",
            "Entries per synced raft-log write.",
            buckets=_COUNT,
            registry=r,
        )
        self.applied_entries = Counter(
            "raftkv_applied_entries_total", "Entries applied to the state machine.", registry=r
        )
        self.compactions = Counter("raftkv_compactions_total", "Log compactions.", registry=r)
        self.peer_rpc = Histogram(
            "raftkv_peer_rpc_duration_seconds",
            "Peer RPC latency by method and peer.",
            ["method", "peer"],
            buckets=_LATENCY,
            registry=r,
        )
        self.peer_rpc_failures = Counter(
            "raftkv_peer_rpc_failures_total", "Failed peer RPCs.", ["method", "peer"], registry=r
        )
        self.outbox_drops = Counter(
            "raftkv_peer_outbox_dropped_total",
            "Messages dropped: peer outbox full.",
            ["peer"],
            registry=r,
        )
        self.peer_received = Counter(
            "raftkv_peer_messages_received_total",
            "Peer messages accepted.",
            ["method"],
            registry=r,
        )
        self.rejected = Counter(
            "raftkv_peer_messages_rejected_total",
            "Peer messages refused.",
            ["reason"],
            registry=r,
        )
        self.requests_refused = Counter(
            "raftkv_requests_refused_total",
            "Calls refused by authentication or authorization (tokens, peer certificates).",
            ["code"],
            registry=r,
        )
        self.snapshots_sent = Counter(
            "raftkv_snapshots_sent_total", "Snapshots streamed.", ["result"], registry=r
        )
        self.snapshots_received = Counter(
            "raftkv_snapshots_received_total", "Snapshots received.", ["result"], registry=r
        )
        self.follower_match = Gauge(
            "raftkv_follower_match_index",
            "Leader only: follower match index.",
            ["peer"],
            registry=r,
        )
        self.follower_lag = Gauge(
            "raftkv_follower_lag_entries", "Leader only: entries behind.", ["peer"], registry=r
        )
        self.follower_inflight = Gauge(
            "raftkv_follower_inflight_messages",
            "Leader only: unacknowledged appends.",
            ["peer"],
            registry=r,
        )
        self.follower_state = Gauge(
            "raftkv_follower_replication_state",
            "Leader only: 1 for the follower's state.",
            ["peer", "state"],
            registry=r,
        )
        self.health = Gauge("raftkv_serving", "1 when the health service says SERVING.", registry=r)
        self.elections = Counter(
            "raftkv_elections_total",
            "Role transitions of elections: pre-vote, campaign, won.",
            ["stage"],
            registry=r,
        )
        self.votes = Counter(
            "raftkv_votes_total",
            "Vote answers this node sent, by kind and result.",
            ["kind", "result"],
            registry=r,
        )
        self.messages_sent = Counter(
            "raftkv_peer_messages_sent_total",
            "Peer messages sent, by type.",
            ["type"],
            registry=r,
        )
        self.append_results = Counter(
            "raftkv_append_responses_total",
            "AppendEntries answers sent, by result.",
            ["result"],
            registry=r,
        )
        self.append_entries = Histogram(
            "raftkv_append_entries_per_message",
            "Entries per AppendEntries sent.",
            buckets=_COUNT,
            registry=r,
        )
        self.append_bytes = Histogram(
            "raftkv_append_bytes_per_message",
            "Entry bytes per AppendEntries sent.",
            buckets=(256, 1024, 4096, 16384, 65536, 262144, 1 << 20, 4 << 20),
            registry=r,
        )
        self.commit_latency = Histogram(
            "raftkv_proposal_commit_duration_seconds",
            "Proposal to commit (leader).",
            buckets=_LATENCY,
            registry=r,
        )
        self.apply_latency = Histogram(
            "raftkv_commit_apply_duration_seconds",
            "Commit to applied, per apply batch.",
            buckets=_LATENCY,
            registry=r,
        )
        self.read_index_wait = Histogram(
            "raftkv_read_index_wait_seconds",
            "Linearizable read: ReadIndex until applied.",
            buckets=_LATENCY,
            registry=r,
        )
        self.follower_contact = Gauge(
            "raftkv_follower_last_contact_seconds",
            "Leader only: seconds since the follower last answered.",
            ["peer"],
            registry=r,
        )
        # Resolved label children: ``labels()`` is the costly part of a hot-path increment.
        self._children: dict[tuple[object, ...], Any] = {}
        self._last_leader = -1
        self._last_role = ""
        self._next_follower_refresh = 0.0

    # ---------------------------------------------------------------- driver hooks
    def on_persist(self, seconds: float, entries: int) -> None:
        self.fsync.observe(seconds)
        self.entries_per_persist.observe(entries)

    def on_apply(self, entries: int) -> None:
        self.applied_entries.inc(entries)

    def on_proposal(self, result: str) -> None:
        self._child(self.proposals, result).inc()

    def on_commit(self, seconds: float) -> None:
        self.commit_latency.observe(seconds)

    def on_apply_batch(self, seconds: float) -> None:
        self.apply_latency.observe(seconds)

    def on_read_index(self, seconds: float) -> None:
        self.read_index_wait.observe(seconds)

    def on_compact(self, index: int) -> None:
        self.compactions.inc()

    def on_iteration(self, node: NodeView) -> None:
        self.term.set(node.term)
        self.commit_index.set(node.commit_index)
        self.applied_index.set(node.applied_index)
        self.last_index.set(node.last_index)
        role = node.role.value
        if role != self._last_role:
            self._last_role = role
            stage = {"pre-candidate": "pre_vote", "candidate": "campaign", "leader": "won"}
            if role in stage:
                self.elections.labels(stage[role]).inc()
            for name in ROLES:
                self.role.labels(name).set(1 if name == role else 0)
            self.is_leader.set(1 if role == "leader" else 0)
        if node.leader_id != self._last_leader:
            if self._last_leader > 0 and node.leader_id > 0:
                self.leader_changes.inc()
            self._last_leader = node.leader_id
            self.leader.set(node.leader_id)
        now = time.monotonic()
        if now >= self._next_follower_refresh:
            # status() builds objects: once a second is plenty for a scrape interval.
            self._next_follower_refresh = now + 1.0
            self._refresh_followers(node)

    def _refresh_followers(self, node: NodeView) -> None:
        status = node.status()
        self.first_index.set(status.first_index)
        self.voters.labels("voters").set(len(status.membership.voters))
        self.voters.labels("learners").set(len(status.membership.learners))
        for f in status.followers:
            peer = str(f.node_id)
            self.follower_match.labels(peer).set(f.match_index)
            self.follower_lag.labels(peer).set(max(0, status.last_index - f.match_index))
            self.follower_inflight.labels(peer).set(f.inflight)
            self.follower_contact.labels(peer).set(f.ticks_since_contact * self._tick_s)
            for state in REPLICATION_STATES:
                self.follower_state.labels(peer, state).set(1 if state == f.state.value else 0)

    # ---------------------------------------------------------------- transport hooks
    def on_peer_rpc(self, method: str, peer: int, seconds: float, ok: bool) -> None:
        if not ok:
            self.peer_rpc_failures.labels(method, str(peer)).inc()
            return
        self._child(self.peer_rpc, method, str(peer)).observe(seconds)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def on_message_sent(self, kind: str, entries: int, entry_bytes: int, ok: bool) -> None:
        """``kind`` is the message class name; ``ok`` is its granted/success flag if any."""
        self._child(self.messages_sent, kind).inc()
        if kind == "AppendRequest":
            self.append_entries.observe(entries)
            self.append_bytes.observe(entry_bytes)
        elif kind == "AppendResponse":
            self._child(self.append_results, "success" if ok else "reject").inc()
        elif kind == "VoteResponse":
            self.votes.labels("vote", "granted" if ok else "denied").inc()
        elif kind == "PreVoteResponse":
            self.votes.labels("pre_vote", "granted" if ok else "denied").inc()

    def on_outbox_drop(self, peer: int) -> None:
        self.outbox_drops.labels(str(peer)).inc()

    def on_snapshot_sent(self, peer: int, ok: bool) -> None:
        self.snapshots_sent.labels("ok" if ok else "failed").inc()

    def on_peer_rejected(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def on_request_refused(self, code: str) -> None:
        self.requests_refused.labels(code).inc()

    def on_peer_message(self, method: str) -> None:
        self._child(self.peer_received, method).inc()

    def on_snapshot_received(self, ok: bool) -> None:
        self.snapshots_received.labels("ok" if ok else "failed").inc()

    # ---------------------------------------------------------------- server hooks
    def on_client_request(self, method: str, code: str, seconds: float) -> None:
        self._child(self.client_requests, method, code).inc()
        self._child(self.client_latency, method).observe(seconds)

    def on_batch_ops(self, counts: Mapping[tuple[str, str], int], seconds: float) -> None:
        """A batch's operations by (method, code), counted as client requests. Each method in
        the batch is also timed once with the batch's duration (every op of a batch is answered
        with it), so per-method latency panels see clients that batch. The batch itself is
        counted and timed as one ``Batch`` request as well."""
        timed: set[str] = set()
        for (method, code), n in counts.items():
            self._child(self.client_requests, method, code).inc(n)
            if method not in timed:
                timed.add(method)
                self._child(self.client_latency, method).observe(seconds)

    def on_forwarded(self, method: str, n: int = 1) -> None:
        self._child(self.forwarded, method).inc(n)


def new_registry() -> CollectorRegistry:
    """A registry with the client library's process, platform and GC collectors, as the default
    registry has them (memory, CPU, open files and GC panels on the dashboard read these)."""
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry
