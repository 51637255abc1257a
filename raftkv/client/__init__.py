"""raftkv.client: the Python client (blocking ``Client`` and asyncio ``AsyncClient``).

    from raftkv.client import Client
    with Client(["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"], timeout=5.0) as c:
        c.put("k", "v"); c.get("k") -> b"v"

Keys and values are bytes or str (UTF-8); results are bytes. Errors are raftkv.errors.RaftKVError
subclasses: Unavailable (definitely not applied), Timeout (outcome unknown), InvalidArgument, ...
Routing, retries and client sessions live in ``aio.py``; ``Client`` runs that on a private loop.
"""

from raftkv.client._members import MemberList
from raftkv.client.aio import AsyncClient
from raftkv.client.credentials import ClientTls, read_token_file
from raftkv.client.sync import Client
from raftkv.client.types import (
    FollowerProgress,
    MemberInfo,
    NodeStatus,
    ScanPage,
    SnapshotInfo,
)

__all__ = [
    "AsyncClient",
    "Client",
    "ClientTls",
    "FollowerProgress",
    "MemberInfo",
    "MemberList",
    "NodeStatus",
    "ScanPage",
    "SnapshotInfo",
    "read_token_file",
]
