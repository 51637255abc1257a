"""The raft log and hard state on LevelDB: the core's ``LogStorage`` plus the driver's writes.

Rules (see raftkv/storage/codec.py for the key layout):
- :meth:`RaftLogStore.save` is ONE WriteBatch: snapshot reset, suffix truncation, new entries
  and hard state land together or not at all, made durable by the journal next to the database
  (``raft.journal``, raftkv.storage.journal) before it returns. The driver sends nothing that
  promises durability before that.
- Entries are ``first_index() .. last_index()``, contiguous, all after the log start; the log is
  verified (LevelDB's checksums, record shapes, contiguity, placement) by one sequential scan when
  opened, and a failure refuses to start with a message naming the directory, the index and the
  problem.
- A log written by format 1 (a CRC-32 inside every entry record) is verified and rewritten to
  format 2 in one synced batch when first opened (codec.py says why); a newer format is refused.
- Reads on the hot path never touch LevelDB: every stored entry's term is kept in memory (8 bytes
  each; compaction bounds the log) and the newest ``tail_entries`` entries are cached whole.
- Memory is updated only after the batch is written, so a failed write leaves the store as it was.
"""

from __future__ import annotations

import logging
from array import array
from collections import deque
from collections.abc import Iterator, Sequence
from functools import partial
from operator import attrgetter
from pathlib import Path

from raftkv.core.membership import Membership, MembershipDecodeError, decode_membership
from raftkv.core.storage import CompactedError, limit_size
from raftkv.core.types import Entry, EntryKind, HardState, Index, SnapshotMeta, Term
from raftkv.storage import codec
from raftkv.storage.errors import (
    CompactionRefusedError,
    CorruptDatabaseError,
    CorruptLogError,
    DataDirError,
    StorageError,
)
from raftkv.storage.journal import DIRECT_BYTES, Journal
from raftkv.storage.leveldb import Batch, LevelDB

log = logging.getLogger(__name__)

DEFAULT_TAIL_ENTRIES = 8192
_TERM_OF = attrgetter("term")
_DATA_OF = attrgetter("data")
_KIND_OF = attrgetter("kind")


