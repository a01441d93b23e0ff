"""A per-test factory of fake nodes that removes what it created."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict, Unpack

from lightkube.resources.core_v1 import Node

from cni_migrate_testbed.controlplane import ControlPlane
from cni_migrate_testbed.nodes import FakeNodeSpec, TaintLike

#: Label put on every node a :class:`FakeNodes` creates; its value is the factory's prefix.
TEST_LABEL = "testbed.cni-migrate.io/test"


class NodeOptions(TypedDict, total=False):
    annotations: Mapping[str, str]
    taints: Sequence[TaintLike]
    kernel_version: str
    os_image: str
    container_runtime_version: str
    kubelet_version: str
    architecture: str
    internal_ip: str
    pod_cidr: str
    pod_cidrs: Sequence[str]
    cpu: str
    memory: str
    max_pods: int


class FakeNodes:
    """Creates nodes named ``<prefix>-<suffix>`` labelled ``TEST_LABEL=<prefix>`` (see :attr:`selector`).

    Other tests share the control plane and create nodes too: select this test's nodes with :attr:`selector`
    (e.g. as a DaemonSet's nodeSelector).
    """

    def __init__(self, control_plane: ControlPlane, prefix: str) -> None:
        self.control_plane = control_plane
        self.prefix = prefix
        self.names: list[str] = []

    @property
    def selector(self) -> dict[str, str]:
        return {TEST_LABEL: self.prefix}

    def spec(
        self, suffix: str, labels: Mapping[str, str] | None = None, **options: Unpack[NodeOptions]
    ) -> FakeNodeSpec:
        return FakeNodeSpec(name=f"{self.prefix}-{suffix}", labels={**(labels or {}), **self.selector}, **options)

    def create(
        self,
        suffix: str,
        labels: Mapping[str, str] | None = None,
        *,
        wait_ready: bool = True,
        **options: Unpack[NodeOptions],
    ) -> Node:
        return self.create_specs([self.spec(suffix, labels, **options)], wait_ready=wait_ready)[0]

    def create_many(
        self,
        count: int,
        labels: Mapping[str, str] | None = None,
        *,
        pod_cidrs: Sequence[str | None] | None = None,
        wait_ready: bool = True,
        workers: int = 16,
        timeout: float = 300.0,
    ) -> list[Node]:
        """``count`` nodes named ``<prefix>-n<i>``; ``pod_cidrs[i]``, when given, is node i's podCIDR."""
        if pod_cidrs is not None and len(pod_cidrs) != count:
            raise ValueError("pod_cidrs needs one entry per node")
        specs = []
        for i in range(count):
            cidr = pod_cidrs[i] if pod_cidrs is not None else None
            spec = self.spec(f"n{i}", labels) if cidr is None else self.spec(f"n{i}", labels, pod_cidr=cidr)
            specs.append(spec)
        return self.create_specs(specs, wait_ready=wait_ready, workers=workers, timeout=timeout)

    def create_specs(
        self,
        specs: Sequence[FakeNodeSpec],
        *,
        wait_ready: bool = True,
        workers: int = 16,
        timeout: float = 300.0,
    ) -> list[Node]:
        self.names.extend(s.name for s in specs)
        return self.control_plane.create_fake_nodes(specs, wait_ready=wait_ready, workers=workers, timeout=timeout)

    def delete_all(self) -> None:
        """Delete every node this factory made."""
        self.control_plane.delete_nodes(self.names)
        self.names.clear()
