"""Node-agent tests in network namespaces (cni_migrate_testbed.netns): one namespace per simulated node, real
kube-proxy and flanneld inside them against the test control plane. Marked ``netns`` and ``integration``."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.netns)
            item.add_marker(pytest.mark.integration)
