"""Fixtures: a fake three-node cluster per test, and clients pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from raftkv.client import Client
from tests.client.fakes import FakeCluster


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    fake = FakeCluster(3)
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def make_client(cluster: FakeCluster) -> Iterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(endpoints: list[str] | None = None, **options: Any) -> Client:
        options.setdefault("timeout", 3.0)
        options.setdefault("backoff_base", 0.001)
        options.setdefault("backoff_max", 0.01)
        client = Client(endpoints or cluster.addresses, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
