"""What the old CNI and kube-proxy consist of: the objects to back up, in the order to delete them.

Calico from manifests is deleted object by object; Calico from tigera-operator is uninstalled through the
operator (delete the Installation while the operator still runs, so it processes its finalizers), then the
operator itself. Leftovers are found by name afterwards, as the lossy seed does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cni_migrate.analysis.plan.model import NameMatch, ObjectRef, ObjectSelector
from cni_migrate.analysis.plan.options import Resolved

# The crd.projectcalico.org CRDs calico.yaml, calico-vxlan.yaml, calico-typha.yaml, canal.yaml and tigera-operator.yaml
# install, by the Calico minor that introduced them (3.26 is the oldest supported).
CALICO_CRD_KINDS_SINCE: tuple[tuple[str, int], ...] = (
    ("bgpconfigurations", 26),
    ("bgpfilters", 26),
    ("bgppeers", 26),
    ("blockaffinities", 26),
    ("caliconodestatuses", 26),
    ("clusterinformations", 26),
    ("felixconfigurations", 26),
    ("globalnetworkpolicies", 26),
    ("globalnetworksets", 26),
    ("hostendpoints", 26),
    ("ipamblocks", 26),
    ("ipamconfigs", 26),
    ("ipamhandles", 26),
    ("ippools", 26),
    ("ipreservations", 26),
    ("kubecontrollersconfigurations", 26),
    ("networkpolicies", 26),
    ("networksets", 26),
    ("tiers", 29),
    ("stagedglobalnetworkpolicies", 30),
    ("stagedkubernetesnetworkpolicies", 30),
    ("stagednetworkpolicies", 30),
)
CALICO_CRD_KINDS = tuple(k for k, _ in CALICO_CRD_KINDS_SINCE)
# CRDs of the Kubernetes network-policy API the manifests also install (3.29+). They are not Calico's: other
# software may use them, so the plan backs them up and leaves them in place.
SHARED_CRDS_SINCE: tuple[tuple[str, int], ...] = (
    ("adminnetworkpolicies.policy.networking.k8s.io", 29),
    ("baselineadminnetworkpolicies.policy.networking.k8s.io", 30),
)
TIGERA_CRD_KINDS = ("apiservers", "imagesets", "installations", "tigerastatuses")
CNI_PROTECTOR = "tigera.io/cni-protector"


def ref(api_version: str, kind: str, name: str, namespace: str | None = None) -> ObjectRef:
    return ObjectRef(api_version=api_version, kind=kind, name=name, namespace=namespace)


def crd(name: str) -> ObjectRef:
    return ref("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)


@dataclass
class Inventory:
    """One old component: what to back up, what to delete (in order), and how to find leftovers."""

    backup_objects: list[ObjectRef] = field(default_factory=list)
    backup_selectors: list[ObjectSelector] = field(default_factory=list)
    delete_first: list[ObjectRef] = field(default_factory=list)  # operator CRs, deleted while the operator runs
    stuck_finalizers: list[tuple[ObjectRef, list[str]]] = field(default_factory=list)
    delete_objects: list[ObjectRef] = field(default_factory=list)
    delete_crds: list[ObjectRef] = field(default_factory=list)
    leftovers: NameMatch | None = None
    workloads: list[ObjectRef] = field(default_factory=list)  # to wait for their pods to go


def _rbac(names: list[str]) -> list[ObjectRef]:
    out: list[ObjectRef] = []
    for n in names:
        out.append(ref("rbac.authorization.k8s.io/v1", "ClusterRole", n))
        out.append(ref("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", n))
    return out


def calico_minor(r: Resolved) -> int | None:
    """Calico's minor version (3.x) from the facts, or None when unknown: the inventory then covers every
    supported version."""
    calico = r.facts.cni.calico
    if calico is None or not calico.version.known:
        return None
    m = re.match(r"^v?3\.(\d+)", str(calico.version.value))
    return int(m.group(1)) if m else None


def calico_crds(minor: int | None) -> list[ObjectRef]:
    """The Calico CRDs of that minor; older minors than 3.26 get 3.26's (deleting an absent CRD is a no-op)."""
    return [crd(f"{k}.crd.projectcalico.org") for k, since in CALICO_CRD_KINDS_SINCE if _has(minor, since)]


def _has(minor: int | None, since: int) -> bool:
    return minor is None or since <= 26 or minor >= since


def shared_crds(minor: int | None) -> list[ObjectRef]:
    return [crd(name) for name, since in SHARED_CRDS_SINCE if _has(minor, since)]


