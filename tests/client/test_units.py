"""The client's pure pieces: failure classification, routing, backoff, errors, scans, backups."""

from __future__ import annotations

import asyncio
import random
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftkv.client._policy import Backoff, Outcome, classify
from raftkv.client._router import Router, parse_endpoints
from raftkv.client._scan import ScanState
from raftkv.client.backup import BackupError, BackupWriter, crc32c
from raftkv.client.types import ScanPage, to_bytes
from raftkv.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Overloaded,
    ServerError,
    Timeout,
    Unavailable,
    error_for_status,
    status_name_for,
)
from raftkv.pb import kv_pb2

# ---- classification ----


@pytest.mark.parametrize(
    ("code", "details", "server_spoke", "outcome"),
    [
        ("UNAVAILABLE", "no leader known", True, Outcome.DEFINITE),
        ("UNAVAILABLE", "failed to connect to all addresses", False, Outcome.DEFINITE),
        ("UNAVAILABLE", "Connection refused", False, Outcome.DEFINITE),
        ("UNAVAILABLE", "Socket closed", False, Outcome.AMBIGUOUS),
        ("UNAVAILABLE", "recvmsg:Connection reset by peer", False, Outcome.AMBIGUOUS),
        ("UNAVAILABLE", "Socket closed", True, Outcome.AMBIGUOUS),  # relayed by a follower
        ("RESOURCE_EXHAUSTED", "too many requests", True, Outcome.DEFINITE),
        ("RESOURCE_EXHAUSTED", "Received message larger than max", False, Outcome.FATAL),
        ("DEADLINE_EXCEEDED", "Deadline Exceeded", False, Outcome.AMBIGUOUS),
        ("CANCELLED", "", False, Outcome.AMBIGUOUS),
        ("ABORTED", "leadership lost", True, Outcome.AMBIGUOUS),
        ("INVALID_ARGUMENT", "key too long", True, Outcome.FATAL),
        ("NOT_FOUND", "no node 7", True, Outcome.FATAL),
        ("INTERNAL", "boom", True, Outcome.FATAL),
        ("UNKNOWN", "exception", False, Outcome.FATAL),
    ],
)
def test_classify(code: str, details: str, server_spoke: bool, outcome: Outcome) -> None:
    assert classify(code, details, server_spoke=server_spoke) is outcome


# ---- errors ----


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("UNAVAILABLE", Unavailable),
        ("RESOURCE_EXHAUSTED", Overloaded),
        ("DEADLINE_EXCEEDED", Timeout),
        ("INVALID_ARGUMENT", InvalidArgument),
        ("NOT_FOUND", NotFound),
        ("FAILED_PRECONDITION", FailedPrecondition),
        ("INTERNAL", ServerError),
        ("DATA_LOSS", ServerError),
    ],
)
def test_error_for_status(code: str, cls: type[Exception]) -> None:
    error = error_for_status(code, "the details")
    assert type(error) is cls and error.message == "the details"


def test_error_for_grpc_status_code_and_back() -> None:
    import grpc

    error = error_for_status(grpc.StatusCode.INVALID_ARGUMENT, "")
    assert isinstance(error, InvalidArgument) and error.message == "invalid argument"
    assert status_name_for(error) == "INVALID_ARGUMENT"
    assert status_name_for(Overloaded("x")) == "RESOURCE_EXHAUSTED"
    assert isinstance(Overloaded("x"), Unavailable)  # overload, too, means "not applied"


# ---- routing ----


def test_parse_endpoints() -> None:
    assert parse_endpoints(" a:1, b:2,,a:1 ") == ["a:1", "b:2"]
    assert parse_endpoints(["a:1", "b:2"]) == ["a:1", "b:2"]
    with pytest.raises(ValueError, match="at least one"):
        parse_endpoints(" , ")


def test_router_learns_and_forgets_the_leader() -> None:
    router = Router(["a", "b", "c"])
    assert router.pick(leader=True) == "a"
    router.record_success("a", "x")  # the leader may be outside the endpoint list
    assert router.pick(leader=True) == "x"
    assert router.pick(leader=False) == "a"
    assert router.record_failure("x", None) is False
    assert router.leader is None and router.pick(leader=True) == "a"


