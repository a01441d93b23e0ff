"""Fixtures of the executor's end-to-end tests: a fresh control plane per test (the example's nodes must be the
whole cluster, as the plan demands)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cni_migrate_testbed import ControlPlane


@pytest.fixture
def fresh_control_plane() -> Iterator[ControlPlane]:
    cp = ControlPlane(quiet=True).start(allocate_node_cidrs=False)
    try:
        yield cp
    finally:
        cp.stop()
