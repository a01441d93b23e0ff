"""Errors raised by the test control plane."""

from __future__ import annotations

from pathlib import Path


class TestbedError(RuntimeError):
    """Base class of every error raised by :mod:`cni_migrate_testbed`."""

    __test__ = False  # not a pytest test class, despite the name


class BinaryNotFoundError(TestbedError):
    """A control-plane binary is missing from the testbed cache."""

    def __init__(self, name: str, bin_dir: Path) -> None:
        self.name = name
        self.bin_dir = bin_dir
        super().__init__(
            f"{name} not found in {bin_dir}: the test control plane has not been built (or was built "
            f"into another cache). Build it with `bash testbed/build.sh` (or `make testbed`); set "
            f"CNI_MIGRATE_TESTBED_CACHE to use another cache directory."
        )


class ComponentStartError(TestbedError):
    """A control-plane component exited or did not become ready in time."""

    def __init__(self, component: str, reason: str, log_path: Path, log_tail: str) -> None:
        self.component = component
        self.log_path = log_path
        self.log_tail = log_tail
        super().__init__(
            f"{component} {reason}.\n--- last lines of {log_path} ---\n{log_tail}\n--- end of {component} log ---"
        )
