"""raftkv.node: the driver that owns a Raft core and does its I/O (see DESIGN.md, "A write").

One asyncio task owns the core; everything else hands it typed inputs and awaits futures.
"""

from raftkv.node.config import DriverConfig
from raftkv.node.driver import Driver
from raftkv.node.errors import (
    NodeError,
    NoLeader,
    NotLeaderError,
    Overloaded,
    ProposalFailed,
    ResultUnknown,
    Stopped,
)
from raftkv.node.protocols import LogStore, StateMachine, Transport

__all__ = [
    "Driver",
    "DriverConfig",
    "LogStore",
    "NoLeader",
    "NodeError",
    "NotLeaderError",
    "Overloaded",
    "ProposalFailed",
    "ResultUnknown",
    "StateMachine",
    "Stopped",
    "Transport",
]
