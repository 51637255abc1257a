"""Value types the client returns, and the one place keys and values are turned into bytes.

Rules:
- Keys and values cross the API as ``bytes`` or ``str`` (encoded UTF-8); results are always bytes.
- Protobuf messages never leave the client package: results are frozen dataclasses built here.
- Limits are checked before sending so a request that can never succeed fails fast with
  InvalidArgument naming the limit (the server checks again; its limits are authoritative).
"""

from __future__ import annotations

from dataclasses import dataclass

from raftkv.errors import InvalidArgument
from raftkv.pb import kv_pb2

__all__ = [
    "DEFAULT_MAX_KEY_BYTES",
    "DEFAULT_MAX_VALUE_BYTES",
    "FollowerProgress",
    "Limits",
    "MemberInfo",
    "NodeStatus",
    "ScanPage",
    "SnapshotInfo",
    "to_bytes",
]

DEFAULT_MAX_KEY_BYTES = 4 * 1024
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024

BytesLike = bytes | str


def to_bytes(data: BytesLike, what: str) -> bytes:
    """``data`` as bytes (str is encoded UTF-8); any other type is a programmer error."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"{what} must be bytes or str, not {type(data).__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Client-side request limits; ``None`` disables a check (the server still enforces its own)."""

    max_key_bytes: int | None = DEFAULT_MAX_KEY_BYTES
    max_value_bytes: int | None = DEFAULT_MAX_VALUE_BYTES

    def check_key(self, key: bytes) -> bytes:
        if not key:
            raise InvalidArgument("key must not be empty")
        if self.max_key_bytes is not None and len(key) > self.max_key_bytes:
            raise InvalidArgument(
                f"key is {len(key)} bytes, over the limit of {self.max_key_bytes} bytes"
            )
        return key

    def check_value(self, value: bytes) -> bytes:
        if self.max_value_bytes is not None and len(value) > self.max_value_bytes:
            raise InvalidArgument(
                f"value is {len(value)} bytes, over the limit of {self.max_value_bytes} bytes"
            )
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanPage:
    """One page of a scan: ``next_start`` continues it when ``more`` is set."""

    items: tuple[tuple[bytes, bytes], ...]
    more: bool
    next_start: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberInfo:
    id: int
    address: str
    learner: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowerProgress:
    """The leader's view of one follower."""

    id: int
    match_index: int
    next_index: int
    state: str
    inflight: int
    lazy: bool = False
    """Sent new entries only with heartbeats: it may trail by a heartbeat's writes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatus:
    """One node's answer to Cluster.Status, or (``up`` False) the reason it did not answer.

    ``address`` is the endpoint that was asked; ``advertised_address`` what the node calls itself.
    A down node has only ``address``, ``error`` and (if a peer lists it as a member) ``id``.
    """

    address: str
    up: bool
    error: str | None = None
    id: int = 0
    advertised_address: str = ""
    role: str = ""
    term: int = 0
    leader_id: int = 0
    leader_address: str = ""
    commit_index: int = 0
    applied_index: int = 0
    last_index: int = 0
    first_index: int = 0
    members: tuple[MemberInfo, ...] = ()
    followers: tuple[FollowerProgress, ...] = ()
    cluster_id: str = ""
    version: str = ""

    @classmethod
    def from_pb(cls, address: str, msg: kv_pb2.StatusResponse) -> NodeStatus:
        return cls(
            address=address,
            up=True,
            id=msg.id,
            advertised_address=msg.address,
            role=msg.role,
            term=msg.term,
            leader_id=msg.leader_id,
            leader_address=msg.leader_address,
            commit_index=msg.commit_index,
            applied_index=msg.applied_index,
            last_index=msg.last_index,
            first_index=msg.first_index,
            members=tuple(
                MemberInfo(id=m.id, address=m.address, learner=m.learner) for m in msg.members
            ),
            followers=tuple(
                FollowerProgress(
                    id=f.id,
                    match_index=f.match_index,
                    next_index=f.next_index,
                    state=f.state,
                    inflight=f.inflight,
                    lazy=f.lazy,
                )
                for f in msg.followers
            ),
            cluster_id=msg.cluster_id,
            version=msg.version,
        )

    @classmethod
    def down(cls, address: str, error: str, node_id: int = 0) -> NodeStatus:
        return cls(address=address, up=False, error=error, id=node_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotInfo:
    """What :meth:`AsyncClient.snapshot_save` wrote."""

    path: str
    index: int
    term: int
    cluster_id: str
    size_bytes: int
