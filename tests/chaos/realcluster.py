"""Real ``raftkv serve`` processes, one per network namespace, for the nemesis tests.

A ``RealCluster`` sits on a ``netns.Cluster`` built with ``host_link=True``: node ``i`` (index
0..n-1, Raft id i+1) runs inside namespace ``i`` and listens on ``<its address>:PORT``; the test
process reaches every node over the host link, so a partition cuts peers apart while the test's
own clients still see everyone (Jepsen's control network).

Rules kept here:
- Processes are started only through the namespace harness, and every one this module starts is
  killed in ``close`` (SIGCONT first for paused ones), also when the test failed. Data
  directories and logs live under the test's own tmp path.
- A *delayed* node listens on 127.0.0.1 inside its namespace; a ``delay_proxy.py`` process in the
  same namespace listens on the node's cluster address and forwards to it. Every byte sent to
  that node (peers and clients alike) is delayed; ``--cluster`` stays identical on every node, so
  the cluster id agrees.
- Every wait is a poll with a deadline; nothing sleeps to synchronise.
- The convergence check reads each node's state DB *offline*: once all nodes report the same
  applied index, all are killed at once (nothing can be proposed in between that kills don't
  stop) and each ``DATA_DIR/state`` is opened with ``KVStateMachine.open`` and digested.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from raftkv.client import AsyncClient, NodeStatus
from raftkv.kv import layout
from raftkv.kv.state_machine import KVStateMachine
from tests.chaos.netns import Cluster

ROOT = Path(__file__).resolve().parents[2]
DELAY_PROXY = Path(__file__).resolve().parent / "delay_proxy.py"
PORT = 7000


class ClusterError(AssertionError):
    """The cluster did not reach a state it had to reach in time (message says which)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerOptions:
    heartbeat_ms: int = 50
    election_timeout_ms: int = 300
    snapshot_threshold: int = 10_000


