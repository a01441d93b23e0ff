"""Clusters built from the upstream manifests (tests/data/upstream): a kubeadm cluster, the objects of one manifest,
and what the running software adds, read as a `kubectl get -A -o yaml` snapshot of them would be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cni_migrate.facts import ClusterFacts, extract_facts
from cni_migrate.facts.objects import KindRef, ObjectStore, calico

DATA = Path(__file__).resolve().parents[2] / "data" / "upstream"
ANNOTATIONS = {
    "calico-3.26": "calico-bgp",
    "calico-3.27": "calico-bgp",
    "calico-3.28": "calico-bgp",
    "calico-3.29": "calico-bgp",
    "calico-typha-3.28": "calico-bgp",
    "calico-vxlan-3.28": "calico-vxlan",
    "canal-3.26": "canal",
    "canal-3.28": "canal",
    "canal-3.29": "canal",
    "tigera-operator-3.28": "operator",
    "kube-flannel": "flannel",
}
# What `kubectl get` was run for: the kinds every snapshot lists, plus Calico's when its CRDs exist.
LISTED = [
    KindRef("", "Node"),
    KindRef("", "Pod"),
    KindRef("", "ConfigMap"),
    KindRef("", "Service"),
    KindRef("apps", "DaemonSet"),
    KindRef("apps", "Deployment"),
    KindRef("policy", "PodDisruptionBudget"),
    KindRef("networking.k8s.io", "NetworkPolicy"),
]
CALICO_KINDS = ["IPPool", "BGPConfiguration", "BGPPeer", "FelixConfiguration", "NetworkPolicy", "GlobalNetworkPolicy"]


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifest(name: str) -> list[dict[str, Any]]:
    return docs(DATA / name / "manifest.yaml")


def running(name: str) -> list[dict[str, Any]]:
    return docs(DATA / name / "running.yaml")


def cluster_objects(name: str, *, ippools: bool = True) -> list[dict[str, Any]]:
    nodes = docs(DATA / "kubeadm" / "cluster.yaml")
    annotations = yaml.safe_load((DATA / "node-annotations.yaml").read_text())[ANNOTATIONS[name]]
    for n in nodes:
        if n["kind"] == "Node":
            n["metadata"]["annotations"] = dict(annotations[n["metadata"]["name"]])
    objs = [*nodes, *manifest(name), *running(name)]
    return [o for o in objs if ippools or o["kind"] != "IPPool"]


def store(name: str, *, ippools: str = "objects") -> ObjectStore:
    """``ippools``: "objects" (as running), "none" (listed, but none exist yet) or "absent" (not in the input)."""
    s = ObjectStore(location=f"tests/data/upstream/{name}")
    s.add_all(cluster_objects(name, ippools=ippools == "objects"))
    for ref in LISTED:
        s.mark_listed(ref)
    has_calico = any(
        o["kind"] == "CustomResourceDefinition" and "projectcalico" in o["metadata"]["name"] for o in manifest(name)
    )
    if has_calico:
        for kind in CALICO_KINDS:
            if kind == "IPPool" and ippools == "absent":
                continue
            s.mark_listed(calico(kind)[0])
    return s


def facts(name: str, *, ippools: str = "objects") -> ClusterFacts:
    return extract_facts(store(name, ippools=ippools))
