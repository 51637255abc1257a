"""Codec round trips (Hypothesis) and refusals of malformed peer input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftkv.core.membership import Membership
from raftkv.core.messages import (
    AppendRequest,
    AppendResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotRequest,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from raftkv.core.types import Entry, EntryKind, Index, NodeId, SnapshotMeta, Term
from raftkv.pb import raft_pb2 as pb
from raftkv.transport.codec import (
    MAX_U63,
    CodecError,
    PeerCheck,
    decode,
    decode_peer_message,
    decode_snapshot_header,
    encode,
    encode_peer_message,
    encode_snapshot_header,
)

CLUSTER = "c1"
u63 = st.integers(min_value=0, max_value=MAX_U63)
ids = st.integers(min_value=1, max_value=7)
CHECK = {n: PeerCheck(cluster_id=CLUSTER, self_id=n, known_ids=range(1, 8)) for n in range(1, 8)}


@st.composite
def entries(draw: st.DrawFn, prev: int) -> tuple[Entry, ...]:
    n = draw(st.integers(min_value=0, max_value=5))
    term = draw(st.integers(min_value=1, max_value=100))
    out = []
    for i in range(n):
        term += draw(st.integers(min_value=0, max_value=2))
        out.append(
            Entry(
                term=Term(term),
                index=Index(prev + 1 + i),
                kind=draw(st.sampled_from(list(EntryKind))),
                data=draw(st.binary(max_size=64)),
            )
        )
    return tuple(out)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    src, dst, term = NodeId(draw(ids)), NodeId(draw(ids)), Term(draw(u63))
    kind = draw(st.sampled_from(["vreq", "vresp", "areq", "aresp", "tn", "rreq", "rresp"]))
    if kind == "vreq":
        return VoteRequest(
            from_id=src,
            to_id=dst,
            term=term,
            last_log_index=Index(draw(u63)),
            last_log_term=Term(draw(u63)),
            pre_vote=draw(st.booleans()),
            transfer=draw(st.booleans()),
        )
    if kind == "vresp":
        return VoteResponse(
            from_id=src,
            to_id=dst,
            term=term,
            granted=draw(st.booleans()),
            pre_vote=draw(st.booleans()),
        )
    if kind == "areq":
        prev = draw(st.integers(min_value=0, max_value=1000))
        ents = draw(entries(prev))
        prev_term = draw(st.integers(min_value=0, max_value=ents[0].term if ents else 100))
        term = Term(max(term, ents[-1].term if ents else 0))
        return AppendRequest(
            from_id=src,
            to_id=dst,
            term=term,
            prev_index=Index(prev),
            prev_term=Term(prev_term),
            entries=ents,
            commit=Index(draw(u63)),
            seq=draw(u63),
        )
    if kind == "aresp":
        return AppendResponse(
            from_id=src,
            to_id=dst,
            term=term,
            success=draw(st.booleans()),
            match_index=Index(draw(u63)),
            hint_index=Index(draw(u63)),
            hint_term=Term(draw(u63)),
            seq=draw(u63),
        )
    if kind == "tn":
        return TimeoutNow(from_id=src, to_id=dst, term=term)
    if kind == "rreq":
        return ReadIndexRequest(from_id=src, to_id=dst, term=term, context=draw(u63))
    return ReadIndexResponse(
        from_id=src, to_id=dst, term=term, context=draw(u63), index=Index(draw(u63))
    )


@given(messages())
def test_round_trip_through_bytes(m: Message) -> None:
    method, request = encode(m, CLUSTER)
    wire = type(request).FromString(request.SerializeToString())
    assert decode(method, wire, CHECK[m.to_id]) == m


@given(
    st.builds(
        SnapshotMeta,
        index=u63.map(Index),
        term=u63.map(Term),
        membership=st.builds(
            Membership, voters=st.frozensets(ids, min_size=1), learners=st.just(frozenset())
        ),
    )
)
def test_snapshot_header_round_trip(meta: SnapshotMeta) -> None:
    m = SnapshotRequest(from_id=NodeId(1), to_id=NodeId(2), term=Term(3), meta=meta)
    chunk = pb.SnapshotChunk.FromString(encode_snapshot_header(m, CLUSTER).SerializeToString())
    assert decode_snapshot_header(chunk, CHECK[2]) == m


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_refuse_cleanly(data: bytes) -> None:
    try:
        request = pb.AppendRequest.FromString(data)
    except Exception:  # protobuf's DecodeError: rejected before the codec sees it
        return
    with contextlib.suppress(CodecError):
        decode("AppendEntries", request, CHECK[1])


def _header(**kw: object) -> pb.PeerHeader:
    fields: dict[str, object] = {"cluster_id": CLUSTER, "from_id": 2, "to_id": 1, "term": 1}
    fields.update(kw)
    return pb.PeerHeader(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (_header(cluster_id="other"), "other_cluster"),
        (_header(from_id=99), "unknown_node"),
        (_header(to_id=3), "misaddressed"),
        (_header(term=1 << 63), "malformed"),
    ],
)
def test_header_refusals(header: pb.PeerHeader, reason: str) -> None:
    with pytest.raises(CodecError) as info:
        decode("TimeoutNow", pb.TimeoutNowRequest(header=header), CHECK[1])
    assert info.value.reason == reason


def test_entries_must_be_contiguous() -> None:
    request = pb.AppendRequest(
        header=_header(term=5),
        prev_index=3,
        entries=[pb.Entry(term=1, index=4), pb.Entry(term=1, index=6)],
    )
    with pytest.raises(CodecError, match="breaks the run"):
        decode("AppendEntries", request, CHECK[1])


def test_unknown_entry_kind_is_refused() -> None:
    request = pb.AppendRequest(
        header=_header(term=5),
        prev_index=0,
        entries=[pb.Entry(term=1, index=1, kind=7)],  # type: ignore[arg-type]
    )
    with pytest.raises(CodecError, match="unknown kind"):
        decode("AppendEntries", request, CHECK[1])


def test_wrong_method_for_message_is_refused() -> None:
    with pytest.raises(CodecError, match="does not take"):
        decode("Vote", pb.TimeoutNowRequest(header=_header()), CHECK[1])


@given(messages())
def test_stream_message_round_trip(m: Message) -> None:
    wire = pb.PeerMessage.FromString(encode_peer_message(m, CLUSTER).SerializeToString())
    assert decode_peer_message(wire, CHECK[m.to_id]) == m


def test_empty_stream_message_is_refused() -> None:
    with pytest.raises(CodecError, match="empty"):
        decode_peer_message(pb.PeerMessage(), CHECK[1])
