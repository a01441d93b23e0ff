"""Builders for lint tests: cluster facts with just the parts a rule reads, values from --set expressions."""

from __future__ import annotations

from typing import Any

from cni_migrate.analysis.lint import LintContext, LintReport, apply_set, lint
from cni_migrate.facts.model import (
    ApiEndpoint,
    CalicoFacts,
    CiliumFacts,
    ClusterFacts,
    CniFacts,
    Fact,
    FlannelFacts,
    HelmReleaseFacts,
    IPPoolFacts,
    IstioFacts,
    KubeProxyFacts,
    KubeRouterFacts,
    NetworkFacts,
    NodeFacts,
    PolicyFacts,
    SourceInfo,
    WorkloadFacts,
)

UNKNOWN: Any = object()  # a fact the input lacks


def fact(value: Any, source: str = "test") -> Fact[Any]:
    if value is UNKNOWN:
        return Fact.missing("unknown in this test")
    return Fact.of(value, source)


def make_facts(
    *,
    kernels: Any = ("5.15.0-91-generic", "5.15.0-91-generic", "5.15.0-91-generic"),
    kube_proxy: Any = True,
    cni: str = "none",
    flannel_backend: Any = "vxlan",
    flannel_port: Any = 8472,
    flannel_network: Any = "10.244.0.0/16",
    calico_autodetect: Any = "first-found",
    calico_vxlan: bool = False,
    calico_pools: tuple[str, ...] = ("192.168.128.0/17",),
    service_cidrs: Any = ("10.96.0.0/12",),
    pod_cidrs: Any = None,
    lb_cidrs: Any = (),
    node_ips: Any = None,
    node_pod_cidrs: Any = None,
    istio: Any = False,
    istio_evidence: tuple[str, ...] = ("Namespace istio-system",),
    releases: Any = (),
    api: Any = ("192.168.1.10", 6443),
    kube_router_args: list[str] | None = None,
    cilium_config: dict[str, str] | None = None,
    nodes_known: bool = True,
) -> ClusterFacts:
    """A cluster of nodes node-1..N (N = number of kernels) on 192.168.1.0/24 with podCIDRs 10.244.i.0/24."""
    if isinstance(kernels, dict):
        named = list(kernels.items())
    else:
        named = [(f"node-{i + 1}", k) for i, k in enumerate(kernels)]
    nodes = []
    for i, (name, kernel) in enumerate(named):
        ips = node_ips[i] if node_ips is not None else [f"192.168.1.{11 + i}"]
        cidrs = node_pod_cidrs[i] if node_pod_cidrs is not None else [f"10.244.{i}.0/24"]
        nodes.append(
            NodeFacts(
                name=name,
                internal_ips=list(ips),
                kernel_version=kernel,
                pod_cidr=cidrs[0] if cidrs else None,
                pod_cidrs=list(cidrs),
            )
        )
    detected: Any = cni
    cni_facts = CniFacts(detected=detected, evidence=[f"{cni} (test)"])
    if cni in ("flannel", "canal"):
        cni_facts.flannel = FlannelFacts(
            namespace="kube-flannel",
            daemonset="kube-flannel-ds",
            configmap="kube-flannel-cfg",
            network=fact(flannel_network),
            backend_type=fact(flannel_backend),
            backend_port=fact(flannel_port),
            vni=fact(1),
            direct_routing=fact(False),
            ip_masq=fact(True),
            canal=cni == "canal",
        )
    if cni in ("calico", "canal"):
        cni_facts.calico = CalicoFacts(
            install_method="manifest",
            namespace="kube-system",
            version=fact("v3.26.1"),
            ip_pools=fact(
                [
                    IPPoolFacts(name=f"pool-{i}", cidr=c, block_size=26, source="test")
                    for i, c in enumerate(calico_pools)
                ]
            ),
            bgp=Fact.missing("test"),
            ip_autodetection_method=fact(calico_autodetect),
            calico_networking_backend=fact("bird"),
            uses_vxlan=fact(calico_vxlan),
        )
    if cni == "cilium" or cilium_config is not None:
        cni_facts.cilium = CiliumFacts(
            namespace="kube-system",
            version=fact("v1.15.6"),
            ipam_mode=fact("cluster-pool"),
            routing_mode=fact("tunnel"),
            tunnel_protocol=fact("vxlan"),
            kube_proxy_replacement=fact("false"),
            annotate_k8s_node=fact(False),
            config=dict(cilium_config or {}),
        )
    if kube_router_args is not None:
        cni_facts.kube_router = KubeRouterFacts(namespace="kube-system", daemonset="kube-router", args=kube_router_args)
    if pod_cidrs is None:
        pods: Any = (
            [flannel_network]
            if cni in ("flannel", "canal")
            else (list(calico_pools) if cni == "calico" else ["10.244.0.0/16"])
        )
    else:
        pods = pod_cidrs
    return ClusterFacts(
        source=SourceInfo(kind="snapshot", location="test"),
        kubernetes_version=fact("v1.28.4"),
        nodes=nodes,
        nodes_known=fact(True) if nodes_known else Fact.missing("no Node objects"),
        cni=cni_facts,
        kube_proxy=KubeProxyFacts(present=fact(kube_proxy), mode=fact("iptables"), cluster_cidr=fact("10.244.0.0/16")),
        network=NetworkFacts(
            service_cidrs=fact(list(service_cidrs) if service_cidrs is not UNKNOWN else UNKNOWN),
            pod_cidrs=fact(list(pods) if pods is not UNKNOWN else UNKNOWN),
            node_cidr_mask_size=fact(24),
            allocate_node_cidrs=fact(True),
            load_balancer_cidrs=fact(list(lb_cidrs) if lb_cidrs is not UNKNOWN else UNKNOWN),
            api_endpoint=fact(ApiEndpoint(host=api[0], port=api[1]) if api is not UNKNOWN else UNKNOWN),
        ),
        pdbs=fact([]),
        workloads=WorkloadFacts(pods=fact(10), host_network_pods=fact(3), pods_not_running=fact(0)),
        policies=PolicyFacts(
            kubernetes_network_policies=fact(0),
            calico_network_policies=fact(0),
            calico_global_network_policies=fact(0),
            cilium_network_policies=fact(0),
        ),
        istio=IstioFacts(present=fact(istio), evidence=list(istio_evidence) if istio is True else []),
        cilium_helm_releases=fact(
            [HelmReleaseFacts(name=n, namespace=ns, revision=r, source="test") for ns, n, r in releases]
            if releases is not UNKNOWN
            else UNKNOWN
        ),
    )


def values(*sets: str) -> dict[str, Any]:
    """Values from --set expressions (each may hold several comma-separated assignments)."""
    out: dict[str, Any] = {}
    for s in sets:
        apply_set(out, s)
    return out


def run(
    vals: dict[str, Any] | str | tuple[str, ...],
    version: str,
    facts: ClusterFacts | None = None,
    **ctx: Any,
) -> LintReport:
    if isinstance(vals, str):
        vals = values(*vals.split()) if vals else {}
    elif isinstance(vals, tuple):
        vals = values(*vals)
    return lint(vals, version, facts, context=LintContext(**ctx))
