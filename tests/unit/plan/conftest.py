"""Fixtures for the planner's tests: the bundled examples' facts."""

from __future__ import annotations

import pytest
from plan_helpers import load

from cni_migrate.facts import ClusterFacts


@pytest.fixture(scope="session")
def lossy() -> ClusterFacts:
    return load("calico-bgp-lossy")


@pytest.fixture(scope="session")
def flannel() -> ClusterFacts:
    return load("flannel-graceful")


@pytest.fixture(scope="session")
def multipool() -> ClusterFacts:
    return load("calico-operator-multipool")
