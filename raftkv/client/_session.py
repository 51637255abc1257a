"""The client session: (client_id, sequence) for every write, kept inside the server's window.

Rules (mirroring raftkv/kv/sessions.py on the server):
- Each write takes a fresh sequence once; every retry of it resends the same one.
- The server remembers the last ``window`` sequences of a session; a sequence older than
  ``newest - window`` is refused as SESSION_EXPIRED. So a new sequence is issued only while it
  stays within ``window`` of the oldest write still in flight: with more concurrent writes than
  the window, the extra ones wait here, before anything is sent.
- When the server says the session expired (idle past its TTL, or evicted), the client starts a
  new session: a new random client id, sequences from 1 again. Writes of the old session that
  are still in flight are no longer tracked: they can no longer collide with the new one.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque

from raftkv.pb import kv_pb2

__all__ = ["DEFAULT_SESSION_WINDOW", "SessionWindow", "new_client_id"]

# raftkv.kv.sessions.SessionConfig.window's default; must not exceed the server's setting.
DEFAULT_SESSION_WINDOW = 64


def new_client_id() -> int:
    # From the OS: two processes (or a seeded test rng) must never share an id. 0 is "no session".
    return secrets.randbits(63) or 1


class SessionWindow:
    """Issues session sequences within the window, to waiters in the order they came (FIFO: with
    many more concurrent writers than the window, a free-for-all let some wait out their whole
    deadline while later ones got in)."""

    def __init__(self, client_id: int | None = None, window: int = DEFAULT_SESSION_WINDOW) -> None:
        if window < 1:
            raise ValueError("the session window must be >= 1")
        self.client_id = client_id if client_id is not None else new_client_id()
        self.window = window
        self._next = 1
        self._in_flight: set[int] = set()
        self._waiters: deque[asyncio.Future[kv_pb2.Session]] = deque()

    def _has_room(self) -> bool:
        return not self._in_flight or self._next - min(self._in_flight) < self.window

    def _issue(self) -> kv_pb2.Session:
        sequence = self._next
        self._next += 1
        self._in_flight.add(sequence)
        return kv_pb2.Session(client_id=self.client_id, sequence=sequence)

    def _grant(self) -> None:
        """Hand the room there is to the oldest waiters (a waiter that gave up is skipped)."""
        while self._waiters and self._has_room():
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(self._issue())

    async def acquire(self, timeout_s: float) -> kv_pb2.Session | None:
        """A new (client_id, sequence), waiting up to ``timeout_s`` for room (None: still full)."""
        if not self._waiters and self._has_room():
            return self._issue()
        waiter: asyncio.Future[kv_pb2.Session] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                return await waiter
        except TimeoutError:
            # Granted at the very moment time ran out: the sequence is ours, use it.
            return waiter.result() if waiter.done() and not waiter.cancelled() else None
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # granted, then cancelled: give it back
                self._in_flight.discard(waiter.result().sequence)
                self._grant()
            raise

    async def release(self, session: kv_pb2.Session) -> None:
        """The write is finished (answered, or given up on): its sequence leaves the window."""
        if session.client_id == self.client_id:
            self._in_flight.discard(session.sequence)
        self._grant()

    async def renew(self, expired: kv_pb2.Session) -> kv_pb2.Session:
        """The server refused ``expired``'s session: start a new one (once); a sequence in it.

        The caller already held a place in the window, so it gets its sequence ahead of waiters.
        """
        if expired.client_id == self.client_id:
            self.client_id = new_client_id()
            self._next = 1
            self._in_flight.clear()
        session = self._issue()
        self._grant()
        return session
