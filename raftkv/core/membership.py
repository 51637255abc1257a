"""Cluster membership: voters, learners, and the joint (old, new) pair of joint consensus.

A configuration is a value; a change *returns* a new one. While ``outgoing`` is non-empty the
configuration is joint: elections and commitment need a majority of ``voters`` AND a majority
of ``outgoing`` (Raft paper section 6). Quorum arithmetic lives here and nowhere else.

Configuration entries carry :func:`encode_membership` bytes: a small, versioned, stdlib-only
format, because the core may not import protobuf.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

_FORMAT_VERSION = 1
_HEADER = struct.Struct(">BHHH")


@dataclass(frozen=True, slots=True, kw_only=True)
class Membership:
    voters: frozenset[int]
    learners: frozenset[int] = frozenset()
    outgoing: frozenset[int] = frozenset()
    """The old voters while joint; empty otherwise."""

    def __post_init__(self) -> None:
        if self.voters & self.learners:
            raise ValueError(f"nodes {sorted(self.voters & self.learners)} are voter and learner")
        if any(n <= 0 for n in self.voters | self.learners | self.outgoing):
            raise ValueError("node ids must be positive integers")

    @property
    def is_joint(self) -> bool:
        return bool(self.outgoing)

    def all_voters(self) -> frozenset[int]:
        return self.voters | self.outgoing

    def members(self) -> frozenset[int]:
        """Every node that receives the log: voters (old and new) and learners."""
        return self.voters | self.outgoing | self.learners

    def describe(self) -> str:
        text = f"voters={sorted(self.voters)}"
        if self.outgoing:
            text += f" outgoing={sorted(self.outgoing)}"
        if self.learners:
            text += f" learners={sorted(self.learners)}"
        return text


def _majority_index(voters: frozenset[int], match: Mapping[int, int]) -> int:
    """The largest index that a majority of ``voters`` has reached (0 for nobody)."""
    if not voters:
        # An empty half of a joint config never blocks the other half.
        return 1 << 62
    acked = sorted((match.get(v, 0) for v in voters), reverse=True)
    return acked[len(voters) // 2]


def committed_index(membership: Membership, match: Mapping[int, int]) -> int:
    """The highest index stored on a quorum (a majority of each half while joint)."""
    incoming = _majority_index(membership.voters, match)
    if not membership.outgoing:
        return incoming
    return min(incoming, _majority_index(membership.outgoing, match))


def _majority_result(voters: frozenset[int], votes: Mapping[int, bool]) -> bool | None:
    if not voters:
        return True
    granted = sum(1 for v in voters if votes.get(v) is True)
    rejected = sum(1 for v in voters if votes.get(v) is False)
    need = len(voters) // 2 + 1
    if granted >= need:
        return True
    if rejected > len(voters) - need:
        return False
    return None


def vote_result(membership: Membership, votes: Mapping[int, bool]) -> bool | None:
    """Won (True), lost (False) or still open (None), given each voter's answer so far."""
    incoming = _majority_result(membership.voters, votes)
    if not membership.outgoing:
        return incoming
    outgoing = _majority_result(membership.outgoing, votes)
    if incoming is False or outgoing is False:
        return False
    if incoming is True and outgoing is True:
        return True
    return None


def has_quorum(membership: Membership, alive: Callable[[int], bool]) -> bool:
    """Whether the nodes for which ``alive`` is true form a quorum of the configuration."""
    return vote_result(membership, {v: alive(v) for v in membership.all_voters()}) is True


@functools.lru_cache(maxsize=16)
def encode_membership(membership: Membership) -> bytes:
    """Cached: the state machine writes the configuration in force with every applied batch,
    and it rarely changes."""
    groups = (sorted(membership.voters), sorted(membership.learners), sorted(membership.outgoing))
    header = _HEADER.pack(_FORMAT_VERSION, *(len(g) for g in groups))
    body = b"".join(struct.pack(f">{len(g)}Q", *g) for g in groups)
    return header + body


class MembershipDecodeError(ValueError):
    pass


def decode_membership(data: bytes) -> Membership:
    if len(data) < _HEADER.size:
        raise MembershipDecodeError("membership payload too short")
    version, n_voters, n_learners, n_outgoing = _HEADER.unpack_from(data)
    if version != _FORMAT_VERSION:
        raise MembershipDecodeError(f"unknown membership format version {version}")
    total = n_voters + n_learners + n_outgoing
    if len(data) != _HEADER.size + 8 * total:
        raise MembershipDecodeError("membership payload length does not match its header")
    ids = struct.unpack_from(f">{total}Q", data, _HEADER.size)
    try:
        return Membership(
            voters=frozenset(ids[:n_voters]),
            learners=frozenset(ids[n_voters : n_voters + n_learners]),
            outgoing=frozenset(ids[n_voters + n_learners :]),
        )
    except ValueError as exc:
        raise MembershipDecodeError(str(exc)) from exc


def membership_of(voters: Iterable[int], learners: Iterable[int] = ()) -> Membership:
    """A simple (non-joint) configuration."""
    return Membership(voters=frozenset(voters), learners=frozenset(learners))
