"""Client sessions: exactly-once application, deterministic expiry and eviction."""

from __future__ import annotations

import struct
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from kvhelpers import M0, Log, cas, put

from raftkv.core.types import Entry
from raftkv.kv import ApplyStatus, KVStateMachine, SessionConfig
from raftkv.kv.sessions import Session, SessionTable, Verdict


def open_sm(path: Path, **config: int) -> KVStateMachine:
    return KVStateMachine.open(path, initial_membership=M0, sessions=SessionConfig(**config))


def test_retry_is_answered_from_the_table(tmp_path: Path) -> None:
    sm = open_sm(tmp_path / "s")
    log = Log()
    first = sm.apply([log.entry(put(b"k", b"1", client=7, seq=1))])[0]
    sm.apply([log.entry(put(b"k", b"2", client=8, seq=1))])
    retry = sm.apply([log.entry(put(b"k", b"1", client=7, seq=1))])[0]
    assert first.status is ApplyStatus.APPLIED
    assert retry.status is ApplyStatus.DUPLICATE
    assert retry.result == first.result and retry.result is not None and retry.result.index == 1
    assert sm.get(b"k") == b"2"  # the retry did not overwrite client 8's write
    sm.close()
    # ... and after a restart the table still answers.
    sm = KVStateMachine.open(tmp_path / "s")
    again = sm.apply([log.entry(put(b"k", b"1", client=7, seq=1))])[0]
    assert again.status is ApplyStatus.DUPLICATE and again.result == first.result
    assert sm.get(b"k") == b"2"
    sm.close()


def test_retried_cas_is_not_reevaluated(tmp_path: Path) -> None:
    sm = open_sm(tmp_path / "s")
    log = Log()
    out = sm.apply(
        log.entries(
            cas(b"c", b"1", absent=True, client=1, seq=1),
            cas(b"c", b"1", absent=True, client=1, seq=1),
        )
    )
    assert out[1].status is ApplyStatus.DUPLICATE
    assert out[1].result is not None and out[1].result.ok  # same answer as the first time
    sm.close()


def test_out_of_order_within_window_and_expired_below_it(tmp_path: Path) -> None:
    sm = open_sm(tmp_path / "s", window=4)
    log = Log()
    out = sm.apply(
        log.entries(
            put(b"a", b"1", client=5, seq=1),
            put(b"a", b"3", client=5, seq=3),
            put(b"a", b"2", client=5, seq=2),  # late but inside the window: applied once
            put(b"a", b"2", client=5, seq=2),  # now a duplicate
            put(b"a", b"9", client=5, seq=9),  # window is now (5, 9]
            put(b"a", b"3", client=5, seq=3),  # below it: cannot tell
            put(b"a", b"6", client=5, seq=6),  # inside, never applied: applied
        )
    )
    assert [o.status for o in out] == [
        ApplyStatus.APPLIED,
        ApplyStatus.APPLIED,
        ApplyStatus.APPLIED,
        ApplyStatus.DUPLICATE,
        ApplyStatus.APPLIED,
        ApplyStatus.SESSION_EXPIRED,
        ApplyStatus.APPLIED,
    ]
    assert sm.get(b"a") == b"6"
    sm.close()


def test_unknown_client_starts_within_the_window(tmp_path: Path) -> None:
    sm = open_sm(tmp_path / "s", window=4)
    log = Log()
    out = sm.apply(
        log.entries(
            put(b"a", b"1", client=9, seq=5),
            put(b"a", b"1", client=9, seq=2),
            put(b"a", b"2", client=0, seq=0),
            put(b"a", b"3", client=0, seq=0),
        )
    )
    assert [o.status for o in out] == [ApplyStatus.SESSION_EXPIRED] + [ApplyStatus.APPLIED] * 3
    sm.close()


def test_ttl_uses_the_logs_clock(tmp_path: Path) -> None:
    sm = open_sm(tmp_path / "s", ttl_ms=1000)
    log = Log()
    sm.apply(
        log.entries(
            put(b"a", b"1", client=1, seq=1, at_ms=10_000),
            put(b"b", b"1", client=2, seq=1, at_ms=10_500),
        )
    )
    # 999 ms of log time later client 1 is still known.
    out = sm.apply(log.entries(put(b"a", b"1", client=1, seq=1, at_ms=10_999)))
    assert out[0].status is ApplyStatus.DUPLICATE
    # A command stamped 2 s later (from anyone) expires both sessions.
    out = sm.apply(
        log.entries(
            put(b"c", b"1", client=3, seq=1, at_ms=13_000),
            put(b"a", b"1", client=1, seq=99),
            put(b"b", b"1", client=2, seq=1),
        )
    )
    assert [o.status for o in out] == [
        ApplyStatus.APPLIED,
        ApplyStatus.SESSION_EXPIRED,
        ApplyStatus.APPLIED,
    ]
    # A leader with a slow clock cannot move the log's clock backwards.
    out = sm.apply(log.entries(put(b"d", b"1", client=4, seq=1, at_ms=1)))
    assert sm.session_count() == 3
    sm.close()


