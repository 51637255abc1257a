"""Core messages <-> protobuf: the gateway where untrusted peer input is validated, once.

Rules:
- ``encode`` never fails for a message the core produced; ``decode_*`` raises :class:`CodecError`
  (never anything else) for input that is malformed, out of range or addressed to someone else.
- Past this module, a message is a core dataclass whose fields are in range; nothing downstream
  re-validates.
- Entry payloads stay ``bytes``; no copies beyond what protobuf itself makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

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

MAX_U63: Final = (1 << 63) - 1
"""Terms, indexes, ids and contexts must fit a signed 64-bit integer (what storage encodes)."""

_KINDS: Final = {int(k): k for k in EntryKind}

PbMessage = (
    pb.VoteRequest
    | pb.VoteResponse
    | pb.AppendRequest
    | pb.AppendResponse
    | pb.TimeoutNowRequest
    | pb.ReadIndexRequest
    | pb.ReadIndexResponse
)


class CodecError(ValueError):
    """A peer sent something this node refuses; the message says what (for logs and metrics)."""

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason
        """A bounded label (metrics): malformed, other_cluster, unknown_node or misaddressed."""


# ---------------------------------------------------------------- encode (trusted input)
def _header(cluster_id: str, m: Message) -> pb.PeerHeader:
    return pb.PeerHeader(cluster_id=cluster_id, from_id=m.from_id, to_id=m.to_id, term=m.term)


def encode_entry(e: Entry) -> pb.Entry:
    return pb.Entry(term=e.term, index=e.index, kind=int(e.kind), data=e.data)  # type: ignore[arg-type]


def encode_membership(m: Membership) -> pb.Membership:
    return pb.Membership(
        voters=sorted(m.voters), learners=sorted(m.learners), outgoing=sorted(m.outgoing)
    )


def encode_snapshot_meta(meta: SnapshotMeta) -> pb.SnapshotMeta:
    return pb.SnapshotMeta(
        index=meta.index, term=meta.term, membership=encode_membership(meta.membership)
    )


def encode(m: Message, cluster_id: str) -> tuple[str, PbMessage]:
    """The RPC method name and request for a core message (not for SnapshotRequest, which the
    transport streams; see :func:`encode_snapshot_header`)."""
    h = _header(cluster_id, m)
    match m:
        case VoteRequest():
            return "RequestVote", pb.VoteRequest(
                header=h,
                last_log_index=m.last_log_index,
                last_log_term=m.last_log_term,
                pre_vote=m.pre_vote,
                transfer=m.transfer,
            )
        case VoteResponse():
            return "Vote", pb.VoteResponse(header=h, granted=m.granted, pre_vote=m.pre_vote)
        case AppendRequest():
            return "AppendEntries", pb.AppendRequest(
                header=h,
                prev_index=m.prev_index,
                prev_term=m.prev_term,
                entries=[encode_entry(e) for e in m.entries],
                commit=m.commit,
                seq=m.seq,
            )
        case AppendResponse():
            return "AppendEntriesResult", pb.AppendResponse(
                header=h,
                success=m.success,
                match_index=m.match_index,
                hint_index=m.hint_index,
                hint_term=m.hint_term,
                seq=m.seq,
            )
        case TimeoutNow():
            return "TimeoutNow", pb.TimeoutNowRequest(header=h)
        case ReadIndexRequest():
            return "ReadIndex", pb.ReadIndexRequest(header=h, context=m.context)
        case ReadIndexResponse():
            return "ReadIndexResult", pb.ReadIndexResponse(
                header=h, context=m.context, index=m.index
            )
        case SnapshotRequest():
            raise TypeError("SnapshotRequest travels as an InstallSnapshot stream")


_FIELD_OF_METHOD: Final = {
    "RequestVote": "vote_request",
    "Vote": "vote_response",
    "AppendEntries": "append_request",
    "AppendEntriesResult": "append_response",
    "TimeoutNow": "timeout_now",
    "ReadIndex": "read_index_request",
    "ReadIndexResult": "read_index_response",
}
_METHOD_OF_FIELD: Final = {field: method for method, field in _FIELD_OF_METHOD.items()}


def encode_peer_message(m: Message, cluster_id: str) -> pb.PeerMessage:
    """A message for the ordered Stream RPC (same validation on the way in as the unary ones)."""
    method, request = encode(m, cluster_id)
    wrapper = pb.PeerMessage()
    getattr(wrapper, _FIELD_OF_METHOD[method]).CopyFrom(request)
    return wrapper


def encode_snapshot_header(m: SnapshotRequest, cluster_id: str) -> pb.SnapshotChunk:
    """The first chunk of an InstallSnapshot stream (header and meta, no data yet)."""
    return pb.SnapshotChunk(header=_header(cluster_id, m), meta=encode_snapshot_meta(m.meta))


# ---------------------------------------------------------------- decode (untrusted input)
class PeerCheck:
    """What a receiving node checks on every header: the cluster, the sender, the receiver."""

    __slots__ = ("cluster_id", "known_ids", "self_id")

    def __init__(self, *, cluster_id: str, self_id: int, known_ids: Sequence[int]) -> None:
        self.cluster_id = cluster_id
        self.self_id = self_id
        self.known_ids = frozenset(known_ids)

    def header(self, h: pb.PeerHeader) -> tuple[NodeId, NodeId, Term]:
        if h.cluster_id != self.cluster_id:
            raise CodecError(
                f"message from cluster {h.cluster_id!r}, this node belongs to {self.cluster_id!r}",
                reason="other_cluster",
            )
        if h.from_id not in self.known_ids:
            raise CodecError(f"message from unknown node {h.from_id}", reason="unknown_node")
        if h.to_id != self.self_id:
            raise CodecError(
                f"message for node {h.to_id} reached node {self.self_id}", reason="misaddressed"
            )
        _check_u63("term", h.term)
        return NodeId(h.from_id), NodeId(h.to_id), Term(h.term)


def _check_u63(name: str, value: int) -> int:
    if value > MAX_U63:
        raise CodecError(f"{name} {value} is out of range")
    return value


def decode_entry(e: pb.Entry) -> Entry:
    kind = _KINDS.get(e.kind)
    if kind is None:
        raise CodecError(f"entry {e.index} has unknown kind {e.kind}")
    if e.index == 0:
        raise CodecError("entry index 0 is reserved")
    return Entry(
        term=Term(_check_u63("entry term", e.term)),
        index=Index(_check_u63("entry index", e.index)),
        kind=kind,
        data=e.data,
    )


def decode_entries(prev_index: int, entries: Sequence[pb.Entry]) -> tuple[Entry, ...]:
    """Entries must follow ``prev_index`` contiguously, with terms that never decrease."""
    out = tuple(decode_entry(e) for e in entries)
    last_term = 0
    for offset, entry in enumerate(out):
        if entry.index != prev_index + 1 + offset:
            raise CodecError(f"entry {entry.index} breaks the run after {prev_index}")
        if entry.term < last_term:
            raise CodecError(f"entry {entry.index} has a term lower than the entry before it")
        last_term = entry.term
    return out


def decode_membership(m: pb.Membership) -> Membership:
    for group in (m.voters, m.learners, m.outgoing):
        if len(set(group)) != len(group):
            raise CodecError("membership lists a node twice")
        for node in group:
            if not 0 < node <= MAX_U63:
                raise CodecError(f"membership names invalid node id {node}")
    try:
        return Membership(
            voters=frozenset(m.voters),
            learners=frozenset(m.learners),
            outgoing=frozenset(m.outgoing),
        )
    except ValueError as exc:
        raise CodecError(str(exc)) from exc


def decode_snapshot_meta(m: pb.SnapshotMeta) -> SnapshotMeta:
    membership = decode_membership(m.membership)
    if not membership.voters:
        raise CodecError("snapshot membership has no voters")
    return SnapshotMeta(
        index=Index(_check_u63("snapshot index", m.index)),
        term=Term(_check_u63("snapshot term", m.term)),
        membership=membership,
    )


def decode(method: str, msg: PbMessage, check: PeerCheck) -> Message:
    """Validate and convert one request of the Raft service's unary methods."""
    src, dst, term = check.header(msg.header)
    match method, msg:
        case "RequestVote", pb.VoteRequest():
            return VoteRequest(
                from_id=src,
                to_id=dst,
                term=term,
                last_log_index=Index(_check_u63("last_log_index", msg.last_log_index)),
                last_log_term=Term(_check_u63("last_log_term", msg.last_log_term)),
                pre_vote=msg.pre_vote,
                transfer=msg.transfer,
            )
        case "Vote", pb.VoteResponse():
            return VoteResponse(
                from_id=src, to_id=dst, term=term, granted=msg.granted, pre_vote=msg.pre_vote
            )
        case "AppendEntries", pb.AppendRequest():
            prev = _check_u63("prev_index", msg.prev_index)
            entries = decode_entries(prev, msg.entries)
            if entries and entries[0].term < msg.prev_term:
                raise CodecError("first entry's term is lower than prev_term")
            if entries and entries[-1].term > term:
                raise CodecError("entries from a term after the sender's own")
            return AppendRequest(
                from_id=src,
                to_id=dst,
                term=term,
                prev_index=Index(prev),
                prev_term=Term(_check_u63("prev_term", msg.prev_term)),
                entries=entries,
                commit=Index(_check_u63("commit", msg.commit)),
                seq=_check_u63("seq", msg.seq),
            )
        case "AppendEntriesResult", pb.AppendResponse():
            return AppendResponse(
                from_id=src,
                to_id=dst,
                term=term,
                success=msg.success,
                match_index=Index(_check_u63("match_index", msg.match_index)),
                hint_index=Index(_check_u63("hint_index", msg.hint_index)),
                hint_term=Term(_check_u63("hint_term", msg.hint_term)),
                seq=_check_u63("seq", msg.seq),
            )
        case "TimeoutNow", pb.TimeoutNowRequest():
            return TimeoutNow(from_id=src, to_id=dst, term=term)
        case "ReadIndex", pb.ReadIndexRequest():
            return ReadIndexRequest(
                from_id=src, to_id=dst, term=term, context=_check_u63("context", msg.context)
            )
        case "ReadIndexResult", pb.ReadIndexResponse():
            return ReadIndexResponse(
                from_id=src,
                to_id=dst,
                term=term,
                context=_check_u63("context", msg.context),
                index=Index(_check_u63("index", msg.index)),
            )
    raise CodecError(f"method {method} does not take {type(msg).__name__}")


def decode_peer_message(wrapper: pb.PeerMessage, check: PeerCheck) -> Message:
    field = wrapper.WhichOneof("message")
    if field is None:
        raise CodecError("empty peer message")
    return decode(_METHOD_OF_FIELD[field], getattr(wrapper, field), check)


def method_of(wrapper: pb.PeerMessage) -> str:
    """The unary method name equivalent to a stream message (a bounded metrics label)."""
    return _METHOD_OF_FIELD.get(wrapper.WhichOneof("message") or "", "Unknown")


def decode_snapshot_header(chunk: pb.SnapshotChunk, check: PeerCheck) -> SnapshotRequest:
    """The SnapshotRequest described by an InstallSnapshot stream's first chunk."""
    src, dst, term = check.header(chunk.header)
    if not chunk.HasField("meta"):
        raise CodecError("the first snapshot chunk carries no meta")
    if chunk.offset != 0:
        raise CodecError("the first snapshot chunk must start at offset 0")
    return SnapshotRequest(from_id=src, to_id=dst, term=term, meta=decode_snapshot_meta(chunk.meta))
