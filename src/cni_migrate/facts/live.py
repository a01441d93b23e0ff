"""Read a live cluster into an :class:`ObjectStore`, read-only: what ``discover`` and ``snapshot`` use.

What is read (and so what a captured snapshot contains) is :data:`CAPTURED`; Secrets are never read: only the
names of Helm release Secrets, through a metadata-only list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cni_migrate.facts.gcpause import gc_paused
from cni_migrate.facts.objects import CALICO_GROUPS, SECRET, KindRef, ObjectStore
from cni_migrate.kube import Forbidden, NotFound, ResourceType
from cni_migrate.kube.client import Cluster


@dataclass(frozen=True)
class Capture:
    ref: KindRef
    why: str
    namespace: str | None = None
    label_selector: str | None = None
    names_only: bool = False


# Core and built-in kinds, read whole (except Secrets: names only).
CAPTURED: tuple[Capture, ...] = (
    Capture(KindRef("", "Node"), "node names, labels, taints, addresses, kernels, podCIDRs, CNI annotations"),
    Capture(KindRef("", "Pod"), "workload counts per node, hostNetwork pods, static control-plane pods' flags"),
    Capture(KindRef("", "Namespace"), "Istio injection labels, CNI namespaces"),
    Capture(KindRef("", "ConfigMap"), "kubeadm-config, kube-proxy, cilium-config, flannel net-conf"),
    Capture(KindRef("", "Service"), "kube-system services (API endpoint, DNS)", namespace="kube-system"),
    Capture(KindRef("apps", "DaemonSet"), "CNI agents, kube-proxy, kube-router"),
    Capture(KindRef("apps", "Deployment"), "tigera-operator, istiod, calico-kube-controllers"),
    Capture(KindRef("policy", "PodDisruptionBudget"), "evictions a rolling migration would be refused"),
    Capture(KindRef("networking.k8s.io", "NetworkPolicy"), "policies the new CNI must enforce"),
    Capture(KindRef("apiextensions.k8s.io", "CustomResourceDefinition"), "which CNIs and Istio are installed"),
    Capture(KindRef("admissionregistration.k8s.io", "MutatingWebhookConfiguration"), "Istio sidecar injection"),
    Capture(KindRef("", "ServiceAccount"), "finalizers of the old CNI (tigera.io/cni-protector on calico-node)"),
    Capture(KindRef("rbac.authorization.k8s.io", "ClusterRole"), "finalizers of the old CNI on its ClusterRoles"),
    Capture(KindRef("rbac.authorization.k8s.io", "ClusterRoleBinding"), "finalizers of the old CNI on its bindings"),
    Capture(
        SECRET,
        "names of Helm release Secrets (never their data)",
        label_selector="owner=helm",
        names_only=True,
    ),
)

# Custom-resource groups read whole when the server serves them.
CAPTURED_GROUPS: tuple[tuple[str, str], ...] = (
    *(
        (g, "Calico IPPools, BGP configuration and peers, Felix configuration, Calico nodes, policies")
        for g in CALICO_GROUPS
    ),
    ("operator.tigera.io", "tigera-operator Installation"),
    ("cilium.io", "Cilium nodes, policies, BGP and node configs"),
    ("ipam.cni-migrate.io", "PodCIDRPools of cni-migrate's IPAM operator"),
)

# Calico kinds that hold IPAM bookkeeping, per-workload state or secrets-adjacent data: large and not needed.
SKIPPED_KINDS = frozenset(
    {
        "IPAMBlock",
        "BlockAffinity",
        "IPAMHandle",
        "IPAMConfig",
        "IPReservation",
        "CiliumEndpoint",
        "CiliumIdentity",
        "CiliumEndpointSlice",
        "TigeraStatus",
        "ImageSet",
        "APIServer",
        "KubeControllersConfiguration",
    }
)


def plan_capture(cluster: Cluster) -> list[tuple[Capture, ResourceType]]:
    served = {(rt.group, rt.kind): rt for rt in cluster.api_resources()}
    out: list[tuple[Capture, ResourceType]] = []
    for cap in CAPTURED:
        rt = served.get((cap.ref.group, cap.ref.kind))
        if rt is not None:
            out.append((cap, rt))
    groups = {g for g, _ in CAPTURED_GROUPS}
    why = dict(CAPTURED_GROUPS)
    for (group, kind), rt in sorted(served.items()):
        if group in groups and kind not in SKIPPED_KINDS:
            out.append((Capture(KindRef(group, kind), why[group]), rt))
    return out


def read_cluster(cluster: Cluster, *, progress: Callable[[str, int, int], None] | None = None) -> ObjectStore:
    """List everything in :func:`plan_capture`; a kind the user may not list is recorded as not listed."""
    store = ObjectStore(location=f"live cluster (context {cluster.name or 'current'})")
    store.server_version = cluster.server_version()
    plan = plan_capture(cluster)
    with gc_paused(freeze=True):
        _read_all(cluster, store, plan, progress)
    return store


def _read_all(
    cluster: Cluster,
    store: ObjectStore,
    plan: list[tuple[Capture, ResourceType]],
    progress: Callable[[str, int, int], None] | None,
) -> None:
    for i, (cap, rt) in enumerate(plan):
        if progress is not None:
            progress(str(cap.ref), i, len(plan))
        try:
            if cap.names_only:
                objs = cluster.list_names(rt, namespace=cap.namespace, label_selector=cap.label_selector)
            else:
                objs = cluster.list_objects(rt, namespace=cap.namespace, label_selector=cap.label_selector)
        except (Forbidden, NotFound):
            continue
        store.mark_listed(cap.ref)
        store.add_all(objs)
    if progress is not None:
        progress("done", len(plan), len(plan))
