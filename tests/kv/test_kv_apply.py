"""State machine semantics: put/delete/cas, no-ops, configuration, bad data, restart resumes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from kvhelpers import M0, Log, cas, delete, put

from raftkv.core.membership import membership_of
from raftkv.core.types import Entry, Index, Term
from raftkv.kv import ApplyStatus, KVStateMachine, StateMachineError


@pytest.fixture
def sm(tmp_path: Path) -> Iterator[KVStateMachine]:
    machine = KVStateMachine.open(tmp_path / "state", initial_membership=M0)
    yield machine
    machine.close()


def test_put_get_delete(sm: KVStateMachine) -> None:
    log = Log()
    out = sm.apply(
        log.entries(put(b"a", b"1"), put(b"a", b"2", previous=True), delete(b"a"), delete(b"a"))
    )
    assert [o.status for o in out] == [ApplyStatus.APPLIED] * 4
    assert [o.index for o in out] == [1, 2, 3, 4]
    r = [o.result for o in out]
    assert r[0] is not None and r[0].ok and not r[0].had_previous and r[0].index == 1
    assert r[1] is not None and r[1].had_previous and r[1].previous == b"1"
    assert r[2] is not None and r[2].ok and r[2].had_previous
    assert r[3] is not None and not r[3].ok
    assert sm.get(b"a") is None
    assert sm.applied_index() == 4
    assert sm.applied_term() == 1


def test_cas(sm: KVStateMachine) -> None:
    log = Log()
    out = sm.apply(
        log.entries(
            cas(b"k", b"v1", absent=True),  # swaps: absent
            cas(b"k", b"v2", absent=True),  # fails: present
            cas(b"k", b"v2", expected=b"nope"),  # fails: mismatch, reports current
            cas(b"k", b"v3", expected=b"v1"),  # swaps
            cas(b"x", b"v", expected=b""),  # fails: absent key never equals expected
        )
    )
    oks = [o.result.ok for o in out if o.result is not None]
    assert oks == [True, False, False, True, False]
    assert out[2].result is not None and out[2].result.previous == b"v1"
    assert out[4].result is not None and not out[4].result.had_previous
    assert sm.get(b"k") == b"v3"
    assert sm.get(b"x") is None


def test_noop_conf_change_and_invalid(sm: KVStateMachine, caplog: pytest.LogCaptureFixture) -> None:
    log = Log()
    m = membership_of([1, 2, 3, 4])
    with caplog.at_level(logging.ERROR):
        out = sm.apply(
            [
                log.entry(b""),
                log.conf([1, 2, 3, 4]),
                log.entry(b"\xff\xff\xff"),
                log.entry(b"\x08\x01"),
                log.entry(put(b"k", b"v")),
            ]
        )
    assert [o.status for o in out] == [
        ApplyStatus.NOOP,
        ApplyStatus.CONF_CHANGE,
        ApplyStatus.INVALID,
        ApplyStatus.INVALID,
        ApplyStatus.APPLIED,
    ]
    assert out[1].membership == m
    assert sm.membership() == m
    assert sm.snapshot_meta().membership == m
    assert sm.get(b"k") == b"v"
    assert "undecodable" in caplog.text


def test_commands_in_one_batch_see_each_other(sm: KVStateMachine) -> None:
    log = Log()
    out = sm.apply(
        log.entries(
            put(b"k", b"1"),
            cas(b"k", b"2", expected=b"1"),
            cas(b"k", b"3", expected=b"2"),
            delete(b"k"),
            cas(b"k", b"4", absent=True),
        )
    )
    assert all(o.result is not None and o.result.ok for o in out)
    assert sm.get(b"k") == b"4"


def test_restart_resumes_after_applied_index(tmp_path: Path) -> None:
    log = Log()
    entries = log.entries(*(put(b"k%d" % i, b"%d" % i) for i in range(10)))
    sm = KVStateMachine.open(tmp_path / "s", initial_membership=M0)
    sm.apply(entries[:6])
    sm.close()
    sm = KVStateMachine.open(tmp_path / "s")
    assert sm.applied_index() == 6
    # A replay from before the applied index skips what was applied.
    out = sm.apply(entries[3:])
    assert [o.index for o in out] == [7, 8, 9, 10]
    assert sm.applied_index() == 10
    with pytest.raises(StateMachineError, match="do not follow applied index 10"):
        sm.apply([Entry(term=Term(1), index=Index(12), data=put(b"x", b"y"))])
    sm.close()


def test_missing_state_db_refused(tmp_path: Path) -> None:
    with pytest.raises(StateMachineError, match="does not exist"):
        KVStateMachine.open(tmp_path / "state")


def test_sync_advances_durable_index(sm: KVStateMachine) -> None:
    sm.apply(Log().entries(put(b"a", b"b")))
    assert sm.durable_applied_index() == 0
    assert sm.sync() == 1
    assert sm.durable_applied_index() == 1
