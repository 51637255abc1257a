"""Which of grpc core's two TCP stacks a raftkv process uses.

grpcio 1.80 moved Python onto grpc core's EventEngine. With it, every message a grpc.aio process
receives crosses three threads: an EventEngine thread reads the socket, grpc.aio's poller thread
takes the completion, and the event loop runs the callback. With the older iomgr stack the poller
thread reads the socket itself, so one hand-off goes. On the 2-core machines this project is
measured on, that cut a grpc.aio echo's round trip from 0.33-0.50 to 0.23-0.25 ms and its CPU by
a quarter, and a lone put through the cluster by 0.22 ms (bench/PROFILE.md, section 6).

grpc core reads the choice once, from ``GRPC_EXPERIMENTS``, when grpc is imported; so this runs
from ``raftkv/cli/__init__.py``, before any command imports grpc. It applies only to raftkv's own
processes (``raftkv``, ``raftkv-cli``): the client library never changes a user's process.
A ``GRPC_EXPERIMENTS`` the user set (even empty) wins. grpc core prints an error line for
experiment names it does not know, and it will drop these two in some later release, so the
switch is made only for the grpcio releases where they are known to exist.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from importlib.util import find_spec
from pathlib import Path

__all__ = ["ENV_VAR", "IOMGR_EXPERIMENTS", "KNOWN_RELEASES", "prefer_iomgr"]

ENV_VAR = "GRPC_EXPERIMENTS"
IOMGR_EXPERIMENTS = "-event_engine_client,-event_engine_listener"
KNOWN_RELEASES = ((1, 80), (1, 85))
"""First and last grpcio (major, minor) with both experiments, EventEngine on by default."""


def _release(version: str) -> tuple[int, int] | None:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def _installed_grpcio() -> str | None:
    """grpcio's version, read from its package without importing it (importing grpc is what
    must come after the choice; importlib.metadata would cost every process 0.7 MB)."""
    spec = find_spec("grpc")
    if spec is None or not spec.submodule_search_locations:
        return None
    version_file = Path(next(iter(spec.submodule_search_locations))) / "_grpcio_metadata.py"
    try:
        found = re.search(r"__version__\s*=\s*[\"']+([^\"']+)", version_file.read_text())
    except OSError:
        return None
    return found.group(1) if found else None


def prefer_iomgr(
    environ: MutableMapping[str, str] | None = None, grpcio_version: str | None = None
) -> bool:
    """Ask grpc core for the iomgr TCP stack unless the user chose; True if this asked."""
    env = os.environ if environ is None else environ
    if ENV_VAR in env:
        return False
    release = _release(grpcio_version or _installed_grpcio() or "")
    if release is None or not KNOWN_RELEASES[0] <= release <= KNOWN_RELEASES[1]:
        return False
    env[ENV_VAR] = IOMGR_EXPERIMENTS
    return True
