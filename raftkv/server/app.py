"""The node process, wired: storage -> state machine -> driver -> transport -> grpc.aio server.

Rules:
- One gRPC port serves Raft, KV, Cluster, health and reflection; metrics are HTTP on their own.
  TLS, tokens and per-call checks come from :mod:`raftkv.server.security` (one interceptor).
- ``--cluster`` bootstraps a new data directory only; on an existing one membership comes from
  the log, and a ``--cluster`` that lacks a member of it is refused with a clear message.
- Health is SERVING only while a leader is known and applied >= commit.
- Shutdown: health NOT_SERVING, hand leadership to the most up-to-date follower (if leading),
  stop the gRPC server with a grace period, stop the driver, close LevelDB.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from raftkv.core.membership import membership_of
from raftkv.core.messages import Message
from raftkv.core.raft import RaftNode
from raftkv.core.ready import Role
from raftkv.core.types import NO_NODE, NodeId
from raftkv.kv.node_storage import NodeStorage, open_node_storage
from raftkv.logging_setup import set_node_facts
from raftkv.metrics import Metrics, new_registry
from raftkv.node.driver import Driver
from raftkv.node.kv_adapter import KVAdapter
from raftkv.pb import kv_pb2, kv_pb2_grpc, raft_pb2, raft_pb2_grpc
from raftkv.server.cluster_service import transfer_leadership
from raftkv.server.context import NodeContext
from raftkv.server.forward import Forwarder
from raftkv.server.kv_service import KVService
from raftkv.server.member_service import MemberClusterService
from raftkv.server.member_watch import MemberWatch, PeerDirectory
from raftkv.server.membership import MembershipChanger
from raftkv.server.security import Security, SecurityOptions
from raftkv.server.settings import Settings, SettingsError, parse_address
from raftkv.storage.datadir import Identity
from raftkv.transport.codec import PeerCheck
from raftkv.transport.peer_client import GrpcTransport
from raftkv.transport.servicer import RaftServicer

log = logging.getLogger(__name__)

_HEALTH_POLL_S = 0.05
MAX_CONCURRENT_STREAMS = 1024
"""Per HTTP/2 connection: one client (or peer) cannot hold unbounded calls open."""
_SERVICES = ("", "raftkv.v1.KV", "raftkv.v1.Cluster")


class _InboxProxy:
    """Lets the transport be built before the driver it delivers to."""

    target: Driver

    def deliver(self, message: Message) -> None:
        self.target.deliver(message)

    def report_unreachable(self, peer: NodeId) -> None:
        self.target.report_unreachable(peer)

    def report_snapshot(self, peer: NodeId, success: bool) -> None:
        self.target.report_snapshot(peer, success)


def existing_cluster_id(data_dir: Path) -> str | None:
    path = data_dir / "identity"
    return Identity.decode(path, path.read_bytes()).cluster_id if path.exists() else None


def open_storage(settings: Settings) -> tuple[NodeStorage, str]:
    """Open or bootstrap the data directory; refuse a --cluster that contradicts the log."""
    cluster_id = existing_cluster_id(settings.data_dir) or settings.cluster_id
    storage = open_node_storage(
        settings.data_dir,
        cluster_id=cluster_id,
        node_id=settings.node_id,
        initial_membership=membership_of(settings.cluster),
    )
    # Addresses of members added since bootstrap come from the replicated address book.
    for node_id, address in storage.state.addresses().items():
        settings.cluster.setdefault(NodeId(node_id), address)
    members = storage.log.membership().members() | storage.state.membership().members()
    missing = sorted(set(members) - set(settings.cluster))
    if missing:
        storage.close()
        raise SettingsError(
            f"--cluster does not name nodes {missing}, members of this data directory's cluster "
            f"(members: {sorted(members)}); --cluster only bootstraps a new directory, so list "
            "every current member's address or use a fresh --data-dir"
        )
    extra = sorted(set(settings.cluster) - set(members))
    if extra:
        log.warning("--cluster names nodes %s that are not members; they are ignored", extra)
    return storage, cluster_id


class NodeServer:
    def __init__(
        self,
        settings: Settings,
        registry: CollectorRegistry | None = None,
        security: SecurityOptions | None = None,
    ) -> None:
        self.settings = settings
        # Read and check the TLS and token files before touching the data directory.
        self.security = Security.load(security)
        self.registry = registry or new_registry()
        self.metrics = Metrics(self.registry, tick_s=settings.driver_config().tick_s)
        self.storage, self.cluster_id = open_storage(settings)
        self.state = KVAdapter(self.storage.state)
        state_applied = self.storage.state.applied_index()
        node = RaftNode(
            settings.raft_config(applied=state_applied), self.storage.log, random.Random()
        )
        proxy = _InboxProxy()
        self.transport = GrpcTransport(
            cluster_id=self.cluster_id,
            node_id=settings.node_id,
            peers=settings.cluster,
            inbox=proxy,
            source=self.state,
            config=settings.transport,
            observer=self.metrics,
            credentials=self.security.node_channel_credentials(),
        )
        driver_config = settings.driver_config()
        self.driver = Driver(
            node=node,
            log_store=self.storage.log,
            state_machine=self.state,
            transport=self.transport,
            config=driver_config,
            compactor=self.storage.compactor(
                snapshot_threshold=driver_config.snapshot_threshold,
                trailing_entries=driver_config.snapshot_trailing,
            ),
            observer=self.metrics,
        )
        proxy.target = self.driver
        self.state.submit = self.driver.submit_io
        self.context = NodeContext(
            settings=settings, driver=self.driver, state=self.state, cluster_id=self.cluster_id
        )
        self.forwarder = Forwarder(
            settings.transport.channel_options(),
            batch_ops=settings.limits.forward_batch_ops,
            batches_in_flight=settings.limits.forward_batches_in_flight,
            max_queue=settings.limits.max_forward_queue,
            credentials=self.security.node_channel_credentials(),
        )
        self.health = HealthServicer()
        peer_check = PeerCheck(
            cluster_id=self.cluster_id,
            self_id=settings.node_id,
            known_ids=list(settings.cluster),
        )
        book = self.storage.state
        self.peer_directory = PeerDirectory(
            self.context, self.transport, peer_check, book.addresses, lambda: book.addresses_version
        )
        self.changer = MembershipChanger(self.context, book.addresses)
        self.changer.on_addresses = self.peer_directory.refresh
        self.member_watch = MemberWatch(
            self.context,
            self.peer_directory,
            self.changer,
            auto_promote_lag=settings.auto_promote_lag,
        )
        self.raft_servicer = RaftServicer(
            check=peer_check,
            inbox=self.driver,
            stager=self.state,
            config=settings.transport,
            observer=self.metrics,
        )
        limit = max(settings.limits.max_request_bytes, settings.transport.max_message_bytes)
        self.server = grpc.aio.server(
            interceptors=self.security.interceptors(
                on_refused=self.metrics.on_request_refused,
                max_request_bytes=settings.limits.max_request_bytes,
            ),
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5000),
                ("grpc.so_reuseport", 0),
                ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
            ],
        )
        kv_pb2_grpc.add_KVServicer_to_server(  # type: ignore[no-untyped-call]
            KVService(self.context, self.forwarder, self.metrics), self.server
        )
        kv_pb2_grpc.add_ClusterServicer_to_server(  # type: ignore[no-untyped-call]
            MemberClusterService(self.context, self.forwarder, self.metrics, self.changer),
            self.server,
        )
        raft_pb2_grpc.add_RaftServicer_to_server(  # type: ignore[no-untyped-call]
            self.raft_servicer, self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                kv_pb2.DESCRIPTOR.services_by_name["KV"].full_name,
                kv_pb2.DESCRIPTOR.services_by_name["Cluster"].full_name,
                raft_pb2.DESCRIPTOR.services_by_name["Raft"].full_name,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        self._health_task: asyncio.Task[None] | None = None
        self._serving: bool | None = None
        self._stopped = asyncio.Event()
        self.port = 0

    async def start(self) -> None:
        node = self.driver.node
        set_node_facts(lambda: (node.id, node.term, node.role.value))
        self.port = self.security.add_port(self.server, self.settings.listen)
        if self.port == 0:
            raise SettingsError(f"--listen {self.settings.listen}: cannot bind (in use?)")
        if self.settings.metrics_listen:
            host, port = parse_address(self.settings.metrics_listen, "--metrics-listen")
            start_http_server(port, addr=host, registry=self.registry)
        for service in _SERVICES:
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.driver.start()
        await self.server.start()
        self._health_task = asyncio.create_task(self._watch_health())
        self.member_watch.start()
        log.info(
            "serving on %s (%s; cluster %s, members %s, data %s)",
            self.settings.listen,
            self.security.describe(),
            self.cluster_id,
            sorted(self.settings.cluster),
            self.settings.data_dir,
        )

    async def _watch_health(self) -> None:
        node = self.driver.node
        while True:
            serving = node.leader_id != NO_NODE and self.driver.applied_index >= node.commit_index
            if serving != self._serving:
                self._serving = serving
                self.metrics.health.set(1 if serving else 0)
                status = (
                    health_pb2.HealthCheckResponse.SERVING
                    if serving
                    else health_pb2.HealthCheckResponse.NOT_SERVING
                )
                for service in _SERVICES:
                    await self.health.set(service, status)
            await asyncio.sleep(_HEALTH_POLL_S)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        """Graceful: NOT_SERVING, hand over leadership, drain, stop, close LevelDB."""
        if self._stopped.is_set():
            return
        log.info("shutting down")
        if self._health_task is not None:
            self._health_task.cancel()
        await self.health.enter_graceful_shutdown()
        await self.member_watch.stop()
        if self.driver.node.role == Role.LEADER and len(self.settings.cluster) > 1:
            with contextlib.suppress(Exception):
                deadline = asyncio.get_running_loop().time()
                await asyncio.wait_for(self._hand_over(), 1.5)
                log.info(
                    "handed leadership over in %.3fs", asyncio.get_running_loop().time() - deadline
                )
        # New calls are refused at once; client calls in flight get the grace period, with
        # replication still running. Peer streams never end by themselves, so they are ended
        # once the client calls are done (else they would hold the whole grace period).
        grace = self.settings.shutdown_grace_s
        stopping = asyncio.create_task(self.server.stop(grace))
        deadline = time.monotonic() + grace
        while self.context.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self.raft_servicer.end_streams()
        await self.transport.close()
        # Nothing left worth waiting for: cancel the rest now (cancelled peer streams otherwise
        # linger in grpc until the grace period ends).
        await self.server.stop(None)
        await stopping
        log.debug("gRPC server stopped")
        await self.driver.stop()
        await self.forwarder.close()
        self.raft_servicer.close()
        self.context.reader.close()
        self.storage.close()
        self._stopped.set()
        log.info("stopped")

    async def _hand_over(self) -> None:
        service = KVService(self.context, self.forwarder, None)
        await transfer_leadership(service, NodeId(0), time.monotonic() + 1.5)
