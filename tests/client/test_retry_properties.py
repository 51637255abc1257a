"""Property: whatever the failures, a write's outcome tells the truth about whether it was applied.

The retry engine runs against a scripted in-memory transport (no network): each attempt consumes
the next scripted event, and the "server" deduplicates by session like the real one. Hypothesis
generates the scripts.
- success           => applied exactly once
- Unavailable       => not applied (every attempt was definitely refused)
- Timeout           => some attempt was ambiguous (or there was no time for any)
- InvalidArgument   => not applied, and nothing was retried after it
- every attempt carried the same (client_id, sequence)
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from raftkv.client import AsyncClient
from raftkv.client._transport import AttemptFailed
from raftkv.errors import InvalidArgument, RaftKVError, Timeout, Unavailable
from raftkv.pb import kv_pb2

EVENTS = [
    "ok",  # applied (or answered from the session table) and answered
    "refused",  # UNAVAILABLE from a raftkv server: not applied
    "connect",  # the transport never connected: not applied
    "overloaded",  # RESOURCE_EXHAUSTED: not applied
    "redirect",  # UNAVAILABLE with a hint to another node: not applied
    "lost",  # applied, the answer lost (connection dropped mid-call)
    "late",  # applied, then the attempt's deadline passed
    "cut",  # deadline passed before the server applied it
    "invalid",  # INVALID_ARGUMENT: not applied, final
]


class ScriptedServer:
    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.applied: dict[tuple[int, int], int] = {}
        self.sessions_seen: list[tuple[int, int]] = []
        self.ambiguous = False
        self.after_fatal = 0
        self.fatal_seen = False

    def apply(self, request: Any) -> None:
        key = (request.session.client_id, request.session.sequence)
        self.applied[key] = self.applied.get(key, 0) or 1  # at most once: the session table

    async def unary(self, address: str, rpc: Any, request: Any, timeout_s: float) -> Any:
        if self.fatal_seen:
            self.after_fatal += 1
        self.sessions_seen.append((request.session.client_id, request.session.sequence))
        event = self.script.pop(0) if self.script else "refused"
        hint = "127.0.0.1:2" if address != "127.0.0.1:2" else "127.0.0.1:1"
        match event:
            case "ok":
                self.apply(request)
                return kv_pb2.PutResponse(), None
            case "refused":
                raise AttemptFailed("UNAVAILABLE", "no leader", leader_hint=None, server_spoke=True)
            case "connect":
                raise AttemptFailed(
                    "UNAVAILABLE", "failed to connect", leader_hint=None, server_spoke=False
                )
            case "overloaded":
                raise AttemptFailed(
                    "RESOURCE_EXHAUSTED", "busy", leader_hint=None, server_spoke=True
                )
            case "redirect":
                raise AttemptFailed(
                    "UNAVAILABLE", "not the leader", leader_hint=hint, server_spoke=True
                )
            case "lost":
                self.apply(request)
                self.ambiguous = True
                raise AttemptFailed(
                    "UNAVAILABLE", "Socket closed", leader_hint=None, server_spoke=False
                )
            case "late" | "cut":
                if event == "late":
                    self.apply(request)
                self.ambiguous = True
                raise AttemptFailed(
                    "DEADLINE_EXCEEDED", "Deadline Exceeded", leader_hint=None, server_spoke=False
                )
            case _:
                self.fatal_seen = True
                raise AttemptFailed(
                    "INVALID_ARGUMENT", "value too large", leader_hint=None, server_spoke=True
                )


def run(script: list[str], timeout: float = 0.05) -> tuple[ScriptedServer, RaftKVError | None]:
    server = ScriptedServer(script)

    async def main() -> RaftKVError | None:
        client = AsyncClient(
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"],
            timeout=timeout,
            backoff_base=0.0001,
            backoff_max=0.001,
        )
        client._pool.unary = server.unary  # type: ignore[method-assign]
        assert client._batcher is not None
        client._batcher._streams = None  # every attempt through the scripted unary seam
        try:
            await client.put("k", "v")
        except RaftKVError as error:
            return error
        finally:
            await client.close()
        return None

    return server, asyncio.run(main())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(EVENTS), max_size=12))
def test_a_writes_outcome_is_truthful(script: list[str]) -> None:
    server, error = run(script)
    applications = sum(server.applied.values())
    assert len(set(server.sessions_seen)) <= 1
    assert server.after_fatal == 0
    if error is None:
        assert applications == 1
    elif isinstance(error, InvalidArgument):
        assert "invalid" in script
    elif isinstance(error, Unavailable):  # includes Overloaded
        assert applications == 0 and not server.ambiguous
    else:
        assert isinstance(error, Timeout)
        assert server.ambiguous or not server.sessions_seen  # or no time for any attempt


def test_an_ok_after_failures_succeeds() -> None:
    server, error = run(["connect", "redirect", "lost", "overloaded", "ok"], timeout=10.0)
    assert error is None and sum(server.applied.values()) == 1
