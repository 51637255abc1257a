"""Which event loop runs a raftkv process.

uvloop where it is installed (it is a dependency on Linux and macOS): on a 3-node cluster it cut
a lone put's latency and the CPU per operation by 5-10% (bench/RESULTS.md). The standard loop
otherwise, or when ``RAFTKV_EVENT_LOOP=asyncio`` asks for it (to rule uvloop out when chasing a
problem). ``RAFTKV_EVENT_LOOP=uvloop`` insists on uvloop and fails if it is missing.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

__all__ = ["ENV_VAR", "EventLoopChoiceError", "check_choice", "loop_name", "run"]

ENV_VAR = "RAFTKV_EVENT_LOOP"
_CHOICES = ("auto", "uvloop", "asyncio")
T = TypeVar("T")


class EventLoopChoiceError(ValueError):
    """RAFTKV_EVENT_LOOP names no loop, or names one that is not installed."""


def _runner() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """``uvloop.run`` or ``asyncio.run``, as RAFTKV_EVENT_LOOP and the installation allow."""
    choice = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if choice not in _CHOICES:
        raise EventLoopChoiceError(f"{ENV_VAR}={choice!r} is not one of {', '.join(_CHOICES)}")
    if choice != "asyncio":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            if choice == "uvloop":
                raise EventLoopChoiceError(
                    f"{ENV_VAR}=uvloop, but uvloop is not installed (pip install uvloop)"
                ) from None
        else:
            return cast(Callable[[Coroutine[Any, Any, Any]], Any], uvloop.run)
    return asyncio.run


def check_choice() -> None:
    """Raise :class:`EventLoopChoiceError` now for a bad choice (before start-up touches disk)."""
    _runner()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    try:
        runner = _runner()
    except EventLoopChoiceError:
        main.close()  # never started: close it so Python does not warn it was never awaited
        raise
    return cast(T, runner(main))


def loop_name() -> str:
    """The running loop's kind, for the start-up log line: "uvloop" or "asyncio"."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
