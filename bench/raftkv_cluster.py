"""raftkv under test: N ``raftkv serve`` processes on loopback, fsync on (the server's only mode).

Rules: nodes run from this checkout (``python -c 'from raftkv.cli.server_main import main'``),
so the benchmark measures the working tree; data directories live under a temporary root; every
process is registered with ``bench.procs`` and killed on exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench import procs
from raftkv.loadgen.targets import ClientTarget, RawTarget
from raftkv.pb import kv_pb2

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
SERVE = "from raftkv.cli.server_main import main; main()"


class RaftkvCluster:
    """``size`` raftkv nodes under ``root`` with the server's default timings unless given."""

    kind = "raftkv"

    def __init__(self, root: Path, *, size: int = 3, extra_args: tuple[str, ...] = (),
                 metrics: bool = False, source: Path = ROOT) -> None:
        self.root = root
        self.source = source
        """The checkout the nodes run from (another one: see bench.ab)."""
        self.size = size
        self.extra_args = extra_args
        ports = procs.free_ports(2 * size if metrics else size)
        self.endpoints = [f"127.0.0.1:{p}" for p in ports[:size]]
        self.ports = ports[:size]
        self.metrics_ports = ports[size:]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def _args(self, i: int) -> list[str]:
        cluster = ",".join(f"{j}={e}" for j, e in enumerate(self.endpoints, start=1))
        return [
            sys.executable, "-c", SERVE, "serve", "--id", str(i),
            "--listen", self.endpoints[i - 1], "--cluster", cluster,
            "--data-dir", str(self.root / f"n{i}"), "--log-level", "warning",
            *self.extra_args,
            *(["--metrics-listen", f"127.0.0.1:{self.metrics_ports[i - 1]}"]
              if self.metrics_ports else []),
        ]

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.source) + os.pathsep + env.get("PYTHONPATH", "")
        for i in range(1, self.size + 1):
            self.processes[self.endpoints[i - 1]] = procs.start(
                self._args(i), log_path=self.root / f"n{i}.log", env=env, cwd=self.source
            )
        for port in self.ports:
            if not procs.wait_port(port, START_TIMEOUT_S):
                raise RuntimeError(f"raftkv on port {port} did not start; see {self.root}")

    async def wait_leader(self, timeout_s: float = START_TIMEOUT_S) -> str:
        what = f"raftkv (logs in {self.root})"
        return await procs.wait_for_leader(RawTarget(self.endpoints), timeout_s, what)

    async def leadership(self) -> tuple[str, int]:
        """(leader address, term) as the leader reports it; ("", 0) if none answers."""
        target = RawTarget(self.endpoints)
        try:
            for endpoint in self.endpoints:
                try:
                    status = await target.unary(
                        endpoint, target.status_path, kv_pb2.StatusRequest(), 1.0
                    )
                except Exception:  # a down node: ask the next
                    continue
                if status.role == "leader":
                    return endpoint, int(status.term)
        finally:
            await target.close()
        return "", 0

    def target(self, *, channels: int = 1) -> RawTarget:
        return RawTarget(self.endpoints, channels=channels)

    def client_target(self) -> ClientTarget:
        return ClientTarget(self.endpoints)

    def metrics_url(self, endpoint: str) -> str | None:
        if not self.metrics_ports:
            return None
        return f"http://127.0.0.1:{self.metrics_ports[self.endpoints.index(endpoint)]}/metrics"

    def pid_of(self, endpoint: str) -> int:
        return self.processes[endpoint].pid

    def kill(self, endpoint: str) -> None:
        procs.kill(self.processes[endpoint])

    def stop(self) -> None:
        for process in self.processes.values():
            procs.kill(process)
