"""RaftNode: the consensus state machine (Raft paper and thesis), with no I/O of its own.

Everything that affects consensus lives here: roles and elections (with PreVote and
CheckQuorum), log replication with per-follower progress, commitment, ReadIndex, leadership
transfer and joint-consensus membership. Inputs are method calls; output is a Ready batch
(:mod:`raftkv.core.ready`). Remote input is never trusted to be current: stale or duplicated
messages are ignored or answered, never obeyed. Local misuse raises :class:`CoreError`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

from raftkv.core.config import RaftConfig
from raftkv.core.errors import ConfChangeRefused, NotLeader, ProposalDropped
from raftkv.core.log import RaftLog
from raftkv.core.membership import (
    Membership,
    committed_index,
    decode_membership,
    encode_membership,
    has_quorum,
    vote_result,
)
from raftkv.core.messages import (
    AppendRequest,
    AppendResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotRequest,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from raftkv.core.progress import Inflights, Progress, ProgressState
from raftkv.core.ready import ReadState, Ready, Role, SoftState
from raftkv.core.storage import CompactedError, LogStorage
from raftkv.core.types import (
    NO_NODE,
    Entry,
    EntryKind,
    HardState,
    Index,
    NodeId,
    SnapshotMeta,
    Term,
)

logger = logging.getLogger("raftkv.core")


@dataclass(slots=True)
class _PendingRead:
    context: int
    index: Index
    seq: int
    origin: NodeId


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowerStatus:
    node_id: NodeId
    match_index: Index
    next_index: Index
    state: ProgressState
    inflight: int
    ticks_since_contact: int
    is_learner: bool
    lazy: bool = False
    """Sent new entries only with heartbeats, on a stalled commit or while it lacks committed
    ones (``RaftConfig.quorum_first``): its match index may trail by a heartbeat's writes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatus:
    node_id: NodeId
    role: Role
    term: Term
    leader_id: NodeId
    commit_index: Index
    applied_index: Index
    first_index: Index
    last_index: Index
    membership: Membership
    followers: tuple[FollowerStatus, ...]
    transferring_to: NodeId


