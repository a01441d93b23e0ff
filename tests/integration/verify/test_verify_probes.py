"""The probe DaemonSet and Service on the real control plane, run as a ServiceAccount that has exactly the RBAC
documented for ``cni-migrate verify``: a pod per (kwok) node, taints respected unless tolerated, PodSecurity
refusals explained, and nothing left behind.

kwok runs no containers: its pods become Running with an address but nothing listens there, so the API server's pod
proxy cannot reach the probers. The matrix therefore reports every cell as not measured ("prober unreachable"),
which also proves that the pod proxy was allowed (a missing permission would be a 403, reported differently).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import ApiError, codecs
from lightkube.resources.apps_v1 import DaemonSet
from lightkube.resources.core_v1 import Namespace, Pod, Service
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding
from typer.testing import CliRunner

from cni_migrate.actions.verify import deploy as dep
from cni_migrate.cli.main import app
from cni_migrate.kube.client import Cluster
from cni_migrate.kube.probes import VERIFY_CLUSTER_RULES, VERIFY_NAMESPACE_RULES
from cni_migrate.kube.types import ResourceType
from cni_migrate_testbed.controlplane import ControlPlane
from cni_migrate_testbed.fake_nodes import TEST_LABEL, FakeNodes

pytestmark = pytest.mark.integration


def _apply(cp: ControlPlane, obj: dict) -> None:
    cp.client.create(codecs.from_dict(obj))


@pytest.fixture
def verifier(control_plane: ControlPlane, test_namespace: str, name_prefix: str) -> Iterator[tuple[Path, str]]:
    """A ServiceAccount with the documented RBAC: the ClusterRole's cluster-wide reads, and the Role in a probe
    namespace made beforehand (labelled restricted) by an administrator. Yields (kubeconfig, probe namespace)."""
    cp = control_plane
    probe_ns = f"{name_prefix}-probes"
    sa = "verifier"
    _apply(cp, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": test_namespace}})
    subject = [{"kind": "ServiceAccount", "name": sa, "namespace": test_namespace}]
    _apply(cp, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": probe_ns, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted", TEST_LABEL: name_prefix}}})  # fmt: skip
    _apply(cp, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": f"{name_prefix}-verify"}, "rules": VERIFY_CLUSTER_RULES})  # fmt: skip
    _apply(cp, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{name_prefix}-verify"}, "subjects": subject,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": f"{name_prefix}-verify"}})  # fmt: skip
    _apply(cp, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "verify", "namespace": probe_ns}, "rules": VERIFY_NAMESPACE_RULES})  # fmt: skip
    _apply(cp, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "verify", "namespace": probe_ns}, "subjects": subject,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "verify"}})  # fmt: skip
    try:
        yield cp.kubeconfig_for_service_account(test_namespace, sa), probe_ns
    finally:
        for res, name in ((ClusterRoleBinding, f"{name_prefix}-verify"), (ClusterRole, f"{name_prefix}-verify"),
                          (Namespace, probe_ns)):  # fmt: skip
            try:
                cp.client.delete(res, name)
            except ApiError as e:
                if e.status.code != 404:
                    raise


def _probe_objects(cp: ControlPlane, ns: str) -> tuple[list, list, list]:
    sel = {"app.kubernetes.io/managed-by": dep.MANAGED_BY}
    return (
        list(cp.client.list(DaemonSet, namespace=ns, labels=sel)),
        list(cp.client.list(Service, namespace=ns, labels=sel)),
        list(cp.client.list(Pod, namespace=ns, labels=sel)),
    )


def test_daemonset_gets_a_pod_per_node_under_minimal_rbac_and_is_removed(
    control_plane: ControlPlane, fake_nodes: FakeNodes, verifier: tuple[Path, str]
) -> None:
    kubeconfig, probe_ns = verifier
    nodes = [n.metadata.name for n in fake_nodes.create_many(3)]
    tainted = fake_nodes.create("tainted", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    # Cordoned (the node being migrated): DaemonSet pods tolerate that, so it keeps its probe.
    nodes.append(fake_nodes.create("cordoned", taints=[{"key": "node.kubernetes.io/unschedulable",
                                                        "effect": "NoSchedule"}]).metadata.name)  # fmt: skip
    selector = tuple(fake_nodes.selector.items())
    cluster = Cluster.connect(str(kubeconfig))
    try:
        # The ServiceAccount may do what verify needs, and nothing like reading Secrets.
        with pytest.raises(Exception, match="forbidden"):
            cluster.list_objects(ResourceType("", "v1", "Secret", "secrets", True), namespace=probe_ns)
        cfg = dep.ProbeConfig(namespace=probe_ns, node_selector=selector)
        deployment = dep.deploy(cluster, cfg, timeout=120)
        try:
            assert not deployment.created_namespace  # the administrator's namespace is used, never deleted
            assert sorted(p["spec"]["nodeName"] for p in deployment.pods) == sorted(nodes)
            assert deployment.nodes is not None
            assert set(deployment.nodes.skipped) == {tainted.metadata.name}
            assert "--tolerate dedicated" in deployment.nodes.skipped[tainted.metadata.name]
            ds, svc, pods = _probe_objects(control_plane, probe_ns)
            assert [d.metadata.name for d in ds] == ["cni-migrate-probe"] and len(svc) == 1
            assert ds[0].status.numberReady == 4 and ds[0].status.desiredNumberScheduled == 4
            spec = pods[0].spec
            assert spec.automountServiceAccountToken is False and not spec.hostNetwork
            assert spec.containers[0].securityContext.runAsNonRoot is True
            assert svc[0].spec.type == "NodePort" and svc[0].spec.ports[0].nodePort
            targets = dep.matrix_targets(cluster, deployment)
            assert targets.apiserver is not None and targets.node_port and len(targets.nodes) == 4
        finally:
            dep.teardown(cluster, deployment)
        assert _probe_objects(control_plane, probe_ns) == ([], [], [])
        control_plane.client.get(Namespace, probe_ns)  # still there

        # Tolerating the taint puts a probe there too.
        deployment = dep.deploy(cluster, dep.ProbeConfig(namespace=probe_ns, node_selector=selector,
                                                         tolerate=("dedicated",)), timeout=120)  # fmt: skip
        try:
            assert tainted.metadata.name in {p["spec"]["nodeName"] for p in deployment.pods}
            assert deployment.nodes is not None and deployment.nodes.skipped == {}
        finally:
            dep.teardown(cluster, deployment)
        assert _probe_objects(control_plane, probe_ns) == ([], [], [])
    finally:
        cluster.close()


def test_verify_command_end_to_end_on_kwok(
    control_plane: ControlPlane, fake_nodes: FakeNodes, verifier: tuple[Path, str]
) -> None:
    kubeconfig, probe_ns = verifier
    fake_nodes.create_many(2)
    label = f"{TEST_LABEL}={fake_nodes.prefix}"
    t0 = time.monotonic()
    result = CliRunner().invoke(
        app,
        ["--kubeconfig", str(kubeconfig), "-o", "json", "verify", "-n", probe_ns, "--node-selector", label,
         "--timeout", "0.5"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    codes = {f["code"] for f in doc["findings"]}
    assert codes == {"prober-unreachable"}, doc["findings"]
    # 2 pods: 2 pod-pod cells, and per pod: the Service, 2 NodePorts, the API server, 2 DNS names.
    assert len(doc["cells"]) == 2 + 2 * (1 + 2 + 1 + 2)
    # RBAC refusing the pod proxy would read "... is forbidden: User ... cannot create resource pods/proxy".
    for c in doc["cells"]:
        assert c["error"].startswith("prober unreachable: ") and "cannot create resource" not in c["error"], c
    assert _probe_objects(control_plane, probe_ns) == ([], [], [])
    assert time.monotonic() - t0 < 90


def test_podsecurity_that_forbids_host_network_is_a_clear_error(
    control_plane: ControlPlane, fake_nodes: FakeNodes, verifier: tuple[Path, str]
) -> None:
    kubeconfig, probe_ns = verifier  # labelled restricted: hostNetwork is forbidden
    fake_nodes.create("a")
    result = CliRunner().invoke(
        app,
        ["--kubeconfig", str(kubeconfig), "verify", "-n", probe_ns, "--node-probes", "--node-selector",
         f"{TEST_LABEL}={fake_nodes.prefix}"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "PodSecurity" in result.stderr and "hostNetwork" in result.stderr and "privileged" in result.stderr
    assert "Traceback" not in result.output
    assert _probe_objects(control_plane, probe_ns) == ([], [], [])


def test_all_nodes_tainted_is_a_clear_error(
    control_plane: ControlPlane, fake_nodes: FakeNodes, verifier: tuple[Path, str]
) -> None:
    kubeconfig, probe_ns = verifier
    fake_nodes.create("t", taints=[{"key": "maintenance", "effect": "NoSchedule"}])
    result = CliRunner().invoke(
        app, ["--kubeconfig", str(kubeconfig), "verify", "-n", probe_ns, "--node-selector",
              f"{TEST_LABEL}={fake_nodes.prefix}"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "no node to probe" in result.stderr and "pass --tolerate maintenance to probe it" in result.stderr


def test_monitor_without_reachable_probers_is_a_clear_error_and_cleans_up(
    control_plane: ControlPlane, fake_nodes: FakeNodes, verifier: tuple[Path, str]
) -> None:
    kubeconfig, probe_ns = verifier
    fake_nodes.create("m")
    result = CliRunner().invoke(
        app,
        ["--kubeconfig", str(kubeconfig), "monitor", "-n", probe_ns, "--duration", "1", "--node-selector",
         f"{TEST_LABEL}={fake_nodes.prefix}"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "no prober started monitoring" in result.stderr and "Traceback" not in result.output
    assert _probe_objects(control_plane, probe_ns) == ([], [], [])
