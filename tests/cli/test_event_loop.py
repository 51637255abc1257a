"""The event-loop choice: uvloop by default where installed, the stdlib loop on request, and a
clear error (no traceback, usage exit code) for a bad RAFTKV_EVENT_LOOP."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from raftkv.cli import event_loop


async def _kind() -> str:
    return event_loop.loop_name()


def test_default_is_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.delenv(event_loop.ENV_VAR, raising=False)
    assert event_loop.run(_kind()) == "uvloop"


def test_asyncio_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.ENV_VAR, "asyncio")
    assert event_loop.run(_kind()) == "asyncio"


def test_unknown_choice_is_refused_and_the_coroutine_never_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(event_loop.ENV_VAR, "tokio")
    ran = False

    async def main() -> None:
        nonlocal ran
        ran = True

    with pytest.raises(event_loop.EventLoopChoiceError, match="RAFTKV_EVENT_LOOP='tokio'"):
        event_loop.run(main())
    assert not ran
    assert asyncio.get_event_loop_policy() is not None  # no loop was left half-installed


def test_server_reports_a_bad_choice_as_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "raftkv.cli.server_main", "serve", "--id", "1",
         "--listen", "127.0.0.1:1", "--cluster", "1=127.0.0.1:1",
         "--data-dir", str(tmp_path)],
        env={"RAFTKV_EVENT_LOOP": "tokio", "PATH": "/usr/bin:/bin"},
        check=False,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "RAFTKV_EVENT_LOOP='tokio'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir()), "a refused start must not touch the data directory"