def test_router_redirect_and_rotation() -> None:
    router = Router(["a", "b", "c"])
    assert router.record_failure("a", "c") is True  # "not me, go to c"
    assert router.pick(leader=True) == "c"
    assert router.pick(leader=False) == "b"
    assert router.record_failure("b", None) is False
    assert router.record_failure("b", None) is False  # a second report moves nothing
    assert router.pick(leader=False) == "c"
    router.record_success("a", None)
    assert router.pick(leader=False) == "a"


def test_router_keeps_a_busy_leader() -> None:
    router = Router(["a", "b"])
    router.record_success("a", "a")
    assert router.record_failure("a", "a") is False  # overloaded, but still the leader
    assert router.leader == "a"


@given(st.integers(min_value=0, max_value=1000), st.integers(min_value=0, max_value=2**32))
def test_backoff_is_bounded_and_jittered(n: int, seed: int) -> None:
    backoff = Backoff(base_s=0.01, max_s=0.5, rng=random.Random(seed))
    ceiling = min(0.5, 0.01 * 2 ** min(n, 30))
    assert ceiling / 2 <= backoff.delay_s(n) <= ceiling


# ---- conversions and scans ----


def test_to_bytes() -> None:
    assert to_bytes("é", "key") == b"\xc3\xa9"
    assert to_bytes(b"\xff", "key") == b"\xff"
    assert to_bytes(bytearray(b"ab"), "key") == b"ab"  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value must be bytes or str, not int"):
        to_bytes(1, "value")  # type: ignore[arg-type]


def page(*keys: str, more: bool, next_start: str = "") -> ScanPage:
    return ScanPage(
        items=tuple((k.encode(), b"") for k in keys), more=more, next_start=next_start.encode()
    )


def test_scan_state_limits_pages() -> None:
    state = ScanState(limit=5, page_size=2, start=None)
    assert state.next_limit() == 2
    assert state.take(page("a", "b", more=True, next_start="c")) == [(b"a", b""), (b"b", b"")]
    assert state.start == b"c" and state.next_limit() == 2
    state.take(page("c", "d", more=True, next_start="e"))
    assert state.next_limit() == 1
    # A server returning more than asked is trimmed to the overall limit.
    assert len(state.take(page("e", "f", more=True, next_start="g"))) == 1
    assert state.next_limit() is None


def test_scan_state_refuses_a_page_that_does_not_advance() -> None:
    state = ScanState(limit=None, page_size=0, start="a")
    assert state.next_limit() == 0  # the server's page size
    with pytest.raises(ServerError, match="does not move forward"):
        state.take(page("a", more=True, next_start="a"))


# ---- backups ----


def test_crc32c_known_vector() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"56789", crc32c(b"1234")) == 0xE3069283


def chunks(data: list[bytes], *, crc: str = "crc32", bad: bool = False) -> list[kv_pb2.BackupChunk]:
    out = [kv_pb2.BackupChunk(meta=kv_pb2.BackupMeta(index=5, term=2, cluster_id="c"))]
    out += [kv_pb2.BackupChunk(data=piece) for piece in data]
    joined = b"".join(data)
    value = crc32c(joined) if crc == "crc32c" else zlib.crc32(joined)
    out.append(kv_pb2.BackupChunk(done=True, crc32c=value ^ bad))
    return out


@pytest.mark.parametrize("crc", ["crc32", "crc32c"])
def test_backup_writes_the_raw_stream(tmp_path: Path, crc: str) -> None:
    path = tmp_path / "b"
    writer = BackupWriter(str(path))
    for chunk in chunks([b"one", b"two", b"three"], crc=crc):
        writer.add(chunk)
    meta = writer.commit()
    assert (meta.index, meta.term, meta.cluster_id) == (5, 2, "c")
    assert writer.size_bytes == 11
    assert path.read_bytes() == b"onetwothree"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_backup_refuses_bad_checksum_and_truncation(tmp_path: Path) -> None:
    writer = BackupWriter(str(tmp_path / "b"))
    with pytest.raises(BackupError, match="checksum"):
        for chunk in chunks([b"x", b"y"], bad=True):
            writer.add(chunk)
    writer.abort()
    assert list(tmp_path.iterdir()) == []

    writer = BackupWriter(str(tmp_path / "b"))
    for chunk in chunks([b"x", b"y"])[:-1]:
        writer.add(chunk)
    with pytest.raises(BackupError, match="ended before"):
        writer.commit()
    writer.abort()

    writer = BackupWriter(str(tmp_path / "b"))
    with pytest.raises(BackupError, match="metadata"):
        writer.add(kv_pb2.BackupChunk(data=b"x"))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_router_stops_following_an_unreachable_hint() -> None:
    router = Router(["a", "b"])
    router.record_success("a", "internal:1")  # an advertised address we cannot reach
    assert router.pick(leader=True) == "internal:1"
    assert router.record_failure("internal:1", None) is False
    router.record_success("a", "internal:1")
    assert router.leader is None and router.pick(leader=True) == "a"
    assert router.record_failure("a", "internal:1") is False  # no redirect to it either


