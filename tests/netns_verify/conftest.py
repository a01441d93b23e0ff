"""Tests of the prober in network namespaces made by the test (see topology.py); marked ``netns``.

They need root and ``ip netns``; without them they fail (never skip), like the integration tests without the
control plane.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.netns)


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # Unix socket paths are limited to 107 bytes: a short directory.
    d = tmp_path_factory.mktemp("vfy", numbered=True)
    yield d
