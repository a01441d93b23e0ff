"""Catalog 1.6: egress gateway, BGP, L2 announcements, bandwidth manager, host firewall, BIG TCP, netkit, tcx
(CIL059-CIL068)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from cni_migrate.analysis.lint.factview import KERNELS
from cni_migrate.analysis.lint.model import Severity
from cni_migrate.analysis.lint.rules.base import Ctx, Hit, Unknown, docs, old_kernels, rule, src, upgrade


@rule(
    "CIL059",
    "Egress gateway needs IPv4 BPF masquerading",
    severity="error",
    path="egressGateway.enabled",
    fix="Set kubeProxyReplacement=true, bpf.masquerade=true and keep enableIPv4Masquerade on",
    ref=src("DD"),
)
def cil059(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.egress_gateway and not (d.v4masq and d.bpf_masq):
        yield Hit('egress gateway requires --enable-ipv4-masquerade="true" and --enable-bpf-masquerade="true"')


def _duration(text: str) -> float | None:
    total = 0.0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    for n, u in parts:
        total += float(n) * units[u]
    return total


@rule(
    "CIL060",
    "Egress gateway incompatibilities",
    severity="error",
    path="egressGateway.enabled",
    fix="Use CRD identities, disable CiliumEndpointSlice and the high-scale ipcache, keep an IPv4 underlay",
    ref=src("EGW", since=15),
    facts=(KERNELS,),
)
def cil060(c: Ctx) -> Iterator[Hit]:
    if not c.d.egress_gateway:
        return
    mode = c.v.lower("identityAllocationMode") or "crd"
    if mode != "crd":
        msg = {14: "The egress gateway is not supported in KV store identity allocation mode."}.get(
            c.m,
            "egress gateway is not supported in kvstore identity allocation mode"
            if c.m >= 19
            else "egress gateway is not supported in KV store identity allocation mode",
        )
        yield Hit(msg, path="identityAllocationMode")
    if c.m >= 15 and (c.v.flag("ciliumEndpointSlice.enabled") or c.v.flag("enableCiliumEndpointSlice")):
        yield Hit(
            "egress gateway is not supported in combination with the CiliumEndpointSlice feature",
            path="ciliumEndpointSlice.enabled",
        )
    if 14 <= c.m <= 17 and c.v.flag("highScaleIPcache.enabled"):
        yield Hit("The egress gateway is not supported in high scale IPcache mode.", path="highScaleIPcache.enabled")
    if c.m >= 19 and (c.v.lower("underlayProtocol") or "ipv4") != "ipv4":
        yield Hit("egress gateway requires an IPv4 underlay", path="underlayProtocol")
    if c.m <= 15 and not c.v.flag("remoteNodeIdentity", True):
        yield Hit(
            'egress gateway requires remote node identities (--enable-remote-node-identity="true").',
            path="remoteNodeIdentity",
        )
    if c.m <= 15 and (old := old_kernels(c, (5, 2, 0))):
        yield Hit(f"egress gateway needs kernel 5.2 or newer: {old[0]}", subjects=old[1])


@rule(
    "CIL061",
    "L2 announcements requirements",
    severity="warning",
    versions="1.14+",
    path="l2announcements.enabled",
    fix="Enable kubeProxyReplacement=true; keep leaseDuration > leaseRenewDeadline >= 1.2 x leaseRetryPeriod",
    ref=docs("network/l2-announcements"),
    facts=("Services with externalTrafficPolicy: Local",),
)
def cil061(c: Ctx) -> Iterator[Hit]:
    if not c.v.flag("l2announcements.enabled"):
        return
    if not c.d.kpr_full:
        yield Hit("L2 announcements require kube-proxy replacement (kubeProxyReplacement=true)")
    if c.m <= 17 and not c.d.kpr_full and not c.v.flag("externalIPs.enabled"):
        c.missing("Services using externalIPs", detail="externalIPs need externalIPs.enabled without full KPR")
    lease = {k: c.v.text(f"l2announcements.{k}") for k in ("leaseDuration", "leaseRenewDeadline", "leaseRetryPeriod")}
    dur = {k: _duration(v) if v else None for k, v in lease.items()}
    ld = dur["leaseDuration"] if dur["leaseDuration"] is not None else 15.0
    rd = dur["leaseRenewDeadline"] if dur["leaseRenewDeadline"] is not None else 5.0
    rp = dur["leaseRetryPeriod"] if dur["leaseRetryPeriod"] is not None else 2.0
    if any(lease.values()) and not (ld > rd >= 1.2 * rp and rp > 0):
        yield Hit(
            f"lease timings leaseDuration={ld}s, leaseRenewDeadline={rd}s, leaseRetryPeriod={rp}s violate "
            "leaseDuration > leaseRenewDeadline >= 1.2 x leaseRetryPeriod",
            path="l2announcements.leaseDuration",
        )
    c.missing(
        "Services with externalTrafficPolicy: Local",
        detail="L2 announcements do not support externalTrafficPolicy: Local; Services are not among the facts",
    )


@rule(
    "CIL062",
    "Legacy MetalLB BGP (bgp.*) misconfigured or removed",
    severity="error",
    path="bgp.enabled",
    fix="Migrate to bgpControlPlane.enabled with CiliumBGP* resources (BGPv2 from 1.18)",
    ref=upgrade(17),
    facts=("CiliumBGPPeeringPolicy objects",),
)
def cil062(c: Ctx) -> Iterator[Hit]:
    legacy_set = c.v.has("bgp.enabled") or c.v.has("bgp.announce")
    if c.m >= 17:
        if legacy_set and (c.v.flag("bgp.enabled") or c.v.has("bgp.announce")):
            yield Hit("bgp.* (MetalLB-based BGP) was removed in 1.17 and is ignored: nothing is announced")
    elif c.v.flag("bgp.enabled"):
        lb = c.v.flag("bgp.announce.loadbalancerIP")
        pods = c.v.flag("bgp.announce.podCIDR")
        if not (lb or pods):
            yield Hit("BGP was enabled, but no announcements were enabled. Please enable one or more announcements.")
        if pods and c.d.ipam not in ("cluster-pool", "kubernetes"):
            yield Hit(
                f'BGP announcements for pod CIDRs is not supported with IPAM mode "{c.d.ipam}" (only "cluster-pool" '
                'and "kubernetes" are supported)',
                path="bgp.announce.podCIDR",
            )
    if c.m >= 19 and c.v.flag("bgpControlPlane.enabled"):
        c.missing(
            "CiliumBGPPeeringPolicy objects",
            detail="BGPv1 (CiliumBGPPeeringPolicy) was removed in 1.19; BGP objects are not among the facts",
        )


@rule(
    "CIL063",
    "Bandwidth manager needs kernel 5.1",
    severity="warning",
    versions="1.11-1.17",
    path="bandwidthManager.enabled",
    fix="Run kernel 5.1+",
    ref=src("BW"),
    facts=(KERNELS,),
)
def cil063(c: Ctx) -> Iterator[Hit]:
    enabled = c.v.get("bandwidthManager")
    on = (enabled is True) or c.v.flag("bandwidthManager.enabled")
    if on and (old := old_kernels(c, (5, 1, 0))):
        yield Hit(f"BPF bandwidth manager needs kernel 5.1 or newer. Disabling the feature.: {old[0]}", subjects=old[1])


@rule(
    "CIL064",
    "BBR congestion control needs kernel 5.18 and BPF host routing",
    severity="error",
    versions="1.12+",
    path="bandwidthManager.bbr",
    fix="Kernel 5.18+ and BPF host routing (see CIL051), or bandwidthManager.bbrHostNamespaceOnly",
    ref=src("BW"),
    facts=(KERNELS,),
)
def cil064(c: Ctx) -> Iterator[Hit]:
    bbr = c.v.flag("bandwidthManager.bbr")
    hostns = c.v.flag("bandwidthManager.bbrHostNamespaceOnly")
    if c.m >= 18 and hostns and not bbr:
        yield Hit(
            "cannot enable --enable-bbr-hostns-only without enabling --enable-bbr",
            path="bandwidthManager.bbrHostNamespaceOnly",
        )
    if not bbr:
        return
    if old := old_kernels(c, (5, 18, 0)):
        word = "cannot" if c.m >= 19 else "Cannot"
        yield Hit(f"{word} enable --enable-bbr, needs kernel 5.18 or newer.: {old[0]}", subjects=old[1])
    if c.d.host_routing == "legacy" and not hostns:
        yield Hit(
            "BPF bandwidth manager's BBR setup requires BPF host routing. (legacy host routing because: "
            + "; ".join(c.d.host_routing_reasons)
            + ")"
        )


@rule(
    "CIL065",
    "Host firewall requirements",
    severity="error",
    path="hostFirewall.enabled",
    fix="Keep remote-node identities with endpoint routes; set devices if no native device is detectable",
    ref=src("DM"),
    facts=("native devices of nodes",),
)
def cil065(c: Ctx) -> Iterator[Hit]:
    if not c.v.flag("hostFirewall.enabled"):
        return
    if c.m <= 15 and c.v.flag("endpointRoutes.enabled") and not c.v.flag("remoteNodeIdentity", True):
        yield Hit(
            "The host firewall requires remote-node identities (enable-remote-node-identity) when running with "
            "enable-endpoint-routes"
        )
    if not c.v.strings("devices"):
        c.missing(
            "native devices of nodes",
            detail="without devices the agent must detect an external facing device ('Host firewall's external "
            "facing device could not be determined. Use --devices to specify.'); node devices are not among the facts",
        )


@rule(
    "CIL066",
    "BIG TCP requirements",
    severity="error",
    versions="1.13+",
    path="enableIPv6BIGTCP",
    fix="Native routing, no encryption, BPF host routing (kernel 5.10+, KPR, BPF masquerading), veth/netkit datapath",
    ref=src("BIGTCP", since=13),
    facts=(KERNELS, "NIC drivers (mlx4/mlx5/ice)"),
)
def cil066(c: Ctx) -> Iterator[Hit]:
    v6 = c.v.flag("enableIPv6BIGTCP")
    v4 = c.m >= 14 and c.v.flag("enableIPv4BIGTCP")
    if not (v4 or v6):
        return
    path = "enableIPv6BIGTCP" if v6 else "enableIPv4BIGTCP"
    sev: Severity | None = "warning" if c.m == 13 else None
    if c.d.routing == "tunnel":
        yield Hit("BIG TCP is not supported in tunneling mode", path=path, severity=sev)
    if c.d.enc != "none":
        yield Hit("BIG TCP is not supported with encryption enabled", path=path, severity=sev)
    datapath = c.v.lower("bpf.datapathMode") or c.v.lower("datapathMode") or "veth"
    if datapath == "lb-only":
        yield Hit("BIG TCP is supported only in veth & netkit datapath mode", path=path, severity=sev)
    if c.d.host_routing == "legacy":
        yield Hit(
            "BIG TCP is not supported with legacy host routing (" + "; ".join(c.d.host_routing_reasons) + ")",
            path=path,
            severity=sev,
        )
    if v6 and (old := old_kernels(c, (5, 19, 0))):
        yield Hit(
            f"Cannot enable --enable-ipv6-big-tcp, needs kernel 5.19 or newer: {old[0]}",
            severity="warning",
            path="enableIPv6BIGTCP",
            subjects=old[1],
        )
    if v4 and (old := old_kernels(c, (6, 3, 0))):
        yield Hit(
            f"Cannot enable --enable-ipv4-big-tcp, needs kernel 6.3 or newer: {old[0]}",
            severity="warning",
            path="enableIPv4BIGTCP",
            subjects=old[1],
        )
    c.missing("NIC drivers (mlx4/mlx5/ice)", detail="BIG TCP needs NIC driver support; NICs are not among the facts")


@rule(
    "CIL067",
    "netkit datapath requirements",
    severity="error",
    versions="1.16+",
    path="bpf.datapathMode",
    fix="Kernel 6.8+ with CONFIG_NETKIT, BPF host routing, no bpf.tproxy, on fresh nodes (no veth<->netkit switch)",
    ref=src("DM", since=17),
    facts=(KERNELS, "kernel configuration (CONFIG_NETKIT)"),
)
def cil067(c: Ctx) -> Iterator[Hit]:
    mode = c.v.lower("bpf.datapathMode")
    if not mode:
        return
    if mode not in ("veth", "netkit", "netkit-l2"):
        yield Hit(f"Invalid datapath mode {mode!r} (veth, netkit or netkit-l2)")
        return
    if mode == "veth":
        return
    if c.v.flag("bpf.tproxy"):
        if c.m >= 19:
            yield Hit(
                ".Values.bpf.tproxy cannot be enabled with .Values.bpf.datapathMode=netkit or "
                ".Values.bpf.datapathMode=netkit-l2",
                path="bpf.tproxy",
            )
        else:
            yield Hit("--enable-bpf-tproxy=true cannot be used with --datapath-mode=netkit", path="bpf.tproxy")
    if c.d.host_routing == "legacy":
        yield Hit("netkit needs BPF host routing; legacy host routing because: " + "; ".join(c.d.host_routing_reasons))
    if old := old_kernels(c, (6, 8, 0)):
        yield Hit(f"netkit devices need kernel 6.7.0 or newer and CONFIG_NETKIT (docs: 6.8): {old[0]}", subjects=old[1])
    c.missing("kernel configuration (CONFIG_NETKIT)", detail="kernel build options are not among the facts")
    if c.context.helm_action == "upgrade":
        yield Hit(
            "switching an existing cluster between veth and netkit in place is unsupported: use fresh nodes",
            severity="warning",
        )


@rule(
    "CIL068",
    "tcx attachment and third-party tc programs",
    severity="warning",
    versions="1.16+",
    path="bpf.enableTCX",
    fix="Set bpf.enableTCX=false to keep old-style tc attachment next to third-party tc BPF programs; on 1.18+ with "
    "bpf.enableTCX=false the kernel needs CONFIG_NET_CLS_ACT, CONFIG_NET_SCH_INGRESS and CONFIG_NET_CLS_BPF",
    ref=upgrade(16),
    facts=(KERNELS, "third-party tc BPF programs on nodes", "kernel configuration (tc BPF)"),
)
def cil068(c: Ctx) -> Iterator[Hit]:
    tcx = c.v.flag("bpf.enableTCX", True)
    if tcx:
        kernels = c.f.kernels()
        if any(k.key >= (6, 6, 0) for k in kernels):
            raise Unknown(
                "third-party tc BPF programs on nodes",
                detail="with tcx (kernel 6.6+) Cilium's programs run before old-style tc programs; node tc state is "
                "not among the facts",
            )
    elif c.m >= 18:
        raise Unknown(
            "kernel configuration (tc BPF)",
            detail="1.18+ with bpf.enableTCX=false needs CONFIG_NET_CLS_ACT, CONFIG_NET_SCH_INGRESS and "
            "CONFIG_NET_CLS_BPF",
        )
    return iter(())
