"""Integration tests run against the real control plane built by ``testbed/build.sh``.

Every test collected under this directory is marked ``integration`` (so ``-m "not integration"`` skips them
all); a missing control-plane binary makes the tests error out, never skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)
