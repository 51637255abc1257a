"""The blocking Client against the fake cluster: semantics, routing, retries, sessions, errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from raftkv.client import Client
from raftkv.errors import InvalidArgument, Overloaded, ServerError, Timeout, Unavailable
from tests.client.fakes import FakeCluster, Fault, unused_address

MakeClient = Callable[..., Client]


def sessions(cluster: FakeCluster, method: str) -> list[tuple[int, int]]:
    return [
        (r.request.session.client_id, r.request.session.sequence) for r in cluster.requests(method)
    ]


# ---- semantics and bytes/str ----


def test_put_get_delete_with_str_and_bytes(cluster: FakeCluster, make_client: MakeClient) -> None:
    client = make_client()
    assert client.put("ключ", "значение") is None
    assert client.get("ключ".encode()) == "значение".encode()
    assert client.put(b"k", b"\x00\xff") is None
    assert client.get("k") == b"\x00\xff"
    assert client.get("missing") is None
    assert client.delete("k") is True
    assert client.delete("k") is False
    assert client.get("k") is None


def test_put_return_previous(cluster: FakeCluster, make_client: MakeClient) -> None:
    client = make_client()
    assert client.put("a", "1", return_previous=True) is None
    assert client.put("a", "2", return_previous=True) == b"1"
    assert client.put("a", b"", return_previous=True) == b"2"
    assert client.put("a", "3", return_previous=True) == b""


def test_cas_expected_value_and_absent(cluster: FakeCluster, make_client: MakeClient) -> None:
    client = make_client()
    assert client.cas("c", None, "1") is True
    assert client.cas("c", None, "2") is False
    assert client.cas("c", "wrong", "2") is False
    assert client.cas("c", b"1", "2") is True
    assert client.get("c") == b"2"
    request = cluster.requests("CompareAndSwap")[0].request
    assert request.expect_absent is True


def test_wrong_types_are_programmer_errors(make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(TypeError, match="key must be bytes or str"):
        client.get(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value"):
        client.put("k", 3.5)  # type: ignore[arg-type]


def test_client_side_limits(cluster: FakeCluster, make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(InvalidArgument, match="empty"):
        client.put("", "v")
    with pytest.raises(InvalidArgument, match="4096 bytes"):
        client.get("k" * 4097)
    with pytest.raises(InvalidArgument, match="1048576 bytes"):
        client.put("k", b"x" * (1024 * 1024 + 1))
    assert cluster.state.received == []  # refused before sending


def test_server_invalid_argument_is_raised_with_its_message(
    cluster: FakeCluster, make_client: MakeClient
) -> None:
    client = make_client(max_key_bytes=None)
    with pytest.raises(InvalidArgument, match="over the limit of 4096 bytes"):
        client.put("k" * 5000, "v")
    assert len(cluster.requests("Put")) == 1  # never retried


# ---- scan ----


def test_scan_pages_transparently(cluster: FakeCluster, make_client: MakeClient) -> None:
    client = make_client()
    for i in range(7):
        client.put(f"p/{i}", str(i))
    client.put("q/0", "x")
    assert list(client.scan("p/")) == [(f"p/{i}".encode(), str(i).encode()) for i in range(7)]
    assert len(cluster.requests("Scan")) == 4  # the fake's pages hold 2 items
    starts = [r.request.start for r in cluster.requests("Scan")]
    assert starts == [b"", b"p/2", b"p/4", b"p/6"]


def test_scan_limit_range_and_laziness(cluster: FakeCluster, make_client: MakeClient) -> None:
    client = make_client()
    for key in "abcdefg":
        client.put(key, key.upper())
    assert [k for k, _ in client.scan(limit=3)] == [b"a", b"b", b"c"]
    assert [k for k, _ in client.scan(start="b", end="e")] == [b"b", b"c", b"d"]
    assert list(client.scan(limit=0)) == []
    page = client.scan_page(limit=2)
    assert page.items == ((b"a", b"A"), (b"b", b"B")) and page.more and page.next_start == b"c"
    before = len(cluster.requests("Scan"))
    iterator = client.scan()
    assert next(iterator) == (b"a", b"A")
    assert len(cluster.requests("Scan")) == before + 1  # later pages only when needed


def test_stale_scan_and_get_go_to_any_node(cluster: FakeCluster, make_client: MakeClient) -> None:
    cluster.state.leader = None  # no leader: only stale reads can be served
    cluster.state.store[b"a"] = b"1"
    client = make_client()
    assert client.get("a", stale=True) == b"1"
    assert list(client.scan(stale=True)) == [(b"a", b"1")]
    with pytest.raises(Unavailable, match="no leader known"):
        client.get("a", timeout=0.3)


# ---- routing ----


def test_leader_learned_from_metadata_then_used_directly(
    cluster: FakeCluster, make_client: MakeClient
) -> None:
    cluster.state.leader = 2
    client = make_client()
    client.put("a", "1")  # first to endpoint 0, which "forwards"
    assert client.leader == cluster.addresses[2]
    client.put("b", "2")
    client.get("a")
    assert [r.node for r in cluster.state.received] == [0, 2, 2]


def test_redirect_when_follower_refuses(cluster: FakeCluster, make_client: MakeClient) -> None:
    cluster.state.leader = 1
    cluster.state.forward = False
    client = make_client()
    client.put("a", "1")
    assert [r.node for r in cluster.requests("Put")] == [0, 1]
    assert sessions(cluster, "Put")[0] == sessions(cluster, "Put")[1]
    assert cluster.state.applied == [sessions(cluster, "Put")[0]]


def test_retry_across_endpoints_when_one_is_down(
    cluster: FakeCluster, make_client: MakeClient
) -> None:
    cluster.state.leader = 1
    client = make_client([unused_address(), *cluster.addresses])
    client.put("a", "1")
    assert client.get("a") == b"1"
    assert client.leader == cluster.addresses[1]


def test_cached_leader_dies_client_moves_on(cluster: FakeCluster, make_client: MakeClient) -> None:
    client = make_client()
    client.put("a", "1")
    assert client.leader == cluster.addresses[0]
    cluster.kill(0)
    cluster.state.leader = 1
    assert client.get("a") == b"1"
    assert client.leader == cluster.addresses[1]


# ---- failures ----


def test_nothing_reachable_is_unavailable(make_client: MakeClient) -> None:
    client = make_client([unused_address(), unused_address()], timeout=0.5)
    with pytest.raises(Unavailable):
        client.put("a", "1")


def test_no_leader_is_unavailable_with_the_servers_message(
    cluster: FakeCluster, make_client: MakeClient
) -> None:
    cluster.state.leader = None
    client = make_client(timeout=0.3)
    with pytest.raises(Unavailable, match="no leader known"):
        client.put("a", "1")
    assert len(cluster.requests("Put")) > 1  # retried, with backoff, until the deadline
    assert cluster.state.applied == []
    assert len(set(sessions(cluster, "Put"))) == 1


def test_transient_unavailable_is_retried(cluster: FakeCluster, make_client: MakeClient) -> None:
    cluster.inject(
        Fault("Put", "abort", grpc.StatusCode.UNAVAILABLE, "no leader known"),
        Fault("Put", "abort", grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded"),
    )
    client = make_client()
    client.put("a", "1")
    assert len(cluster.requests("Put")) == 3
    assert cluster.state.store[b"a"] == b"1"


def test_persistent_overload_is_overloaded(cluster: FakeCluster, make_client: MakeClient) -> None:
    cluster.inject(*[Fault("Get", "abort", grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")] * 1000)
    client = make_client(timeout=0.3)
    with pytest.raises(Overloaded, match="busy"):
        client.get("a")


def test_lost_write_response_is_retried_with_the_same_session(
    cluster: FakeCluster, make_client: MakeClient
) -> None:
    # The first attempt is applied but its answer never arrives (attempt timeout), the second
    # fails as if the connection dropped mid-call; the third is answered from the session table.
    cluster.inject(
        Fault("CompareAndSwap", "apply_then_hang"),
        Fault("CompareAndSwap", "apply_then_abort", grpc.StatusCode.UNAVAILABLE, "Socket closed"),
    )
    client = make_client(attempt_timeout=0.2)
    assert client.cas("k", None, "v") is True  # a second application would have returned False
    seen = sessions(cluster, "CompareAndSwap")
    assert len(seen) == 3 and len(set(seen)) == 1
    assert cluster.state.applied == [seen[0]]
    client.put("k2", "v")
    assert sessions(cluster, "Put")[0] == (client.client_id, seen[0][1] + 1)


def test_write_with_unknown_outcome_raises_timeout(
    cluster: FakeCluster, make_client: MakeClient
) -> None:
    cluster.inject(Fault("Put", "apply_then_hang"))
    # Later attempts are refused definitely...
    cluster.inject(*[Fault("Put", "abort", grpc.StatusCode.UNAVAILABLE, "no leader")] * 1000)
    client = make_client(timeout=0.5, attempt_timeout=0.2)
    # ...but the first may have been applied, so the outcome is unknown: Timeout, not Unavailable.
    with pytest.raises(Timeout, match="outcome unknown"):
        client.put("a", "1")


def test_hanging_read_is_timeout(cluster: FakeCluster, make_client: MakeClient) -> None:
    cluster.inject(*[Fault("Get", "hang")] * 10)
    client = make_client(timeout=0.3)
    with pytest.raises(Timeout):
        client.get("a")


def test_server_bug_is_not_retried(cluster: FakeCluster, make_client: MakeClient) -> None:
    cluster.inject(Fault("Get", "abort", grpc.StatusCode.INTERNAL, "boom"))
    client = make_client()
    with pytest.raises(ServerError, match="boom"):
        client.get("a")
    assert len(cluster.requests("Get")) == 1


def test_per_call_timeout_overrides_default(cluster: FakeCluster, make_client: MakeClient) -> None:
    cluster.inject(*[Fault("Get", "hang")] * 10)
    client = make_client(timeout=30.0)
    with pytest.raises(Timeout, match=r"0\.2s"):
        client.get("a", timeout=0.2)


# ---- cluster commands ----


def test_status_prefers_the_leader(cluster: FakeCluster, make_client: MakeClient) -> None:
    cluster.state.leader = 1
    client = make_client()
    client.get("x")  # learn the leader
    status = client.status()
    assert status.up and status.id == 2 and status.role == "leader"
    assert status.address == cluster.addresses[1]
    assert [m.id for m in status.members] == [1, 2, 3]


def test_status_all_marks_down_nodes(cluster: FakeCluster, make_client: MakeClient) -> None:
    cluster.kill(2)
    client = make_client(cluster.addresses[:1])  # the rest is discovered from members
    statuses = client.status_all()
    assert [(s.id, s.up) for s in statuses] == [(1, True), (2, True), (3, False)]
    assert statuses[2].address == cluster.addresses[2] and statuses[2].error


def test_transfer_leader(cluster: FakeCluster, make_client: MakeClient) -> None:
    client = make_client()
    client.get("x")
    assert client.transfer_leader(3) == 3
    assert cluster.state.transfers == [3]
    client.get("x")
    assert client.leader == cluster.addresses[2]


@pytest.mark.parametrize("checksum", ["crc32", "crc32c"])
def test_snapshot_save(
    cluster: FakeCluster, make_client: MakeClient, tmp_path: Path, checksum: str
) -> None:
    cluster.state.snapshot_checksum = checksum
    path = tmp_path / "backup.rkv"
    client = make_client()
    info = client.snapshot_save(str(path))
    assert (info.index, info.term, info.size_bytes, info.cluster_id) == (10, 3, 7, "c1")
    assert path.read_bytes() == b"abcdefg"  # the raw state stream, as `raftkv restore` reads it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.rkv"]


def test_snapshot_with_bad_checksum_leaves_no_file(
    cluster: FakeCluster, make_client: MakeClient, tmp_path: Path
) -> None:
    cluster.state.corrupt_snapshot = True
    path = tmp_path / "backup.rkv"
    client = make_client()
    with pytest.raises(ServerError, match="checksum"):
        client.snapshot_save(str(path))
    assert list(tmp_path.iterdir()) == []


def test_closed_client_refuses(make_client: MakeClient) -> None:
    client = make_client()
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.get("a")


EXPIRED = "the client session expired: this command was not applied; start a new session"


def test_expired_session_is_renewed_when_nothing_was_applied(
    cluster: FakeCluster, make_client: MakeClient
) -> None:
    cluster.inject(Fault("Put", "abort", grpc.StatusCode.FAILED_PRECONDITION, EXPIRED))
    client = make_client()
    old_id = client.client_id
    client.put("a", "1")
    first, second = sessions(cluster, "Put")
    assert first[0] == old_id and second[0] == client.client_id != old_id
    assert second[1] == 1
    assert cluster.state.store[b"a"] == b"1"


def test_expired_session_after_an_ambiguous_attempt_is_timeout(
    cluster: FakeCluster, make_client: MakeClient
) -> None:
    cluster.inject(
        Fault("Put", "hang"),
        Fault("Put", "abort", grpc.StatusCode.FAILED_PRECONDITION, EXPIRED),
    )
    client = make_client(attempt_timeout=0.2)
    with pytest.raises(Timeout, match="outcome unknown"):
        client.put("a", "1")


def test_other_failed_preconditions_are_raised(
    cluster: FakeCluster, make_client: MakeClient
) -> None:
    from raftkv.errors import FailedPrecondition

    cluster.inject(Fault("Put", "abort", grpc.StatusCode.FAILED_PRECONDITION, "transfer running"))
    with pytest.raises(FailedPrecondition, match="transfer running"):
        make_client().put("a", "1")
