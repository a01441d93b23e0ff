"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)
for cni-migrate's integration tests, run from binaries that ``testbed/build.sh`` builds into a cache."""

from cni_migrate_testbed.binaries import bin_dir, cache_dir, find_binary
from cni_migrate_testbed.controlplane import ControlPlane
from cni_migrate_testbed.errors import BinaryNotFoundError, ComponentStartError, TestbedError
from cni_migrate_testbed.fake_nodes import TEST_LABEL, FakeNodes
from cni_migrate_testbed.nodes import FAKE_NODE_LABEL, KWOK_ANNOTATION, FakeNodeSpec
from cni_migrate_testbed.waiting import wait_for

__all__ = [
    "FAKE_NODE_LABEL",
    "KWOK_ANNOTATION",
    "TEST_LABEL",
    "BinaryNotFoundError",
    "ComponentStartError",
    "ControlPlane",
    "FakeNodeSpec",
    "FakeNodes",
    "TestbedError",
    "bin_dir",
    "cache_dir",
    "find_binary",
    "wait_for",
]
