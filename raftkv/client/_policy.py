"""How the client judges a failed attempt, and how long it waits before the next one.

Rules:
- Every failed attempt is one of three outcomes. DEFINITE: the request was not applied (nothing
  was reachable, or a server said UNAVAILABLE / RESOURCE_EXHAUSTED); retry anywhere. AMBIGUOUS: it
  may have been applied (deadline passed after sending, connection lost mid-call, cancelled); retry
  with the SAME session sequence, which the server applies at most once. FATAL: retrying cannot
  help (bad input, a server bug); raise now.
- A write's final error is Timeout if ANY of its attempts was ambiguous, even when later attempts
  failed definitely: the early attempt may still be applied. Only all-definite is Unavailable.
- UNAVAILABLE is definite only when we know the operation did not start: the transport never
  connected, or a raftkv server said so (sent ``raftkv-*`` metadata) in its own words. A
  connection dropped mid-call is indistinguishable from a lost response, so it is ambiguous,
  even when a follower relays it from its forwarding call to the leader.
- Backoff is jittered exponential, capped, and never outlives the caller's deadline.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

__all__ = ["LEADER_METADATA_KEY", "Backoff", "Outcome", "classify"]

# The server puts "host:port" of the leader, when it knows it, under this key in initial or
# trailing metadata of every response (including error statuses).
LEADER_METADATA_KEY = "raftkv-leader"
# Any metadata key with this prefix proves the status came from a raftkv server, not the transport.
SERVER_METADATA_PREFIX = "raftkv-"

# Details grpc-core gives when no connection could be made: the request never left this process.
_CONNECT_FAILURE_MARKERS = (
    "failed to connect",
    "connection refused",
    "dns resolution failed",
    "connections to all backends failing",
    "name resolution",
    "no route to host",
    "empty address list",
)

# Details of a transport failure after the request may have been sent.
_MIDCALL_FAILURE_MARKERS = (
    "socket closed",
    "connection reset",
    "broken pipe",
    "stream removed",
    "goaway",
    "end of file",
    "keepalive",
    "rst_stream",
)

# A message too large for a peer's gRPC limit will never fit; retrying is pointless.
_TOO_LARGE_MARKERS = ("larger than max", "message too large")


class Outcome(enum.Enum):
    DEFINITE = "definite"
    AMBIGUOUS = "ambiguous"
    FATAL = "fatal"


def classify(code: str, details: str, *, server_spoke: bool) -> Outcome:
    """The outcome of an attempt that failed with status ``code`` (a grpc.StatusCode name)."""
    lowered = details.lower()
    if code == "UNAVAILABLE":
        if any(m in lowered for m in _CONNECT_FAILURE_MARKERS):
            return Outcome.DEFINITE
        if server_spoke and not any(m in lowered for m in _MIDCALL_FAILURE_MARKERS):
            return Outcome.DEFINITE
        return Outcome.AMBIGUOUS
    if code == "RESOURCE_EXHAUSTED":
        if any(m in lowered for m in _TOO_LARGE_MARKERS):
            return Outcome.FATAL
        return Outcome.DEFINITE
    if code in ("DEADLINE_EXCEEDED", "CANCELLED", "ABORTED"):
        return Outcome.AMBIGUOUS
    return Outcome.FATAL


@dataclass(slots=True)
class Backoff:
    """Jittered exponential waits: the n-th is uniform in [d/2, d], d = min(max, base * 2^n)."""

    base_s: float = 0.02
    max_s: float = 1.0
    rng: random.Random = field(default_factory=random.Random)

    def delay_s(self, n: int) -> float:
        ceiling = min(self.max_s, self.base_s * (2 ** min(n, 30)))
        return self.rng.uniform(ceiling / 2, ceiling)