def test_table_is_bounded_lru(tmp_path: Path) -> None:
    sm = open_sm(tmp_path / "s", max_sessions=3, window=4)
    log = Log()
    sm.apply(log.entries(*(put(b"k", b"v", client=c, seq=1) for c in (1, 2, 3))))
    sm.apply(log.entries(put(b"k", b"v", client=1, seq=2)))  # 1 is now recent; 2 the oldest
    sm.apply(log.entries(put(b"k", b"v", client=4, seq=1)))  # evicts 2
    assert sm.session_count() == 3
    sm.close()
    sm = KVStateMachine.open(tmp_path / "s", sessions=SessionConfig(max_sessions=3, window=4))
    out = sm.apply(
        log.entries(
            put(b"k", b"v", client=2, seq=10),  # evicted: expired
            put(b"k", b"v", client=1, seq=2),  # remembered
            put(b"k", b"v", client=5, seq=1),
        )
    )  # evicts 3 (LRU after reload)
    assert [o.status for o in out] == [
        ApplyStatus.SESSION_EXPIRED,
        ApplyStatus.DUPLICATE,
        ApplyStatus.APPLIED,
    ]
    out = sm.apply(log.entries(put(b"k", b"v", client=3, seq=10)))
    assert out[0].status is ApplyStatus.SESSION_EXPIRED
    sm.close()


commands = st.tuples(
    st.integers(0, 4),  # client (0: no session)
    st.integers(1, 12),  # sequence
    st.sampled_from([b"a", b"b", b"c"]),
    st.integers(0, 3),  # op
    st.integers(0, 5000),  # issued_at_ms
)


def _encode(c: tuple[int, int, bytes, int, int]) -> bytes:
    client, seq, key, op, at = c
    if op == 0:
        return put(key, b"%d" % seq, client=client, seq=seq, at_ms=at)
    if op == 1:
        return cas(key, b"x%d" % seq, absent=True, client=client, seq=seq, at_ms=at)
    if op == 2:
        return cas(key, b"y", expected=b"%d" % (seq - 1), client=client, seq=seq, at_ms=at)
    return b""


@settings(max_examples=40, deadline=None)
@given(
    st.lists(commands, max_size=60),
    st.lists(st.integers(1, 10), min_size=1, max_size=10),
    st.integers(0, 59),
)
def test_replicas_agree_whatever_the_batching_and_restarts(
    cmds: list[tuple[int, int, bytes, int, int]],
    cuts: list[int],
    restart_at: int,
) -> None:
    """Two replicas apply the same log with different batch boundaries, one restarting midway
    and replaying from the start; outcomes, data and sessions end up identical."""
    import tempfile

    log = Log()
    entries: list[Entry] = [log.entry(_encode(c)) for c in cmds]
    config = {"max_sessions": 3, "ttl_ms": 2000, "window": 4}
    with tempfile.TemporaryDirectory() as tmp:
        a = open_sm(Path(tmp) / "a", **config)
        b = open_sm(Path(tmp) / "b", **config)
        out_a = a.apply(entries)
        out_b = []
        pos, i = 0, 0
        while pos < len(entries):
            step = cuts[i % len(cuts)]
            out_b += b.apply(entries[pos : pos + step])
            pos += step
            i += 1
            if pos >= restart_at > pos - step:
                b.close()
                b = KVStateMachine.open(Path(tmp) / "b", sessions=SessionConfig(**config))
                b.apply(entries[:pos])  # a replay of applied entries is skipped
        assert [(o.status, o.result) for o in out_a] == [(o.status, o.result) for o in out_b]
        assert a.scan().items == b.scan().items
        assert a.snapshot_meta() == b.snapshot_meta()
        # With sessions that neither expire nor get evicted, every (client, sequence) is applied
        # at most once. (A session dropped by TTL or LRU forgets; see raftkv.kv.sessions.)
        c = open_sm(Path(tmp) / "c", max_sessions=100, ttl_ms=10**9, window=4)
        applied = [
            (o.client_id, o.sequence)
            for o in c.apply(entries)
            if o.status is ApplyStatus.APPLIED and o.client_id
        ]
        assert len(applied) == len(set(applied))
        for machine in (a, b, c):
            machine.close()


@given(st.lists(st.integers(1, 200), max_size=150))
def test_a_session_record_is_its_remembered_results_in_sequence_order(seqs: list[int]) -> None:
    """The record written at every command (encoded from results kept pre-packed) is exactly
    the remembered results in sequence order, and reads back to the same session."""
    table = SessionTable(SessionConfig(window=16))
    applied = []
    for seq in seqs:  # as the state machine does: only what the table says to apply
        if table.check(7, seq)[0] == Verdict.APPLY:
            applied.append(seq)
            table.record(7, seq, b"r%d" % seq, index=len(applied), clock_ms=len(applied))
    session = table.get(7)
    if session is None:
        return
    data = session.encode()
    head = struct.pack(">QQQI", session.newest, len(applied), len(applied), len(session.results))
    body = b"".join(
        struct.pack(">QI", seq, len(result)) + result
        for seq, result in sorted(session.results.items())
    )
    assert data == head + body
    assert set(session.results) == {s for s in applied if s > session.newest - 16}
    assert Session.decode(7, data).encode() == data
