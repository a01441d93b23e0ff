"""Catalog 1.7: IPAM, address families, CIDRs (CIL069-CIL076)."""

from __future__ import annotations

from collections.abc import Iterator

from cni_migrate.analysis.cidrs import NamedRange, find_overlaps, host_network, try_parse
from cni_migrate.analysis.lint.factview import (
    ALLOCATE_NODE_CIDRS,
    LB_CIDRS,
    NODE_ADDRESSES,
    NODE_POD_CIDRS,
    SERVICE_CIDRS,
)
from cni_migrate.analysis.lint.rules.base import RULE_PATH, Ctx, Hit, Unknown, issue, rule, src


def valid_ipam_modes(minor: int) -> list[str]:
    modes = ["kubernetes", "cluster-pool", "crd", "eni", "azure", "alibabacloud"]
    if minor >= 12:
        modes.append("delegated-plugin")
    if 12 <= minor <= 14:
        modes.append("cluster-pool-v2beta")
    if minor >= 14:
        modes.append("multi-pool")
    return modes


@rule(
    "CIL069",
    "ipam.mode must be a backend this version knows",
    severity="error",
    path="ipam.mode",
    fix="Use a valid mode for the version (cluster-pool-v2beta was replaced by multi-pool in 1.15)",
    ref=src("IPAM"),
)
def cil069(c: Ctx) -> Iterator[Hit]:
    modes = valid_ipam_modes(c.m)
    if c.d.ipam not in modes:
        yield Hit(f"Unknown IPAM backend {c.d.ipam} (valid on 1.{c.m}: {', '.join(modes)})")


