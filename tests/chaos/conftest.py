"""Fixtures for the chaos suite: a network-namespace cluster that is always torn down."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.chaos.netns import Cluster, cleanup_stale, harness_available


@pytest.fixture(scope="session")
def netns_ready() -> None:
    """Skip when the machine cannot build namespaces; clear what crashed runs left behind."""
    reason = harness_available()
    if reason is not None:
        pytest.skip(reason)
    cleanup_stale()


@pytest.fixture
def netns_cluster(netns_ready: None) -> Iterator[Callable[..., Cluster]]:
    """Factory: ``net = netns_cluster(3, host_link=True)``; every cluster is cleaned up after."""
    made: list[Cluster] = []

    def make(n_nodes: int, **kwargs: object) -> Cluster:
        cluster = Cluster(n_nodes, **kwargs)  # type: ignore[arg-type]
        made.append(cluster)
        cluster.__enter__()
        return cluster

    yield make
    for cluster in reversed(made):
        cluster.cleanup()
