"""cni-migrate's own rules (CNMnnn): the install against the cluster being migrated.

The old and the new CNI side by side (the graceful-migration seed's four conditions: different IPAM, distinct
CIDRs, the node as gateway, one VXLAN per host), Calico autodetection picking ``cilium_host``, the Helm release
that already exists (or does not), the API server endpoint, and notes about the input itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from cni_migrate.analysis.cidrs import NamedRange, find_overlaps, try_parse, within
from cni_migrate.analysis.lint.factview import (
    API_ENDPOINT,
    CALICO_AUTODETECT,
    HELM_RELEASES,
    KERNELS,
    KUBE_PROXY,
    KUBE_PROXY_CLUSTER_CIDR,
    OLD_CNI,
    OldCni,
)
from cni_migrate.analysis.lint.rules.base import Ctx, Hit, Unknown, docs, issue, rule
from cni_migrate.analysis.lint.version import LAST_MINOR


@rule(
    "CNM001",
    "helm install over an existing release",
    severity="error",
    path=None,
    fix="Use helm upgrade (with the full values, or --reuse-values), or helm uninstall the release first",
    ref=issue(6850, "helm/helm"),
    facts=(HELM_RELEASES,),
)
def cnm001(c: Ctx) -> Iterator[Hit]:
    if c.context.helm_action != "install":
        return
    name, ns = c.context.release_name, c.context.namespace
    found = [r for r in c.f.cilium_releases() if r[0] == ns and r[1] == name]
    if found:
        yield Hit(
            f"release {ns}/{name} already exists (revision {found[0][2]}): Error: INSTALLATION FAILED: cannot re-use "
            "a name that is still in use",
            subjects=(f"{ns}/{name}",),
        )


@rule(
    "CNM002",
    "helm upgrade of a release that does not exist",
    severity="error",
    path=None,
    fix="Use helm install, or helm upgrade --install",
    ref=docs("installation/k8s-install-helm"),
    facts=(HELM_RELEASES,),
)
def cnm002(c: Ctx) -> Iterator[Hit]:
    if c.context.helm_action != "upgrade" or c.context.upgrade_install:
        return
    name, ns = c.context.release_name, c.context.namespace
    if not any(r[0] == ns and r[1] == name for r in c.f.cilium_releases()):
        yield Hit(
            f'Error: UPGRADE FAILED: "{name}" has no deployed releases (namespace {ns})', subjects=(f"{ns}/{name}",)
        )


def _autodetect_picks_cilium_host(method: str) -> bool:
    m = method.strip()
    low = m.lower()
    if low in ("first-found", "firstfound=true", "firstfound", "") or low.startswith("firstfound=true"):
        return True
    if low.startswith("interface="):
        pattern = m.split("=", 1)[1]
        for regex in pattern.split(","):
            try:
                if re.match(regex.strip(), "cilium_host"):
                    return True
            except re.error:
                continue
    return False


@rule(
    "CNM003",
    "Calico IP autodetection would pick cilium_host",
    severity="error",
    path=None,
    fix="Before installing Cilium, pin Calico's autodetection: tigera Installation "
    "spec.calicoNetwork.nodeAddressAutodetectionV4 {firstFound: false, kubernetes: NodeInternalIP}, or calico-node "
    "env IP_AUTODETECTION_METHOD=kubernetes-internal-ip (or interface=<your NIC>, skip-interface=cilium_.*)",
    ref=issue(31273),
    facts=(OLD_CNI, CALICO_AUTODETECT),
)
def cnm003(c: Ctx) -> Iterator[Hit]:
    old = c.f.old_cni()
    if old is None or old.name != "calico":
        return  # Canal networks with Flannel, whose interface choice cilium_host does not affect
    found = c.f.calico_autodetection()
    if found is None:
        return
    method, source = found
    if _autodetect_picks_cilium_host(method):
        yield Hit(
            f"Calico autodetects node addresses with {method} ({source}); Cilium creates the cilium_host interface, "
            "which Calico may then pick as the node address: calico-node goes NotReady and routing between nodes "
            "breaks right after the install"
        )


def _side_by_side(c: Ctx) -> OldCni | None:
    return c.f.old_cni()


@rule(
    "CNM004",
    "Side by side: the old CNI and Cilium must use different IPAM",
    severity="error",
    path="ipam.mode",
    fix="Use cluster-pool (or multi-pool) IPAM with a pod CIDR of its own while the old CNI allocates from node "
    "podCIDRs",
    ref=docs("installation/k8s-install-migration"),
    facts=(OLD_CNI,),
)
def cnm004(c: Ctx) -> Iterator[Hit]:
    old = _side_by_side(c)
    if old is None:
        return
    if c.d.ipam == "kubernetes" and old.ipam == "kubernetes":
        yield Hit(
            f"{old.name} allocates pod IPs from the nodes' podCIDRs and ipam.mode=kubernetes makes Cilium allocate "
            "from the same ranges: pods of the two CNIs get the same IPs"
        )


@rule(
    "CNM005",
    "Side by side: Cilium's pod CIDRs must not overlap the old CNI's",
    severity="error",
    path="ipam.operator.clusterPoolIPv4PodCIDRList",
    fix="Give Cilium a distinct, unused pod CIDR (clusterPoolIPv4PodCIDRList), e.g. 10.245.0.0/16",
    ref=docs("installation/k8s-install-migration"),
    facts=(OLD_CNI, "node podCIDRs"),
)
def cnm005(c: Ctx) -> Iterator[Hit]:
    old = _side_by_side(c)
    if old is None:
        return
    d = c.d
    cilium: list[NamedRange] = []
    if d.pod_cidrs_v4 is not None:
        cilium = [NamedRange("Cilium pod CIDR", n) for t in d.pod_cidrs_v4 if (n := try_parse(t))]
    elif d.ipam == "kubernetes":
        cilium = [
            NamedRange(f"Cilium pod CIDR (node {node} podCIDR)", n)
            for node, cidrs in c.f.node_pod_cidrs()
            for t in cidrs
            if (n := try_parse(t))
        ]
    existing = list(old.pod_cidrs)
    if not existing:
        try:
            existing = c.f.existing_pod_cidrs()
        except Unknown as e:
            raise Unknown("existing pod CIDRs", detail=e.detail) from None
    theirs = [NamedRange(f"{old.name} pod CIDR", n) for t in existing if (n := try_parse(t))]
    overlaps = find_overlaps(cilium, theirs)
    if overlaps:
        yield Hit(
            "; ".join(str(o) for o in overlaps[:4]) + ": while both CNIs run, routes for the two pod networks "
            "collide and pods can get clashing addresses",
            path="ipam.mode" if d.ipam == "kubernetes" else "ipam.operator.clusterPoolIPv4PodCIDRList",
            subjects=tuple(sorted({str(o.a.network) for o in overlaps})),
        )


@rule(
    "CNM006",
    "Side by side: the node must be the gateway between the two pod networks",
    severity="error",
    path="bpf.hostLegacyRouting",
    fix="Set bpf.hostLegacyRouting=true for the duration of the migration (traffic between Cilium and old-CNI pods "
    "must go through the host stack)",
    ref=docs("installation/k8s-install-migration"),
    facts=(OLD_CNI, KERNELS),
)
def cnm006(c: Ctx) -> Iterator[Hit]:
    old = _side_by_side(c)
    if old is None:
        return
    if c.d.host_routing == "unknown":
        raise Unknown(KERNELS, detail="BPF host routing (which bypasses the host stack) is used on kernel 5.10+")
    if c.d.host_routing == "bpf":
        yield Hit(
            f"BPF host routing is in effect (kernel 5.10+, full kube-proxy replacement, BPF masquerading): traffic "
            f"from Cilium pods is redirected past the host stack, so pods of Cilium and of {old.name} cannot reach "
            "each other through the node during the migration"
        )


@rule(
    "CNM007",
    "Side by side: one VXLAN per host",
    severity="warning",
    path="tunnelProtocol",
    fix="Use tunnelProtocol=geneve for the migration (the seed's choice), or keep the distinct tunnelPort the "
    "Cilium migration guide uses (8473)",
    ref=docs("installation/k8s-install-migration"),
    facts=(OLD_CNI,),
)
def cnm007(c: Ctx) -> Iterator[Hit]:
    old = _side_by_side(c)
    d = c.d
    if old is None or d.tunnel_device != "cilium_vxlan" or old.vxlan_port is None:
        return
    if old.vxlan_port == d.tunnel_port:
        return  # the port clash itself is CIL015
    yield Hit(
        f"both CNIs would run a VXLAN device on every node ({old.vxlan_device} on UDP {old.vxlan_port}, cilium_vxlan "
        f"on UDP {d.tunnel_port}): this works only because the ports differ; the graceful-migration seed's condition "
        "is one VXLAN per host"
    )


@rule(
    "CNM011",
    "kube-proxy stays with a clusterCIDR that does not contain Cilium's pod CIDRs",
    severity="warning",
    path="ipam.operator.clusterPoolIPv4PodCIDRList",
    fix="Update kube-proxy's clusterCIDR (ConfigMap kube-system/kube-proxy config.conf) to cover Cilium's pod CIDRs "
    "as well, or replace kube-proxy (kubeProxyReplacement=true)",
    ref=docs("installation/k8s-install-migration"),
    facts=(KUBE_PROXY, KUBE_PROXY_CLUSTER_CIDR),
)
def cnm011(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.kpr_full or d.pod_cidrs_v4 is None or not c.f.kube_proxy_present():
        return
    cluster_cidr = c.f.kube_proxy_cluster_cidr()
    if cluster_cidr is None:
        return
    nets = [n for t in cluster_cidr.split(",") if (n := try_parse(t))]
    outside = [t for t in d.pod_cidrs_v4 if (p := try_parse(t)) and not any(within(p, n) for n in nets)]
    if outside:
        yield Hit(
            f"kube-proxy's clusterCIDR is {cluster_cidr} and Cilium's pod CIDRs {', '.join(outside)} lie outside it: "
            "kube-proxy masquerades Service traffic from Cilium's pods (the graceful-migration seed's note), so "
            "backends see node addresses instead of pod IPs",
            subjects=tuple(outside),
        )


@rule(
    "CNM008",
    "k8sServiceHost / k8sServicePort against the cluster's API endpoint",
    severity="warning",
    path="k8sServicePort",
    fix="Use the API server endpoint the cluster's clients use (kubeadm controlPlaneEndpoint)",
    ref=docs("network/kubernetes/kubeproxy-free"),
    facts=(API_ENDPOINT,),
)
def cnm008(c: Ctx) -> Iterator[Hit]:
    host, port = c.d.k8s_service_host, c.d.k8s_service_port
    if not host or host == "auto" or c.v.opaque("k8sServiceHost") or c.v.opaque("k8sServicePort"):
        return
    ep_host, ep_port = c.f.api_endpoint()
    if host.lower() == ep_host.lower() and port and port != str(ep_port):
        yield Hit(
            f"k8sServiceHost={host} with k8sServicePort={port}, but the API server endpoint is {ep_host}:{ep_port}"
        )


@rule(
    "CNM009",
    "helm upgrade --reuse-values: the release's earlier values are not linted",
    severity="info",
    path=None,
    fix="Lint the complete values: helm get values cilium -n kube-system -o yaml > current.yaml, then lint "
    "current.yaml plus the new --set flags",
    ref=docs("installation/k8s-install-helm"),
)
def cnm009(c: Ctx) -> Iterator[Hit]:
    if c.context.reuse_values:
        yield Hit(
            "--reuse-values merges the previous release's values, which lint cannot see; rules that depend on "
            "values the command does not set are listed as not checked"
        )


@rule(
    "CNM010",
    "Cilium version newer than the rule catalog",
    severity="info",
    path=None,
    fix="Check the upgrade notes of the newer minors by hand",
    ref=lambda _m: "https://docs.cilium.io/en/stable/operations/upgrade/",
)
def cnm010(c: Ctx) -> Iterator[Hit]:
    if c.version.beyond_catalog:
        yield Hit(
            f"the rule catalog covers Cilium up to 1.{LAST_MINOR}; {c.version} is linted with the 1.{LAST_MINOR} rules"
        )
