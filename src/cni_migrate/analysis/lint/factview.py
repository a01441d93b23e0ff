"""The cluster facts rules may ask for, each either known or raising :class:`Unknown` naming the fact.

Rules never read :class:`ClusterFacts` directly: they ask this view, so a missing fact always turns into a
"not checked" entry naming it, never into a silent pass. The :class:`LintContext` overrides facts where the
install will change them (kube-proxy or the old CNI removed first).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cni_migrate.analysis.lint.model import LintContext
    from cni_migrate.facts.model import ClusterFacts, Fact

NO_FACTS = "no cluster facts: lint ran without --snapshot or a cluster"

# Names of facts as not-checked entries show them.
KERNELS = "node kernel versions"
KUBE_PROXY = "kube-proxy presence"
OLD_CNI = "installed CNI"
OLD_CNI_VXLAN = "the installed CNI's VXLAN port"
SERVICE_CIDRS = "service CIDRs"
POD_CIDRS = "existing pod CIDRs"
LB_CIDRS = "LoadBalancer IP ranges"
NODE_ADDRESSES = "node addresses"
NODE_POD_CIDRS = "node podCIDRs"
ISTIO = "Istio presence"
HELM_RELEASES = "Helm releases of Cilium"
CALICO_AUTODETECT = "Calico IP autodetection method"
API_ENDPOINT = "API server endpoint"
KUBE_PROXY_CLUSTER_CIDR = "kube-proxy clusterCIDR"
ALLOCATE_NODE_CIDRS = "kube-controller-manager --allocate-node-cidrs"


class Unknown(Exception):
    """A rule needs facts (or values) the input does not have."""

    def __init__(self, *missing: str, detail: str | None = None) -> None:
        super().__init__(", ".join(missing))
        self.missing = list(missing)
        self.detail = detail


class NodeKernel:
    __slots__ = ("kernel", "key", "node", "note")

    def __init__(self, node: str, kernel: str, key: tuple[int, int, int], note: str = "") -> None:
        self.node = node
        self.kernel = kernel
        self.key = key
        self.note = note


class OldCni:
    """The CNI that stays installed next to Cilium."""

    __slots__ = ("evidence", "ipam", "name", "pod_cidrs", "vxlan_device", "vxlan_port", "vxlan_unknown")

    def __init__(
        self,
        name: str,
        ipam: str,
        vxlan_port: int | None,
        vxlan_device: str | None,
        vxlan_unknown: str | None,
        pod_cidrs: tuple[str, ...],
        evidence: str,
    ) -> None:
        self.name = name  # calico, flannel, canal, kube-router
        self.ipam = ipam  # "kubernetes" (node podCIDRs, host-local) or "calico-ipam"
        self.vxlan_port = vxlan_port  # UDP port of its VXLAN device, None if it uses no VXLAN
        self.vxlan_device = vxlan_device
        self.vxlan_unknown = vxlan_unknown  # why the VXLAN port is unknown
        self.pod_cidrs = pod_cidrs
        self.evidence = evidence


_KERNEL = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")
_RHEL8 = re.compile(r"^4\.18\.0-(\d+)[^ ]*\.el8")


def effective_kernel(version: str) -> tuple[tuple[int, int, int] | None, str]:
    """A kernel as features see it. RHEL 8's 4.18 carries backports the Cilium docs accept: 8.6 (build 372)
    and newer count as 5.10, older 8.x as 4.19.57."""
    m = _RHEL8.match(version.strip())
    if m:
        if int(m.group(1)) >= 372:
            return (5, 10, 0), "RHEL 8.6+ kernel counted as 5.10 for its backports"
        return (4, 19, 57), "RHEL 8 kernel counted as 4.19.57 for its backports"
    # The same parse as cni_migrate.facts.kernel, kept here so that importing the lint engine does not import
    # the facts package (lint without cluster facts stays fast to start).
    k = _KERNEL.match(version.strip())
    if not k:
        return None, ""
    return (int(k.group(1)), int(k.group(2)), int(k.group(3) or 0)), ""


def kernel_text(k: tuple[int, int, int]) -> str:
    return f"{k[0]}.{k[1]}.{k[2]}" if k[2] else f"{k[0]}.{k[1]}"


def socket_lb_udp_ok(k: tuple[int, int, int]) -> bool:
    """The cgroup UDP recvmsg hooks socket-LB needs: 4.19.57+, 5.1.16+, 5.2+ (never in 5.0.y)."""
    return k >= (5, 2, 0) or (5, 1, 16) <= k < (5, 2, 0) or (4, 19, 57) <= k < (5, 0, 0)


class FactView:
    def __init__(self, facts: ClusterFacts | None, context: LintContext) -> None:
        self.facts = facts
        self.context = context

    @property
    def has_facts(self) -> bool:
        return self.facts is not None

    def _facts(self, name: str) -> ClusterFacts:
        if self.facts is None:
            raise Unknown(name, detail=NO_FACTS)
        return self.facts

    @staticmethod
    def _known(fact: Fact[Any], name: str) -> Any:
        if not fact.known or fact.value is None:
            raise Unknown(name, detail=fact.unknown)
        return fact.value

    def source(self) -> str:
        if self.facts is None:
            return "none"
        return f"{self.facts.source.kind} {self.facts.source.location}"

    # --- nodes and kernels ------------------------------------------------------------------------------

    def kernels(self) -> list[NodeKernel]:
        facts = self._facts(KERNELS)
        if not facts.nodes_known.known:
            raise Unknown(KERNELS, detail=facts.nodes_known.unknown)
        out: list[NodeKernel] = []
        missing: list[str] = []
        for n in facts.nodes:
            key, note = effective_kernel(n.kernel_version) if n.kernel_version else (None, "")
            if key is None:
                missing.append(n.name)
                continue
            out.append(NodeKernel(n.name, str(n.kernel_version), key, note))
        if not out:
            raise Unknown(KERNELS, detail="no node reports a kernel version (status.nodeInfo.kernelVersion)")
        if missing:
            raise Unknown(KERNELS, detail=f"nodes without a readable kernel version: {', '.join(missing)}")
        return out

    def lowest_kernel(self) -> NodeKernel:
        return min(self.kernels(), key=lambda k: k.key)

    def nodes_below(self, minimum: tuple[int, int, int]) -> list[NodeKernel]:
        return sorted((k for k in self.kernels() if k.key < minimum), key=lambda k: (k.key, k.node))

    def nodes_matching(self, ok: Any) -> list[NodeKernel]:
        """Nodes whose effective kernel fails the predicate ``ok``."""
        return sorted((k for k in self.kernels() if not ok(k.key)), key=lambda k: (k.key, k.node))

    def node_count(self) -> int:
        facts = self._facts("node list")
        if not facts.nodes_known.known:
            raise Unknown("node list", detail=facts.nodes_known.unknown)
        return len(facts.nodes)

    def node_addresses(self) -> list[tuple[str, str]]:
        facts = self._facts(NODE_ADDRESSES)
        if not facts.nodes_known.known:
            raise Unknown(NODE_ADDRESSES, detail=facts.nodes_known.unknown)
        return [(n.name, ip) for n in facts.nodes for ip in n.internal_ips]

    def allocate_node_cidrs(self) -> bool:
        facts = self._facts(ALLOCATE_NODE_CIDRS)
        return bool(self._known(facts.network.allocate_node_cidrs, ALLOCATE_NODE_CIDRS))

    def node_pod_cidrs(self) -> list[tuple[str, list[str]]]:
        facts = self._facts(NODE_POD_CIDRS)
        if not facts.nodes_known.known:
            raise Unknown(NODE_POD_CIDRS, detail=facts.nodes_known.unknown)
        return [(n.name, list(n.pod_cidrs)) for n in facts.nodes]

    # --- kube-proxy, API server -------------------------------------------------------------------------

    def kube_proxy_present(self) -> bool:
        if self.context.kube_proxy_present is not None:
            return self.context.kube_proxy_present
        facts = self._facts(KUBE_PROXY)
        return bool(self._known(facts.kube_proxy.present, KUBE_PROXY))

    def kube_proxy_source(self) -> str:
        if self.context.kube_proxy_present is not None:
            return "the install context (kube-proxy " + (
                "kept)" if self.context.kube_proxy_present else "removed before install)"
            )
        return str(self.facts.kube_proxy.present.source) if self.facts else ""

    def kube_proxy_cluster_cidr(self) -> str | None:
        """kube-proxy's clusterCIDR (None when it is not set); raises Unknown when the ConfigMap is missing."""
        facts = self._facts(KUBE_PROXY_CLUSTER_CIDR)
        fact = facts.kube_proxy.cluster_cidr
        if fact.known:
            return str(fact.value) if fact.value else None
        raise Unknown(KUBE_PROXY_CLUSTER_CIDR, detail=fact.unknown)

    def api_endpoint(self) -> tuple[str, int]:
        facts = self._facts(API_ENDPOINT)
        ep = self._known(facts.network.api_endpoint, API_ENDPOINT)
        return str(ep.host), int(ep.port)

    # --- address ranges ---------------------------------------------------------------------------------

    def service_cidrs(self) -> list[str]:
        return list(self._known(self._facts(SERVICE_CIDRS).network.service_cidrs, SERVICE_CIDRS))

    def existing_pod_cidrs(self) -> list[str]:
        return list(self._known(self._facts(POD_CIDRS).network.pod_cidrs, POD_CIDRS))

    def lb_cidrs(self) -> list[str]:
        return list(self._known(self._facts(LB_CIDRS).network.load_balancer_cidrs, LB_CIDRS))

    # --- CNI --------------------------------------------------------------------------------------------

    def _old_cni_from_facts(self) -> OldCni | None:
        facts = self._facts(OLD_CNI)
        cni = facts.cni
        if cni.detected == "unknown":
            raise Unknown(OLD_CNI, detail="; ".join(cni.evidence) or "no DaemonSets in the input")
        names = [cni.detected, *cni.also_present]
        if "canal" in names and cni.flannel:
            return self._flannel_like("canal", facts)
        if "calico" in names and cni.calico:
            c = cni.calico
            pools = tuple(p.cidr for p in c.ip_pools.value or [] if not p.disabled)
            return OldCni(
                name="calico",
                ipam="calico-ipam",
                vxlan_port=c.vxlan_port if c.uses_vxlan.value else None,
                vxlan_device="vxlan.calico" if c.uses_vxlan.value else None,
                vxlan_unknown=c.uses_vxlan.unknown,
                pod_cidrs=pools,
                evidence=next((e for e in cni.evidence if "calico" in e.lower()), "Calico"),
            )
        if "flannel" in names and cni.flannel:
            return self._flannel_like("flannel", facts)
        if cni.detected == "kube-router":
            return OldCni("kube-router", "kubernetes", None, None, None, (), "kube-router is the CNI")
        return None

    def _flannel_like(self, name: str, facts: ClusterFacts) -> OldCni:
        f = facts.cni.flannel
        assert f is not None
        port: int | None = None
        device: str | None = None
        unknown: str | None = None
        if not f.backend_type.known:
            unknown = f.backend_type.unknown
        elif f.backend_type.value == "vxlan":
            if f.backend_port.known and f.backend_port.value:
                port = int(f.backend_port.value)
                vni = f.vni.value if f.vni.known and f.vni.value is not None else 1
                device = f"flannel.{vni}"
            else:
                unknown = f.backend_port.unknown
        cidrs = (str(f.network.value),) if f.network.known and f.network.value else ()
        return OldCni(
            name=name,
            ipam="kubernetes",
            vxlan_port=port,
            vxlan_device=device,
            vxlan_unknown=unknown,
            pod_cidrs=cidrs,
            evidence=f"{f.namespace}/{f.daemonset}",
        )

    def old_cni_present(self) -> bool:
        """Will a CNI other than Cilium still be installed when Cilium is?"""
        if self.context.old_cni_present is not None:
            return self.context.old_cni_present
        if self.context.migration == "rolling":
            return True
        return self._old_cni_from_facts() is not None

    def old_cni(self) -> OldCni | None:
        """The CNI that stays installed next to Cilium, or None if none will."""
        if not self.old_cni_present():
            return None
        found = self._old_cni_from_facts()
        if found is None:
            raise Unknown(OLD_CNI, detail="the install context says a CNI stays installed, the facts show none")
        return found

    def calico_autodetection(self) -> tuple[str, str] | None:
        """Calico's IPv4 autodetection method and its source, or None when Calico is not installed."""
        facts = self._facts(CALICO_AUTODETECT)
        c = facts.cni.calico
        if c is None:
            return None
        method = self._known(c.ip_autodetection_method, CALICO_AUTODETECT)
        return str(method), str(c.ip_autodetection_method.source)

    def kube_router_advertises_pod_cidrs(self) -> bool:
        facts = self._facts("BGP speaker announcing pod CIDRs")
        kr = facts.cni.kube_router
        return kr is not None and any(a in ("--advertise-pod-cidr=true", "--advertise-pod-cidr") for a in kr.args)

    def existing_cilium_config(self) -> dict[str, str] | None:
        facts = self._facts("existing Cilium configuration")
        return dict(facts.cni.cilium.config) if facts.cni.cilium else None

    # --- Istio, Helm ------------------------------------------------------------------------------------

    def istio(self) -> tuple[bool, list[str]]:
        facts = self._facts(ISTIO)
        present = bool(self._known(facts.istio.present, ISTIO))
        return present, list(facts.istio.evidence)

    def cilium_releases(self) -> list[tuple[str, str, int]]:
        facts = self._facts(HELM_RELEASES)
        releases = self._known(facts.cilium_helm_releases, HELM_RELEASES)
        return [(r.namespace, r.name, r.revision) for r in releases]
