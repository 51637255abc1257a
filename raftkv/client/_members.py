"""Membership calls of the client: the RPCs and the result type (protobuf stays inside).

Rules: every call goes to the leader (followers forward anyway); a refusal (another change in
progress, unknown id, quorum would be lost, ...) is fatal for the call, not retried, and surfaces
as the matching :mod:`raftkv.errors` error carrying the server's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raftkv.client._transport import Rpc
from raftkv.client.types import MemberInfo
from raftkv.pb import kv_pb2

_R = kv_pb2.MemberListResponse
MEMBER_LIST: Rpc[Any, _R] = Rpc("/raftkv.v1.Cluster/MemberList", _R)
MEMBER_ADD: Rpc[Any, _R] = Rpc("/raftkv.v1.Cluster/MemberAdd", _R)
MEMBER_PROMOTE: Rpc[Any, _R] = Rpc("/raftkv.v1.Cluster/MemberPromote", _R)
MEMBER_REMOVE: Rpc[Any, _R] = Rpc("/raftkv.v1.Cluster/MemberRemove", _R)


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberList:
    """The configuration as one node (normally the leader) sees it."""

    members: tuple[MemberInfo, ...]
    leader_id: int
    leader_address: str
    outgoing: tuple[int, ...]
    """The old voters while a joint configuration is in force (empty otherwise)."""
    cluster_id: str
    index: int
    unreachable: tuple[int, ...] = ()
    """Members the leader has not heard from within an election timeout (from the leader)."""

    @property
    def voters(self) -> tuple[int, ...]:
        return tuple(m.id for m in self.members if not m.learner)

    @property
    def learners(self) -> tuple[int, ...]:
        return tuple(m.id for m in self.members if m.learner)

    @classmethod
    def from_pb(cls, msg: kv_pb2.MemberListResponse) -> MemberList:
        return cls(
            members=tuple(
                MemberInfo(id=m.id, address=m.address, learner=m.learner) for m in msg.members
            ),
            leader_id=msg.leader_id,
            leader_address=msg.leader_address,
            outgoing=tuple(msg.outgoing),
            cluster_id=msg.cluster_id,
            index=msg.index,
            unreachable=tuple(msg.unreachable),
        )
