"""In-memory log store and state machine: for tests, and until the LevelDB ones are wired in.

The state machine applies ``raftkv.v1.Command`` payloads with the same semantics as raftkv.kv:
put / delete / compare-and-swap, and a session table (client id -> last sequence and result) so a
retried command is answered, not applied twice.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator, Sequence

from raftkv.core.membership import Membership
from raftkv.core.storage import MemoryStorage
from raftkv.core.types import Entry, EntryKind, HardState, Index, SnapshotMeta, Term
from raftkv.pb import kv_pb2

_LEN = struct.Struct(">I")
_POINT = struct.Struct(">QQ")  # a snapshot stream starts with its applied index and term


class _MemoryStaging:
    def __init__(self, machine: MemoryStateMachine, announced: SnapshotMeta) -> None:
        self._machine = machine
        self._announced = announced
        self._parts: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self._parts.append(data)

    def commit(self) -> SnapshotMeta:
        body = b"".join(self._parts)
        index, term = _POINT.unpack_from(body)
        self._machine._staged = {(index, term): body}
        return SnapshotMeta(
            index=Index(index), term=Term(term), membership=self._announced.membership
        )

    def abort(self) -> None:
        self._parts = []


class MemoryLogStore(MemoryStorage):
    """:class:`MemoryStorage` plus the driver's ``save``."""

    def __init__(self, membership: Membership) -> None:
        super().__init__(membership)

    def save(
        self,
        *,
        hard_state: HardState | None = None,
        entries: Sequence[Entry] = (),
        snapshot: SnapshotMeta | None = None,
    ) -> None:
        if snapshot is not None:
            self.apply_snapshot(snapshot)
        if entries:
            self.append(entries)
        if hard_state is not None:
            self.set_hard_state(hard_state)


def apply_command(
    data: dict[bytes, bytes], cmd: kv_pb2.Command, index: Index
) -> kv_pb2.CommandResult:
    """One command's effect on ``data`` (shared rules; the real ones live in raftkv.kv)."""
    op = cmd.WhichOneof("op")
    if op == "put":
        prev = data.get(cmd.put.key)
        data[cmd.put.key] = cmd.put.value
        if cmd.put.return_previous and prev is not None:
            return kv_pb2.CommandResult(ok=True, had_previous=True, previous=prev, index=index)
        return kv_pb2.CommandResult(ok=True, had_previous=prev is not None, index=index)
    if op == "delete":
        existed = data.pop(cmd.delete.key, None) is not None
        return kv_pb2.CommandResult(ok=existed, index=index)
    if op == "cas":
        cur = data.get(cmd.cas.key)
        matches = cur is None if cmd.cas.expect_absent else cur == cmd.cas.expected
        if matches:
            data[cmd.cas.key] = cmd.cas.value
            return kv_pb2.CommandResult(ok=True, index=index)
        return kv_pb2.CommandResult(
            ok=False, had_previous=cur is not None, previous=cur or b"", index=index
        )
    return kv_pb2.CommandResult(ok=False, index=index)


class MemoryCompactor:
    """Compacts a :class:`MemoryLogStore` behind a state machine's applied index."""

    def __init__(
        self, store: MemoryLogStore, machine: MemoryStateMachine, *, threshold: int, trailing: int
    ) -> None:
        self._store, self._machine = store, machine
        self._threshold, self._trailing = threshold, trailing

    def maybe_compact(self) -> Index | None:
        start = self._store.snapshot_meta().index
        target = Index(self._machine.applied()[0] - self._trailing)
        if self._store.last_index() - start <= self._threshold or target <= start:
            return None
        membership = self._store.snapshot_meta().membership
        for index, config in self._store.membership_history():
            if index <= target:
                membership = config
        self._store.compact(target, membership)
        return target


class MemoryStateMachine:
    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._sessions: dict[int, tuple[int, kv_pb2.CommandResult]] = {}
        self._applied = (Index(0), Term(0))
        self._staged: dict[tuple[int, int], bytes] = {}

    def applied(self) -> tuple[Index, Term]:
        return self._applied

    def apply(self, entries: Sequence[Entry]) -> Sequence[object]:
        outcomes: list[object] = []
        for entry in entries:
            assert entry.index == self._applied[0] + 1, "entries are applied in order, once"
            self._applied = (entry.index, entry.term)
            if entry.kind != EntryKind.NORMAL or not entry.data:
                outcomes.append(None)
                continue
            cmd = kv_pb2.Command.FromString(entry.data)
            if cmd.client_id:
                seen = self._sessions.get(cmd.client_id)
                if seen is not None and cmd.sequence <= seen[0]:
                    outcomes.append(seen[1])
                    continue
            result = apply_command(self._data, cmd, entry.index)
            if cmd.client_id:
                self._sessions[cmd.client_id] = (cmd.sequence, result)
            outcomes.append(result)
        return outcomes

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        data = self._data
        return [data.get(key) for key in keys]

    def scan(
        self, *, prefix: bytes, start: bytes, end: bytes, limit: int
    ) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        keys = sorted(k for k in list(self._data) if k.startswith(prefix))
        lo = bisect.bisect_left(keys, max(start, prefix))
        hi = bisect.bisect_left(keys, end) if end else len(keys)
        page = keys[lo:hi]
        items = [(k, self._data[k]) for k in page[:limit]]
        return items, (page[limit] if len(page) > limit else None)

    # -- snapshots: length-prefixed key/value pairs, then the session table as commands
    def open_snapshot(self) -> tuple[Index, Term, Iterator[bytes]]:
        parts = [_LEN.pack(len(self._data))]
        for key, value in sorted(self._data.items()):
            parts += [_LEN.pack(len(key)), key, _LEN.pack(len(value)), value]
        for client_id, (seq, result) in sorted(self._sessions.items()):
            blob = result.SerializeToString()
            parts += [struct.pack(">QQI", client_id, seq, len(blob)), blob]
        body = b"".join(parts)
        index, term = self._applied
        body = _POINT.pack(index, term) + body
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        return index, term, chunks

    def begin_staging(self, announced: SnapshotMeta) -> _MemoryStaging:
        return _MemoryStaging(self, announced)

    def install_snapshot(self, meta: SnapshotMeta) -> None:
        body = self._staged.pop((meta.index, meta.term))[_POINT.size :]
        view = memoryview(body)
        (count,) = _LEN.unpack_from(view, 0)
        pos = _LEN.size
        data: dict[bytes, bytes] = {}
        for _ in range(count):
            (klen,) = _LEN.unpack_from(view, pos)
            key = bytes(view[pos + 4 : pos + 4 + klen])
            pos += 4 + klen
            (vlen,) = _LEN.unpack_from(view, pos)
            data[key] = bytes(view[pos + 4 : pos + 4 + vlen])
            pos += 4 + vlen
        sessions: dict[int, tuple[int, kv_pb2.CommandResult]] = {}
        while pos < len(body):
            client_id, seq, blen = struct.unpack_from(">QQI", view, pos)
            pos += 20
            blob = bytes(view[pos : pos + blen])
            sessions[client_id] = (seq, kv_pb2.CommandResult.FromString(blob))
            pos += blen
        self._data, self._sessions = data, sessions
        self._applied = (meta.index, meta.term)
