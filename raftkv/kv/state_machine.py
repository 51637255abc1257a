"""The replicated KV state machine on the state DB: apply committed entries, serve reads.

Rules:
- :meth:`KVStateMachine.apply` writes ONE batch per call: data, session changes and the metadata
  record (applied index and term, session clock, membership) together, so after a restart the
  state DB says exactly which entries it contains: replay resumes after ``applied_index()`` and
  nothing is applied twice or skipped. The batch is written with sync=False (DESIGN: the log is
  the durable record); :meth:`sync` makes it durable, and compaction calls it first.
- Entries at or below the applied index are skipped (a replay); a gap is a programmer error.
- NORMAL entries with empty data are the leader's no-op; CONF_CHANGE entries set the membership;
  data that does not decode is applied as a no-op with an error logged. Apply never raises for
  bad input: every replica must get through the same log.
- Commands within one call see each other's writes (an overlay over the DB) in log order.
- ``member_address`` commands write the address book (:mod:`raftkv.kv.address_book`) in the
  same batch; :meth:`KVStateMachine.addresses` serves it from memory.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from raftkv.core.membership import Membership, MembershipDecodeError, decode_membership
from raftkv.core.types import Entry, EntryKind, Index, SnapshotMeta, Term
from raftkv.kv import address_book, layout
from raftkv.kv.errors import StateMachineError
from raftkv.kv.sessions import Session, SessionConfig, SessionTable, Verdict
from raftkv.pb import kv_pb2
from raftkv.storage.leveldb import LevelDB, Snapshot
from raftkv.storage.state_dir import recover_state_dir

log = logging.getLogger(__name__)

DEFAULT_SCAN_LIMIT = 1000


class ApplyStatus(enum.Enum):
    APPLIED = "applied"
    """The command was applied now; ``result`` is its result."""
    DUPLICATE = "duplicate"
    """A retry of an applied command; ``result`` is the stored one. Nothing was applied."""
    SESSION_EXPIRED = "session-expired"
    """The session cannot tell whether this command was applied; it was not applied now."""
    NOOP = "noop"
    """The leader's empty no-op entry."""
    CONF_CHANGE = "conf-change"
    """A membership configuration entry; ``membership`` is the new configuration."""
    INVALID = "invalid"
    """Undecodable data, applied as a no-op (an error was logged)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyOutcome:
    index: Index
    term: Term
    status: ApplyStatus
    result: kv_pb2.CommandResult | None = None
    client_id: int = 0
    sequence: int = 0
    membership: Membership | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanPage:
    items: list[tuple[bytes, bytes]]
    next_start: bytes | None
    """Pass as ``start`` (with the same prefix/end) for the next page; None when done."""
    index: Index = Index(0)
    """The applied index of the state the page was read from (one consistent view)."""

    @property
    def more(self) -> bool:
        return self.next_start is not None


def _applied_in(snapshot: Snapshot) -> Index:
    raw = snapshot.get(layout.META_KEY)
    return Index(0) if raw is None else layout.StateMeta.decode(raw).applied_index


class KVStateMachine:
    """Owns ``DATA_DIR/state``. One thread (the driver's storage executor) applies, syncs and
    installs; :meth:`get_with_index` and :meth:`scan` read a consistent LevelDB snapshot and may
    also be called from another thread."""

    def __init__(self, path: Path, db: LevelDB, meta: layout.StateMeta, sessions: SessionTable):
        self.path = path
        self._db = db
        self._meta = meta
        self._durable_index = meta.applied_index
        self._sessions = sessions
        self._addresses = address_book.decode_book(
            db.items(
                start=address_book.ADDRESS_PREFIX,
                stop=layout.prefix_end(address_book.ADDRESS_PREFIX),
            )
        )
        self._staged_addresses: dict[int, str] = {}
        self.addresses_version = 0
        """Bumped whenever :meth:`addresses` may have changed (apply, snapshot install)."""

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: Path,
        *,
        initial_membership: Membership | None = None,
        sessions: SessionConfig | None = None,
    ) -> KVStateMachine:
        """Open the state DB at ``path`` (finishing or discarding an interrupted snapshot install
        first); create it at applied index 0 only when ``initial_membership`` is given."""
        path = Path(path)
        recover_state_dir(path)
        if not (path / "CURRENT").exists() and initial_membership is None:
            raise StateMachineError(f"state DB {path} does not exist (data directory incomplete)")
        db = LevelDB.open(path, create=True)
        try:
            meta, table = cls._load(db, initial_membership, sessions or SessionConfig())
            # Whatever survived the last crash is on disk now: count it as durable.
            db.sync()
        except BaseException:
            db.close()
            raise
        log.info("opened state DB %s at applied index %d", path, meta.applied_index)
        return cls(path, db, meta, table)

    @staticmethod
    def _load(
        db: LevelDB, initial_membership: Membership | None, config: SessionConfig
    ) -> tuple[layout.StateMeta, SessionTable]:
        raw = db.get(layout.META_KEY)
        if raw is None:
            if initial_membership is None:
                raise StateMachineError(f"state DB {db.path} has no metadata record")
            meta = layout.StateMeta(
                applied_index=Index(0),
                applied_term=Term(0),
                clock_ms=0,
                membership=initial_membership,
            )
            with db.batch(sync=True) as batch:
                batch.put(layout.META_KEY, meta.encode())
        else:
            meta = layout.StateMeta.decode(raw)
        sessions = [
            Session.decode(int.from_bytes(key[1:], "big"), value)
            for key, value in db.items(
                start=layout.SESSION_PREFIX, stop=layout.prefix_end(layout.SESSION_PREFIX)
            )
        ]
        return meta, SessionTable(config, sessions)

    def close(self) -> None:
        self._db.close()

    # -- reads ------------------------------------------------------------------------------------
    def applied_index(self) -> Index:
        return self._meta.applied_index

    def applied_term(self) -> Term:
        return self._meta.applied_term

    def durable_applied_index(self) -> Index:
        """The applied index as of the last :meth:`sync` (what a crash cannot take back)."""
        return self._durable_index

    def membership(self) -> Membership:
        return self._meta.membership

    def snapshot_meta(self) -> SnapshotMeta:
        return self._meta.snapshot_meta()

    def addresses(self) -> dict[int, str]:
        """The replicated address book as of the applied index (never mutated: replaced)."""
        return self._addresses

    def session_count(self) -> int:
        return len(self._sessions)

    def get(self, key: bytes) -> bytes | None:
        return self._db.get(layout.data_key(key))

    def get_with_index(self, key: bytes) -> tuple[bytes | None, Index]:
        """The value and the applied index it belongs to, read from one consistent view (safe
        even while another thread applies)."""
        snapshot = self._db.snapshot()
        try:
            return snapshot.get(layout.data_key(key)), _applied_in(snapshot)
        finally:
            snapshot.close()

    def scan(
        self,
        *,
        prefix: bytes = b"",
        start: bytes = b"",
        end: bytes = b"",
        limit: int = DEFAULT_SCAN_LIMIT,
    ) -> ScanPage:
        """Keys with ``prefix`` in [start, end) (empty end: no upper bound), in key order, at most
        ``limit`` (0: the default page size) of them, from one consistent view."""
        limit = limit or DEFAULT_SCAN_LIMIT
        lo = max(prefix, start)
        hi_user = layout.prefix_end(prefix) if prefix else None
        if end and (hi_user is None or end < hi_user):
            hi_user = end
        stop = (
            layout.data_key(hi_user)
            if hi_user is not None
            else layout.prefix_end(layout.DATA_PREFIX)
        )
        items: list[tuple[bytes, bytes]] = []
        snapshot = self._db.snapshot()
        try:
            index = _applied_in(snapshot)
            for key, value in snapshot.items(start=layout.data_key(lo), stop=stop):
                user_key = key[1:]
                if len(items) == limit:
                    return ScanPage(items=items, next_start=user_key, index=index)
                items.append((user_key, value))
        finally:
            snapshot.close()
        return ScanPage(items=items, next_start=None, index=index)

    # -- apply ------------------------------------------------------------------------------------
    def apply(self, entries: Sequence[Entry]) -> list[ApplyOutcome]:
        """Apply committed entries in order, in one batch; one outcome per entry applied."""
        outcomes: list[ApplyOutcome] = []
        overlay: dict[bytes, bytes | None] = {}
        self._staged_addresses = {}
        meta = self._meta
        applied, term = meta.applied_index, meta.applied_term
        clock, membership = meta.clock_ms, meta.membership
        # Entries at or below the applied index were applied before a restart (the log is
        # replayed from applied + 1). The rest must follow on without gaps; checked before
        # anything changes, so a refusal leaves memory and disk as they were.
        fresh = [e for e in entries if e.index > applied]
        if fresh and (fresh[0].index != applied + 1 or fresh[-1].index != applied + len(fresh)):
            raise StateMachineError(
                f"state DB {self.path}: entries {fresh[0].index}..{fresh[-1].index} do not "
                f"follow applied index {applied} contiguously"
            )
        for entry in fresh:
            outcome, clock, membership = self._apply_one(entry, clock, membership, overlay)
            outcomes.append(outcome)
            applied, term = entry.index, entry.term
        if not outcomes:
            return outcomes
        meta = layout.StateMeta(
            applied_index=applied, applied_term=term, clock_ms=clock, membership=membership
        )
        with self._db.batch(sync=False) as batch:
            for key, value in overlay.items():
                if value is None:
                    batch.delete(layout.data_key(key))
                else:
                    batch.put(layout.data_key(key), value)
            dirty, removed = self._sessions.take_changes()
            for session in dirty:
                batch.put(layout.session_key(session.client_id), session.encode())
            for client_id in removed:
                batch.delete(layout.session_key(client_id))
            for node_id, address in self._staged_addresses.items():
                batch.put(address_book.address_key(node_id), address_book.encode_address(address))
            batch.put(layout.META_KEY, meta.encode())
        self._meta = meta
        if self._staged_addresses:
            self._addresses = {**self._addresses, **self._staged_addresses}
            self._staged_addresses = {}
            self.addresses_version += 1
        return outcomes

    def _apply_one(
        self,
        entry: Entry,
        clock: int,
        membership: Membership,
        overlay: dict[bytes, bytes | None],
    ) -> tuple[ApplyOutcome, int, Membership]:
        """Apply one entry; returns its outcome and the (possibly new) clock and membership."""

        def outcome(status: ApplyStatus, **fields: Any) -> ApplyOutcome:
            return ApplyOutcome(index=entry.index, term=entry.term, status=status, **fields)

        if entry.kind == EntryKind.CONF_CHANGE:
            try:
                new_membership = decode_membership(entry.data)
            except MembershipDecodeError as exc:
                log.error(
                    "entry %d: undecodable configuration applied as a no-op: %s", entry.index, exc
                )
                return outcome(ApplyStatus.INVALID), clock, membership
            return (
                outcome(ApplyStatus.CONF_CHANGE, membership=new_membership),
                clock,
                new_membership,
            )
        if not entry.data:
            return outcome(ApplyStatus.NOOP), clock, membership
        command = kv_pb2.Command()
        try:
            command.ParseFromString(entry.data)
        except DecodeError as exc:
            log.error("entry %d: undecodable command applied as a no-op: %s", entry.index, exc)
            return outcome(ApplyStatus.INVALID), clock, membership
        op = command.WhichOneof("op")
        if op is None:
            log.error("entry %d: command without an operation applied as a no-op", entry.index)
            return outcome(ApplyStatus.INVALID), clock, membership
        clock = max(clock, command.issued_at_ms)
        client, seq = command.client_id, command.sequence
        if client:
            self._sessions.expire(clock)
            verdict, stored = self._sessions.check(client, seq)
            if verdict != Verdict.APPLY:
                self._sessions.touch(client, index=entry.index, clock_ms=clock)
                if verdict == Verdict.DUPLICATE:
                    assert stored is not None
                    result = kv_pb2.CommandResult.FromString(stored)
                    status = ApplyStatus.DUPLICATE
                    return (
                        outcome(status, result=result, client_id=client, sequence=seq),
                        clock,
                        membership,
                    )
                status = ApplyStatus.SESSION_EXPIRED
                return outcome(status, client_id=client, sequence=seq), clock, membership
        result = self._execute(command, op, entry.index, overlay)
        if client:
            self._sessions.record(
                client, seq, result.SerializeToString(), index=entry.index, clock_ms=clock
            )
        status = ApplyStatus.APPLIED
        return outcome(status, result=result, client_id=client, sequence=seq), clock, membership

    def _execute(
        self, command: kv_pb2.Command, op: str, index: int, overlay: dict[bytes, bytes | None]
    ) -> kv_pb2.CommandResult:
        def read(key: bytes) -> bytes | None:
            return overlay[key] if key in overlay else self.get(key)

        result = kv_pb2.CommandResult(index=index)
        if op == "put":
            previous = read(command.put.key)
            overlay[command.put.key] = command.put.value
            result.ok = True
            result.had_previous = previous is not None
            if command.put.return_previous and previous is not None:
                result.previous = previous
        elif op == "member_address":
            self._staged_addresses[command.member_address.node_id] = command.member_address.address
            result.ok = True
        elif op == "delete":
            previous = read(command.delete.key)
            overlay[command.delete.key] = None
            result.ok = result.had_previous = previous is not None
        else:
            cas = command.cas
            current = read(cas.key)
            matches = current is None if cas.expect_absent else current == cas.expected
            result.had_previous = current is not None
            if matches:
                overlay[cas.key] = cas.value
                result.ok = True
            elif current is not None:
                result.previous = current
        return result

    # -- durability -------------------------------------------------------------------------------
    def sync(self) -> Index:
        """Make everything applied so far durable; returns the durable applied index."""
        self._db.sync()
        self._durable_index = self._meta.applied_index
        return self._durable_index

    # -- for raftkv.kv.snapshot -------------------------------------------------------------------
    @property
    def db(self) -> LevelDB:
        return self._db

    def reopen(self) -> None:
        """Reopen the state DB from disk (after a snapshot was swapped in under it)."""
        self._db.close()
        reopened = KVStateMachine.open(self.path, sessions=self._sessions.config)
        self._db, self._meta, self._sessions = reopened._db, reopened._meta, reopened._sessions
        self._addresses = reopened._addresses
        self.addresses_version += 1
        self._durable_index = self._meta.applied_index
