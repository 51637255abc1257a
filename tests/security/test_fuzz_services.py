"""Hostile input to a running node's Raft, KV and Cluster services (Hypothesis).

Random bytes go in through a generic channel (identity serializers, so protobuf never cleans them
up on our side); well-formed but hostile messages go in through the stubs. After every example
the node must still be alive, every answer must carry a deliberate status code (never UNKNOWN,
which is what an escaping exception becomes), and after the run the committed data written before
it is intact on every node and the cluster still commits new writes.

Hostile peer messages come from a non-member id, from another cluster, or from members with stale
terms: Raft trusts its members (it is not Byzantine fault tolerant), so a member with a current
term may legitimately change state; what must never happen is that anyone else does.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkv.pb import kv_pb2, raft_pb2
from tests.integration.harness import Cluster

pytestmark = pytest.mark.timeout(300)

SENTINELS = {f"sentinel/{i}".encode(): f"value-{i}".encode() for i in range(20)}
U64 = (1 << 64) - 1
HUGE = st.sampled_from([0, 1, 2, (1 << 31), (1 << 62), (1 << 63) - 1, 1 << 63, U64])
NUMBERS = st.one_of(HUGE, st.integers(0, U64))
EXAMPLES = 60

# Statuses a refusal may carry; UNKNOWN (an exception escaped a handler) never.
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNIMPLEMENTED,
}


def _methods() -> list[tuple[str, bool, bool]]:
    found = []
    for module, names in ((kv_pb2, ("KV", "Cluster")), (raft_pb2, ("Raft",))):
        for name in names:
            service = module.DESCRIPTOR.services_by_name[name]
            for method in service.methods:
                found.append(
                    (
                        f"/{service.full_name}/{method.name}",
                        method.client_streaming,
                        method.server_streaming,
                    )
                )
    return found


METHODS = _methods()
# Backups stream the whole state; leadership transfer is an admin action that changes who leads
# (legitimately): neither is noise worth sending thousands of times.
NOISY = {"/raftkv.v1.Cluster/Snapshot", "/raftkv.v1.Cluster/TransferLeader"}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("fuzz"))
    c.start()
    try:
        leader = c.wait_ready()
        for key, value in SENTINELS.items():
            leader.put(key, value)
        yield c
    finally:
        c.stop()


def _call(
    channel: grpc.Channel, path: str, streaming_in: bool, streaming_out: bool, data: list[bytes]
) -> grpc.StatusCode:
    try:
        if streaming_in:
            channel.stream_unary(path)(iter(data), timeout=3)
        elif streaming_out:
            for _ in channel.unary_stream(path)(data[0], timeout=3):
                pass
        else:
            channel.unary_unary(path)(data[0], timeout=3)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _alive(cluster: Cluster) -> None:
    for node in cluster.nodes:
        assert node.proc is not None and node.proc.poll() is None, f"node {node.id} died"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from([m for m in METHODS if m[0] not in NOISY]),
    data=st.lists(st.binary(max_size=256), min_size=1, max_size=4),
)
def test_random_bytes_to_every_method(
    target: Cluster, method: tuple[str, bool, bool], data: list[bytes]
) -> None:
    code = _call(target.nodes[0].channel, *method, data)
    assert code in ALLOWED, (method[0], code)


def _header(draw: st.DrawFn, cluster_id: str, term_now: int) -> raft_pb2.PeerHeader:
    kind = draw(st.sampled_from(["stranger", "other_cluster", "stale_member"]))
    if kind == "stranger":
        return raft_pb2.PeerHeader(
            cluster_id=cluster_id,
            from_id=draw(st.one_of(st.just(0), st.integers(4, U64))),
            to_id=draw(st.sampled_from([1, 0, 5, U64])),
            term=draw(NUMBERS),
        )
    if kind == "other_cluster":
        return raft_pb2.PeerHeader(
            cluster_id=draw(st.text(max_size=20).filter(lambda c: c != cluster_id)),
            from_id=draw(st.integers(1, 3)),
            to_id=1,
            term=draw(NUMBERS),
        )
    return raft_pb2.PeerHeader(
        cluster_id=cluster_id,
        from_id=draw(st.integers(2, 3)),
        to_id=1,
        term=draw(st.integers(0, max(0, term_now - 1))),
    )


@st.composite
def hostile_peer_messages(draw: st.DrawFn, cluster_id: str, term_now: int) -> tuple[str, object]:
    header = _header(draw, cluster_id, term_now)
    entries = [
        raft_pb2.Entry(
            term=draw(NUMBERS),
            index=draw(NUMBERS),
            kind=draw(st.sampled_from([0, 1, 7])),  # type: ignore[arg-type]
            data=draw(st.sampled_from([b"", b"x" * 100, b"\xff" * (2 << 20)])),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    choices: list[tuple[str, object]] = [
        (
            "RequestVote",
            raft_pb2.VoteRequest(
                header=header,
                last_log_index=draw(NUMBERS),
                last_log_term=draw(NUMBERS),
                pre_vote=draw(st.booleans()),
                transfer=draw(st.booleans()),
            ),
        ),
        ("Vote", raft_pb2.VoteResponse(header=header, granted=True, pre_vote=draw(st.booleans()))),
        (
            "AppendEntries",
            raft_pb2.AppendRequest(
                header=header,
                prev_index=draw(NUMBERS),
                prev_term=draw(NUMBERS),
                entries=entries,
                commit=draw(NUMBERS),
                seq=draw(NUMBERS),
            ),
        ),
        (
            "AppendEntriesResult",
            raft_pb2.AppendResponse(
                header=header,
                success=draw(st.booleans()),
                match_index=draw(NUMBERS),
                hint_index=draw(NUMBERS),
                hint_term=draw(NUMBERS),
                seq=draw(NUMBERS),
            ),
        ),
        ("TimeoutNow", raft_pb2.TimeoutNowRequest(header=header)),
        ("ReadIndex", raft_pb2.ReadIndexRequest(header=header, context=draw(NUMBERS))),
        (
            "ReadIndexResult",
            raft_pb2.ReadIndexResponse(header=header, context=draw(NUMBERS), index=draw(NUMBERS)),
        ),
    ]
    return draw(st.sampled_from(choices))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_hostile_peer_messages(target: Cluster, data: st.DataObject) -> None:
    node = target.nodes[0]
    status = node.status()
    method, message = data.draw(hostile_peer_messages(status.cluster_id, status.term))
    as_stream = data.draw(st.booleans())
    path = "/raftkv.v1.Raft/" + ("Stream" if as_stream else method)
    if as_stream:
        field = {
            "RequestVote": "vote_request",
            "Vote": "vote_response",
            "AppendEntries": "append_request",
            "AppendEntriesResult": "append_response",
            "TimeoutNow": "timeout_now",
            "ReadIndex": "read_index_request",
            "ReadIndexResult": "read_index_response",
        }[method]
        batch = raft_pb2.PeerBatch(messages=[raft_pb2.PeerMessage(**{field: message})])
        code = _call(node.channel, path, True, False, [batch.SerializeToString()])
    else:
        code = _call(node.channel, path, False, False, [message.SerializeToString()])  # type: ignore[attr-defined]
    assert code in ALLOWED, (method, code)
    after = node.status()
    assert after.commit_index >= status.commit_index


@st.composite
def snapshot_streams(draw: st.DrawFn, cluster_id: str, term_now: int) -> list[bytes]:
    header = _header(draw, cluster_id, term_now)
    meta = raft_pb2.SnapshotMeta(
        index=draw(NUMBERS),
        term=draw(NUMBERS),
        membership=raft_pb2.Membership(voters=draw(st.lists(NUMBERS, max_size=3))),
    )
    chunks = [
        raft_pb2.SnapshotChunk(header=header, meta=meta, offset=draw(st.sampled_from([0, 5])))
    ]
    for _ in range(draw(st.integers(0, 4))):
        chunks.append(
            raft_pb2.SnapshotChunk(
                offset=draw(NUMBERS),
                data=draw(st.binary(max_size=64)),
                done=draw(st.booleans()),
                crc32c=draw(st.integers(0, (1 << 32) - 1)),
            )
        )
    return [c.SerializeToString() for c in draw(st.permutations(chunks))]


@settings(
    max_examples=EXAMPLES // 2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_hostile_snapshot_streams(target: Cluster, data: st.DataObject) -> None:
    node = target.nodes[0]
    status = node.status()
    stream = data.draw(snapshot_streams(status.cluster_id, status.term))
    code = _call(node.channel, "/raftkv.v1.Raft/InstallSnapshot", True, False, stream or [b""])
    assert code in ALLOWED - {grpc.StatusCode.OK}, code


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    key=st.one_of(st.binary(max_size=8), st.just(b"k" * 5000)),
    value=st.one_of(st.binary(max_size=8), st.just(b"v" * ((1 << 20) + 1))),
    limit=st.integers(-(1 << 31), 1 << 31),
    consistency=st.integers(0, 9),
)
def test_hostile_kv_values(
    target: Cluster, key: bytes, value: bytes, limit: int, consistency: int
) -> None:
    node = target.nodes[1]  # a follower or the leader: both paths get the same input
    channel = node.channel
    key = b"fuzz/" + key if len(key) < 5000 else key
    requests = [
        ("Put", kv_pb2.PutRequest(key=key, value=value)),
        ("Get", kv_pb2.GetRequest(key=key, consistency=consistency)),  # type: ignore[arg-type]
        ("Scan", kv_pb2.ScanRequest(start=key, limit=max(0, limit))),
        ("CompareAndSwap", kv_pb2.CompareAndSwapRequest(key=key, expected=value, value=value)),
        ("Delete", kv_pb2.DeleteRequest(key=key)),
    ]
    for method, request in requests:
        code = _call(
            channel, f"/raftkv.v1.KV/{method}", False, False, [request.SerializeToString()]
        )
        assert code in ALLOWED, (method, code)


def test_oversized_messages_are_refused_before_parsing(target: Cluster) -> None:
    channel = target.nodes[0].channel
    big = b"\x0a" + b"\xff" * (70 << 20)  # beyond every receive limit
    assert _call(channel, "/raftkv.v1.KV/Put", False, False, [big]) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    # Within the server's message limit (as large as a Raft message) but over a client's.
    put = kv_pb2.PutRequest(key=b"k", value=b"v" * (2 << 20))
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/raftkv.v1.KV/Put")(put.SerializeToString(), timeout=5)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_request_bytes" in (info.value.details() or "")
    garbage = channel.unary_unary("/raftkv.v1.KV/Get")
    with pytest.raises(grpc.RpcError) as info:
        garbage(b"\x00", timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raftkv.v1.GetRequest" in (info.value.details() or "")
    _alive(target)


def test_zz_after_the_fuzz_nothing_committed_changed(target: Cluster) -> None:
    """Runs last in this module (file order): the committed sentinels survive everywhere."""
    _alive(target)
    leader = target.wait_ready()
    leader.put(b"after-fuzz", b"ok")  # still commits
    for node in target.nodes:
        for key, value in SENTINELS.items():
            assert node.get(key) == value, (node.id, key)
    assert "Traceback" not in target.logs()
