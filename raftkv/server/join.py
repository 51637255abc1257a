"""``raftkv serve --join``: ask a running cluster to add this node as a learner, then bootstrap.

Rules:
- Only an empty data directory joins (one with an identity already belongs to a cluster: restart
  it without --join); --join and --cluster exclude each other. Checked before any network call.
- MemberAdd(learner) goes to the --join addresses in turn (any member forwards to the leader)
  until one answers or ``timeout_s`` passes; UNAVAILABLE, DEADLINE_EXCEEDED and "another change
  is in progress" are retried, other refusals end the join with the cluster's message. A node that
  is already a member at this address (an earlier attempt got through) counts as joined.
- A cluster that checks tokens needs an admin's for MemberAdd (``--join-token-file``); it is sent
  as ``authorization: Bearer``, as raftkv-cli sends it, and a refusal says which flag to pass.
- The data directory is then bootstrapped with the cluster's id and an EMPTY configuration: the
  node never campaigns on its own, and learns the real configuration from the leader's log or
  snapshot. The answer's member addresses seed the node's address table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc

from raftkv.core.membership import Membership
from raftkv.core.types import NodeId
from raftkv.kv.node_storage import open_node_storage
from raftkv.pb import kv_pb2, kv_pb2_grpc
from raftkv.server.app import existing_cluster_id
from raftkv.server.auth import bearer_metadata
from raftkv.server.security import Security, SecurityOptions
from raftkv.server.settings import Settings, SettingsError, parse_address

log = logging.getLogger(__name__)

_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
_AUTH_REFUSALS = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


class JoinError(SettingsError):
    """The cluster refused to add this node, or could not be reached in time."""


def parse_join(text: str) -> list[str]:
    seeds = [s.strip() for s in text.split(",") if s.strip()]
    if not seeds:
        raise SettingsError("--join: no addresses (e.g. 127.0.0.1:7001,127.0.0.1:7002)")
    for seed in seeds:
        parse_address(seed, "--join")
    return seeds


def prepare_start(settings: Settings, *, cluster_flag: str, join_flag: str) -> list[str]:
    """Check the start-up mode before anything runs; the --join addresses (empty: no join)."""
    if join_flag:
        _check_can_join(settings, cluster_flag)
        return parse_join(join_flag)
    if not cluster_flag and existing_cluster_id(settings.data_dir) is None:
        raise SettingsError(
            f"--data-dir {settings.data_dir} is empty: give --cluster to bootstrap a new cluster "
            "or --join ADDR to join a running one"
        )
    return []


def _check_can_join(settings: Settings, cluster_flag: str) -> None:
    if cluster_flag:
        raise SettingsError(
            "--join and --cluster exclude each other: --cluster bootstraps a NEW cluster, "
            "--join adds this node to a running one"
        )
    cluster_id = existing_cluster_id(settings.data_dir)
    if cluster_id is not None:
        raise SettingsError(
            f"--join needs an empty --data-dir, but {settings.data_dir} already belongs to "
            f"cluster {cluster_id}; restart it without --join (it knows its members), or wipe it"
        )


async def join_cluster(
    settings: Settings,
    seeds: list[str],
    *,
    security: SecurityOptions | None = None,
    token: str | None = None,
    timeout_s: float = 60.0,
) -> None:
    """Become a learner of the cluster at ``seeds``; bootstrap the data dir; seed addresses."""
    credentials = Security.load(security).node_channel_credentials()
    address = settings.advertised
    request = kv_pb2.MemberAddRequest(id=settings.node_id, address=address, learner=True)
    metadata = bearer_metadata(token)
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        for seed in seeds:
            try:
                answer = await _ask(seed, request, credentials, metadata)
            except _Retry as exc:
                last = f"{seed}: {exc}"
                continue
            _bootstrap(settings, answer)
            return
        await asyncio.sleep(0.2)
    raise JoinError(f"could not join through {', '.join(seeds)} in {timeout_s:.0f}s ({last})")


class _Retry(Exception):
    pass


async def _ask(
    seed: str,
    request: kv_pb2.MemberAddRequest,
    credentials: Any,
    metadata: tuple[tuple[str, str], ...],
) -> kv_pb2.MemberListResponse:
    if credentials is None:
        channel = grpc.aio.insecure_channel(seed)
    else:
        channel = grpc.aio.secure_channel(seed, credentials)
    async with channel:
        stub = kv_pb2_grpc.ClusterStub(channel)  # type: ignore[no-untyped-call]
        try:
            answer: kv_pb2.MemberListResponse = await stub.MemberAdd(
                request, timeout=10.0, metadata=metadata
            )
            log.info("joined as learner %d through %s", request.id, seed)
            return answer
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code(), exc.details() or exc.code().name
        if code in _RETRYABLE or "in progress" in details or "joint phase" in details:
            raise _Retry(details)
        if code == grpc.StatusCode.FAILED_PRECONDITION and "already a member" in details:
            members: kv_pb2.MemberListResponse = await stub.MemberList(
                kv_pb2.MemberListRequest(), timeout=10.0, metadata=metadata
            )
            if any(m.id == request.id and m.address == request.address for m in members.members):
                log.info("already a member at %s (an earlier attempt got through)", request.address)
                return members
        if code in _AUTH_REFUSALS:
            details += (
                " (the cluster checks tokens: pass an admin token with --join-token-file)"
                if not metadata
                else " (--join-token-file must hold a token with the admin role)"
            )
        raise JoinError(f"the cluster refused to add node {request.id}: {details}")


def _bootstrap(settings: Settings, answer: kv_pb2.MemberListResponse) -> None:
    storage = open_node_storage(
        settings.data_dir,
        cluster_id=answer.cluster_id,
        node_id=settings.node_id,
        initial_membership=Membership(voters=frozenset()),
    )
    storage.close()
    for m in answer.members:
        if m.address and m.id != settings.node_id:
            settings.cluster[NodeId(m.id)] = m.address
