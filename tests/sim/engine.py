"""The simulation engine: nodes, the driver loop (the Ready contract), time, crashes.

Rules:
- one ``random.Random(seed)`` makes every choice (each core's own rng is drawn from it), and
  nodes run in id order, so a seed replays a run exactly;
- each node follows the Ready contract (:mod:`raftkv.core.ready`) like the real driver: send
  ``send_now``, persist, send ``send_after_persist``, apply, serve reads, ``advance``;
- a crash drops the core and everything volatile; only the MemoryStorage (what completed Ready
  batches persisted) and the state-machine snapshot kept with it survive. A crash may also hit
  between ``send_now`` and persisting, or between persisting and ``send_after_persist``
  (``crash_mid_ready``);
- the checker (:mod:`tests.sim.checker`) runs after every node iteration; every loop is bounded.

The harness verbs tests use (``one``, ``check_one_leader``, membership changes) live on top,
in :mod:`tests.sim.cluster`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from raftkv.core.config import RaftConfig
from raftkv.core.membership import Membership, membership_of
from raftkv.core.messages import AppendResponse, Message, SnapshotRequest, VoteResponse
from raftkv.core.raft import RaftNode
from raftkv.core.ready import ReadState, Ready, Role
from raftkv.core.storage import MemoryStorage
from raftkv.core.types import Entry, Index, NodeId
from tests.sim.checker import Checker, SafetyViolation
from tests.sim.network import Network, Payload

MAX_READY_ROUNDS = 64


def makes_a_promise(message: Message) -> bool:
    """A granted vote or an accepted append promises durable state (thesis §10.2.1): it may
    only leave in ``send_after_persist``."""
    if isinstance(message, VoteResponse):
        return message.granted and not message.pre_vote
    return isinstance(message, AppendResponse) and message.success


class LivenessFailure(AssertionError):
    pass


@dataclass(slots=True)
class SimNode:
    id: int
    storage: MemoryStorage
    snapshot_state: tuple[Entry, ...] = ()
    """Durable: the state machine as of ``storage.snapshot_meta().index``."""
    raft: RaftNode | None = None
    applied: list[Entry] = field(default_factory=list)
    """Volatile: the applied sequence, index i at position i - 1."""
    inbox: list[tuple[Message, Payload]] = field(default_factory=list)
    slow_every: int = 1
    """Process (and tick) only every this many ticks: a paused or overloaded process."""
    lifetime: int = 0
    checked_commit: int = 0
    reads_waiting: list[ReadState] = field(default_factory=list)
    served_reads: dict[int, int] = field(default_factory=dict)
    """context -> read index, for reads this node answered."""
    dropped_reads: set[int] = field(default_factory=set)
    snapshot_payloads: dict[tuple[int, int], Payload] = field(default_factory=dict)


class Engine:
    def __init__(
        self,
        n: int = 3,
        seed: int = 0,
        *,
        heartbeat_ticks: int = 5,
        election_ticks: int = 15,
        pre_vote: bool = True,
        check_quorum: bool = True,
        compact_threshold: int = 0,
        compact_trailing: int = 0,
        **config: Any,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = 0
        ids = list(range(1, n + 1))
        self.net = Network(self.rng, ids)
        self.checker = Checker(self.rng)
        self.config_args: dict[str, Any] = dict(
            heartbeat_ticks=heartbeat_ticks,
            election_ticks=election_ticks,
            pre_vote=pre_vote,
            check_quorum=check_quorum,
            **config,
        )
        self.compact_threshold = compact_threshold
        self.compact_trailing = compact_trailing
        self.crash_mid_ready = 0.0
        self.nodes: dict[int, SimNode] = {}
        self._next_context = 0
        self._reports: list[tuple[int, int, int, int, bool | None]] = []
        """(due tick, sender, sender lifetime, peer, snapshot result or None: unreachable)."""
        self.acknowledged: dict[int, bytes] = {}
        """index -> data of every write ``one()`` saw committed (must survive everything)."""
        self.trace: list[str] = []
        self.pool_size = 0
        """Random membership changes draw node ids from 1..pool_size (0: no changes)."""
        self.hold_messages = False
        """Manual mode: sent messages wait in ``outbox`` for ``deliver_where`` / ``drop_where``."""
        self.outbox: list[tuple[Message, Payload]] = []
        self.on_send: Callable[[Message], None] | None = None
        """A test's tap on every message a node sends (to count round trips)."""
        for node_id in ids:
            self.add_node(node_id, membership_of(ids))

    # ================================================================ membership of the sim
    def add_node(self, node_id: int, membership: Membership) -> SimNode:
        """A node with an empty log whose log start carries ``membership`` (bootstrap/join)."""
        node = SimNode(id=node_id, storage=MemoryStorage(membership))
        self.nodes[node_id] = node
        self.net.add_node(node_id)
        self._start(node)
        return node

    def _start(self, node: SimNode) -> None:
        meta = node.storage.snapshot_meta()
        config = RaftConfig(node_id=NodeId(node.id), applied=meta.index, **self.config_args)
        node.raft = RaftNode(config, node.storage, random.Random(self.rng.getrandbits(64)))
        node.applied = list(node.snapshot_state)
        node.checked_commit = 0
        node.lifetime += 1
        self.checker.check_node(node)

    # ================================================================ verbs
    def crash(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.raft is None:
            return
        self.trace.append(f"{self.now}: crash {node_id}")
        node.raft = None
        node.applied = []
        node.inbox = []
        node.reads_waiting = []
        node.snapshot_payloads = {}

    def restart(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.raft is not None:
            return
        self.trace.append(f"{self.now}: restart {node_id}")
        self._start(node)

    def connect(self, node_id: int) -> None:
        self.trace.append(f"{self.now}: connect {node_id}")
        self.net.connect(node_id)

    def disconnect(self, node_id: int) -> None:
        self.trace.append(f"{self.now}: disconnect {node_id}")
        self.net.disconnect(node_id)

    def partition(self, *groups: Iterable[int]) -> None:
        frozen = [sorted(g) for g in groups]
        self.trace.append(f"{self.now}: partition {frozen}")
        self.net.partition(*frozen)

    def heal(self) -> None:
        self.trace.append(f"{self.now}: heal")
        self.net.heal()

    def live(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.raft is not None]

    def raft(self, node_id: int) -> RaftNode:
        raft = self.nodes[node_id].raft
        assert raft is not None, f"node {node_id} is down"
        return raft

    def leader(self) -> int | None:
        """The live leader with the highest term, if any."""
        best: tuple[int, int] | None = None
        for node in self.live():
            assert node.raft is not None
            if node.raft.role == Role.LEADER and (best is None or node.raft.term > best[0]):
                best = (node.raft.term, node.id)
        return None if best is None else best[1]

    def leaders(self) -> list[int]:
        return [n.id for n in self.live() if n.raft is not None and n.raft.role == Role.LEADER]

    # ================================================================ time
    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.tick()

    def run_until(self, predicate: Callable[[], bool], max_ticks: int) -> bool:
        for _ in range(max_ticks):
            if predicate():
                return True
            self.tick()
        return predicate()

    def tick(self) -> None:
        self.now += 1
        self.checker.now = self.now
        self._deliver_reports()
        for message, payload in self.net.due(self.now):
            node = self.nodes.get(message.to_id)
            if node is not None and node.raft is not None:
                node.inbox.append((message, payload))
        for node_id in sorted(self.nodes):
            node = self.nodes[node_id]
            if node.raft is None or (node.slow_every > 1 and self.now % node.slow_every):
                continue
            self.step_node(node, tick=True)
        self.checker.sample_log_matching(list(self.nodes.values()))

    def step_node(self, node: SimNode, *, tick: bool) -> None:
        """One driver iteration: step the inbox, maybe tick, then drain Ready batches."""
        raft = node.raft
        assert raft is not None
        inbox, node.inbox = node.inbox, []
        for message, payload in inbox:
            if isinstance(message, SnapshotRequest):
                node.snapshot_payloads[(message.meta.index, message.meta.term)] = payload
            raft.step(message)
        if tick:
            raft.tick()
        self._drain(node)

    def deliver(self, message: Message, payload: Payload = None) -> None:
        """Hand one message straight to its receiver and let it process it (scenario tests)."""
        node = self.nodes[message.to_id]
        node.inbox.append((message, payload))
        self.step_node(node, tick=False)

    # ================================================================ manual delivery
    def deliver_where(self, predicate: Callable[[Message], bool]) -> int:
        """Deliver held messages matching ``predicate`` (to live receivers); keep the rest."""
        chosen = [(m, p) for m, p in self.outbox if predicate(m)]
        self.outbox = [(m, p) for m, p in self.outbox if not predicate(m)]
        for message, payload in chosen:
            node = self.nodes.get(message.to_id)
            if node is not None and node.raft is not None:
                self.deliver(message, payload)
        return len(chosen)

    def drop_where(self, predicate: Callable[[Message], bool]) -> int:
        before = len(self.outbox)
        self.outbox = [(m, p) for m, p in self.outbox if not predicate(m)]
        return before - len(self.outbox)

    def stabilize(self, max_rounds: int = 100) -> None:
        """Deliver held messages until none are left (etcd's ``stabilize``)."""
        for _ in range(max_rounds):
            if not self.outbox:
                return
            self.deliver_where(lambda m: True)
        raise LivenessFailure(f"messages still flowing after {max_rounds} rounds")

    def tick_node(self, node_id: int, ticks: int = 1) -> None:
        """Tick one node alone (manual mode)."""
        for _ in range(ticks):
            self.step_node(self.nodes[node_id], tick=True)

    # ================================================================ the driver
    def _drain(self, node: SimNode) -> None:
        for _ in range(MAX_READY_ROUNDS):
            raft = node.raft
            if raft is None or not raft.has_ready():
                break
            ready = raft.ready()
            if not self._handle_ready(node, ready):
                return  # crashed mid-ready
            raft.advance(ready)
            self._maybe_compact(node)
        else:
            raise SafetyViolation(f"node {node.id} produced Ready batches forever")
        if node.raft is not None:
            self._serve_reads(node)
            self.checker.check_node(node)

    def _handle_ready(self, node: SimNode, rd: Ready) -> bool:
        for message in rd.send_now:
            if makes_a_promise(message):
                self.checker.fail(f"node {node.id} may send {message} before persisting it")
            self._send(node, message)
        if self.crash_mid_ready and self.rng.random() < self.crash_mid_ready and rd.must_persist():
            self.trace.append(f"{self.now}: crash {node.id} before persisting a ready")
            self.crash(node.id)
            return False
        if rd.snapshot is not None:
            self._install_snapshot(node, rd)
        if rd.entries:
            node.storage.append(rd.entries)
        if rd.hard_state is not None:
            node.storage.set_hard_state(rd.hard_state)
        if self.crash_mid_ready and self.rng.random() < self.crash_mid_ready and rd.must_persist():
            self.trace.append(f"{self.now}: crash {node.id} after persisting, before sending")
            self.crash(node.id)
            return False
        for message in rd.send_after_persist:
            self._send(node, message)
        for entry in rd.committed:
            self.checker.check_apply(node, entry)
            node.applied.append(entry)
        node.reads_waiting.extend(rd.reads)
        for context in rd.dropped_reads:
            node.dropped_reads.add(context)
            self.checker.forget_read(context)
        return True

    def _install_snapshot(self, node: SimNode, rd: Ready) -> None:
        meta = rd.snapshot
        assert meta is not None
        payload = node.snapshot_payloads.pop((meta.index, meta.term), None)
        if payload is None:
            raise SafetyViolation(f"node {node.id} installs snapshot {meta} it never received")
        if len(payload) < len(node.applied):
            self.checker.fail(
                f"node {node.id} installed snapshot at {meta.index} behind its applied index "
                f"{len(node.applied)}"
            )
        state = tuple(e for e in payload if isinstance(e, Entry))
        node.storage.apply_snapshot(meta)
        node.snapshot_state = state
        node.applied = list(state)
        node.snapshot_payloads.clear()

    def _send(self, node: SimNode, message: Message) -> None:
        payload: Payload = None
        if isinstance(message, SnapshotRequest):
            index = message.meta.index
            if len(node.applied) < index:
                self.checker.fail(f"node {node.id} sent snapshot at {index} beyond its applied")
            payload = tuple(node.applied[:index])
        if self.on_send is not None:
            self.on_send(message)
        if self.hold_messages:
            self.outbox.append((message, payload))
            return
        reached = self.net.send(self.now, message, payload)
        receiver = self.nodes.get(message.to_id)
        reached = reached and receiver is not None and receiver.raft is not None
        # The transport's feedback, delivered on the next tick (never inside a Ready):
        # a finished or failed snapshot stream, or a peer it could not connect to.
        if isinstance(message, SnapshotRequest):
            self._reports.append((self.now + 1, node.id, node.lifetime, message.to_id, reached))
        elif not reached:
            self._reports.append((self.now + 1, node.id, node.lifetime, message.to_id, None))

    def _deliver_reports(self) -> None:
        if not self._reports:
            return
        reports, self._reports = self._reports, []
        for report in reports:
            due, sender, lifetime, peer, snapshot_ok = report
            if due > self.now:
                self._reports.append(report)
                continue
            node = self.nodes[sender]
            if node.raft is None or node.lifetime != lifetime:
                continue
            if snapshot_ok is None:
                node.raft.report_unreachable(NodeId(peer))
            else:
                node.raft.report_snapshot(NodeId(peer), snapshot_ok)
            self._drain(node)

    def _serve_reads(self, node: SimNode) -> None:
        if not node.reads_waiting:
            return
        waiting = []
        for read in node.reads_waiting:
            if read.index <= len(node.applied):
                if read.context in node.dropped_reads:
                    self.checker.fail(f"node {node.id} served read {read.context} it had dropped")
                self.checker.check_read(node, read.context, read.index)
                node.served_reads[read.context] = read.index
            else:
                waiting.append(read)
        node.reads_waiting = waiting

    def _maybe_compact(self, node: SimNode) -> None:
        if not self.compact_threshold:
            return
        storage = node.storage
        start = storage.snapshot_meta().index
        top = min(len(node.applied), storage.last_index()) - self.compact_trailing
        if top - start < self.compact_threshold:
            return
        membership = storage.snapshot_meta().membership
        for index, config in storage.membership_history():
            if index > top:
                break
            membership = config
        storage.compact(Index(top), membership)
        node.snapshot_state = tuple(node.applied[:top])

    # ================================================================ reporting
    def describe(self) -> str:
        lines = [f"tick {self.now} seed {self.seed}"]
        for node in self.nodes.values():
            if node.raft is None:
                lines.append(f"  node {node.id}: down")
                continue
            r = node.raft
            lines.append(
                f"  node {node.id}: {r.role.value} term {r.term} leader {r.leader_id} "
                f"commit {r.commit_index} applied {r.applied_index} last {r.last_index}"
            )
        lines.extend("  " + t for t in self.trace[-30:])
        return "\n".join(lines)
