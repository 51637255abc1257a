"""The consensus core: a sans-I/O Raft state machine.

Rules this package keeps (a test enforces the first):
- standard library only: no asyncio, grpc, plyvel, time, prometheus_client;
- time is ticks, randomness is a seeded ``random.Random`` handed in;
- all the node wants done comes out as one :class:`~raftkv.core.ready.Ready` batch.
"""

from raftkv.core.config import RaftConfig
from raftkv.core.errors import CoreError, NotLeader, ProposalDropped
from raftkv.core.membership import Membership
from raftkv.core.messages import Message
from raftkv.core.raft import RaftNode
from raftkv.core.ready import ReadState, Ready, Role, SoftState
from raftkv.core.storage import LogStorage, MemoryStorage
from raftkv.core.types import Entry, EntryKind, HardState, Index, NodeId, SnapshotMeta, Term

__all__ = [
    "CoreError",
    "Entry",
    "EntryKind",
    "HardState",
    "Index",
    "LogStorage",
    "Membership",
    "MemoryStorage",
    "Message",
    "NodeId",
    "NotLeader",
    "ProposalDropped",
    "RaftConfig",
    "RaftNode",
    "ReadState",
    "Ready",
    "Role",
    "SnapshotMeta",
    "SoftState",
    "Term",
]
