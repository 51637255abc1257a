"""raftkv.kv's LevelDB state machine behind the driver's and transport's small interfaces.

Rules:
- Outcomes are realigned to the committed entries: raftkv.kv skips entries it already applied
  before a restart (a replay) and reports none for them.
- Staging a received snapshot writes to a fresh directory on the transport's thread, but the
  swap (:meth:`_Staging.commit`) runs on the driver's storage thread, so it never races apply,
  and under ``read_lock``, so reads served from another thread never see a closed database.
  raftkv.kv swaps the state in at commit; the core's Ready.snapshot that follows then only resets
  the log (entries up to the new applied index are skipped by apply as replays).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future

from raftkv.core.types import Entry, Index, SnapshotMeta, Term
from raftkv.kv.snapshot import SnapshotInstaller, snapshot_chunks
from raftkv.kv.state_machine import ApplyOutcome, ApplyStatus, KVStateMachine
from raftkv.node.protocols import SESSION_EXPIRED


class KVAdapter:
    def __init__(self, state: KVStateMachine, *, chunk_bytes: int = 1 << 20) -> None:
        self.state = state
        self._chunk_bytes = chunk_bytes
        self.read_lock = threading.Lock()
        """Held by reads (from the server's reader thread) and by the snapshot swap."""
        self.apply_lock = threading.Lock()
        """Held by apply and by the snapshot swap, so the two never interleave whichever
        thread each runs on (the driver applies on the event loop, swaps run on its storage
        thread). Apply skips entries a swapped-in snapshot already covers."""
        self.submit: Callable[[Callable[[], object]], Future[object]] | None = None
        """Set by the wiring: runs a callable on the driver's storage thread."""

    def applied(self) -> tuple[Index, Term]:
        return self.state.applied_index(), self.state.applied_term()

    def apply(self, entries: Sequence[Entry]) -> Sequence[object]:
        with self.apply_lock:
            outcomes = self.state.apply(entries)
        if len(outcomes) == len(entries):
            return [_result(o) for o in outcomes]
        by_index = {o.index: o for o in outcomes}
        return [_result(by_index[e.index]) if e.index in by_index else None for e in entries]

    def get(self, key: bytes) -> bytes | None:
        with self.read_lock:
            return self.state.get(key)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        with self.read_lock:
            return [self.state.get(key) for key in keys]

    def scan(
        self, *, prefix: bytes, start: bytes, end: bytes, limit: int
    ) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        with self.read_lock:
            page = self.state.scan(prefix=prefix, start=start, end=end, limit=limit)
        return page.items, page.next_start

    def install_snapshot(self, meta: SnapshotMeta) -> None:
        # Already swapped in by _Staging.commit on this same thread.
        assert self.state.applied_index() >= meta.index, "snapshot state was not staged"

    # -- transport side ---------------------------------------------------------------------------
    def open_snapshot(self) -> tuple[Index, Term, Iterator[bytes]]:
        with self.read_lock:  # the point-in-time LevelDB snapshot is taken at the first chunk
            chunks = snapshot_chunks(self.state, self._chunk_bytes)
            first = next(chunks)
        rest = (c.data for c in chunks)
        return first.meta.index, first.meta.term, itertools.chain([first.data], rest)

    def begin_staging(self, announced: SnapshotMeta) -> _Staging:
        assert self.submit is not None, "KVAdapter.submit is wired before the server starts"
        installer = self.submit(lambda: SnapshotInstaller(self.state)).result()
        assert isinstance(installer, SnapshotInstaller)
        return _Staging(installer, self.submit, self.read_lock, self.apply_lock)


class _Staging:
    def __init__(
        self,
        installer: SnapshotInstaller,
        submit: Callable[[Callable[[], object]], Future[object]],
        read_lock: threading.Lock,
        apply_lock: threading.Lock,
    ) -> None:
        self._installer = installer
        self._submit = submit
        self._read_lock = read_lock
        self._apply_lock = apply_lock

    def feed(self, data: bytes) -> None:
        self._installer.feed(data)

    def commit(self) -> SnapshotMeta:
        def swap() -> SnapshotMeta:
            with self._apply_lock, self._read_lock:
                return self._installer.commit()

        meta = self._submit(swap).result()
        assert isinstance(meta, SnapshotMeta)
        return meta

    def abort(self) -> None:
        self._installer.abort()


def _result(outcome: ApplyOutcome) -> object:
    if outcome.status == ApplyStatus.SESSION_EXPIRED:
        return SESSION_EXPIRED
    return outcome.result
