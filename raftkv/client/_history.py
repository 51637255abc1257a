"""What the failed attempts of one operation add up to: when to back off, and the final error.

Rules: a write whose attempts include an ambiguous one ends in Timeout (outcome unknown);
otherwise the error names the most telling definite failure (what a server or the transport
said), not the deadline that merely cut the last attempt short. Nothing here does I/O.
"""

from __future__ import annotations

from raftkv.client._policy import Outcome
from raftkv.client._transport import AttemptFailed
from raftkv.errors import Overloaded, RaftKVError, Timeout, Unavailable

__all__ = ["History", "session_expired"]


class History:
    """What the failed attempts of one operation add up to: whether to wait, and the final error."""

    def __init__(self, endpoints: int) -> None:
        self.endpoints = endpoints
        self.failures = 0
        self.waits = 0
        self.ambiguous = False
        self.last: AttemptFailed | None = None
        self.last_definite: AttemptFailed | None = None
        self.renewed = False  # the write moved to a new session once already

    def add(self, failure: AttemptFailed, outcome: Outcome, *, redirected: bool) -> bool:
        """Record a retryable failure; True when the caller should back off before retrying.

        Wait when the cluster itself said "not now" (no leader, overloaded), after a whole round
        of endpoints failed, or when redirects keep going in circles; a fresh redirect is
        followed at once.
        """
        self.failures += 1
        self.last = failure
        if outcome is Outcome.AMBIGUOUS:
            self.ambiguous = True
        else:
            self.last_definite = failure
        if redirected:
            wait = self.failures > 2 * self.endpoints
        else:
            wait = failure.server_spoke or self.failures % self.endpoints == 0
        self.waits += wait
        return wait

    def final_error(self, *, write: bool, total_s: float) -> RaftKVError:
        if self.last is None:
            return Timeout(f"deadline of {total_s:g}s passed before any attempt")
        if write and self.ambiguous:
            # An attempt may have been applied (and may still be): the outcome is unknown.
            return Timeout(
                f"outcome unknown after {total_s:g}s (last error {_describe(self.last)})"
            )
        # Nothing was applied. Name the most telling reason: what a server or the transport said
        # definitely, rather than the deadline that merely cut the last attempt short.
        failure = self.last_definite or self.last
        where = _describe(failure)
        if failure.code == "RESOURCE_EXHAUSTED":
            return Overloaded(f"cluster overloaded for {total_s:g}s ({where})")
        if failure.code == "UNAVAILABLE":
            return Unavailable(f"no node could serve the request within {total_s:g}s ({where})")
        return Timeout(f"no answer within {total_s:g}s (last error {where})")


def session_expired(failure: AttemptFailed) -> bool:
    # The server's SESSION_EXPIRED refusal (raftkv/server/kv_service.py): FAILED_PRECONDITION
    # naming the session. Nothing else in the protocol uses that pair.
    details = failure.details.lower()
    return failure.code == "FAILED_PRECONDITION" and "session" in details and "expired" in details


def _describe(failure: AttemptFailed) -> str:
    return f"{failure.code}: {failure.details}" if failure.details else failure.code
