from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Cluster, ready_cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with ready_cluster(tmp_path) as c:
        yield c


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the tests of a module that do not kill or stop nodes."""
    with ready_cluster(tmp_path_factory.mktemp("shared")) as c:
        yield c
