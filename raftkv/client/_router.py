"""Which address the next attempt goes to: the configured endpoints and the cached leader.

Rules:
- Requests that need the leader (writes, linearizable reads, cluster commands) go to the cached
  leader when there is one; otherwise to the current endpoint. Any node accepts any request (a
  follower forwards), so the cache is an optimisation, never a requirement.
- The leader is learned from the ``raftkv-leader`` metadata of every response, success or
  failure. It may be an address outside the configured endpoints (a node's advertised address).
- A hinted leader outside the endpoints that has never answered and then fails is not followed
  again (an advertised address this client cannot reach, e.g. inside a container network):
  requests keep going through the endpoints, which forward.
- A failure at the cached leader forgets it; a failure at an endpoint moves to the next one, so
  consecutive attempts walk the whole list. A success makes that endpoint the sticky one.
- One router per client, used from one event loop: no locks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

__all__ = ["Router", "parse_endpoints"]

log = logging.getLogger(__name__)


def parse_endpoints(endpoints: Sequence[str] | str) -> list[str]:
    """Endpoints from a list or a comma-separated string, stripped and de-duplicated, in order."""
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    result: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"an endpoint must be a str 'host:port', not {type(item).__name__}")
        address = item.strip()
        if address and address not in result:
            result.append(address)
    if not result:
        raise ValueError("at least one endpoint 'host:port' is required")
    return result


class Router:
    def __init__(self, endpoints: Sequence[str]) -> None:
        self.endpoints = list(endpoints)
        self.leader: str | None = None
        self._current = 0
        self._answered: set[str] = set()  # addresses that have answered at least once
        self._ignored: set[str] = set()  # hinted addresses we could not use

    def pick(self, *, leader: bool) -> str:
        """The address for the next attempt."""
        if leader and self.leader is not None:
            return self.leader
        return self.endpoints[self._current]

    def record_success(self, address: str, leader_hint: str | None) -> None:
        self._answered.add(address)
        if address in self.endpoints:
            self._current = self.endpoints.index(address)
        self._learn(leader_hint)

    def record_failure(self, address: str, leader_hint: str | None) -> bool:
        """Note a failed attempt; True when the next attempt has a new place to go right away.

        "New place" means a leader hint pointing elsewhere: the server told us where to go, so
        the caller need not back off.
        """
        if leader_hint:
            self._answered.add(address)  # it answered, if only with an error
        if self.leader == address and leader_hint != address:
            log.debug("forgetting leader %s after a failure", address)
            self.leader = None
            if address not in self.endpoints and address not in self._answered:
                log.info("leader address %s is not reachable from here; not using it", address)
                self._ignored.add(address)
        self._advance_from(address)
        if leader_hint and leader_hint != address:
            self._learn(leader_hint)
            return self.leader == leader_hint
        return False

    def _advance_from(self, address: str) -> None:
        # Only move when the failed address is the current endpoint, so that several concurrent
        # operations failing at the same node move the cursor once, not once each.
        if self.endpoints[self._current] == address:
            self._current = (self._current + 1) % len(self.endpoints)

    def _learn(self, leader_hint: str | None) -> None:
        if leader_hint in self._ignored:
            return
        if leader_hint and leader_hint != self.leader:
            log.debug("leader is %s", leader_hint)
            self.leader = leader_hint