class RaftLogStore:
    """A ``LogStorage`` on the LevelDB at ``path`` (normally ``DATA_DIR/raft``). Not thread-safe:
    one owner (the driver's storage executor) calls it."""

    def __init__(
        self,
        db: LevelDB,
        journal: Journal,
        *,
        start: SnapshotMeta,
        hard_state: HardState,
        terms: array[int],
        tail: list[Entry],
        conf: list[tuple[Index, Membership]],
        tail_entries: int,
    ) -> None:
        self._db = db
        self._journal = journal
        self._start = start
        self._hard_state = hard_state
        self._terms = terms  # _terms[i] is the term of entry start.index + 1 + i
        self._tail = tail  # the newest stored entries, contiguous, ending at last_index()
        self._conf = conf  # configuration entries after the log start, in index order
        self._tail_entries = tail_entries

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: Path,
        *,
        initial_membership: Membership | None = None,
        tail_entries: int = DEFAULT_TAIL_ENTRIES,
    ) -> RaftLogStore:
        """Open the log at ``path``; create it (empty, starting at 0 with ``initial_membership``)
        only when ``initial_membership`` is given. Verifies the whole log before returning."""
        if tail_entries < 1:
            raise ValueError("tail_entries must be >= 1")
        path = Path(path)
        exists = (path / "CURRENT").exists()
        if not exists and initial_membership is None:
            raise DataDirError(f"raft log {path} does not exist (the data directory is incomplete)")
        journal_path = journal_path_for(path)
        if not exists:
            # A journal without its database belongs to no log: never replay it into a new one.
            journal_path.unlink(missing_ok=True)
        db = LevelDB.open(path, create=True)
        try:
            journal = Journal.open(journal_path, db)
        except BaseException:
            db.close()
            raise
        try:
            return cls._load(db, journal, initial_membership, tail_entries)
        except BaseException:
            journal.close()
            db.close()
            raise

    @classmethod
    def _load(
        cls,
        db: LevelDB,
        journal: Journal,
        initial_membership: Membership | None,
        tail_entries: int,
    ) -> RaftLogStore:
        raw_start = db.get(codec.LOG_START_KEY)
        if raw_start is None:
            if initial_membership is None:
                raise CorruptLogError(f"raft log {db.path} has no log start record")
            start = SnapshotMeta(index=Index(0), term=Term(0), membership=initial_membership)
            # LevelDB syncs this first write itself: the journal, just opened, holds nothing.
            with db.batch(sync=True) as batch:
                batch.put(codec.FORMAT_KEY, codec.encode_format())
                batch.put(codec.LOG_START_KEY, codec.encode_log_start(start))
                batch.put(codec.HARD_STATE_KEY, codec.encode_hard_state(HardState()))
            log.info("created raft log %s starting with %s", db.path, start.membership.describe())
        else:
            try:
                start = codec.decode_log_start(raw_start)
            except codec.CodecError as exc:
                raise CorruptLogError(f"raft log {db.path}: log start record: {exc}") from None
            _upgrade_format(db)
        raw_hs = db.get(codec.HARD_STATE_KEY)
        try:
            hard_state = HardState() if raw_hs is None else codec.decode_hard_state(raw_hs)
        except codec.CodecError as exc:
            raise CorruptLogError(f"raft log {db.path}: hard state record: {exc}") from None

        terms: array[int] = array("Q")
        raw_tail: deque[tuple[int, bytes]] = deque(maxlen=tail_entries)
        conf: list[tuple[Index, Membership]] = []
        expected = start.index + 1
        # One sequential scan verifies every record. Only the tail is decoded into Entry
        # objects: for a long log, building them is most of the cost of opening.
        try:
            for key, value in _entry_items(db):
                index = codec.index_of_entry_key(key)
                if index != expected:
                    problem = (
                        f"entry {index} is at or below the log start {start.index}"
                        if index < expected
                        else f"gap: entries {expected}..{index - 1} are missing"
                    )
                    raise CorruptLogError(f"raft log {db.path}: index {index}: {problem}")
                try:
                    term, kind = codec.verify_entry(value)
                    if kind == EntryKind.CONF_CHANGE:
                        data = codec.decode_entry(index, value).data
                        conf.append((index, decode_membership(data)))
                except (codec.CodecError, MembershipDecodeError) as exc:
                    raise CorruptLogError(f"raft log {db.path}: index {index}: {exc}") from None
                terms.append(term)
                raw_tail.append((index, value))
                expected += 1
        except CorruptDatabaseError as exc:
            raise CorruptLogError(
                f"raft log {db.path}: index {expected} or the entries after it: {exc}"
            ) from None
        tail = [codec.decode_entry(index, value) for index, value in raw_tail]
        if hard_state.commit > start.index + len(terms):
            log.warning(
                "raft log %s: commit %d is beyond the last index %d",
                db.path,
                hard_state.commit,
                start.index + len(terms),
            )
        log.info(
            "opened raft log %s: entries %d..%d, %s",
            db.path,
            start.index + 1,
            start.index + len(terms),
            hard_state,
        )
        return cls(
            db,
            journal,
            start=start,
            hard_state=hard_state,
            terms=terms,
            tail=tail,
            conf=conf,
            tail_entries=tail_entries,
        )

    @property
    def path(self) -> Path:
        return self._db.path

    def close(self) -> None:
        self._journal.close()
        self._db.close()

    # -- reads (the core's LogStorage protocol) ----------------------------------------------------
    def hard_state(self) -> HardState:
        return self._hard_state

    def snapshot_meta(self) -> SnapshotMeta:
        return self._start

    def first_index(self) -> Index:
        return Index(self._start.index + 1)

    def last_index(self) -> Index:
        return Index(self._start.index + len(self._terms))

    def term(self, index: Index) -> Term:
        offset = index - self._start.index
        if offset < 0:
            raise CompactedError(f"index {index} is compacted (log starts at {self._start.index})")
        if offset == 0:
            return self._start.term
        if offset > len(self._terms):
            raise StorageError(f"index {index} is beyond the last index {self.last_index()}")
        return Term(self._terms[offset - 1])

    def entries(self, lo: Index, hi: Index, max_bytes: int | None = None) -> Sequence[Entry]:
        if lo <= self._start.index:
            raise CompactedError(f"index {lo} is compacted (log starts at {self._start.index})")
        if hi > self.last_index() + 1:
            raise StorageError(f"index {hi - 1} is beyond the last index {self.last_index()}")
        if lo >= hi:
            return []
        tail_first = self._tail[0].index if self._tail else self.last_index() + 1
        if lo >= tail_first:
            return limit_size(self._tail[lo - tail_first : hi - tail_first], max_bytes)
        return self._read_range(lo, hi, tail_first, max_bytes)

    def _read_range(
        self, lo: Index, hi: Index, tail_first: int, max_bytes: int | None
    ) -> Sequence[Entry]:
        """Entries [lo, hi) where lo is older than the tail: from LevelDB, then from the tail."""
        result: list[Entry] = []
        total = 0
        stop = min(hi, tail_first)
        index = lo
        try:
            for key, value in self._db.items(start=codec.entry_key(lo), stop=codec.entry_key(stop)):
                index = codec.index_of_entry_key(key)
                try:
                    entry = codec.decode_entry(index, value)
                except codec.CodecError as exc:
                    raise CorruptLogError(f"raft log {self.path}: index {index}: {exc}") from None
                total += entry.size_bytes()
                if max_bytes is not None and total > max_bytes and result:
                    return result
                result.append(entry)
        except CorruptDatabaseError as exc:
            raise CorruptLogError(f"raft log {self.path}: near index {index}: {exc}") from None
        if len(result) != stop - lo:
            raise CorruptLogError(f"raft log {self.path}: entries {lo}..{stop - 1} are missing")
        for entry in self._tail[: hi - tail_first] if hi > tail_first else ():
            total += entry.size_bytes()
            if max_bytes is not None and total > max_bytes:
                break
            result.append(entry)
        return result

    def membership_history(self) -> Sequence[tuple[Index, Membership]]:
        return list(self._conf)

    def membership_at(self, index: Index) -> Membership:
        """The configuration in force at ``index``: the newest one at or before it."""
        found = self._start.membership
        for conf_index, membership in self._conf:
            if conf_index > index:
                break
            found = membership
        return found

    def membership(self) -> Membership:
        """The newest configuration in the log (committed or not), or the log start's."""
        return self._conf[-1][1] if self._conf else self._start.membership

    # -- writes (the driver's, from each Ready) ---------------------------------------------------
    def save(
        self,
        *,
        hard_state: HardState | None = None,
        entries: Sequence[Entry] = (),
        snapshot: SnapshotMeta | None = None,
    ) -> None:
        """Persist one Ready durably and atomically: ``snapshot`` (reset the log to start after
        it, keeping following entries only if the log matches it), then ``entries`` (replacing any
        stored suffix from ``entries[0].index``), then ``hard_state``."""
        start, last = self._start, self.last_index()
        direct = self._journal.empty and sum(map(len, map(_DATA_OF, entries))) >= DIRECT_BYTES
        batch = self._db.batch(sync=True, journal=None if direct else self._journal)
        keep_after_snapshot = False
        if snapshot is not None:
            keep_after_snapshot = (
                start.index < snapshot.index <= last and self.term(snapshot.index) == snapshot.term
            )
            drop_to = snapshot.index if keep_after_snapshot else last
            _delete_range(batch, start.index + 1, drop_to)
            batch.put(codec.LOG_START_KEY, codec.encode_log_start(snapshot))
            start = snapshot
            if not keep_after_snapshot:
                last = snapshot.index
        new_conf: list[tuple[Index, Membership]] = []
        if entries:
            first = entries[0].index
            if first <= start.index:
                raise StorageError(f"append at {first} is at or below the log start {start.index}")
            if first > last + 1:
                raise StorageError(f"append at {first} leaves a gap after {last}")
            if entries[-1].index != first + len(entries) - 1:
                raise StorageError(f"entries from {first} to {entries[-1].index} have gaps")
            _delete_range(batch, first, last)
            if any(map(_KIND_OF, entries)):  # EntryKind.NORMAL is 0: a C loop finds none
                for entry in entries:
                    if entry.kind is not EntryKind.NORMAL:
                        try:
                            new_conf.append((entry.index, decode_membership(entry.data)))
                        except MembershipDecodeError as exc:
                            raise StorageError(f"conf change entry {entry.index}: {exc}") from None
            batch.put_from(partial(codec.put_entries, entries=entries))
        if hard_state is not None:
            batch.put(codec.HARD_STATE_KEY, codec.encode_hard_state(hard_state))
        if batch.count == 0:
            return
        batch.write()
        # The write is durable: now mirror it in memory.
        if snapshot is not None:
            if keep_after_snapshot:
                self._drop_prefix(snapshot)
            else:
                self._reset(snapshot)
        if entries:
            self._append_memory(entries, new_conf)
        if hard_state is not None:
            self._hard_state = hard_state

    def compact(
        self,
        index: Index,
        membership: Membership | None = None,
        *,
        durably_applied: Index | None = None,
    ) -> None:
        """Drop entries up to ``index`` and record the new log start (its term and
        ``membership``, by default the configuration in force at ``index``). Refuses to go past
        ``durably_applied``, the state machine's synced applied index."""
        if durably_applied is not None and index > durably_applied:
            raise CompactionRefusedError(
                f"raft log {self.path}: cannot compact to {index}: only {durably_applied} is "
                "durably applied"
            )
        if index <= self._start.index:
            return
        if index > self.last_index():
            raise CompactionRefusedError(
                f"raft log {self.path}: cannot compact to {index} beyond the last index "
                f"{self.last_index()}"
            )
        meta = SnapshotMeta(
            index=index,
            term=self.term(index),
            membership=membership if membership is not None else self.membership_at(index),
        )
        batch = self._db.batch(sync=True, journal=self._journal)
        _delete_range(batch, self._start.index + 1, index)
        batch.put(codec.LOG_START_KEY, codec.encode_log_start(meta))
        batch.write()
        self._drop_prefix(meta)
        log.debug("compacted raft log %s through %d", self.path, index)

    # -- memory mirror ----------------------------------------------------------------------------
    def _reset(self, start: SnapshotMeta) -> None:
        self._start = start
        self._terms = array("Q")
        self._tail = []
        self._conf = []

    def _drop_prefix(self, start: SnapshotMeta) -> None:
        """The log now starts after ``start``, which is within the stored entries."""
        del self._terms[: start.index - self._start.index]
        self._tail = [e for e in self._tail if e.index > start.index]
        self._conf = [(i, m) for i, m in self._conf if i > start.index]
        self._start = start

    def _append_memory(
        self, entries: Sequence[Entry], new_conf: list[tuple[Index, Membership]]
    ) -> None:
        first = entries[0].index
        del self._terms[first - self._start.index - 1 :]
        self._terms.extend(map(_TERM_OF, entries))
        if self._tail and self._tail[0].index < first:
            del self._tail[first - self._tail[0].index :]
        else:
            self._tail = []
        self._tail.extend(entries)
        if len(self._tail) > self._tail_entries:
            del self._tail[: len(self._tail) - self._tail_entries]
        self._conf = [(i, m) for i, m in self._conf if i < first]
        self._conf.extend(new_conf)


