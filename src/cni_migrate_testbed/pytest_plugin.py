"""pytest fixtures for the real test control plane.

Register with ``pytest_plugins = ["cni_migrate_testbed.pytest_plugin"]``. One control plane is shared by the
whole session (``control_plane``, allocate-node-cidrs off); a second one with kube-controller-manager's
range allocator on (``control_plane_kcm_cidrs``) starts only if a test asks for it. Tests isolate themselves
with ``test_namespace`` and, for cluster-scoped objects, ``name_prefix``.
"""

from __future__ import annotations

import re
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from lightkube import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, ServiceAccount

from cni_migrate_testbed.controlplane import ControlPlane
from cni_migrate_testbed.errors import TestbedError
from cni_migrate_testbed.fake_nodes import TEST_LABEL, FakeNodes

_started: list[tuple[str, ControlPlane]] = []


def _sigterm_to_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # A CI timeout usually sends SIGTERM, which by default kills Python without any cleanup: turn it into
    # an interrupt, so that pytest tears the control planes down (their children die with us anyway).
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_to_keyboard_interrupt)


def _start(label: str, allocate_node_cidrs: bool) -> ControlPlane:
    cp = ControlPlane().start(allocate_node_cidrs=allocate_node_cidrs)
    _started.append((label, cp))
    return cp


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """The session's control plane; kube-controller-manager does not allocate node CIDRs."""
    cp = _start("control_plane", allocate_node_cidrs=False)
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def control_plane_kcm_cidrs() -> Iterator[ControlPlane]:
    """A second control plane, started on demand: kube-controller-manager allocates node podCIDRs
    (a /24 each from 10.244.0.0/16)."""
    cp = _start("control_plane_kcm_cidrs", allocate_node_cidrs=True)
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def admin_kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.admin_kubeconfig


@pytest.fixture
def name_prefix(request: pytest.FixtureRequest) -> str:
    """Unique per test, a valid DNS label: name cluster-scoped objects ``f"{name_prefix}-..."``."""
    name = request.node.name.lower().removeprefix("test_")
    slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:30].strip("-")
    return f"{slug or 't'}-{secrets.token_hex(3)}"


@pytest.fixture
def test_namespace(control_plane: ControlPlane, name_prefix: str) -> Iterator[str]:
    """A fresh namespace (named after ``name_prefix``), ready for pods, deleted after the test."""
    client = control_plane.client
    client.create(Namespace(metadata=ObjectMeta(name=name_prefix, labels={TEST_LABEL: name_prefix})))
    deadline = time.monotonic() + 30
    while True:  # pods are refused until kube-controller-manager has made the "default" ServiceAccount
        try:
            client.get(ServiceAccount, "default", namespace=name_prefix)
            break
        except ApiError as err:
            if err.status.code != 404:
                raise
        if time.monotonic() > deadline:
            raise TestbedError(f"namespace {name_prefix}: no default ServiceAccount after 30 s")
        time.sleep(0.1)
    try:
        yield name_prefix
    finally:
        try:
            client.delete(Namespace, name_prefix)
        except ApiError as err:
            if err.status.code != 404:
                raise


@pytest.fixture
def fake_nodes(control_plane: ControlPlane, name_prefix: str) -> Iterator[FakeNodes]:
    """Factory of kwok nodes on ``control_plane``, all deleted at teardown."""
    factory = FakeNodes(control_plane, name_prefix)
    try:
        yield factory
    finally:
        factory.delete_all()


@pytest.fixture
def fake_nodes_kcm_cidrs(control_plane_kcm_cidrs: ControlPlane, name_prefix: str) -> Iterator[FakeNodes]:
    """Factory of kwok nodes on ``control_plane_kcm_cidrs``, all deleted at teardown."""
    factory = FakeNodes(control_plane_kcm_cidrs, name_prefix)
    try:
        yield factory
    finally:
        factory.delete_all()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for label, cp in _started:
        if cp.ready_seconds is not None:
            phases = ", ".join(f"{k} {v:.1f} s" for k, v in cp.phase_seconds.items())
            terminalreporter.write_line(f"cni-migrate-testbed: {label} ready in {cp.ready_seconds:.1f} s ({phases})")
