"""Helpers for tests/deploy: bounded polling, subprocesses, a host Prometheus, local raftkv nodes.

Rules: every wait has a deadline and says what it waited for; every process a helper starts is
stopped by the same helper (context managers); traffic goes to loopback only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class GiveUp(Exception):
    """Raised inside a polled function: stop polling at once (e.g. the process died)."""


def wait_for(fn: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.2) -> T:
    """Poll ``fn`` until it returns something truthy; fail at the deadline naming ``what``.

    Exceptions raised by ``fn`` count as "not yet" (the last one is shown on failure), except
    :class:`GiveUp`, which ends the wait at once.
    """
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            result = fn()
            if result:
                return result
            last = result
        except GiveUp:
            raise
        except Exception as exc:  # any failure means "not yet" while polling
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout_s:.0f}s (last: {last!r})")
        time.sleep(interval_s)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


@dataclass
class Result:
    args: Sequence[str]
    code: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.args)}\nexit {self.code} after {self.seconds:.1f}s\n"
            f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
        )


def run(
    args: Sequence[str],
    *,
    timeout_s: float,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
) -> Result:
    """Run a command to completion within ``timeout_s``; with ``check``, fail showing its output."""
    started = time.monotonic()
    try:
        proc = subprocess.run(
            list(args),
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise AssertionError(
            f"$ {' '.join(args)}\ntimed out after {timeout_s:.0f}s\n--- stdout\n{out[-4000:]}"
            f"\n--- stderr\n{err[-4000:]}"
        ) from None
    result = Result(args, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
    if check and result.code != 0:
        raise AssertionError(result.describe())
    return result


def raftkv_cli() -> list[str]:
    """How to run raftkv-cli: the console script beside this Python, else the module."""
    script = Path(sys.executable).parent / "raftkv-cli"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from raftkv.cli.client_main import main; main()"]


def http_json(url: str, *, data: dict[str, str] | None = None, timeout_s: float = 5.0) -> Any:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        # Prometheus answers a bad query with 400 and a JSON body naming the error.
        payload = exc.read()
        try:
            return json.loads(payload)
        except ValueError:
            raise AssertionError(f"{url}: HTTP {exc.code}: {payload[:500]!r}") from None


# ------------------------------------------------------------------------------- Prometheus API
@dataclass
class PrometheusAPI:
    base_url: str

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def query(self, expr: str) -> dict[str, Any]:
        """An instant query; returns the whole API answer (status, data or error)."""
        answer: dict[str, Any] = http_json(f"{self.base_url}/api/v1/query", data={"query": expr})
        return answer

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> dict[str, Any]:
        answer: dict[str, Any] = http_json(
            f"{self.base_url}/api/v1/query_range",
            data={"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s}"},
        )
        return answer

    def targets(self) -> list[dict[str, Any]]:
        answer = http_json(f"{self.base_url}/api/v1/targets")
        targets: list[dict[str, Any]] = answer["data"]["activeTargets"]
        return targets


PROMETHEUS_CONFIG = """\
global:
  scrape_interval: {interval}
  scrape_timeout: {timeout}
  evaluation_interval: {interval}
scrape_configs:
  - job_name: raftkv
    static_configs:
      - targets: [{targets}]
"""


@contextmanager
def host_prometheus(
    workdir: Path, targets: Sequence[str], scrape_interval_s: int = 1
) -> Iterator[PrometheusAPI]:
    """Debian's ``prometheus`` on an ephemeral loopback port, scraping ``targets`` as job raftkv."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise AssertionError(
            "no `prometheus` binary on PATH: install Debian's package (apt-get install "
            "prometheus; deploy/ci/setup.sh does it)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(
        PROMETHEUS_CONFIG.format(
            interval=f"{scrape_interval_s}s",
            timeout=f"{int(scrape_interval_s * 800)}ms",
            targets=", ".join(f'"{t}"' for t in targets),
        )
    )
    port = free_ports(1)[0]
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    api = PrometheusAPI(f"http://127.0.0.1:{port}")

    def ready() -> bool:
        if proc.poll() is not None:
            raise GiveUp(f"prometheus exited with {proc.returncode}")
        return api.ready()

    try:
        try:
            wait_for(ready, 30, "host Prometheus ready")
        except (AssertionError, GiveUp) as exc:
            log_tail = log_path.read_text()[-3000:]
            raise AssertionError(f"{exc}\n--- prometheus log\n{log_tail}") from None
        yield api
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------- local nodes
@dataclass
class LocalNode:
    id: int
    port: int
    metrics_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_address(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"


@dataclass
class LocalCluster:
    """``raftkv serve`` processes on loopback, each with its own metrics port."""

    root: Path
    size: int = 3
    extra_args: tuple[str, ...] = ()
    nodes: list[LocalNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * self.size)
        for i in range(self.size):
            self.nodes.append(
                LocalNode(
                    id=i + 1,
                    port=ports[i],
                    metrics_port=ports[self.size + i],
                    data_dir=self.root / f"node-{i + 1}",
                    log_path=self.root / f"node-{i + 1}.log",
                )
            )

    @property
    def endpoints(self) -> list[str]:
        return [n.address for n in self.nodes]

    def node(self, node_id: int) -> LocalNode:
        return self.nodes[node_id - 1]

    def start(self, node: LocalNode | None = None) -> None:
        members = ",".join(f"{n.id}={n.address}" for n in self.nodes)
        for n in [node] if node is not None else self.nodes:
            args = [
                sys.executable, "-m", "raftkv.cli.server_main", "serve",
                "--id", str(n.id),
                "--listen", n.address,
                "--cluster", members,
                "--data-dir", str(n.data_dir),
                "--metrics-listen", n.metrics_address,
                *self.extra_args,
            ]  # fmt: skip
            with n.log_path.open("ab") as log:
                n.proc = subprocess.Popen(
                    args, stdout=log, stderr=subprocess.STDOUT, env=child_env(),
                    stdin=subprocess.DEVNULL,
                )  # fmt: skip

    def kill(self, node: LocalNode) -> None:
        assert node.proc is not None
        node.proc.kill()
        node.proc.wait()
        node.proc = None

    def stop(self) -> None:
        for n in self.nodes:
            if n.proc is None:
                continue
            n.proc.send_signal(signal.SIGTERM)
        for n in self.nodes:
            if n.proc is None:
                continue
            try:
                n.proc.wait(15)
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait()
            n.proc = None

    def logs(self) -> str:
        return "\n".join(
            f"--- node {n.id}\n{n.log_path.read_text(errors='replace')[-3000:]}"
            for n in self.nodes
            if n.log_path.exists()
        )