@rule(
    "CIL070",
    "ENI IPAM constraints (IPv4 only, native routing, cluster.id below 128)",
    severity="error",
    path="ipam.mode",
    fix="eni.enabled=true, ipam.mode=eni, routingMode=native, IPv4 only, cluster.id below 128",
    ref=src("CFG"),
)
def cil070(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.ipam == "eni":
        if d.ipv6:
            yield Hit("IPv6 cannot be enabled in ENI IPAM mode", path="ipv6.enabled")
        if d.routing == "tunnel":
            if c.m >= 17:
                yield Hit("Cannot specify IPAM mode eni in tunnel mode.", path="routingMode")
            else:
                yield Hit("ENI IPAM should run with routingMode=native", path="routingMode", severity="warning")
    affected = d.ipam in ("eni", "alibabacloud") or d.chaining == "aws-cni"
    try:
        cluster_id = int(c.v.get("cluster.id") or 0)
    except (TypeError, ValueError):
        cluster_id = 0
    max_clusters = str(c.v.get("clustermesh.maxConnectedClusters") or 255)
    bad = 128 <= cluster_id <= 255 or (max_clusters == "511" and 384 <= cluster_id <= 511)
    if affected and bad:
        yield Hit(
            "Cilium is currently affected by a bug that causes traffic matched by network policies to be incorrectly "
            "dropped when running in either ENI mode (both AWS and AlibabaCloud) or AWS VPC CNI chaining mode, if the "
            f"cluster ID is 128-255 (and 384-511 when maxConnectedClusters=511): cluster.id={cluster_id}",
            path="cluster.id",
            severity=None if c.m >= 17 else "warning",
        )


@rule(
    "CIL071",
    "multi-pool / cluster-pool-v2beta IPAM constraints",
    severity="error",
    versions="1.12-1.17",
    path="ipam.mode",
    fix="Use native routing (multi-pool with tunnels is allowed from 1.18) and CRD identities",
    ref=src("DM"),
)
def cil071(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if ((d.ipam == "multi-pool" and 14 <= c.m <= 17) or (d.ipam == "cluster-pool-v2beta" and c.m <= 14)) and (
        d.routing == "tunnel"
    ):
        yield Hit(f"Cannot specify IPAM mode {d.ipam} in tunnel mode.")
    if c.m == 14 and d.ipam == "multi-pool" and (c.v.lower("identityAllocationMode") or "crd") != "crd":
        yield Hit(
            "IPAM mode multi-pool does not support identity-allocation-mode=kvstore", path="identityAllocationMode"
        )


@rule(
    "CIL072",
    "Kubernetes IPAM needs a podCIDR on every node; one allocator of node ranges",
    severity="error",
    path="ipam.mode",
    fix="Enable kube-controller-manager node CIDR allocation (--allocate-node-cidrs, --cluster-cidr) or use "
    "cluster-pool IPAM",
    ref=issue(14505),
    facts=(NODE_POD_CIDRS, ALLOCATE_NODE_CIDRS),
)
def cil072(c: Ctx) -> Iterator[Hit]:
    if c.d.ipam in ("cluster-pool", "multi-pool") and c.d.pod_cidrs_v4:
        yield from _two_allocators(c, c.d.pod_cidrs_v4)
    if c.d.ipam != "kubernetes":
        return
    nodes = c.f.node_pod_cidrs()
    missing = [n for n, cidrs in nodes if not cidrs]
    if missing:
        yield Hit(
            f"{len(missing)} of {len(nodes)} nodes have no spec.podCIDR: their agents wait forever ('Waiting for k8s "
            "node information' error='required IPv4 PodCIDR not available') and never become Ready: "
            + ", ".join(missing[:10]),
            subjects=tuple(missing),
        )


def _two_allocators(c: Ctx, pools: list[str]) -> Iterator[Hit]:
    """Cilium's pool and kube-controller-manager both hand out node ranges from the same space."""
    if c.v.opaque("ipam.operator.clusterPoolIPv4PodCIDRList") or not c.f.allocate_node_cidrs():
        return
    ours = [NamedRange("Cilium pod CIDR", n) for t in pools if (n := try_parse(t))]
    theirs = [NamedRange(f"node {node} podCIDR", n) for node, cidrs in c.f.node_pod_cidrs() for t in cidrs
              if (n := try_parse(t))]  # fmt: skip
    overlaps = find_overlaps(ours, theirs)
    if overlaps:
        yield Hit(
            f"ipam.mode={c.d.ipam} allocates node ranges itself while kube-controller-manager also allocates "
            f"node podCIDRs from the same space ({overlaps[0]}): nodes' spec.podCIDR will not match their pods' "
            "IPs (anything that trusts or advertises node podCIDRs, such as kube-router --advertise-pod-cidr or "
            "kube-proxy detectLocalMode=NodeCIDR, goes wrong)",
            severity="warning",
            path="ipam.mode",
        )


def _cilium_pod_ranges(c: Ctx) -> list[NamedRange]:
    d = c.d
    out: list[NamedRange] = []
    if d.pod_cidrs_v4 is not None:
        for text in d.pod_cidrs_v4:
            if (net := try_parse(text)) is not None:
                out.append(
                    NamedRange("Cilium pod CIDR" + (" (chart default)" if "default" in d.pod_cidrs_source else ""), net)
                )
        return out
    if d.ipam == "kubernetes":
        for node, cidrs in c.f.node_pod_cidrs():
            for text in cidrs:
                if (net := try_parse(text)) is not None:
                    out.append(NamedRange(f"node {node} podCIDR", net))
    return out


@rule(
    "CIL073",
    "Cilium pod CIDRs overlap node, Service or LoadBalancer ranges",
    severity="error",
    path="ipam.operator.clusterPoolIPv4PodCIDRList",
    fix="Choose a pod CIDR disjoint from node subnets, the service CIDR and LoadBalancer pools before install "
    "(the default 10.0.0.0/8 often overlaps)",
    ref=issue(42383),
    facts=(NODE_ADDRESSES, SERVICE_CIDRS, LB_CIDRS),
)
def cil073(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.pod_cidrs_v4 is None and d.ipam != "kubernetes":
        return
    if c.v.opaque("ipam.operator.clusterPoolIPv4PodCIDRList"):
        raise Unknown("value of ipam.operator.clusterPoolIPv4PodCIDRList")
    pods = _cilium_pod_ranges(c)
    path = (
        "ipam.mode"
        if d.ipam == "kubernetes"
        else ("ipam.operator.autoCreateCiliumPodIPPools" if d.ipam == "multi-pool" else None)
    )
    others: list[NamedRange] = []
    for name, getter, label in (
        (NODE_ADDRESSES, c.f.node_addresses, "node"),
        (SERVICE_CIDRS, c.f.service_cidrs, "service CIDR"),
        (LB_CIDRS, c.f.lb_cidrs, "LoadBalancer range"),
    ):
        try:
            items = getter()
        except Unknown as e:
            c.missing(name, detail=e.detail)
            continue
        for item in items:
            if isinstance(item, tuple):
                node, ip = item
                if (h := host_network(ip)) is not None:
                    others.append(NamedRange(f"{label} {node} address", h))
            elif (net := try_parse(item)) is not None:
                others.append(NamedRange(label, net))
    overlaps = find_overlaps(pods, others)
    if overlaps:
        shown = "; ".join(str(o) for o in overlaps[:6]) + (
            f" and {len(overlaps) - 6} more" if len(overlaps) > 6 else ""
        )
        kinds = {o.b.label.split(" ", 1)[0] for o in overlaps}
        effects = []
        if "node" in kinds:
            effects.append("routes for pod CIDRs shadow the node network (SSH and the API server become unreachable)")
        if "service" in kinds:
            effects.append("pod IPs and ClusterIPs collide once the pool hands out addresses in the service range")
        if "LoadBalancer" in kinds:
            effects.append("LoadBalancer IPs collide with pod IPs")
        yield Hit(
            f"{shown}: {'; '.join(effects)}",
            path=path if path else RULE_PATH,
            subjects=tuple(sorted({o.b.label for o in overlaps})),
        )
    if c.context.helm_action == "upgrade" and d.pod_cidrs_v4 is not None and c.f.has_facts:
        existing = (c.f.existing_cilium_config() or {}).get("cluster-pool-ipv4-cidr")
        if existing and sorted(existing.split()) != sorted(d.pod_cidrs_v4):
            yield Hit(
                f"the pod CIDR changes from {existing} to {' '.join(d.pod_cidrs_v4)} on an existing Cilium: existing "
                "nodes keep their old ranges",
            )


@rule(
    "CIL074",
    "clusterPoolIPv4PodCIDR / clusterPoolIPv6PodCIDR were removed in 1.14",
    severity="error",
    versions="1.14+",
    path="ipam.operator.clusterPoolIPv4PodCIDR",
    fix="Use ipam.operator.clusterPoolIPv4PodCIDRList (and ...IPv6PodCIDRList)",
    ref=src("CM", since=14),
)
def cil074(c: Ctx) -> Iterator[Hit]:
    for fam in ("IPv4", "IPv6"):
        key = f"ipam.operator.clusterPool{fam}PodCIDR"
        if c.v.has(key):
            yield Hit(f"Value {key} removed, use {key}List instead", path=key)


@rule(
    "CIL075",
    "delegated-plugin IPAM and local router address requirements",
    severity="error",
    path="ipam.mode",
    fix="Supply localRouterIPv4/IPv6, disable endpoint health checking and Envoy config with delegated-plugin; "
    "local router IPs need native routing with endpoint routes",
    ref=src("CFG"),
)
def cil075(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.ipam == "delegated-plugin" and c.m >= 13:
        if d.ipv4 and not c.v.text("localRouterIPv4"):
            yield Hit(
                "--local-router-ipv4 must be provided when IPv4 is enabled with --ipam=delegated-plugin",
                path="localRouterIPv4",
            )
        if d.ipv6 and not c.v.text("localRouterIPv6"):
            yield Hit(
                "--local-router-ipv6 must be provided when IPv6 is enabled with --ipam=delegated-plugin",
                path="localRouterIPv6",
            )
        if c.v.flag("endpointHealthChecking.enabled", True):
            yield Hit(
                "--enable-endpoint-health-checking must be disabled with --ipam=delegated-plugin",
                path="endpointHealthChecking.enabled",
            )
        if c.v.flag("envoyConfig.enabled") or c.v.flag("ingressController.enabled") or c.v.flag("gatewayAPI.enabled"):
            yield Hit("--enable-envoy-config must be disabled with --ipam=delegated-plugin", path="envoyConfig.enabled")
    if c.v.text("localRouterIPv4") or c.v.text("localRouterIPv6"):
        if d.routing == "tunnel":
            yield Hit("Cannot specify local-router-ipv4 or local-router-ipv6 in tunnel mode.", path="localRouterIPv4")
        if not c.v.flag("endpointRoutes.enabled"):
            yield Hit(
                "Cannot specify local-router-ipv4 or local-router-ipv6  without enable-endpoint-routes.",
                path="endpointRoutes.enabled",
            )


@rule(
    "CIL076",
    "Address families: at least one, IPv6 in the kernel, NAT46x64 needs both",
    severity="error",
    path="ipv4.enabled",
    fix="Enable IPv4 and/or IPv6; enable IPv6 in the node kernels; NAT46x64 needs both families",
    ref=src("DM"),
    facts=("IPv6 enabled in node kernels",),
)
def cil076(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if not d.ipv4 and not d.ipv6:
        yield Hit("Either IPv4 or IPv6 addressing must be enabled")
    if c.m >= 13 and c.v.flag("nat46x64Gateway.enabled") and not (d.ipv4 and d.ipv6):
        yield Hit(
            "--enable-nat46x64-gateway requires both --enable-ipv4 and --enable-ipv6 enabled",
            path="nat46x64Gateway.enabled",
        )
    if d.ipv6:
        c.missing(
            "IPv6 enabled in node kernels",
            detail="'kernel: ipv6 is enabled in agent but ipv6 is either disabled or not compiled in the kernel'; "
            "node sysctls are not among the facts",
        )