@dataclass(frozen=True, slots=True)
class StateDigest:
    """One node's state DB, read offline: applied index, sha256 of every record, user data."""

    node: int
    applied_index: int
    sha256: str
    data: dict[str, str] = field(repr=False)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class RealCluster:
    """N raftkv nodes inside the namespaces of ``net``; see the module docstring."""

    def __init__(
        self,
        net: Cluster,
        root: Path,
        *,
        options: ServerOptions | None = None,
        delayed: Sequence[int] = (),
    ) -> None:
        if net.host_address is None:
            raise ValueError("RealCluster needs a netns.Cluster built with host_link=True")
        self.net = net
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.options = options or ServerOptions()
        self.n = len(net.nodes)
        self.delayed = frozenset(delayed)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.paused: set[int] = set()
        self.exits: list[tuple[int, int]] = []  # (node, code) of exits the harness did not cause
        self.proxies: dict[int, subprocess.Popen[str]] = {}
        self._admin: AsyncClient | None = None

    # --- addresses ----------------------------------------------------------------------------

    def address(self, node: int) -> str:
        return f"{self.net.address(node)}:{PORT}"

    def endpoints(self) -> list[str]:
        return [self.address(i) for i in range(self.n)]

    def node_of(self, address: str) -> int | None:
        return next((i for i in range(self.n) if self.address(i) == address), None)

    def data_dir(self, node: int) -> Path:
        return self.root / f"node-{node + 1}"

    def log_path(self, node: int) -> Path:
        return self.root / f"node-{node + 1}.log"

    # --- processes ----------------------------------------------------------------------------

    def start(self, node: int) -> None:
        """Start node ``node`` (a no-op if it already runs); it recovers from its data dir."""
        proc = self.procs.get(node)
        if proc is not None and proc.poll() is None:
            return
        if proc is not None:  # it died on its own: remember, then restart it
            self.exits.append((node, proc.returncode))
            del self.procs[node]
            self.paused.discard(node)
        listen = f"127.0.0.1:{PORT}" if node in self.delayed else self.address(node)
        cluster = ",".join(f"{i + 1}={self.address(i)}" for i in range(self.n))
        argv = [
            sys.executable, "-m", "raftkv.cli.server_main", "serve",
            "--id", str(node + 1), "--listen", listen, "--cluster", cluster,
            "--data-dir", str(self.data_dir(node)),
            "--heartbeat-ms", str(self.options.heartbeat_ms),
            "--election-timeout-ms", str(self.options.election_timeout_ms),
            "--snapshot-threshold", str(self.options.snapshot_threshold),
        ]
        with self.log_path(node).open("ab") as log:
            log.write(f"=== start {time.monotonic():.3f}\n".encode())
            log.flush()
            self.procs[node] = self.net.popen(
                node, argv, stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=ROOT
            )

    def start_all_nodes(self) -> None:
        """Start every node that does not run (proxies are left as they are)."""
        for node in range(self.n):
            self.start(node)

    def start_all(self) -> None:
        """First start: every node, and a zero-delay proxy in front of each delayed one."""
        self.start_all_nodes()
        for node in sorted(self.delayed):
            self.set_delay(node, 0.0)

    def kill(self, node: int) -> None:
        """kill -9 (a paused node is killed as it is)."""
        proc = self.procs.pop(node, None)
        self.paused.discard(node)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def kill_all(self) -> None:
        """SIGKILL every node in one sweep (microseconds apart), then reap them."""
        procs = list(self.procs.values())
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
        for proc in procs:
            proc.wait(timeout=10)
        self.procs.clear()
        self.paused.clear()

    def pause(self, node: int) -> None:
        if node in self.procs and node not in self.paused:
            self.procs[node].send_signal(signal.SIGSTOP)
            self.paused.add(node)

    def resume(self, node: int) -> None:
        if node in self.paused:
            self.paused.discard(node)
            self.procs[node].send_signal(signal.SIGCONT)

    def running(self, node: int) -> bool:
        return node in self.procs

    def exited_unexpectedly(self) -> list[tuple[int, int]]:
        """(node, exit code) of every exit the harness did not cause, so far (bugs: a node
        process must only die when killed)."""
        live = [(i, p.returncode) for i, p in self.procs.items() if p.poll() is not None]
        return [*self.exits, *live]

    def set_delay(self, node: int, delay_s: float, jitter_s: float = 0.0) -> None:
        """(Re)start the delaying proxy in front of a delayed node; open connections drop."""
        if node not in self.delayed:
            raise ValueError(f"node {node} was not started behind a delay proxy")
        self._stop_proxy(node)
        argv = [
            sys.executable, str(DELAY_PROXY), "--listen", self.address(node),
            "--target", f"127.0.0.1:{PORT}", "--delay-ms", f"{delay_s * 1000:.1f}",
            "--jitter-ms", f"{jitter_s * 1000:.1f}",
        ]
        proc = self.net.popen(node, argv, stdout=subprocess.PIPE, text=True, env=child_env())
        self.proxies[node] = proc
        assert proc.stdout is not None
        line = _readline_within(proc.stdout, 20.0)
        if not line.startswith("listening"):
            raise ClusterError(f"delay proxy for node {node} did not start: {line!r}")

    def _stop_proxy(self, node: int) -> None:
        proc = self.proxies.pop(node, None)
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)

    def close(self) -> None:
        """Kill every process this cluster started (paused ones are continued first)."""
        for node in list(self.paused):
            with contextlib.suppress(ProcessLookupError):
                self.procs[node].send_signal(signal.SIGCONT)
        self.kill_all()
        for node in list(self.proxies):
            self._stop_proxy(node)

    def logs(self, tail_bytes: int = 2000) -> str:
        parts = []
        for node in range(self.n):
            path = self.log_path(node)
            if path.exists():
                parts.append(f"--- node {node + 1} ({path})\n{path.read_bytes()[-tail_bytes:]!r}")
        return "\n".join(parts)

    # --- status -------------------------------------------------------------------------------

    def admin(self) -> AsyncClient:
        if self._admin is None:
            self._admin = AsyncClient(self.endpoints(), timeout=2.0, attempt_timeout=1.0)
        return self._admin

    async def close_admin(self) -> None:
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    async def statuses(self, timeout_s: float = 1.0) -> dict[int, NodeStatus]:
        """Node index -> status, for every node that answered."""
        found = await self.admin().status_all(timeout=timeout_s)
        out = {}
        for status in found:
            node = self.node_of(status.address)
            if status.up and node is not None:
                out[node] = status
        return out

    async def leader(self, timeout_s: float = 15.0) -> int:
        """The index of the node that says it is leader and that every answering node follows."""
        deadline = time.monotonic() + timeout_s
        last: dict[int, NodeStatus] = {}
        while time.monotonic() < deadline:
            last = await self.statuses()
            leaders = [i for i, s in last.items() if s.role == "leader"]
            if len(leaders) == 1:
                return leaders[0]
            await asyncio.sleep(0.05)  # poll interval
        raise ClusterError(f"no single leader within {timeout_s}s: {_describe(last)}")

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Every started node answers and names the same leader."""
        deadline = time.monotonic() + timeout_s
        last: dict[int, NodeStatus] = {}
        while time.monotonic() < deadline:
            last = await self.statuses()
            ids = {s.leader_id for s in last.values()}
            if set(last) == set(self.procs) and len(ids) == 1 and 0 not in ids:
                return
            await asyncio.sleep(0.05)
        raise ClusterError(f"cluster not ready within {timeout_s}s: {_describe(last)}")

    async def wait_quiescent(self, timeout_s: float = 30.0) -> int:
        """All n nodes up, one leader, every node applied == the leader's commit index, stable
        across two polls; returns that applied index."""
        deadline = time.monotonic() + timeout_s
        last: dict[int, NodeStatus] = {}
        previous: int | None = None
        while time.monotonic() < deadline:
            last = await self.statuses()
            applied = {s.applied_index for s in last.values()}
            commits = {s.commit_index for s in last.values()}
            leaders = [s for s in last.values() if s.role == "leader"]
            if len(last) == self.n and len(leaders) == 1 and len(applied) == 1 and (
                applied == commits
            ):
                index = applied.pop()
                if index == previous:
                    return index
                previous = index
            else:
                previous = None
            await asyncio.sleep(0.1)
        raise ClusterError(f"nodes did not converge within {timeout_s}s: {_describe(last)}")

    # --- offline state --------------------------------------------------------------------------

    def digests(self) -> list[StateDigest]:
        """Read every (stopped) node's state DB; call after ``kill_all``."""
        if self.procs:
            raise RuntimeError("stop every node before reading their state DBs")
        return [digest_state(node, self.data_dir(node) / "state") for node in range(self.n)]


def digest_state(node: int, path: Path) -> StateDigest:
    """sha256 over every record of a state DB (data, sessions, metadata), plus its user data."""
    state = KVStateMachine.open(path)
    try:
        db = state.db
        sha = hashlib.sha256()
        data: dict[str, str] = {}
        for key, value in db.items():
            sha.update(len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big") + value)
            if key.startswith(layout.DATA_PREFIX):
                data[key[1:].decode(errors="replace")] = value.decode(errors="replace")
        return StateDigest(
            node=node, applied_index=int(state.applied_index()), sha256=sha.hexdigest(), data=data
        )
    finally:
        state.close()


def _readline_within(stream: IO[Any], timeout_s: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout_s)
    return str(stream.readline()) if ready else ""


def _describe(statuses: dict[int, NodeStatus]) -> str:
    return ", ".join(
        f"n{i + 1}:{s.role}/t{s.term}/leader{s.leader_id}/commit{s.commit_index}"
        f"/applied{s.applied_index}"
        for i, s in sorted(statuses.items())
    ) or "no node answered"
