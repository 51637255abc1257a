"""raftkv's own processes ask grpc core for the iomgr TCP stack (one thread hand-off less per
message), before grpc is imported, only on grpcio releases known to have the switch, and never
over a user's own GRPC_EXPERIMENTS; the client library leaves a user's process alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from raftkv.cli import grpc_transport
from raftkv.cli.grpc_transport import ENV_VAR, IOMGR_EXPERIMENTS, KNOWN_RELEASES, prefer_iomgr

# Run in a fresh interpreter: report GRPC_EXPERIMENTS as it was at the moment grpc was imported.
_PROBE = """
import builtins, importlib, json, os, sys
seen = {}
real_import = builtins.__import__
def spy(name, *args, **kwargs):
    if (name == "grpc" or name.startswith("grpc.")) and "at_import" not in seen:
        seen["at_import"] = os.environ.get("GRPC_EXPERIMENTS")
    return real_import(name, *args, **kwargs)
builtins.__import__ = spy
importlib.import_module(sys.argv[1])
print(json.dumps({"grpc_imported": "grpc" in sys.modules, **seen}))
"""


def _probe(module: str, env_extra: dict[str, str] | None = None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env.update(env_extra or {})
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, module], env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )
    assert out.stderr == ""
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("version", ["1.80.0", "1.85.3", "1.83.0rc1"])
def test_known_releases_get_the_iomgr_stack(version: str) -> None:
    env: dict[str, str] = {}
    assert prefer_iomgr(env, version) is True
    assert env == {ENV_VAR: IOMGR_EXPERIMENTS}


@pytest.mark.parametrize("version", ["1.79.2", "1.86.0", "2.0.0", "garbage", ""])
def test_other_releases_are_left_alone(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # An empty version must not fall back to the installed one.
    monkeypatch.setattr(grpc_transport, "_installed_grpcio", lambda: version or None)
    env: dict[str, str] = {}
    assert prefer_iomgr(env, version or None) is False
    assert env == {}


@pytest.mark.parametrize("mine", ["", "-event_engine_client", "some_other_experiment"])
def test_a_users_own_choice_wins(mine: str) -> None:
    env = {ENV_VAR: mine}
    assert prefer_iomgr(env, "1.85.3") is False
    assert env == {ENV_VAR: mine}


def _installed_is_known() -> bool:
    release = grpc_transport._release(grpc_transport._installed_grpcio() or "")
    return release is not None and KNOWN_RELEASES[0] <= release <= KNOWN_RELEASES[1]


@pytest.mark.parametrize("entry", ["raftkv.cli.server_main", "raftkv.cli.client_main"])
def test_the_commands_choose_before_grpc_is_imported(entry: str) -> None:
    seen = _probe(entry)
    assert seen["grpc_imported"] is True
    expected = IOMGR_EXPERIMENTS if _installed_is_known() else None
    assert seen["at_import"] == expected


def test_the_commands_keep_a_users_choice() -> None:
    seen = _probe("raftkv.cli.server_main", {ENV_VAR: "-event_engine_callback_cq"})
    assert seen["at_import"] == "-event_engine_callback_cq"


def test_the_client_library_leaves_a_users_process_alone() -> None:
    seen = _probe("raftkv.client")
    assert seen["grpc_imported"] is True
    assert seen["at_import"] is None


def test_the_installed_version_is_read_without_importing_grpc() -> None:
    from importlib import metadata

    probe = (
        "import sys, json; from raftkv.cli.grpc_transport import _installed_grpcio; "
        "print(json.dumps([_installed_grpcio(), 'grpc' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout) == [metadata.version("grpcio"), False]
