"""Catalog 1.8: existing CNI, chaining, Istio (CIL077-CIL079)."""

from __future__ import annotations

from collections.abc import Iterator

from cni_migrate.analysis.lint.factview import ISTIO, OLD_CNI
from cni_migrate.analysis.lint.rules.base import Ctx, Hit, docs, rule

MIGRATION_FIX = (
    "Either remove the old CNI (and its devices and iptables rules) before installing Cilium (an offline "
    "migration: lint with --old-cni-removed), or follow the live-migration procedure (lint with --rolling): a "
    "distinct clusterPoolIPv4PodCIDRList, tunnelPort 8473 or geneve, cni.customConf=true, cni.uninstall=false, "
    "policyEnforcementMode=never, bpf.hostLegacyRouting=true, operator.unmanagedPodWatcher.restart=false"
)


@rule(
    "CIL077",
    "Another CNI is still installed",
    severity="error",
    path="cni.chainingMode",
    fix=MIGRATION_FIX,
    ref=docs("installation/k8s-install-migration"),
    facts=(OLD_CNI,),
)
def cil077(c: Ctx) -> Iterator[Hit]:
    if c.d.chaining or c.context.migration == "rolling":
        return
    old = c.f.old_cni()
    if old is None:
        return
    exclusive = (
        "Cilium renames the other CNI configurations in /etc/cni/net.d to *.cilium_bak (cni.exclusive=true), new "
        "pods get Cilium while existing pods stay on " + old.name
        if c.d.cni_exclusive
        else "both CNI configurations stay in /etc/cni/net.d and the kubelet picks the first by name"
    )
    yield Hit(
        f"{old.name} is still installed ({old.evidence}) and this is neither CNI chaining nor a planned live "
        f"migration: {exclusive}; the tunnel port and pod CIDRs may clash (CIL015, CNM005) and {old.name}'s rules "
        "and devices are left behind"
    )


@rule(
    "CIL078",
    "CNI chaining settings",
    severity="error",
    path="cni.chainingMode",
    fix="Apply the chaining guide: cni.exclusive=false; for aws-cni also routingMode=native, "
    "enableIPv4Masquerade=false, endpointRoutes.enabled=true",
    ref=docs("installation/cni-chaining-aws-cni"),
)
def cil078(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if not d.chaining:
        return
    if d.cni_exclusive:
        yield Hit(
            f"cni.chainingMode={d.chaining} with cni.exclusive=true: Cilium hides the primary CNI's configuration",
            path="cni.exclusive",
        )
    if d.chaining == "aws-cni":
        wrong = []
        if d.routing != "native":
            wrong.append("routingMode=native")
        if d.v4masq:
            wrong.append("enableIPv4Masquerade=false")
        if not c.v.flag("endpointRoutes.enabled"):
            wrong.append("endpointRoutes.enabled=true")
        if wrong:
            yield Hit(f"AWS VPC CNI chaining requires {', '.join(wrong)}")
    if d.enc == "ipsec":
        yield Hit("IPsec is not supported with CNI chaining", severity="warning", path="encryption.type")


@rule(
    "CIL079",
    "Istio needs socket-LB limited to the host namespace",
    severity="error",
    path="socketLB.hostNamespaceOnly",
    fix="Set socketLB.hostNamespaceOnly=true (kernel 5.7+, CIL026) and cni.exclusive=false with Istio CNI",
    ref=docs("network/servicemesh/istio"),
    facts=(ISTIO,),
)
def cil079(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if not d.socket_lb and not d.cni_exclusive:
        return
    present, evidence = c.f.istio()
    if not present:
        return
    if d.socket_lb and not d.socket_lb_hostns_only:
        yield Hit(
            f"Istio is installed ({'; '.join(evidence)}) and socket-LB is on (kubeProxyReplacement={d.kpr}) without "
            "socketLB.hostNamespaceOnly: ClusterIPs are translated at connect(), so pod traffic bypasses the "
            "sidecar / ztunnel redirection (Istio mTLS and telemetry stop working)"
        )
    if d.cni_exclusive and any("istio-cni" in e for e in evidence):
        yield Hit(
            "Istio CNI is installed and cni.exclusive=true: Cilium removes Istio's CNI configuration",
            path="cni.exclusive",
        )