def journal_path_for(path: Path) -> Path:
    """The journal of the raft log database at ``path``: a file beside it."""
    return path.parent / (path.name + ".journal")


def _entry_items(db: LevelDB) -> Iterator[tuple[bytes, bytes]]:
    prefix = codec.ENTRY_PREFIX
    return db.items(start=prefix, stop=prefix + b"\xff" * len(codec.entry_key(0)))


def _upgrade_format(db: LevelDB) -> None:
    """Bring an existing log to :data:`codec.FORMAT_VERSION`, or refuse a format this code does
    not know. Format 1 is verified (its per-entry CRC-32) and rewritten in one synced batch, so
    a crash leaves either the old log or the new one. The journal is empty here: opening it
    replayed and checkpointed it."""
    raw = db.get(codec.FORMAT_KEY)
    try:
        version = 1 if raw is None else codec.decode_format(raw)
    except codec.CodecError as exc:
        raise CorruptLogError(f"raft log {db.path}: format record: {exc}") from None
    if version == codec.FORMAT_VERSION:
        return
    if version != 1:
        raise DataDirError(
            f"raft log {db.path} has format version {version}; this raftkv reads versions 1 "
            f"and {codec.FORMAT_VERSION} (was it written by a newer raftkv?)"
        )
    count = 0
    with db.batch(sync=True) as batch:
        try:
            for key, value in _entry_items(db):
                index = codec.index_of_entry_key(key)
                try:
                    entry = codec.decode_entry_v1(index, value)
                except codec.CodecError as exc:
                    raise CorruptLogError(f"raft log {db.path}: index {index}: {exc}") from None
                batch.put(key, codec.encode_entry(entry))
                count += 1
        except CorruptDatabaseError as exc:
            raise CorruptLogError(f"raft log {db.path}: {exc}") from None
        batch.put(codec.FORMAT_KEY, codec.encode_format())
    log.info(
        "raft log %s: rewrote %d entries from format 1 to format %d",
        db.path,
        count,
        codec.FORMAT_VERSION,
    )


def _delete_range(batch: Batch, lo: int, hi: int) -> None:
    """Delete entries lo..hi inclusive (nothing if hi < lo)."""
    for index in range(lo, hi + 1):
        batch.delete(codec.entry_key(index))