def _tier_getter(minor: int | None) -> list[ObjectRef]:
    """ClusterRole and binding letting kube-controller-manager read tiers for garbage collection (3.30+)."""
    return _rbac(["calico-tier-getter"]) if _has(minor, 30) else []


def calico_inventory(r: Resolved) -> Inventory:
    calico = r.facts.cni.calico
    assert calico is not None
    inv = Inventory()
    minor = calico_minor(r)
    crds = calico_crds(minor)
    inv.backup_selectors.append(ObjectSelector(group="crd.projectcalico.org"))
    inv.leftovers = NameMatch(
        pattern="calico|tigera",
        exclude_groups=["events.k8s.io", "coordination.k8s.io", "cilium.io"],
        exclude_namespaces=[],
    )
    if calico.install_method == "operator":
        ns = calico.namespace or "calico-system"
        installation = ref("operator.tigera.io/v1", "Installation", "default")
        apiserver = ref("operator.tigera.io/v1", "APIServer", "default")
        inv.backup_selectors.append(ObjectSelector(group="operator.tigera.io"))
        for n in (ns, "calico-apiserver", "tigera-operator"):
            inv.backup_selectors.extend(
                [
                    ObjectSelector(group="apps", namespace=n),
                    ObjectSelector(group="", kind="ServiceAccount", namespace=n),
                    ObjectSelector(group="", kind="ConfigMap", namespace=n),
                    ObjectSelector(group="", kind="Service", namespace=n),
                ]
            )
        cni_rbac = _rbac(["calico-node", "calico-cni-plugin", "calico-kube-controllers", "calico-typha"])
        inv.backup_objects.extend(
            [
                ref("v1", "Namespace", ns),
                ref("v1", "Namespace", "tigera-operator"),
                *cni_rbac,
                *_rbac(["tigera-operator"]),
                *crds,
                *(crd(f"{k}.operator.tigera.io") for k in TIGERA_CRD_KINDS),
            ]
        )
        inv.delete_first = [apiserver, installation]
        inv.stuck_finalizers = [
            (ref("v1", "ServiceAccount", "calico-node", ns), [CNI_PROTECTOR]),
            (ref("v1", "ServiceAccount", "calico-cni-plugin", ns), [CNI_PROTECTOR]),
            (ref("rbac.authorization.k8s.io/v1", "ClusterRole", "calico-node"), [CNI_PROTECTOR]),
            (ref("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "calico-node"), [CNI_PROTECTOR]),
            (ref("rbac.authorization.k8s.io/v1", "ClusterRole", "calico-cni-plugin"), [CNI_PROTECTOR]),
            (ref("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "calico-cni-plugin"), [CNI_PROTECTOR]),
        ]
        if calico.installation_finalizers:
            inv.stuck_finalizers.append((installation, list(calico.installation_finalizers)))
        # What the operator removes on its own when it is healthy is deleted here too (a no-op then): a stuck
        # operator leaves calico-system and the CNI's RBAC behind, protected by tigera.io/cni-protector.
        inv.delete_objects = [
            ref("apps/v1", "Deployment", "tigera-operator", "tigera-operator"),
            ref("v1", "Namespace", "tigera-operator"),
            *_rbac(["tigera-operator"]),
            ref("v1", "Namespace", ns),
            *cni_rbac,
        ]
        inv.delete_crds = [*crds, *(crd(f"{k}.operator.tigera.io") for k in TIGERA_CRD_KINDS)]
        inv.backup_objects.extend(shared_crds(minor))
        inv.workloads = [ref("apps/v1", "DaemonSet", "calico-node", ns)]
        return inv

    # calico.yaml / calico-vxlan.yaml; calico-typha.yaml adds Typha's Deployment, Service and PodDisruptionBudget.
    ns = calico.namespace or "kube-system"
    typha = calico.typha.value is not False  # unknown: include them (deleting an absent object is a no-op)
    objs = [
        ref("apps/v1", "DaemonSet", calico.daemonset or "calico-node", ns),
        ref("apps/v1", "Deployment", "calico-kube-controllers", ns),
        *(
            [
                ref("apps/v1", "Deployment", "calico-typha", ns),
                ref("v1", "Service", "calico-typha", ns),
                ref("policy/v1", "PodDisruptionBudget", "calico-typha", ns),
            ]
            if typha
            else []
        ),
        ref("policy/v1", "PodDisruptionBudget", "calico-kube-controllers", ns),
        ref("v1", "ConfigMap", "calico-config", ns),
        ref("v1", "ServiceAccount", "calico-node", ns),
        ref("v1", "ServiceAccount", "calico-cni-plugin", ns),
        ref("v1", "ServiceAccount", "calico-kube-controllers", ns),
        *_rbac(["calico-node", "calico-cni-plugin", "calico-kube-controllers"]),
        *_tier_getter(minor),
    ]
    inv.backup_objects = [*objs, *crds, *shared_crds(minor)]
    inv.delete_objects = objs
    inv.delete_crds = crds
    inv.workloads = [objs[0]]
    return inv


def flannel_inventory(r: Resolved) -> Inventory:
    flannel = r.facts.cni.flannel
    assert flannel is not None
    ns = flannel.namespace
    inv = Inventory()
    objs = [
        ref("apps/v1", "DaemonSet", flannel.daemonset, ns),
        *([ref("v1", "ConfigMap", flannel.configmap, ns)] if flannel.configmap else []),
        ref("v1", "ServiceAccount", "flannel", ns),
        *_rbac(["flannel"]),
    ]
    if ns == "kube-flannel":
        objs.append(ref("v1", "Namespace", ns))
    inv.backup_objects = objs
    inv.delete_objects = objs
    inv.workloads = [objs[0]]
    inv.leftovers = NameMatch(pattern="flannel", exclude_groups=["events.k8s.io", "coordination.k8s.io", "cilium.io"])
    return inv


def canal_inventory(r: Resolved) -> Inventory:
    """canal.yaml: calico-node and flannel in the canal DaemonSet, with the canal ServiceAccount bound to the
    calico-node and flannel ClusterRoles (canal-calico, canal-flannel), plus calico-cni-plugin and kube-controllers."""
    flannel = r.facts.cni.flannel
    calico = r.facts.cni.calico
    ns = (flannel.namespace if flannel else None) or (calico.namespace if calico else None) or "kube-system"
    minor = calico_minor(r)
    inv = Inventory()
    crds = calico_crds(minor)
    crb = "rbac.authorization.k8s.io/v1"
    objs = [
        ref("apps/v1", "DaemonSet", (flannel.daemonset if flannel else None) or "canal", ns),
        ref("apps/v1", "Deployment", "calico-kube-controllers", ns),
        ref("policy/v1", "PodDisruptionBudget", "calico-kube-controllers", ns),
        ref("v1", "ConfigMap", (flannel.configmap if flannel else None) or "canal-config", ns),
        ref("v1", "ServiceAccount", "canal", ns),
        ref("v1", "ServiceAccount", "calico-cni-plugin", ns),
        ref("v1", "ServiceAccount", "calico-kube-controllers", ns),
        ref(crb, "ClusterRole", "calico-node"),
        ref(crb, "ClusterRole", "flannel"),
        ref(crb, "ClusterRoleBinding", "canal-calico"),
        ref(crb, "ClusterRoleBinding", "canal-flannel"),
        *_rbac(["calico-cni-plugin", "calico-kube-controllers"]),
        *_tier_getter(minor),
    ]
    inv.backup_objects = [*objs, *crds, *shared_crds(minor)]
    inv.backup_selectors = [ObjectSelector(group="crd.projectcalico.org")]
    inv.delete_objects = objs
    inv.delete_crds = crds
    inv.workloads = [objs[0]]
    inv.leftovers = NameMatch(
        pattern="canal|calico|flannel", exclude_groups=["events.k8s.io", "coordination.k8s.io", "cilium.io"]
    )
    return inv


def old_cni_inventory(r: Resolved) -> Inventory | None:
    if r.old_cni == "calico":
        return calico_inventory(r)
    if r.old_cni == "flannel":
        return flannel_inventory(r)
    if r.old_cni == "canal":
        return canal_inventory(r)
    return None


def kube_proxy_objects(r: Resolved) -> list[ObjectRef]:
    """The kube-proxy DaemonSet and its ConfigMap: deleting the ConfigMap keeps ``kubeadm upgrade`` from
    reinstalling kube-proxy (Kubernetes >= 1.19)."""
    ns, ds_name = "kube-system", "kube-proxy"
    if r.facts.kube_proxy.daemonset and "/" in r.facts.kube_proxy.daemonset:
        ns, ds_name = r.facts.kube_proxy.daemonset.split("/", 1)
    cm = r.facts.kube_proxy.configmap or f"{ns}/kube-proxy"
    cm_ns, cm_name = cm.split("/", 1) if "/" in cm else (ns, cm)
    return [ref("apps/v1", "DaemonSet", ds_name, ns), ref("v1", "ConfigMap", cm_name, cm_ns)]
