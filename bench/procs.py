"""Child processes of the benchmark: start, find, measure and always kill them.

Rules: every process started here is registered and killed (SIGKILL of its process group) when
the benchmark exits, normally, by exception, or on SIGTERM/SIGINT. Only processes this module
started are ever signalled, by their pid. Ports are picked free on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Protocol

_children: dict[int, subprocess.Popen[bytes]] = {}


def start(args: Sequence[str], *, log_path: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own process group, output to ``log_path``; registered for cleanup."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(args), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )
    _children[process.pid] = process
    return process


def kill(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL, wait_s: float = 5.0) -> None:
    """Signal one of our processes (its group) and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=wait_s)
    _children.pop(process.pid, None)


def kill_all() -> None:
    for process in list(_children.values()):
        kill(process)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    kill_all()
    raise SystemExit(128 + signum)


def install_cleanup() -> None:
    """Kill every registered child at exit and on SIGTERM/SIGINT."""
    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (bound briefly, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (from /proc), 0.0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return 0.0
    return 0.0


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds used by ``pid`` so far (from /proc), 0.0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def wait_port(port: int, timeout_s: float) -> bool:
    """Whether 127.0.0.1:port accepts a connection within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.05)
    return False


def machine_load() -> str:
    """The 1/5/15-minute load averages, as text."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


class _Discovering(Protocol):
    leader: str

    async def discover(self) -> None: ...

    async def close(self) -> None: ...


async def wait_for_leader(target: _Discovering, timeout_s: float, what: str) -> str:
    """Poll ``target.discover()`` until it names a leader; closes ``target`` either way."""
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            target.leader = ""
            await target.discover()
            if target.leader:
                return target.leader
            await asyncio.sleep(0.1)  # poll interval while the cluster elects
    finally:
        await target.close()
    raise RuntimeError(f"{what} elected no leader within {timeout_s:g}s")