class RaftNode:
    def __init__(self, config: RaftConfig, storage: LogStorage, rng: random.Random) -> None:
        self.config = config
        self.id = config.node_id
        self._rng = rng
        self.log = RaftLog(storage, config.applied)
        hard_state = storage.hard_state()
        self.term = hard_state.term
        self.vote = hard_state.vote
        self.role = Role.FOLLOWER
        self.leader_id = NO_NODE
        # Membership: the newest configuration in the log, committed or not (paper section 6).
        self._base_membership = storage.snapshot_meta().membership
        self._configs: list[tuple[Index, Membership]] = list(storage.membership_history())
        self.membership = self._configs[-1][1] if self._configs else self._base_membership
        self._progress: dict[NodeId, Progress] = {}
        self._votes: dict[int, bool] = {}
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_election_ticks = 0
        self._transfer_target = NO_NODE
        self._transfer_elapsed = 0
        self._pending_conf_index = Index(0)
        # ReadIndex state (leader): heartbeat rounds confirm leadership for batches of reads.
        self._seq = 0
        self._seq_needed = False
        self._pending_reads: list[_PendingRead] = []
        self._reads_awaiting_commit: list[_PendingRead] = []
        self._ready_reads: list[ReadState] = []
        self._dropped_reads: list[int] = []
        self._broadcast_needed = False
        self._lazy: frozenset[NodeId] = frozenset()
        """Followers that new entries reach with the heartbeat, after a stalled tick, or on
        their answers while they lack committed entries; not at once. See
        RaftConfig.quorum_first and :meth:`_choose_lazy`."""
        self._last_index_at_last_tick = Index(0)
        """Entries up to here existed at the previous tick: uncommitted now, they wake the
        lazy followers (see :meth:`_tick_leader`)."""
        self._commit_at_last_tick = Index(0)
        """The commit index at the previous tick: a follower told nothing up to it since then
        gets a notice (see :meth:`_tell_commit`)."""
        self._send_now: list[Message] = []
        self._send_after: list[Message] = []
        self._prev_soft = SoftState(role=self.role, leader_id=self.leader_id)
        self._prev_hard = hard_state
        self._ready_outstanding = False
        self._reset_election_timer()

    # ================================================================ inputs
    def tick(self) -> None:
        self._check_not_in_ready()
        if self.role == Role.LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    def campaign(self) -> None:
        """Start an election now (bootstrap helpers and tests)."""
        self._check_not_in_ready()
        if self.role != Role.LEADER and self._promotable():
            self._start_election(transfer=False)

    def propose(self, data: bytes) -> tuple[Term, Index]:
        self._check_not_in_ready()
        return self._append_proposal(EntryKind.NORMAL, data)

    def propose_conf_change(self, target: Membership) -> tuple[Term, Index]:
        """Move to ``target`` (voters and learners). Voter changes go through a joint config."""
        self._check_not_in_ready()
        if self.role != Role.LEADER:
            raise NotLeader(self.leader_id)
        current = self.membership
        if current.is_joint or self._pending_conf_index > self.log.applied:
            raise ConfChangeRefused("another membership change is in progress; retry when it ends")
        if target.is_joint:
            raise ConfChangeRefused("the target configuration must not be joint")
        if not target.voters:
            raise ConfChangeRefused("the configuration must keep at least one voter")
        if target.voters == current.voters and target.learners == current.learners:
            raise ConfChangeRefused("the configuration already is " + current.describe())
        if target.voters == current.voters:
            new = target  # learners only: quorums are unchanged, no joint phase needed
        else:
            new = Membership(
                voters=target.voters, learners=target.learners, outgoing=current.voters
            )
        return self._append_proposal(EntryKind.CONF_CHANGE, encode_membership(new))

    def read_index(self, context: int) -> None:
        """Ask for a linearizable read point; answered by a ReadState in a later Ready."""
        self._check_not_in_ready()
        if self.role == Role.LEADER:
            self._register_read(context, self.id)
            return
        if self.leader_id == NO_NODE:
            raise NotLeader(NO_NODE)
        self._send(
            ReadIndexRequest(
                from_id=self.id, to_id=self.leader_id, term=self.term, context=context
            )
        )

    def transfer_leader(self, target: NodeId) -> None:
        """Hand leadership to ``target`` (thesis section 3.10)."""
        self._check_not_in_ready()
        if self.role != Role.LEADER:
            raise NotLeader(self.leader_id)
        if target == self.id:
            return
        if target not in self.membership.voters:
            raise ConfChangeRefused(f"node {target} is not a voter and cannot lead")
        self._transfer_target = target
        self._transfer_elapsed = 0
        self._lazy -= {target}  # it must catch up at once
        self._log("began leadership transfer to %d", target)
        progress = self._progress[target]
        if progress.match_index == self.log.last_index():
            self._send_timeout_now(target)
        else:
            self._maybe_send_append(target, send_if_empty=True)

    def report_unreachable(self, peer: NodeId) -> None:
        self._check_not_in_ready()
        progress = self._progress.get(peer)
        if self.role == Role.LEADER and progress and progress.state == ProgressState.REPLICATE:
            progress.become_probe()

    def report_snapshot(self, peer: NodeId, success: bool) -> None:
        """The transport finished (or failed) streaming a snapshot to ``peer``."""
        self._check_not_in_ready()
        progress = self._progress.get(peer)
        if self.role != Role.LEADER or progress is None or progress.state != ProgressState.SNAPSHOT:
            return
        if not success:
            progress.pending_snapshot = Index(0)
        progress.become_probe()
        # Wait for the follower's answer before probing again.
        progress.probe_sent = success

    def step(self, m: Message) -> None:
        self._check_not_in_ready()
        if m.to_id != self.id:
            return
        if m.term > self.term:
            if isinstance(m, VoteRequest) and self._in_lease() and not (
                m.transfer and m.term == self.term + 1
            ):
                # A live leader is known: this candidate cannot be legitimate (thesis 4.2.3),
                # unless the leader itself handed over (TimeoutNow), and such a candidate runs
                # in exactly the next term; a "transfer" from further ahead is not believed.
                return
            if isinstance(m, VoteRequest) and m.pre_vote:
                pass  # a pre-vote never changes our term
            elif isinstance(m, VoteResponse) and m.pre_vote and m.granted:
                pass  # a granted pre-vote answers in the term we would campaign in
            elif isinstance(m, AppendRequest | SnapshotRequest | TimeoutNow):
                self._become_follower(m.term, m.from_id)
            else:
                self._become_follower(m.term, NO_NODE)
        elif m.term < self.term:
            self._step_stale(m)
            return
        match m:
            case VoteRequest():
                self._handle_vote_request(m)
            case VoteResponse():
                self._handle_vote_response(m)
            case AppendRequest():
                self._handle_append_request(m)
            case AppendResponse():
                self._handle_append_response(m)
            case SnapshotRequest():
                self._handle_snapshot_request(m)
            case TimeoutNow():
                self._handle_timeout_now(m)
            case ReadIndexRequest():
                self._handle_read_index_request(m)
            case ReadIndexResponse():
                self._handle_read_index_response(m)
            case _:
                assert_never(m)

    # ================================================================ output
    def has_ready(self) -> bool:
        self._flush()
        return bool(
            self._send_now
            or self._send_after
            or self.log.unstable_entries()
            or self.log.pending_snapshot is not None
            or self.log.has_next_committed()
            or self._ready_reads
            or self._dropped_reads
            or self._hard_state_changed()
            or self.role != self._prev_soft.role
            or self.leader_id != self._prev_soft.leader_id
        )

    def _hard_state_changed(self) -> bool:
        # Compared field by field: has_ready() runs on every driver iteration.
        prev = self._prev_hard
        return (
            self.term != prev.term or self.vote != prev.vote or self.log.committed != prev.commit
        )

    def ready(self) -> Ready:
        self._check_not_in_ready()
        self._flush()
        soft, hard = self._soft_state(), self._hard_state()
        ready = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != self._prev_hard else None,
            snapshot=self.log.pending_snapshot,
            entries=tuple(self.log.unstable_entries()),
            send_now=tuple(self._send_now),
            send_after_persist=tuple(self._send_after),
            committed=tuple(self.log.next_committed(self.config.max_committed_bytes_per_ready)),
            reads=tuple(self._ready_reads),
            dropped_reads=tuple(self._dropped_reads),
            must_sync=bool(self.log.unstable_entries())
            or self.log.pending_snapshot is not None
            or hard.term != self._prev_hard.term
            or hard.vote != self._prev_hard.vote,
        )
        self._send_now.clear()
        self._send_after.clear()
        self._ready_reads.clear()
        self._dropped_reads.clear()
        self._ready_outstanding = True
        return ready

    def advance(self, ready: Ready) -> None:
        """The driver did everything ``ready`` asked."""
        assert self._ready_outstanding, "advance() without a ready() outstanding"
        self._ready_outstanding = False
        if ready.soft_state is not None:
            self._prev_soft = ready.soft_state
        if ready.hard_state is not None:
            self._prev_hard = ready.hard_state
        if ready.snapshot is not None:
            self.log.stable_snapshot_to(ready.snapshot)
        if ready.entries:
            last = ready.entries[-1]
            self.log.stable_to(last.index, last.term)
            if self.role == Role.LEADER and self.id in self._progress:
                # The leader counts itself only once its own entries are durable.
                self._progress[self.id].maybe_update(self.log.last_stable_index())
                self._maybe_commit()
        if ready.committed:
            self.log.applied_to(ready.committed[-1].index)
        self.log.refresh_log_start()

    # ================================================================ introspection
    @property
    def commit_index(self) -> Index:
        return self.log.committed

    @property
    def applied_index(self) -> Index:
        return self.log.applied

    @property
    def last_index(self) -> Index:
        return self.log.last_index()

    def log_entry_term(self, index: Index) -> Term | None:
        return self.log.term(index)

    def status(self) -> NodeStatus:
        followers = tuple(
            FollowerStatus(
                node_id=peer,
                match_index=p.match_index,
                next_index=p.next_index,
                state=p.state,
                inflight=len(p.inflights),
                ticks_since_contact=p.ticks_since_contact,
                is_learner=p.is_learner,
                lazy=peer in self._lazy,
            )
            for peer, p in sorted(self._progress.items())
            if peer != self.id
        )
        return NodeStatus(
            node_id=self.id,
            role=self.role,
            term=self.term,
            leader_id=self.leader_id,
            commit_index=self.log.committed,
            applied_index=self.log.applied,
            first_index=self.log.first_index(),
            last_index=self.log.last_index(),
            membership=self.membership,
            followers=followers,
            transferring_to=self._transfer_target,
        )

    # ================================================================ roles
    def _become_follower(self, term: Term, leader_id: NodeId) -> None:
        previous_role = self.role
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader_id = leader_id
        if previous_role != Role.FOLLOWER:
            self._log("became follower at term %d", term)

    def _become_pre_candidate(self) -> None:
        # A pre-candidate changes neither term nor vote (thesis section 9.6).
        self.role = Role.PRE_CANDIDATE
        self.leader_id = NO_NODE
        self._votes = {}
        self._election_elapsed = 0
        self._reset_election_timer()
        self._drop_reads()
        self._log("became pre-candidate at term %d", self.term)

    def _become_candidate(self) -> None:
        self._reset(Term(self.term + 1))
        self.role = Role.CANDIDATE
        self.vote = self.id
        self._log("became candidate at term %d", self.term)

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.leader_id = self.id
        last = self.log.last_index()
        for peer in self.membership.members() | {self.id}:
            self._progress[NodeId(peer)] = self._new_progress(NodeId(peer), last)
        # Our own persisted entries count immediately; the no-op counts once persisted.
        self._progress[self.id].match_index = self.log.last_stable_index()
        self._log("became leader at term %d", self.term)
        # The no-op entry of the new term (paper section 8): it lets us commit older entries
        # and serve reads once it commits.
        self._append_entries_as_leader([(EntryKind.NORMAL, b"")])

    def _reset(self, term: Term) -> None:
        if term != self.term:
            self.term = term
            self.vote = NO_NODE
        self.leader_id = NO_NODE
        self._votes = {}
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._reset_election_timer()
        self._transfer_target = NO_NODE
        self._progress = {}
        self._lazy = frozenset()
        self._last_index_at_last_tick = Index(0)
        self._seq = 0
        self._seq_needed = False
        self._drop_reads()

    def _drop_reads(self) -> None:
        for read in self._pending_reads + self._reads_awaiting_commit:
            if read.origin == self.id:
                self._dropped_reads.append(read.context)
        self._pending_reads = []
        self._reads_awaiting_commit = []

    def _new_progress(self, peer: NodeId, last: Index) -> Progress:
        return Progress(
            match_index=Index(0),
            next_index=Index(last + 1),
            inflights=Inflights(
                max_msgs=self.config.max_inflight_msgs, max_bytes=self.config.max_inflight_bytes
            ),
            recent_active=peer == self.id,
            is_learner=peer in self.membership.learners,
        )

    def _promotable(self) -> bool:
        """Whether this node may start elections.

        A voter of the newest configuration may; so may a voter of the configuration in force at
        the commit index. Without the second rule, the only nodes holding an uncommitted
        configuration that removes them would never campaign, and the nodes it adds might lack
        the log to win: no leader, ever. Campaigning is safe for any node (votes are counted in
        the candidate's newest configuration); PreVote and CheckQuorum keep it from disrupting.
        """
        if self.id in self.membership.all_voters():
            return True
        return self.id in self.membership_at(self.log.committed).all_voters()

    # ================================================================ elections
    def _tick_election(self) -> None:
        self._election_elapsed += 1
        # A node that cannot campaign keeps counting: its lease on the old leader must expire,
        # or it would ignore the candidates that could tell it about a newer configuration.
        if self._promotable() and self._election_elapsed >= self._randomized_election_ticks:
            self._start_election(transfer=False)

    def _start_election(self, *, transfer: bool) -> None:
        if self.config.pre_vote and not transfer:
            self._become_pre_candidate()
            self._campaign(pre_vote=True, transfer=False)
        else:
            self._become_candidate()
            self._campaign(pre_vote=False, transfer=transfer)

    def _campaign(self, *, pre_vote: bool, transfer: bool) -> None:
        self._votes[self.id] = True
        if self._tally_votes():
            return
        term = Term(self.term + 1) if pre_vote else self.term
        for peer in sorted(self.membership.all_voters()):
            if peer == self.id:
                continue
            self._send(
                VoteRequest(
                    from_id=self.id,
                    to_id=NodeId(peer),
                    term=term,
                    last_log_index=self.log.last_index(),
                    last_log_term=self.log.last_term(),
                    pre_vote=pre_vote,
                    transfer=transfer,
                )
            )

    def _tally_votes(self) -> bool:
        """Act on the votes so far; True if the election ended."""
        result = vote_result(self.membership, self._votes)
        if result is None:
            return False
        if result:
            if self.role == Role.PRE_CANDIDATE:
                self._become_candidate()
                self._campaign(pre_vote=False, transfer=False)
            else:
                self._become_leader()
        else:
            self._become_follower(self.term, NO_NODE)
        return True

    def _in_lease(self) -> bool:
        return (
            self.config.check_quorum
            and self.leader_id != NO_NODE
            and self._election_elapsed < self.config.election_ticks
        )

    def _handle_vote_request(self, m: VoteRequest) -> None:
        can_vote = (
            self.vote == m.from_id
            or (self.vote == NO_NODE and self.leader_id == NO_NODE)
            or (m.pre_vote and m.term > self.term)
        )
        granted = can_vote and self.log.is_up_to_date(m.last_log_index, m.last_log_term)
        if granted and not m.pre_vote:
            self.vote = m.from_id
            self._election_elapsed = 0
        self._send(
            VoteResponse(
                from_id=self.id,
                to_id=m.from_id,
                # A granted pre-vote answers in the candidate's prospective term; a refusal
                # carries our own term so a stale pre-candidate catches up.
                term=m.term if granted else self.term,
                granted=granted,
                pre_vote=m.pre_vote,
            )
        )

    def _handle_vote_response(self, m: VoteResponse) -> None:
        expected = Role.PRE_CANDIDATE if m.pre_vote else Role.CANDIDATE
        if self.role != expected or m.from_id not in self.membership.all_voters():
            return
        self._votes[m.from_id] = m.granted
        self._tally_votes()

    def _handle_timeout_now(self, m: TimeoutNow) -> None:
        if self._promotable() and self.role != Role.LEADER:
            self._log("received timeout-now from %d", m.from_id)
            self._start_election(transfer=True)

    def _step_stale(self, m: Message) -> None:
        """A message from an older term: tell the sender where it may matter, else drop it."""
        if isinstance(m, AppendRequest):
            # A deposed leader learns of the newer term (and steps down) from this answer.
            self._send(
                AppendResponse(
                    from_id=self.id, to_id=m.from_id, term=self.term, success=False,
                    match_index=m.prev_index, seq=m.seq,
                )
            )
        elif isinstance(m, VoteRequest):
            # Figure 2: "reply false if term < currentTerm", with our term, so that a stale
            # candidate catches up instead of raising terms it can never win in (seen without
            # PreVote under membership churn: no leader for 20,000 ticks).
            self._send(
                VoteResponse(
                    from_id=self.id, to_id=m.from_id, term=self.term, granted=False,
                    pre_vote=m.pre_vote,
                )
            )

    # ================================================================ replication: follower
    def _handle_append_request(self, m: AppendRequest) -> None:
        if self.role != Role.FOLLOWER:
            self._become_follower(self.term, m.from_id)
        self.leader_id = m.from_id
        self._election_elapsed = 0
        if m.prev_index < self.log.committed:
            # Everything up to our commit index is already settled; say how far we match.
            self._reply_append(m, success=True, match=self.log.committed)
            return
        if not self.log.match_term(m.prev_index, m.prev_term):
            hint = self.log.find_conflict_by_term(
                Index(min(m.prev_index, self.log.last_index())), m.prev_term
            )
            self._send(
                AppendResponse(
                    from_id=self.id, to_id=m.from_id, term=self.term, success=False,
                    match_index=m.prev_index, hint_index=hint,
                    hint_term=self.log.term(hint) or Term(0), seq=m.seq,
                )
            )
            return
        last_new = Index(m.prev_index + len(m.entries))
        conflict = self.log.find_conflict(m.entries)
        if conflict < len(m.entries):
            new_entries = m.entries[conflict:]
            self._note_truncation(new_entries[0].index)
            self.log.append(new_entries)
            self._note_configs(new_entries)
        self.log.commit_to(Index(min(m.commit, last_new)))
        self._reply_append(m, success=True, match=last_new)

    def _reply_append(self, m: AppendRequest, *, success: bool, match: Index) -> None:
        self._send(
            AppendResponse(
                from_id=self.id, to_id=m.from_id, term=self.term, success=success,
                match_index=match, seq=m.seq,
            )
        )

    def _handle_snapshot_request(self, m: SnapshotRequest) -> None:
        if self.role != Role.FOLLOWER:
            self._become_follower(self.term, m.from_id)
        self.leader_id = m.from_id
        self._election_elapsed = 0
        meta = m.meta
        if meta.index <= self.log.committed:
            match = self.log.committed
        elif self.log.match_term(meta.index, meta.term):
            # We already hold that entry: the snapshot tells us only that it is committed.
            self.log.commit_to(meta.index)
            match = meta.index
        else:
            self._log("restoring snapshot at index %d term %d", meta.index, meta.term)
            self.log.restore(meta)
            self._base_membership = meta.membership
            self._configs = []
            self.membership = meta.membership
            match = meta.index
        self._send(
            AppendResponse(
                from_id=self.id, to_id=m.from_id, term=self.term, success=True, match_index=match
            )
        )

    def _handle_read_index_response(self, m: ReadIndexResponse) -> None:
        self._ready_reads.append(ReadState(context=m.context, index=m.index))

    # ================================================================ replication: leader
    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        for progress in self._progress.values():
            progress.ticks_since_contact += 1
            progress.ticks_in_state += 1
            if (
                progress.state == ProgressState.SNAPSHOT
                and progress.ticks_in_state >= self.config.snapshot_timeout_ticks
            ):
                progress.pending_snapshot = Index(0)
                progress.become_probe()
        if self._election_elapsed >= self.config.election_ticks:
            self._election_elapsed = 0
            if self.config.check_quorum:
                active = {peer for peer, p in self._progress.items() if p.recent_active}
                for peer, progress in self._progress.items():
                    progress.recent_active = peer == self.id
                if not has_quorum(self.membership, lambda n: n in active):
                    self._log("stepped down: no quorum heard within an election timeout")
                    self._become_follower(self.term, NO_NODE)
                    return
        if self._transfer_target != NO_NODE:
            self._transfer_elapsed += 1
            if self._transfer_elapsed >= self.config.election_ticks:
                self._log("aborted leadership transfer to %d", self._transfer_target)
                self._transfer_target = NO_NODE
        self._choose_lazy()
        # Lazy followers catch up with the heartbeat, or at once if entries that existed at
        # the previous tick are still uncommitted (an eager follower is slow or gone): a stall
        # then lasts at most two ticks. Otherwise a lone writer's lazy follower would take an
        # append, an fsync and an answer every tick, next to the commit path.
        stalled = self.log.committed < self._last_index_at_last_tick
        self._last_index_at_last_tick = self.log.last_index()
        heartbeat_due = self._heartbeat_elapsed >= self.config.heartbeat_ticks
        wake_lazy = stalled or heartbeat_due
        for peer, progress in self._progress.items():
            if peer == self.id or progress.state != ProgressState.REPLICATE:
                continue
            if wake_lazy or peer not in self._lazy:
                # What it lacks (an eager follower lacks something only if it just stopped
                # being lazy or its window was full).
                self._maybe_send_append(peer, send_if_empty=False)
        settled, self._commit_at_last_tick = self._commit_at_last_tick, self.log.committed
        if heartbeat_due:
            self._heartbeat_elapsed = 0
            # A follower sent an append within this tick needs no heartbeat: the append resets
            # its election timer and carries the commit index. The longest silence a follower
            # sees is then one heartbeat interval plus one tick; under a steady stream of
            # writes most heartbeats (a send and an answer each) are saved.
            for peer, progress in self._progress.items():
                if peer != self.id and not progress.sent_this_tick:
                    self._send_heartbeat(peer)
        else:
            self._tell_commit(settled)
        for progress in self._progress.values():
            progress.sent_this_tick = False

    def _choose_lazy(self) -> None:
        """Pick the followers that new entries need not reach at once: a commit needs only
        ``len(voters) // 2`` followers besides the leader, so the voters furthest along (ties:
        those already eager, then the lower id) stay eager and the other voters, and every
        learner, become lazy. Only followers in steady replication take part (one being probed
        or sent a snapshot follows its own path), a leadership transfer's target is never
        lazy, and in a joint configuration (or with the leader outside the voters) nobody is.
        A follower that stops answering falls behind the lazy ones and is replaced here, at the
        next tick."""
        membership = self.membership
        if (
            not self.config.quorum_first
            or membership.is_joint
            or self.id not in membership.voters
        ):
            self._lazy = frozenset()
            return
        steady = [
            peer
            for peer, progress in self._progress.items()
            if peer != self.id and progress.state == ProgressState.REPLICATE
        ]
        voters = [p for p in steady if p in membership.voters and p != self._transfer_target]
        voters.sort(key=lambda p: (-self._progress[p].match_index, p in self._lazy, p))
        needed = len(membership.voters) // 2
        lazy = voters[needed:]
        lazy.extend(p for p in steady if p in membership.learners)
        self._lazy = frozenset(lazy)

    def _tell_commit(self, settled: Index) -> None:
        """Followers apply (and serve follower reads) only once they learn the commit index.
        It rides on the next append. A follower that got none for a whole tick after the
        commit index reached ``settled`` (its value at the previous tick) gets an empty append
        now, one to two ticks after the commit. Sending at once would double the messages of a
        lone write (a notice costs a send and an answer per follower); sending at the very next
        tick still cost each follower 0.7 notices per lone write (tcpdump, 300 writes/s, 10 ms
        ticks) although the next write's append was a few ms away. Under load the notices
        disappear: every append carries the commit."""
        if settled <= 0:
            return
        for peer, progress in self._progress.items():
            if peer != self.id and progress.commit_sent < min(settled, progress.match_index):
                self._send_heartbeat(peer)

    def _append_proposal(self, kind: EntryKind, data: bytes) -> tuple[Term, Index]:
        if self.role != Role.LEADER:
            raise NotLeader(self.leader_id)
        if self._transfer_target != NO_NODE:
            raise ProposalDropped(
                f"leadership is being transferred to node {self._transfer_target}; retry shortly"
            )
        if self.log.last_index() - self.log.committed >= self.config.max_uncommitted_entries:
            raise ProposalDropped("too many uncommitted entries; the cluster is overloaded")
        index = self._append_entries_as_leader([(kind, data)])
        return self.term, index

    def _append_entries_as_leader(self, items: Sequence[tuple[EntryKind, bytes]]) -> Index:
        first = self.log.last_index() + 1
        entries = [
            Entry(term=self.term, index=Index(first + i), kind=kind, data=data)
            for i, (kind, data) in enumerate(items)
        ]
        self.log.append(entries)
        self._note_configs(entries)
        self._broadcast_needed = True
        return entries[-1].index

    def _note_configs(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            if entry.kind != EntryKind.CONF_CHANGE:
                continue
            try:
                membership = decode_membership(entry.data)
            except ValueError:
                # An undecodable configuration cannot be acted on; it still occupies its slot.
                logger.error("[%d term %d] ignoring undecodable configuration at %d",
                             self.id, self.term, entry.index)
                continue
            self._configs.append((entry.index, membership))
            self._pending_conf_index = entry.index
            self._set_membership(membership)

    def _note_truncation(self, from_index: Index) -> None:
        """Entries from ``from_index`` on are being replaced: forget their configurations."""
        if self._configs and self._configs[-1][0] >= from_index:
            while self._configs and self._configs[-1][0] >= from_index:
                self._configs.pop()
            self._set_membership(self._configs[-1][1] if self._configs else self._base_membership)

    def _set_membership(self, membership: Membership) -> None:
        if membership == self.membership:
            return
        self.membership = membership
        self._log("uses configuration %s", membership.describe())
        if self.role != Role.LEADER:
            return
        last = self.log.last_index()
        for peer in membership.members():
            if NodeId(peer) not in self._progress:
                self._progress[NodeId(peer)] = self._new_progress(NodeId(peer), last)
                self._broadcast_needed = True  # probe the newcomer now, not at the heartbeat
        for peer in list(self._progress):
            if peer not in membership.members() and peer != self.id:
                del self._progress[peer]
        for peer, progress in self._progress.items():
            progress.is_learner = peer in membership.learners
        # A read round counts acknowledgements by the configuration in force. One that shrank
        # (joint to new) may be satisfied by those already in, and the voters it dropped will
        # not answer: count again now, or the round (and every read queued behind it) waits
        # for good, as the next round starts only when this one ends.
        self._release_confirmed_reads()

    def _maybe_send_append(self, peer: NodeId, *, send_if_empty: bool) -> bool:
        progress = self._progress[peer]
        if progress.is_paused():
            return False
        prev_index = Index(progress.next_index - 1)
        prev_term = self.log.term(prev_index)
        try:
            entries = (
                self.log.entries(progress.next_index, self.config.max_msg_bytes)
                if prev_term is not None
                else None
            )
        except CompactedError:
            entries = None
        if entries is None or prev_term is None:
            return self._send_snapshot(peer, progress)
        if not entries and not send_if_empty:
            return False
        self._send(
            AppendRequest(
                from_id=self.id, to_id=peer, term=self.term, prev_index=prev_index,
                prev_term=prev_term, entries=tuple(entries), commit=self.log.committed,
                seq=self._seq,
            )
        )
        if entries:
            progress.sent_entries(entries[-1].index, sum(e.size_bytes() for e in entries))
        elif progress.state == ProgressState.PROBE:
            progress.probe_sent = True
        return True

    def _send_snapshot(self, peer: NodeId, progress: Progress) -> bool:
        index = self.log.applied
        term = self.log.term(index)
        if term is None:
            return False  # cannot describe our own state yet; retry on the next heartbeat
        meta = SnapshotMeta(index=index, term=term, membership=self.membership_at(index))
        progress.become_snapshot(index)
        self._log("sending snapshot at index %d to %d", index, peer)
        self._send(SnapshotRequest(from_id=self.id, to_id=peer, term=self.term, meta=meta))
        return True

    def membership_at(self, index: Index) -> Membership:
        """The configuration in force once the log is applied through ``index`` (for snapshots
        and compaction, which must record the membership as of their index)."""
        membership = self._base_membership
        for config_index, config in self._configs:
            if config_index > index:
                break
            membership = config
        return membership

    def _broadcast_heartbeat(self) -> None:
        for peer in self._progress:
            if peer != self.id:
                self._send_heartbeat(peer)

    def _send_heartbeat(self, peer: NodeId) -> None:
        """An empty append anchored at what the follower surely has: checks nothing, commits
        safely (commit is capped by the anchor), and carries the ReadIndex round."""
        progress = self._progress[peer]
        anchor = progress.match_index
        anchor_term = self.log.term(anchor)
        if anchor_term is None:
            anchor, anchor_term = Index(0), Term(0)
        self._send(
            AppendRequest(
                from_id=self.id, to_id=peer, term=self.term, prev_index=anchor,
                prev_term=anchor_term, entries=(), commit=Index(min(self.log.committed, anchor)),
                seq=self._seq,
            )
        )

    def _handle_append_response(self, m: AppendResponse) -> None:
        if self.role != Role.LEADER:
            return
        progress = self._progress.get(m.from_id)
        if progress is None:
            return
        progress.recent_active = True
        progress.ticks_since_contact = 0
        if m.seq > progress.ack_seq:
            progress.ack_seq = m.seq
            self._release_confirmed_reads()
        if not m.success:
            hint = m.hint_index
            if m.hint_term > 0:
                hint = self.log.find_conflict_by_term(m.hint_index, m.hint_term)
            if progress.maybe_decrease_to(m.match_index, hint):
                if progress.state == ProgressState.REPLICATE:
                    progress.become_probe()
                self._maybe_send_append(m.from_id, send_if_empty=True)
            return
        was_paused = progress.is_paused()
        if progress.maybe_update(m.match_index):
            if progress.state == ProgressState.PROBE:
                progress.become_replicate()
            elif (
                progress.state == ProgressState.SNAPSHOT
                and progress.match_index >= progress.pending_snapshot
            ):
                progress.become_probe()
                progress.become_replicate()
            progress.inflights.free_le(m.match_index)
            committed = self._maybe_commit()
            if committed and (self.role != Role.LEADER or m.from_id not in self._progress):
                return  # the commit removed us or this follower from the configuration
            if m.from_id == self._transfer_target and progress.match_index == self.log.last_index():
                self._send_timeout_now(m.from_id)
            if m.from_id not in self._lazy or progress.match_index < self.log.committed:
                # A lazy follower still missing committed entries (catching up, or under load)
                # is sent more at once; one that has them all waits (see _tick_leader).
                self._maybe_send_append(m.from_id, send_if_empty=False)
        else:
            # A heartbeat answer (or a duplicate). Unstick a follower whose appends were lost.
            progress.probe_sent = False
            if progress.state == ProgressState.SNAPSHOT and progress.match_index >= (
                progress.pending_snapshot
            ):
                progress.become_probe()
            if progress.match_index < self.log.last_index():
                if progress.state == ProgressState.REPLICATE and was_paused:
                    progress.inflights.free_first()
                # An append from next_index even when empty: a probe finds where the logs match,
                # and in REPLICATE it is rejected if earlier appends were lost, which sends us
                # back to probing from the match index (Raft section 5.3: retry indefinitely).
                self._maybe_send_append(m.from_id, send_if_empty=True)

    def _maybe_commit(self) -> bool:
        match: dict[int, int] = {peer: p.match_index for peer, p in self._progress.items()}
        index = Index(committed_index(self.membership, match))
        # Only an entry of the current term commits by counting (paper section 5.4.2, Figure 8).
        if index <= self.log.committed or self.log.term(index) != self.term:
            return False
        self.log.commit_to(index)
        self._on_commit_advanced()
        return True

    def _on_commit_advanced(self) -> None:
        if self._reads_awaiting_commit:
            waiting, self._reads_awaiting_commit = self._reads_awaiting_commit, []
            for read in waiting:
                self._register_read(read.context, read.origin)
        membership = self.membership
        # No configuration entry left in the log: the membership is the snapshot's, committed.
        # (A joint one there must still be left: a leader elected after the joint entry was
        # compacted away, and before anyone appended the leave, is the only one who can.)
        configs_committed = not self._configs or self._configs[-1][0] <= self.log.committed
        if membership.is_joint and configs_committed:
            # The joint configuration is committed: move on to the new one alone.
            final = Membership(voters=membership.voters, learners=membership.learners)
            self._append_entries_as_leader([(EntryKind.CONF_CHANGE, encode_membership(final))])
        elif configs_committed and self.id not in membership.all_voters():
            self._log("stepped down: removed from the configuration")
            self._become_follower(self.term, NO_NODE)

    def _send_timeout_now(self, peer: NodeId) -> None:
        self._log("sending timeout-now to %d", peer)
        self._send(TimeoutNow(from_id=self.id, to_id=peer, term=self.term))

    # ================================================================ ReadIndex (leader)
    def _register_read(self, context: int, origin: NodeId) -> None:
        read = _PendingRead(context=context, index=self.log.committed, seq=0, origin=origin)
        if self.log.term(self.log.committed) != self.term:
            # A new leader knows its commit index only once its own no-op commits (thesis 6.4).
            self._reads_awaiting_commit.append(read)
            return
        if self.membership.all_voters() == {self.id}:
            self._release_read(read)
            return
        # The read rides the next heartbeat round; every read of this iteration shares it.
        read.seq = self._seq + 1
        self._seq_needed = True
        self._pending_reads.append(read)

    def _read_round_in_flight(self) -> bool:
        return bool(self._pending_reads) and self._pending_reads[0].seq <= self._seq

    def _handle_read_index_request(self, m: ReadIndexRequest) -> None:
        if self.role != Role.LEADER:
            return  # the follower's read times out and is retried against the real leader
        self._register_read(m.context, m.from_id)

    def _release_confirmed_reads(self) -> None:
        if not self._pending_reads:
            return
        acked: dict[int, int] = {peer: p.ack_seq for peer, p in self._progress.items()}
        acked[self.id] = self._seq
        confirmed_seq = committed_index(self.membership, acked)
        while self._pending_reads and self._pending_reads[0].seq <= confirmed_seq:
            self._release_read(self._pending_reads.pop(0))

    def _release_read(self, read: _PendingRead) -> None:
        if read.origin == self.id:
            self._ready_reads.append(ReadState(context=read.context, index=read.index))
        else:
            self._send(
                ReadIndexResponse(
                    from_id=self.id, to_id=read.origin, term=self.term, context=read.context,
                    index=read.index,
                )
            )

    # ================================================================ plumbing
    def _flush(self) -> None:
        """Send what this iteration's inputs made necessary, once, however many there were."""
        if self.role != Role.LEADER:
            return
        if self._seq_needed and not self._read_round_in_flight():
            # One confirmation round at a time: reads that arrive while a round is in flight
            # all share the next one, so a read costs a fraction of a heartbeat round under load.
            self._seq_needed = False
            self._seq += 1
            self._broadcast_heartbeat()
        if self._broadcast_needed:
            self._broadcast_needed = False
            for peer in self._progress:
                if peer == self.id or peer in self._lazy:
                    continue
                probing = self._progress[peer].state == ProgressState.PROBE
                self._maybe_send_append(peer, send_if_empty=probing)

    def _send(self, m: Message) -> None:
        if self.role == Role.LEADER and isinstance(m, AppendRequest | SnapshotRequest):
            if isinstance(m, AppendRequest):
                progress = self._progress.get(m.to_id)
                if progress is not None:
                    progress.sent_this_tick = True
                    progress.commit_sent = max(progress.commit_sent, m.commit)
            self._send_now.append(m)
        else:
            self._send_after.append(m)

    def _hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.log.committed)

    def _soft_state(self) -> SoftState:
        return SoftState(role=self.role, leader_id=self.leader_id)

    def _reset_election_timer(self) -> None:
        ticks = self.config.election_ticks
        self._randomized_election_ticks = ticks + self._rng.randrange(ticks)

    def _check_not_in_ready(self) -> None:
        assert not self._ready_outstanding, "the core was called between ready() and advance()"

    def _log(self, fmt: str, *args: object) -> None:
        logger.info("[%d term %d] " + fmt, self.id, self.term, *args)
