"""The driver: ONE asyncio task owns the Raft core and does its I/O (see raftkv.core.ready).

Rules this module keeps:
- Only :meth:`Driver._run` touches the core's inputs; other coroutines enqueue typed inputs (bounded
  by :class:`DriverConfig`) and await futures. Peer messages are taken before ticks, so a stalled
  loop does not start an election its inbox would have prevented.
- One iteration takes everything queued: all inputs are stepped, then each Ready is handled in the
  order its docstring demands (send_now -> persist -> send_after_persist -> apply -> reads ->
  advance). So one fsync, one message batch per peer and one apply batch serve every request
  that arrived meanwhile; all the reads of one iteration share ONE core read_index call.
- Apply runs on the loop itself (``apply_on_loop``): the driver waits for it anyway, it is
  Python that holds the GIL, and a thread hand-off costs a wake-up on both sides. The log write
  (one WriteBatch, one fsync) runs on the loop only when the work came after the driver had
  idled (``persist_on_loop_after_idle_s``): a lone write then skips two wake-ups, a quarter of
  its latency on a busy 2-core box. A busy node hands the fsync to the storage thread, so the
  loop takes in the requests that arrive meanwhile and they share the next fsync: on the loop,
  64 unary writers got half the throughput because each fsync then served fewer of them.
  Snapshot installs and compaction run on the storage thread, awaited in order. A snapshot swap
  arrives on that thread from the transport at any time: it touches only the state database,
  and the state machine's apply lock keeps it from interleaving with apply (kv_adapter).
- A proposal resolves when its (index, term) is applied; another term at its index fails it.
  :meth:`Driver.propose_many` hands many proposals over as one input; each still resolves alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import heapq
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from raftkv.core.errors import NotLeader, ProposalDropped
from raftkv.core.messages import Message
from raftkv.core.raft import NodeStatus, RaftNode
from raftkv.core.ready import Ready, Role
from raftkv.core.types import NO_NODE, Entry, Index, NodeId, Term
from raftkv.node.config import DriverConfig
from raftkv.node.errors import (
    NoLeader,
    NotLeaderError,
    Overloaded,
    ProposalFailed,
    ResultUnknown,
    Stopped,
)
from raftkv.node.protocols import Compactor, LogStore, StateMachine, Transport

log = logging.getLogger(__name__)

_MSG, _PROPOSE, _PROPOSE_MANY, _READ, _CALL = range(5)
_MAX_TICKS_PER_ITERATION = 3
_CHECK_READS_EVERY_TICKS = 10


class DriverObserver(Protocol):
    """Hooks for metrics; called on the driver task, so they must be cheap and never raise."""

    def on_persist(self, seconds: float, entries: int) -> None: ...

    def on_apply(self, entries: int) -> None: ...

    def on_proposal(self, result: str) -> None: ...

    def on_commit(self, seconds: float) -> None: ...

    def on_apply_batch(self, seconds: float) -> None: ...

    def on_read_index(self, seconds: float) -> None: ...

    def on_compact(self, index: Index) -> None: ...

    def on_iteration(self, node: RaftNode) -> None: ...


class Driver:
    def __init__(
        self,
        *,
        node: RaftNode,
        log_store: LogStore,
        state_machine: StateMachine,
        transport: Transport,
        config: DriverConfig,
        compactor: Compactor | None = None,
        observer: DriverObserver | None = None,
    ) -> None:
        self.node = node
        self.state_machine = state_machine
        self._store = log_store
        self._transport = transport
        self._config = config
        self._observer = observer
        self._compactor = compactor
        # Stores that take ``sync=`` can write a commit-index-only change without an fsync.
        self._unsynced_saves = "sync" in inspect.signature(log_store.save).parameters
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"raftkv-io-{node.id}")
        self._inbox: deque[tuple[Any, ...]] = deque()
        self._wake = asyncio.Event()
        self._ticks_due = 0
        self._proposals: dict[Index, tuple[Term, asyncio.Future[object], float]] = {}
        self._reads: dict[int, list[asyncio.Future[Index]]] = {}
        self._read_count = 0
        self._ticks_seen = 0
        self._tick_total = 0
        self._read_born: dict[int, int] = {}
        """Context -> tick count when its ReadIndex was asked (to give up on lost answers)."""
        self._read_timeout_ticks = max(1, round(config.read_index_timeout_s / config.tick_s))
        self._next_context = 1
        self._apply_waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiter_seq = 0
        self._change_waiters: list[asyncio.Future[None]] = []
        self.applied_index: Index = state_machine.applied()[0]
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    # ================================================================ lifecycle
    def start(self) -> None:
        assert self._task is None, "started twice"
        self._task = asyncio.create_task(self._run(), name=f"raftkv-driver-{self.node.id}")
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"raftkv-ticker-{self.node.id}")

    async def wait_failed(self) -> BaseException:
        """Returns only if the driver task died (a bug or a storage failure): the node is dead."""
        assert self._task is not None, "not started"
        await asyncio.wait([self._task])
        if self._task.cancelled():
            return asyncio.CancelledError("the driver was cancelled")
        return self._task.exception() or RuntimeError("the driver stopped")

    async def stop(self) -> None:
        """Finish the current iteration, fail everything pending with :class:`Stopped`."""
        self._stopping = True
        self._wake.set()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._fail_everything(Stopped("the node is shutting down"))
        await asyncio.get_running_loop().run_in_executor(None, self._io.shutdown)

    def submit_io(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Queue ``fn`` on the storage thread from any thread (e.g. a snapshot swap)."""
        return self._io.submit(fn)

    async def run_io(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on the storage thread, after every storage call queued before it."""
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    # ================================================================ inputs
    def deliver(self, message: Message) -> None:
        """A peer's message (already validated by the transport codec)."""
        if len(self._inbox) >= self._config.max_inbox or self._stopping:
            return  # dropped: Raft retries by protocol
        self._inbox.append((_MSG, message))
        self._wake.set()

    def report_unreachable(self, peer: NodeId) -> None:
        self._enqueue_call(lambda node: node.report_unreachable(peer))

    def report_snapshot(self, peer: NodeId, success: bool) -> None:
        self._enqueue_call(lambda node: node.report_snapshot(peer, success))

    async def propose(self, data: bytes) -> object:
        """Replicate and apply ``data``; returns the state machine's outcome for it."""
        self._proposal_room()
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._put((_PROPOSE, data, fut))
        return await fut

    def propose_many(self, datas: Sequence[bytes]) -> list[asyncio.Future[object]]:
        """Replicate and apply every one of ``datas``, in order, as ONE input (one inbox item,
        one propose loop in the core). Each future resolves like :meth:`propose`'s result: the
        state machine's outcome for its own entry, or its own error. Those that do not fit under
        ``max_pending_proposals`` fail with :class:`Overloaded` at once; if none fit, raises it.
        Cancelling a future before the driver takes it withdraws that one command."""
        room = self._proposal_room()
        loop = asyncio.get_running_loop()
        futs: list[asyncio.Future[object]] = [loop.create_future() for _ in datas]
        taken = min(room, len(datas))
        self._put((_PROPOSE_MANY, datas[:taken] if taken < len(datas) else datas, futs[:taken]))
        for fut in futs[taken:]:
            fut.set_exception(
                Overloaded(f"{room} more proposals fit under max_pending_proposals; retry")
            )
        return futs

    def _proposal_room(self) -> int:
        """How many more proposals may be pending; Overloaded if none."""
        room = self._config.max_pending_proposals - len(self._proposals)
        if room <= 0:
            raise Overloaded(
                f"{len(self._proposals)} proposals are pending (limit max_pending_proposals)"
            )
        return room

    async def read_index(self) -> Index:
        """A linearizable read point; returns once the local state has applied through it."""
        if self._read_count >= self._config.max_pending_reads:
            raise Overloaded(f"{self._read_count} reads are pending (limit max_pending_reads)")
        fut: asyncio.Future[Index] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        self._put((_READ, fut))
        index = await fut
        await self.wait_applied(index)
        if self._observer is not None:
            self._observer.on_read_index(time.perf_counter() - started)
        return index

    async def wait_applied(self, index: int) -> None:
        if self.applied_index >= index:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter_seq += 1
        heapq.heappush(self._apply_waiters, (index, self._waiter_seq, fut))
        await fut

    async def call(self, fn: Callable[[RaftNode], object]) -> object:
        """Run ``fn(core)`` on the driver task between iterations (conf changes, transfers)."""
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._put((_CALL, fn, fut))
        return await fut

    async def wait_for_change(self, timeout_s: float) -> None:
        """Wait until the role or leader changes (or the timeout passes)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._change_waiters.append(fut)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(fut), timeout_s)

    def status(self) -> NodeStatus:
        return self.node.status()

    def _put(self, item: tuple[Any, ...]) -> None:
        if self._stopping:
            raise Stopped("the node is shutting down")
        if len(self._inbox) >= self._config.max_inbox:
            raise Overloaded(f"the node's inbox is full ({self._config.max_inbox} inputs)")
        self._inbox.append(item)
        self._wake.set()

    def _enqueue_call(self, fn: Callable[[RaftNode], object]) -> None:
        if not self._stopping:
            self._inbox.append((_CALL, fn, None))
            self._wake.set()

    # ================================================================ the loop
    async def _tick_loop(self) -> None:
        interval = self._config.tick_s
        next_at = time.monotonic() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            now = time.monotonic()
            if next_at < now - 1.0:
                next_at = now + interval  # the loop was stalled: do not replay a backlog
            self._ticks_due += 1
            self._wake.set()

    async def _run(self) -> None:
        quiet_after = self._config.persist_on_loop_after_idle_s
        done_at = time.monotonic()
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            try:
                self._take_inputs()
                if self.node.has_ready():
                    # Work that came after an idle spell writes its log on the loop.
                    persist_on_loop = 0 <= quiet_after <= time.monotonic() - done_at
                    while self.node.has_ready() and not self._stopping:
                        await self._handle_ready(self.node.ready(), persist_on_loop)
                    done_at = time.monotonic()
            except Exception:
                log.critical("the driver failed; stopping the node", exc_info=True)
                self._stopping = True
                raise
            if self._observer is not None:
                self._observer.on_iteration(self.node)

    def _take_inputs(self) -> None:
        node = self.node
        reads: list[asyncio.Future[Index]] = []
        inbox = self._inbox
        budget = self._config.max_inputs_per_iteration  # a propose_many counts each command
        while inbox and budget > 0:
            budget -= 1
            item = inbox.popleft()
            kind = item[0]
            if kind == _MSG:
                node.step(item[1])
            elif kind == _PROPOSE:
                self._take_proposal(item[1], item[2])
            elif kind == _PROPOSE_MANY:
                budget -= len(item[1]) - 1
                for data, fut in zip(item[1], item[2], strict=True):
                    self._take_proposal(data, fut)
            elif kind == _READ:
                if not item[1].done():
                    reads.append(item[1])
            else:
                self._take_call(item[1], item[2])
        if inbox:
            self._wake.set()  # more than one iteration's worth: come back at once
        ticks, self._ticks_due = min(self._ticks_due, _MAX_TICKS_PER_ITERATION), 0
        for _ in range(ticks):
            node.tick()
        self._ticks_seen += ticks
        self._tick_total += ticks
        if self._ticks_seen >= _CHECK_READS_EVERY_TICKS:
            self._ticks_seen = 0
            self._expire_reads()
        if reads:
            self._take_reads(reads)

    def _take_proposal(self, data: bytes, fut: asyncio.Future[object]) -> None:
        if fut.done():
            return  # the caller gave up before it was proposed: nothing was proposed
        try:
            term, index = self.node.propose(data)
        except NotLeader as exc:
            fut.set_exception(NotLeaderError(exc.leader_id) if exc.leader_id else NoLeader())
            self._note_proposal("not_leader")
        except ProposalDropped as exc:
            fut.set_exception(NoLeader(str(exc)))
            self._note_proposal("dropped")
        else:
            self._proposals[index] = (term, fut, time.perf_counter())

    def _take_reads(self, reads: list[asyncio.Future[Index]]) -> None:
        context = self._next_context
        self._next_context += 1
        try:
            self.node.read_index(context)
        except NotLeader:
            for fut in reads:
                if not fut.done():
                    fut.set_exception(NoLeader())
            return
        self._reads[context] = reads
        self._read_born[context] = self._tick_total
        self._read_count += len(reads)

    def _take_call(
        self, fn: Callable[[RaftNode], object], fut: asyncio.Future[object] | None
    ) -> None:
        try:
            result = fn(self.node)
        except Exception as exc:
            if fut is None:
                raise
            if not fut.done():
                fut.set_exception(exc)
        else:
            if fut is not None and not fut.done():
                fut.set_result(result)

    # ================================================================ one Ready
    async def _handle_ready(self, rd: Ready, persist_on_loop: bool) -> None:
        if rd.send_now:
            self._transport.send(rd.send_now)
        if rd.must_persist() and (rd.must_sync or self._unsynced_saves):
            started = time.perf_counter()
            if rd.snapshot is None and persist_on_loop:
                if rd.send_now:
                    # One loop turn first, so the peer senders hand send_now to grpc and the
                    # followers' fsyncs overlap ours instead of following it.
                    await asyncio.sleep(0)
                self._persist(rd)
            else:
                await self.run_io(self._persist, rd)
            if rd.must_sync and self._observer is not None:
                self._observer.on_persist(time.perf_counter() - started, len(rd.entries))
        # else: only the commit index changed, which need not be durable (the core learns it
        # again after a crash), and this store cannot write without an fsync: skip the write.
        if rd.snapshot is not None:
            self.applied_index = rd.snapshot.index
            self._fail_proposals_through(rd.snapshot.index)
        if rd.send_after_persist:
            self._transport.send(rd.send_after_persist)
            if rd.committed:
                # Let the peer senders hand the answers to grpc before this apply: a follower's
                # acknowledgement then leaves without waiting for the commits it just learned.
                await asyncio.sleep(0)
        if rd.committed:
            committed_at = time.perf_counter()
            if self._config.apply_on_loop:
                outcomes = self.state_machine.apply(rd.committed)
            else:
                outcomes = await self.run_io(self.state_machine.apply, rd.committed)
            if self._observer is not None:
                self._observer.on_apply_batch(time.perf_counter() - committed_at)
            self._resolve(rd.committed, outcomes, committed_at)
            await self._maybe_compact()
        for read in rd.reads:
            for fut in self._reads.pop(read.context, ()):
                self._read_count -= 1
                if not fut.done():
                    fut.set_result(read.index)
        for context in rd.dropped_reads:
            for fut in self._reads.pop(context, ()):
                self._read_count -= 1
                if not fut.done():
                    fut.set_exception(NoLeader("leadership changed while confirming the read"))
        self.node.advance(rd)
        self._wake_apply_waiters()
        if rd.soft_state is not None:
            self._on_soft_state()

    async def _maybe_compact(self) -> None:
        """Inside the ready/advance window, so the core is not reading the log meanwhile."""
        if self._compactor is None:
            return
        first = self.node.log.first_index()
        if self.applied_index - first < self._config.snapshot_threshold:
            return  # cheap check on the loop; the compactor decides exactly
        index = await self.run_io(self._compactor.maybe_compact)
        if index is not None and self._observer is not None:
            self._observer.on_compact(index)

    def _persist(self, rd: Ready) -> None:
        """On the storage thread: install a snapshot's state first, then the log write."""
        if rd.snapshot is not None:
            self.state_machine.install_snapshot(rd.snapshot)
        if self._unsynced_saves:
            self._store.save(  # type: ignore[call-arg]
                hard_state=rd.hard_state,
                entries=rd.entries,
                snapshot=rd.snapshot,
                sync=rd.must_sync,
            )
        else:
            self._store.save(hard_state=rd.hard_state, entries=rd.entries, snapshot=rd.snapshot)

    def _resolve(
        self, committed: Sequence[Entry], outcomes: Sequence[object], committed_at: float
    ) -> None:
        self.applied_index = committed[-1].index
        if self._observer is not None:
            self._observer.on_apply(len(committed))
        if not self._proposals:
            return
        for entry, outcome in zip(committed, outcomes, strict=True):
            pending = self._proposals.pop(entry.index, None)
            if pending is None:
                continue
            term, fut, proposed_at = pending
            if term == entry.term:
                self._note_proposal("ok")
                if self._observer is not None:
                    self._observer.on_commit(committed_at - proposed_at)
                if not fut.done():
                    fut.set_result(outcome)
            else:
                self._note_proposal("failed")
                if not fut.done():
                    fut.set_exception(
                        ProposalFailed(
                            f"another leader's entry took log index {entry.index}; not applied"
                        )
                    )

    def _fail_proposals_through(self, index: Index) -> None:
        for slot in [i for i in self._proposals if i <= index]:
            _, fut, _ = self._proposals.pop(slot)
            if not fut.done():
                fut.set_exception(ResultUnknown("a snapshot replaced the log; outcome unknown"))

    def _wake_apply_waiters(self) -> None:
        waiters = self._apply_waiters
        while waiters and waiters[0][0] <= self.applied_index:
            fut = heapq.heappop(waiters)[2]
            if not fut.done():
                fut.set_result(None)

    def _expire_reads(self) -> None:
        """Fail reads whose ReadIndex answer is overdue (a lost message, a deposed leader): a
        read changes nothing, so the caller retries at once instead of waiting out its deadline.
        Also forgets reads whose callers all gave up."""
        now = self._tick_total
        for context, born in list(self._read_born.items()):
            futs = self._reads.get(context)
            if futs is None:
                del self._read_born[context]
            elif now - born >= self._read_timeout_ticks or all(f.done() for f in futs):
                del self._read_born[context]
                self._read_count -= len(self._reads.pop(context))
                for fut in futs:
                    if not fut.done():
                        fut.set_exception(NoLeader("the leader did not confirm the read in time"))

    def _on_soft_state(self) -> None:
        node = self.node
        log.info("role %s, leader %d, term %d", node.role.value, node.leader_id, node.term)
        if node.role != Role.LEADER and self._reads:
            # Reads forwarded to the old leader will never be answered: fail them now (safe to
            # retry: a read changes nothing).
            reads, self._reads, self._read_count = self._reads, {}, 0
            self._read_born.clear()
            for futs in reads.values():
                for fut in futs:
                    if not fut.done():
                        fut.set_exception(NoLeader("the leader changed while confirming the read"))
        waiters, self._change_waiters = self._change_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _note_proposal(self, result: str) -> None:
        if self._observer is not None:
            self._observer.on_proposal(result)

    def _fail_everything(self, exc: Exception) -> None:
        for _, fut, _ in self._proposals.values():
            if not fut.done():
                fut.set_exception(ResultUnknown(str(exc)))
        self._proposals.clear()
        for futs in self._reads.values():
            for rfut in futs:
                if not rfut.done():
                    rfut.set_exception(exc)
        self._reads.clear()
        for _, _, wfut in self._apply_waiters:
            if not wfut.done():
                wfut.set_exception(exc)
        self._apply_waiters.clear()
        while self._inbox:
            item = self._inbox.popleft()
            last = item[-1]
            for ifut in last if isinstance(last, list) else [last]:
                if isinstance(ifut, asyncio.Future) and not ifut.done():
                    ifut.set_exception(exc)

    # ================================================================ facts for the server
    @property
    def is_leader(self) -> bool:
        return self.node.role == Role.LEADER

    @property
    def leader_id(self) -> NodeId:
        return self.node.leader_id

    def knows_leader(self) -> bool:
        return self.node.leader_id != NO_NODE
