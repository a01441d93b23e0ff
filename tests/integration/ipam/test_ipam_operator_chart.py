"""The Helm chart: clean under ``helm lint`` and ``helm template``; its RBAC, enforced by the API server for the
ServiceAccount it creates, is exactly what the operator needs."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from cni_migrate_testbed.binaries import find_binary

from .ipam_helpers import CHART, REPO, IpamRelease, helm

pytestmark = pytest.mark.integration

VARIANTS = [
    [],
    ["--set", "operator.mode=annotation", "--set", "metrics.serviceMonitor.enabled=true"],
    ["--set", "webhook.url=https://127.0.0.1:9443/validate", "--set", "webhook.extraIPs[0]=127.0.0.1"],
    ["--set", "webhook.existingSecret=my-tls", "--set", "webhook.caBundle=-----BEGIN CERTIFICATE-----"],
    ["--set", "webhook.enabled=false", "--set", "replicaCount=1", "--set", "priorityAndFairness.enabled=false"],
]


def test_chart_lints_and_renders(ipam_release: IpamRelease) -> None:
    cp = ipam_release.cp
    for args in VARIANTS:
        lint = helm(cp, "lint", "--strict", str(CHART), *args)
        assert "0 chart(s) failed" in lint.stdout, lint.stdout
        rendered = helm(cp, "template", "rel", str(CHART), "--namespace", "ipam", "--include-crds", *args).stdout
        docs = [d for d in yaml.safe_load_all(rendered) if d]
        kinds = sorted({d["kind"] for d in docs})
        assert "CustomResourceDefinition" in kinds and "Deployment" in kinds and "ClusterRole" in kinds, kinds
    bad = helm(cp, "template", "rel", str(CHART), "--set", "operator.mode=bogus", check=False)
    assert bad.returncode != 0 and 'operator.mode must be "spec" or "annotation"' in bad.stderr
    crd = (CHART / "crds" / "ipam.cni-migrate.io_podcidrpools.yaml").read_text()
    assert crd == (REPO / "deploy" / "crds" / "ipam.cni-migrate.io_podcidrpools.yaml").read_text(), (
        "charts/cni-migrate-ipam/crds/ is a copy of deploy/crds/: copy it again"
    )


def can_i(ipam_release: IpamRelease, *args: str) -> bool:
    kubectl = find_binary("kubectl", ipam_release.cp.cache)
    argv = [str(kubectl), f"--kubeconfig={ipam_release.kubeconfig}", "auth", "can-i", *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    return result.stdout.strip() == "yes"


def test_service_account_rbac_is_least_privilege(ipam_release: IpamRelease) -> None:
    ns = ipam_release.namespace
    allowed = [
        ("list", "nodes"),
        ("watch", "nodes"),
        ("patch", "nodes"),
        ("watch", "podcidrpools.ipam.cni-migrate.io"),
        ("patch", "podcidrpools.ipam.cni-migrate.io"),
        ("patch", "podcidrpools.ipam.cni-migrate.io", "--subresource=status"),
        ("create", "leases.coordination.k8s.io", "-n", ns),
        ("update", "leases.coordination.k8s.io/cni-migrate-ipam", "-n", ns),
        ("update", "leases.coordination.k8s.io/cni-migrate-ipam-admission", "-n", ns),
        ("create", "events.events.k8s.io", "-n", "default"),
        ("get", "configmaps/cilium-config", "-n", "kube-system"),
    ]
    denied = [
        ("list", "pods", "-A"),
        ("get", "secrets", "-n", ns),
        ("list", "secrets", "-A"),
        ("delete", "nodes"),
        ("update", "nodes"),
        ("create", "podcidrpools.ipam.cni-migrate.io"),
        ("delete", "podcidrpools.ipam.cni-migrate.io"),
        ("update", "leases.coordination.k8s.io/kube-controller-manager", "-n", "kube-system"),
        ("update", "leases.coordination.k8s.io/other", "-n", ns),
        ("create", "events.events.k8s.io", "-n", "kube-system"),
        ("get", "configmaps/kube-proxy", "-n", "kube-system"),
        ("list", "configmaps", "-n", "kube-system"),
    ]
    assert [a for a in allowed if not can_i(ipam_release, *a)] == []
    assert [d for d in denied if can_i(ipam_release, *d)] == []


def test_service_account_requests_get_kube_controller_manager_priority(ipam_release: IpamRelease) -> None:
    """The chart's FlowSchema puts the operator in workload-high (kube-controller-manager's level), not in the
    workload-low level every other ServiceAccount shares; the API server says which level served a request in the
    X-Kubernetes-PF-PriorityLevel-UID response header."""
    cp = ipam_release.cp
    kubectl = str(find_binary("kubectl", cp.cache))
    uid = {
        level: cp.kubectl("get", "prioritylevelconfiguration", level, "-o", "jsonpath={.metadata.uid}").stdout
        for level in ("workload-high", "workload-low")
    }
    argv = [kubectl, f"--kubeconfig={ipam_release.kubeconfig}", "get", "--raw", "/api/v1/nodes?limit=1", "-v=8"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stderr
    served = [
        ln.rpartition(":")[2].strip() for ln in out.splitlines() if "x-kubernetes-pf-prioritylevel-uid" in ln.lower()
    ]
    assert served == [uid["workload-high"]], (served, uid, out[-2000:])
