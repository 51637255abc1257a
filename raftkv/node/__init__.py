"""raftkv.node: the driver that owns a Raft core and does its I/O (see DESIGN.md, "A write").

One asyncio task owns the core; everything else hands it typed inputs and awaits futures.

- :mod:`~raftkv.node.driver`: :class:`Driver`, the ready loop
- :mod:`~raftkv.node.protocols`: the log store, state machine, compactor and transport it drives
- :mod:`~raftkv.node.kv_adapter`: raftkv.kv's LevelDB state machine behind those protocols
- :mod:`~raftkv.node.memory`: in-memory log store, state machine and compactor for tests
- :mod:`~raftkv.node.errors`: what callers get, each saying whether a write may have happened
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
