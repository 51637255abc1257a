"""etcd for comparison: install Debian's etcd-server if missing, run a loopback cluster, and
drive it through its gRPC KV API (``EtcdTarget``: one unary Put/Range per operation to the leader).

Rules: members listen on 127.0.0.1 only, in a temporary data directory, with etcd's defaults
(fsync on) unless ``fast_election`` asks for heartbeat 50 ms / election 300 ms. Debian's service
unit is never started: the benchmark runs its own members and kills them when done.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from bench import procs
from bench.etcd_api import load as load_etcd_pb
from raftkv.loadgen.targets import STATUS_TIMEOUT_S, UnaryTarget

START_TIMEOUT_S = 30.0
APT_TIMEOUT_S = 600.0


def ensure_etcd() -> str:
    """The path of the etcd binary, installing Debian's etcd-server first if needed."""
    found = shutil.which("etcd")
    if found:
        return found
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "etcd-server"]):
        subprocess.run(step, check=True, timeout=APT_TIMEOUT_S, capture_output=True)
    found = shutil.which("etcd")
    if not found:
        raise RuntimeError("etcd-server installed but no etcd binary on PATH")
    return found


class EtcdTarget(UnaryTarget):
    """etcd's KV service called directly; linearizable Range unless stale (serializable)."""

    put_path = "/etcdserverpb.KV/Put"
    get_path = "/etcdserverpb.KV/Range"
    status_path = "/etcdserverpb.Maintenance/Status"

    def __init__(self, endpoints: list[str], *, name: str = "etcd", channels: int = 1) -> None:
        super().__init__(endpoints, name=name, channels=channels)
        self.pb: Any = load_etcd_pb()

    def put_request(self, key: bytes, value: bytes) -> Message:
        request: Message = self.pb.PutRequest(key=key, value=value)
        return request

    def get_request(self, key: bytes, stale: bool) -> Message:
        request: Message = self.pb.RangeRequest(key=key, serializable=stale)
        return request

    def response_parser(self, path: str) -> Any:
        types = {
            self.put_path: self.pb.PutResponse,
            self.get_path: self.pb.RangeResponse,
            self.status_path: self.pb.StatusResponse,
        }
        return types[path].FromString

    async def ask_leader(self, address: str) -> str | None:
        status = await self.unary(
            address, self.status_path, self.pb.StatusRequest(), STATUS_TIMEOUT_S
        )
        return address if status.leader and status.leader == status.header.member_id else None


class EtcdCluster:
    """``size`` etcd members on loopback ports under ``root``."""

    kind = "etcd"

    def __init__(self, root: Path, *, size: int = 3, fast_election: bool = False) -> None:
        self.binary = ensure_etcd()
        self.root = root
        self.size = size
        self.fast_election = fast_election
        ports = procs.free_ports(2 * size)
        self.client_ports = ports[:size]
        self.peer_ports = ports[size:]
        self.endpoints = [f"127.0.0.1:{p}" for p in self.client_ports]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def _args(self, i: int) -> list[str]:
        initial = ",".join(
            f"m{j}=http://127.0.0.1:{p}" for j, p in enumerate(self.peer_ports, start=1)
        )
        args = [
            self.binary, "--name", f"m{i}", "--data-dir", str(self.root / f"m{i}"),
            "--listen-client-urls", f"http://127.0.0.1:{self.client_ports[i - 1]}",
            "--advertise-client-urls", f"http://127.0.0.1:{self.client_ports[i - 1]}",
            "--listen-peer-urls", f"http://127.0.0.1:{self.peer_ports[i - 1]}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_ports[i - 1]}",
            "--initial-cluster", initial, "--initial-cluster-state", "new",
            "--initial-cluster-token", f"bench-{self.root.name}",
        ]
        if self.fast_election:
            args += ["--heartbeat-interval", "50", "--election-timeout", "300"]
        return args

    def start(self) -> None:
        for i in range(1, self.size + 1):
            self.processes[self.endpoints[i - 1]] = procs.start(
                self._args(i), log_path=self.root / f"m{i}.log"
            )
        for port in self.client_ports:
            if not procs.wait_port(port, START_TIMEOUT_S):
                raise RuntimeError(f"etcd on port {port} did not start; see {self.root}")

    async def wait_leader(self, timeout_s: float = START_TIMEOUT_S) -> str:
        return await procs.wait_for_leader(EtcdTarget(self.endpoints), timeout_s, "etcd")

    async def leadership(self) -> tuple[str, int]:
        """(leader member id, raft term) as the leader reports it; ("", 0) if none answers."""
        target = EtcdTarget(self.endpoints)
        try:
            for endpoint in self.endpoints:
                try:
                    status = await target.unary(
                        endpoint, target.status_path, target.pb.StatusRequest(), 1.0
                    )
                except Exception:  # a down member: ask the next
                    continue
                if status.leader and status.leader == status.header.member_id:
                    return endpoint, int(status.raftTerm)
        finally:
            await target.close()
        return "", 0

    def target(self, *, channels: int = 1) -> EtcdTarget:
        return EtcdTarget(self.endpoints, channels=channels)

    def pid_of(self, endpoint: str) -> int:
        return self.processes[endpoint].pid

    def kill(self, endpoint: str) -> None:
        procs.kill(self.processes[endpoint])

    def stop(self) -> None:
        for process in self.processes.values():
            procs.kill(process)
