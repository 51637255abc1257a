"""The client-session table: at-most-once application of each (client id, sequence).

Rules (all decisions depend only on the log, so every replica decides the same):
- A session remembers its newest sequence and the results of the sequences applied within the
  last ``window`` sequences. A command whose sequence is remembered is a DUPLICATE: answered with
  the stored result, never applied again. A sequence inside the window that is not remembered was
  never applied (it arrived out of order) and is applied now.
- A sequence at or below ``newest - window`` cannot be told apart from an applied one: the answer is
  SESSION_EXPIRED and nothing is applied. So is a sequence above ``window`` from an unknown client
  (its session expired or was evicted): the client must start a new session (a new client id).
  A sequence <= ``window`` from an unknown client opens a session: a new client's first requests
  may be pipelined and arrive in any order (clients number from 1). The cost: a client evicted
  while it still retries one of its first ``window`` sequences could see it applied twice; the
  TTL and table size make that a client idle for a day or crowded out by ``max_sessions``.
- Expiry runs on the log's clock: the newest ``issued_at_ms`` applied so far (never the local
  clock). A session unused for ``ttl_ms`` of that clock is dropped. The table holds at most
  ``max_sessions``; beyond that the least recently used session is evicted. "Recently" is the log
  index of last use, so eviction order is the same everywhere and after a restart.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from raftkv.kv.errors import StateMachineError

_HEAD = struct.Struct(">QQQI")  # newest sequence, last used ms, last used index, result count
_RESULT = struct.Struct(">QI")  # sequence, result length; the encoded CommandResult follows


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    max_sessions: int = 10_000
    ttl_ms: int = 24 * 3600 * 1000
    window: int = 64
    """How many recent sequences per session are remembered (bounds out-of-order pipelining)."""

    def __post_init__(self) -> None:
        if self.max_sessions < 1 or self.ttl_ms < 1 or self.window < 1:
            raise ValueError("max_sessions, ttl_ms and window must be >= 1")


@dataclass(slots=True, kw_only=True)
class Session:
    client_id: int
    newest: int = 0
    last_used_ms: int = 0
    last_used_index: int = 0
    results: dict[int, bytes] = field(default_factory=dict)
    """Encoded CommandResult per applied sequence in (newest - window, newest]. Change it through
    :meth:`remember` and :meth:`forget`, which keep each result's record encoded."""
    _records: dict[int, bytes] = field(init=False, repr=False, compare=False)
    """Each result as encode() writes it: a session is rewritten at every command it applies,
    and packing all ``window`` results each time was half the cost of applying a write."""

    def __post_init__(self) -> None:
        self._records = {seq: _record(seq, result) for seq, result in self.results.items()}

    def remember(self, sequence: int, result: bytes) -> None:
        self.results[sequence] = result
        self._records[sequence] = _record(sequence, result)

    def forget(self, sequence: int) -> None:
        self.results.pop(sequence, None)
        self._records.pop(sequence, None)

    def encode(self) -> bytes:
        records = self._records
        head = _HEAD.pack(self.newest, self.last_used_ms, self.last_used_index, len(records))
        return head + b"".join([records[seq] for seq in sorted(records)])

    @classmethod
    def decode(cls, client_id: int, data: bytes) -> Session:
        try:
            newest, used_ms, used_index, count = _HEAD.unpack_from(data)
            offset = _HEAD.size
            results: dict[int, bytes] = {}
            for _ in range(count):
                seq, length = _RESULT.unpack_from(data, offset)
                offset += _RESULT.size
                results[seq] = data[offset : offset + length]
                offset += length
        except struct.error as exc:
            raise StateMachineError(f"session {client_id} record is malformed: {exc}") from None
        if offset != len(data):
            raise StateMachineError(f"session {client_id} record has trailing bytes")
        return cls(
            client_id=client_id,
            newest=newest,
            last_used_ms=used_ms,
            last_used_index=used_index,
            results=results,
        )


def _record(sequence: int, result: bytes) -> bytes:
    return _RESULT.pack(sequence, len(result)) + result


class Verdict:
    """What the table says about a command, before it is applied."""

    APPLY = "apply"
    DUPLICATE = "duplicate"
    EXPIRED = "expired"


class SessionTable:
    """Sessions in LRU order (oldest use first). Changes are collected for the next batch."""

    def __init__(self, config: SessionConfig, sessions: Iterable[Session] = ()) -> None:
        self.config = config
        self._sessions: OrderedDict[int, Session] = OrderedDict(
            (s.client_id, s) for s in sorted(sessions, key=lambda s: s.last_used_index)
        )
        self._dirty: set[int] = set()
        self._removed: set[int] = set()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, client_id: int) -> Session | None:
        return self._sessions.get(client_id)

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def check(self, client_id: int, sequence: int) -> tuple[str, bytes | None]:
        """The verdict for (client, sequence), and the stored result if it is a duplicate."""
        session = self._sessions.get(client_id)
        if session is None:
            fresh = sequence <= self.config.window
            return (Verdict.APPLY, None) if fresh else (Verdict.EXPIRED, None)
        if sequence in session.results:
            return Verdict.DUPLICATE, session.results[sequence]
        if sequence > session.newest - self.config.window:
            return Verdict.APPLY, None
        return Verdict.EXPIRED, None

    def touch(self, client_id: int, *, index: int, clock_ms: int) -> None:
        """Mark an existing session used at ``index`` (a duplicate or expired retry)."""
        session = self._sessions.get(client_id)
        if session is not None:
            self._use(session, index, clock_ms)

    def record(
        self, client_id: int, sequence: int, result: bytes, *, index: int, clock_ms: int
    ) -> None:
        """Remember the result of applying (client, sequence) at ``index``."""
        session = self._sessions.get(client_id)
        if session is None:
            session = Session(client_id=client_id)
            self._sessions[client_id] = session
            self._removed.discard(client_id)
        session.remember(sequence, result)
        if sequence > session.newest:
            step = sequence - session.newest
            session.newest = sequence
            floor = sequence - self.config.window
            if step == 1:
                # Every remembered sequence was above the old floor: only one can fall out.
                session.forget(floor)
            else:
                for old in [s for s in session.results if s <= floor]:
                    session.forget(old)
        self._use(session, index, clock_ms)
        while len(self._sessions) > self.config.max_sessions:
            self._drop(next(iter(self._sessions)))

    def expire(self, clock_ms: int) -> None:
        """Drop sessions unused for ``ttl_ms`` of the log's clock (oldest first)."""
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.last_used_ms + self.config.ttl_ms > clock_ms:
                return
            self._drop(oldest.client_id)

    def take_changes(self) -> tuple[list[Session], list[int]]:
        """Sessions to write and client ids to delete since the last call."""
        dirty = [self._sessions[c] for c in sorted(self._dirty)]
        removed = sorted(self._removed)
        self._dirty.clear()
        self._removed.clear()
        return dirty, removed

    def _use(self, session: Session, index: int, clock_ms: int) -> None:
        session.last_used_index = index
        session.last_used_ms = clock_ms
        self._sessions.move_to_end(session.client_id)
        self._dirty.add(session.client_id)

    def _drop(self, client_id: int) -> None:
        del self._sessions[client_id]
        self._dirty.discard(client_id)
        self._removed.add(client_id)