def test_router_failure_with_a_new_hint_replaces_the_leader() -> None:
    router = Router(["a", "b", "c"])
    router.record_success("a", "b")
    assert router.record_failure("b", "c") is True
    assert router.leader == "c"


# ---- session window ----


def test_session_window_bounds_sequences_in_flight() -> None:
    from raftkv.client._session import SessionWindow

    async def main() -> None:
        window = SessionWindow(client_id=7, window=3)
        first = [await window.acquire(1.0) for _ in range(3)]
        assert [(s.client_id, s.sequence) for s in first if s] == [(7, 1), (7, 2), (7, 3)]
        assert await window.acquire(0.01) is None  # 4 - 1 would span more than the window
        assert first[1] is not None and first[0] is not None
        await window.release(first[1])  # releasing a later one does not help the oldest
        assert await window.acquire(0.01) is None
        waiter = asyncio.ensure_future(window.acquire(5.0))
        await window.release(first[0])
        fourth = await waiter
        assert fourth is not None and fourth.sequence == 4

    asyncio.run(main())


def test_session_window_renews_once_per_expired_session() -> None:
    from raftkv.client._session import SessionWindow

    async def main() -> None:
        window = SessionWindow(client_id=7, window=3)
        a, b = await window.acquire(1.0), await window.acquire(1.0)
        assert a is not None and b is not None
        renewed = await window.renew(a)
        assert renewed.client_id != 7 and renewed.sequence == 1
        again = await window.renew(b)  # the same old session: no second renewal
        assert (again.client_id, again.sequence) == (renewed.client_id, 2)

    asyncio.run(main())


def test_session_window_serves_waiters_in_arrival_order() -> None:
    """With more writers than the window, room goes to the writer that has waited longest: a
    free-for-all let some writers wait out their whole deadline (RESOURCE_EXHAUSTED at 256
    concurrent writers) while later arrivals got in."""
    from raftkv.client._session import SessionWindow

    async def main() -> None:
        window = SessionWindow(client_id=7, window=2)
        held = [await window.acquire(1.0) for _ in range(2)]
        waiters = [asyncio.ensure_future(window.acquire(5.0)) for _ in range(4)]
        await asyncio.sleep(0)  # every waiter is queued, in order
        granted: list[int] = []
        while held:
            session = held.pop(0)
            assert session is not None
            await window.release(session)
            await asyncio.sleep(0)  # the granted waiter's task resumes and returns
            done = [w for w in waiters if w.done()]
            assert len(done) == 1, "one freed slot lets exactly one waiter in"
            waiter = done[0]
            waiters.remove(waiter)
            got = waiter.result()
            assert got is not None
            granted.append(got.sequence)
            held.append(got)
            if not waiters:
                break
        assert granted == [3, 4, 5, 6]  # the waiters in the order they came

    asyncio.run(main())


def test_session_window_cancelled_waiter_gives_its_grant_back() -> None:
    """A writer cancelled just after it was granted a sequence must not leave that sequence in
    flight forever (the window would never move again)."""
    from raftkv.client._session import SessionWindow

    async def main() -> None:
        window = SessionWindow(client_id=7, window=1)
        first = await window.acquire(1.0)
        assert first is not None
        cancelled = asyncio.ensure_future(window.acquire(5.0))
        await asyncio.sleep(0)
        await window.release(first)  # grants sequence 2 to the waiter ...
        cancelled.cancel()  # ... which is cancelled before it runs again
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        later = await window.acquire(0.5)
        assert later is not None and later.sequence == 3

    asyncio.run(main())
