"""The uninstall inventory against the objects of the manifests each install method applied: what the plan
deletes is exactly what the manifest created, so the gated sweep by name finds only true leftovers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from upstream_data import cluster_objects, facts, manifest

from cni_migrate.analysis.plan import PlanOptions, resolve
from cni_migrate.analysis.plan.model import ObjectRef
from cni_migrate.analysis.plan.oldcni import Inventory, old_cni_inventory

MANIFEST_INSTALLS = [
    "calico-3.26",
    "calico-3.27",
    "calico-3.28",
    "calico-3.29",
    "calico-vxlan-3.28",
    "calico-typha-3.28",
    "canal-3.26",
    "canal-3.28",
    "canal-3.29",
    "kube-flannel",
]
SHARED_CRDS = {"adminnetworkpolicies.policy.networking.k8s.io"}


def key(o: dict[str, Any]) -> tuple[str, str, str, str]:
    md = o["metadata"]
    return (
        o["apiVersion"].split("/")[0] if "/" in o["apiVersion"] else "",
        o["kind"],
        md.get("namespace") or "",
        md["name"],
    )


def ref_key(r: ObjectRef) -> tuple[str, str, str, str]:
    return (r.api_version.split("/")[0] if "/" in r.api_version else "", r.kind, r.namespace or "", r.name)


def inventory(name: str) -> Inventory:
    r = resolve(facts(name), PlanOptions(cilium_version="1.16.5", strategy="offline"), None)
    inv = old_cni_inventory(r)
    assert inv is not None
    return inv


@pytest.mark.parametrize("name", MANIFEST_INSTALLS)
def test_deletes_exactly_what_the_manifest_created(name: str) -> None:
    inv = inventory(name)
    created = {key(o) for o in manifest(name)}
    deleted = {ref_key(r) for r in [*inv.delete_objects, *inv.delete_crds]}
    kept = {k for k in created if k[1] == "CustomResourceDefinition" and k[3] in SHARED_CRDS}
    assert deleted == created - kept, (
        f"deleted but never created: {sorted(deleted - created)}; created but not deleted: {sorted(created - deleted - kept)}"
    )
    backed_up = {ref_key(r) for r in inv.backup_objects}
    assert created <= backed_up  # the shared network-policy CRDs too, though they stay


@pytest.mark.parametrize("name", MANIFEST_INSTALLS)
def test_the_sweep_by_name_finds_no_leftover_on_a_clean_install(name: str) -> None:
    """After the deletes, what still matches the sweep's pattern is a true leftover; a cluster that only ran the
    manifest has none: the custom resources go with their CRDs, the pods with their workloads."""
    inv = inventory(name)
    deleted = {ref_key(r) for r in [*inv.delete_objects, *inv.delete_crds]}
    crd_groups = {r.name.split(".", 1)[1] for r in inv.delete_crds}
    pattern = re.compile(inv.leftovers.pattern if inv.leftovers else "calico|tigera", re.I)
    remaining = [
        k
        for o in cluster_objects(name)
        if (k := key(o)) not in deleted
        and k[0] not in crd_groups  # custom resources of a deleted CRD
        and not (k[1] == "Namespace" and (k[2], k[3]) in {("", r.name) for r in inv.delete_objects})
        and (pattern.search(k[3]) or pattern.search(k[2]))
    ]
    assert remaining == []


def test_canal_inventory_names_its_rbac_as_canal_yaml_does() -> None:
    inv = inventory("canal-3.28")
    names = {(r.kind, r.name) for r in inv.delete_objects if r.kind.startswith("ClusterRole")}
    assert names == {
        ("ClusterRole", "calico-node"),
        ("ClusterRole", "flannel"),
        ("ClusterRole", "calico-cni-plugin"),
        ("ClusterRole", "calico-kube-controllers"),
        ("ClusterRoleBinding", "canal-calico"),
        ("ClusterRoleBinding", "canal-flannel"),
        ("ClusterRoleBinding", "calico-cni-plugin"),
        ("ClusterRoleBinding", "calico-kube-controllers"),
    }


def test_typha_objects_only_when_typha_runs() -> None:
    def typha(name: str) -> set[str]:
        return {r.text() for r in inventory(name).delete_objects if "typha" in r.name}

    assert typha("calico-3.28") == set()
    assert typha("calico-typha-3.28") == {
        "Deployment kube-system/calico-typha",
        "Service kube-system/calico-typha",
        "PodDisruptionBudget kube-system/calico-typha",
    }


def test_operator_install_deletes_the_operator_manifest_and_leaves_the_rest_to_the_operator() -> None:
    name = "tigera-operator-3.28"
    inv = inventory(name)
    created = {key(o) for o in manifest(name)}
    deleted = {ref_key(r) for r in [*inv.delete_first, *inv.delete_objects, *inv.delete_crds]}
    namespaces = {r.name for r in inv.delete_objects if r.kind == "Namespace"}
    assert {k for k in created if k not in deleted and k[2] not in namespaces} == set()
    assert ("apps", "DaemonSet", "calico-system", "calico-node") in {ref_key(w) for w in inv.workloads}
