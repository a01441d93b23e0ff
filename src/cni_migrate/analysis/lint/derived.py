"""The catalog's derived variables, computed once from values, version and facts (``--explain`` shows them).

Every rule reads these instead of re-deriving chart defaults: the effective routing mode, tunnel protocol,
port and device, the kube-proxy replacement level and what it turns on (NodePort, socket-LB), masquerading,
load-balancer mode, IPAM, encryption, the pod CIDRs Cilium will allocate from, and whether BPF host routing
will be used. Defaults follow the chart of the target version (catalog "Derived variables used in conditions").
"""

from __future__ import annotations

import re
from typing import Any

from cni_migrate.analysis.lint.factview import FactView, Unknown
from cni_migrate.analysis.lint.values import ValuesView
from cni_migrate.analysis.lint.version import CiliumVersion

DEFAULT_POD_CIDR_V4 = "10.0.0.0/8"
TUNNEL_PORTS = {"vxlan": 8472, "geneve": 6081}
_COMPAT_RE = re.compile(r"^v?(\d+)\.(\d+)")


def parse_compat(text: str) -> tuple[int, int] | None:
    m = _COMPAT_RE.match(text.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def default_kpr(minor: int, compat: tuple[int, int] | None) -> str:
    """The chart's kubeProxyReplacement when unset (CM header: depends on upgradeCompatibility from 1.13)."""
    if minor <= 11:
        return "probe"
    if minor == 12:
        return "disabled"
    if minor == 13:
        return "probe" if compat is not None and compat < (1, 12) else "disabled"
    if compat is None or compat >= (1, 14):
        return "false"
    if compat >= (1, 12):
        return "disabled"
    return "probe"


def kpr_valid_values(minor: int) -> tuple[str, ...]:
    if minor <= 12:
        return ("strict", "partial", "probe", "disabled")
    if minor == 13:
        return ("strict", "partial", "disabled")
    if minor <= 15:
        return ("true", "false", "strict", "partial", "disabled")
    return ("true", "false")


class Derived:
    """The derived variables (a plain class: dataclass generation would cost start-up time)."""

    routing: str = "tunnel"
    tproto: str = "vxlan"
    tunnel_port: int = 8472
    tunnel_device: str | None = None
    tunnel_value_ignored: bool = False
    kpr: str = "false"
    kpr_explicit: bool = False
    kpr_full: bool = False
    node_port: bool = False
    socket_lb: bool = False
    socket_lb_hostns_only: bool = False
    ipv4: bool = True
    ipv6: bool = False
    v4masq: bool = True
    v6masq: bool = False
    bpf_masq: bool = False
    ip_masq_agent: bool = False
    lb_mode: str = "snat"
    dsr: bool = False
    dispatch: str = "opt"
    accel: str = "disabled"
    algorithm: str = "random"
    ipam: str = "cluster-pool"
    enc: str = "none"
    native_cidr_v4: str | None = None
    native_cidr_v6: str | None = None
    auto_direct_node_routes: bool = False
    chaining: str | None = None
    cni_exclusive: bool = True
    egress_gateway: bool = False
    l7_proxy: bool = True
    host_legacy_routing_set: bool = False
    host_routing: str = "unknown"  # bpf, legacy or unknown (depends on a kernel version the input lacks)
    pod_cidrs_v4: list[str] | None = None
    pod_cidrs_source: str = ""
    upgrade_compat: tuple[int, int] | None = None
    k8s_service_host: str | None = None
    k8s_service_port: str | None = None
    # Facts, as far as known (None: unknown).
    lowest_kernel: str | None = None
    kube_proxy_present: bool | None = None
    old_cni: str | None = None

    def __init__(self, minor: int) -> None:
        self.minor = minor
        self.host_routing_reasons: list[str] = []
        self.explain: dict[str, str] = {}

    def as_dict(self) -> dict[str, Any]:
        keys = (
            "routing",
            "tproto",
            "tunnel_port",
            "tunnel_device",
            "kpr",
            "kpr_full",
            "node_port",
            "socket_lb",
            "socket_lb_hostns_only",
            "ipv4",
            "ipv6",
            "v4masq",
            "v6masq",
            "bpf_masq",
            "ip_masq_agent",
            "lb_mode",
            "dsr",
            "dispatch",
            "accel",
            "algorithm",
            "ipam",
            "enc",
            "native_cidr_v4",
            "native_cidr_v6",
            "auto_direct_node_routes",
            "chaining",
            "cni_exclusive",
            "host_routing",
            "pod_cidrs_v4",
            "egress_gateway",
            "l7_proxy",
            "k8s_service_host",
            "k8s_service_port",
            "lowest_kernel",
            "kube_proxy_present",
            "old_cni",
        )
        return {k: getattr(self, k) for k in keys}


def derive(values: ValuesView, version: CiliumVersion, facts: FactView) -> Derived:
    m = version.catalog_minor
    v = values
    d = Derived(minor=m)
    ex = d.explain
    d.upgrade_compat = parse_compat(v.text("upgradeCompatibility")) if v.has("upgradeCompatibility") else None

    # Routing mode and tunnel protocol.
    if m <= 13:
        tunnel = v.lower("tunnel") or "vxlan"
        d.routing = "native" if tunnel == "disabled" else "tunnel"
        d.tproto = tunnel
        ex["routing"] = (
            f"tunnel={tunnel}" + ("" if v.has("tunnel") else " (chart default)") + f": {d.routing} on Cilium 1.{m}"
        )
        if v.has("routingMode"):
            ex["routing"] += "; routingMode is not known to this version and is ignored"
    elif m == 14 and v.has("tunnel"):
        tunnel = v.lower("tunnel")
        d.routing = "native" if tunnel == "disabled" else "tunnel"
        d.tproto = tunnel if tunnel in TUNNEL_PORTS else (v.lower("tunnelProtocol") or "vxlan")
        ex["routing"] = f"deprecated tunnel={tunnel} mapped by the 1.14 chart to routingMode={d.routing}"
    else:
        default = "native" if m >= 15 and v.flag("gke.enabled") else "tunnel"
        d.routing = v.lower("routingMode") or default
        d.tproto = v.lower("tunnelProtocol") or "vxlan"
        ex["routing"] = (
            f"routingMode={d.routing}"
            if v.has("routingMode") and v.text("routingMode")
            else f"routingMode unset: {default} (chart default{', gke.enabled' if default == 'native' else ''})"
        )
        if m >= 15 and v.has("tunnel"):
            d.tunnel_value_ignored = True
            ex["routing"] += f"; tunnel={v.text('tunnel')} is ignored (removed in 1.15)"
    ex["tproto"] = (
        f"tunnelProtocol={d.tproto}"
        if m >= 14 and v.has("tunnelProtocol") and not (m == 14 and v.has("tunnel"))
        else (f"tunnel={d.tproto}" if m <= 14 and v.has("tunnel") else f"{d.tproto} (default)")
    )
    port_value = v.get("tunnelPort")
    try:
        explicit_port = int(port_value) if port_value not in (None, "", 0, "0") else 0
    except (TypeError, ValueError):
        explicit_port = 0
    dsr_geneve_tunnel = False
    d.lb_mode = v.lower("loadBalancer.mode") or "snat"
    d.dispatch = v.lower("loadBalancer.dsrDispatch") or "opt"
    d.dsr = d.lb_mode in ("dsr", "hybrid") or (m >= 17 and v.flag("bpf.lbModeAnnotation"))
    if d.routing == "tunnel":
        d.tunnel_port = explicit_port or TUNNEL_PORTS.get(d.tproto, 8472)
        d.tunnel_device = f"cilium_{d.tproto}" if d.tproto in TUNNEL_PORTS else None
    elif d.dsr and d.dispatch == "geneve" and m >= 14:
        dsr_geneve_tunnel = True
        d.tunnel_port = explicit_port or 6081
        d.tunnel_device = "cilium_geneve"
    else:
        d.tunnel_port = explicit_port or TUNNEL_PORTS.get(d.tproto, 8472)
        d.tunnel_device = None
    ex["tunnel_port"] = (
        f"tunnelPort={explicit_port}" if explicit_port else f"{d.tunnel_port} (default for {d.tproto})"
    ) + ("" if d.tunnel_device else "; no tunnel device (native routing)")
    if dsr_geneve_tunnel:
        ex["tunnel_port"] += "; a Geneve device carries DSR traffic"

    # kube-proxy replacement and what it enables.
    raw = v.get("kubeProxyReplacement")
    d.kpr_explicit = raw is not None
    if raw is None:
        d.kpr = default_kpr(m, d.upgrade_compat)
        ex["kpr"] = f"{d.kpr} (chart default for 1.{m}" + (
            f" with upgradeCompatibility={v.text('upgradeCompatibility')})" if d.upgrade_compat else ")"
        )
    else:
        d.kpr = ("true" if raw else "false") if isinstance(raw, bool) else str(raw).strip().lower()
        ex["kpr"] = f"kubeProxyReplacement={d.kpr}"
    d.kpr_full = d.kpr in ("true", "strict")
    ex["kpr_full"] = "kubeProxyReplacement is true/strict" if d.kpr_full else f"kubeProxyReplacement={d.kpr}"
    envoy_needs_np = (
        m in (14, 15)
        and d.kpr != "disabled"
        and (v.flag("envoyConfig.enabled") or v.flag("ingressController.enabled") or v.flag("gatewayAPI.enabled"))
    )
    d.node_port = d.kpr_full or (m <= 18 and v.flag("nodePort.enabled")) or envoy_needs_np
    ex["node_port"] = (
        "on: full kube-proxy replacement"
        if d.kpr_full
        else "on: nodePort.enabled"
        if m <= 18 and v.flag("nodePort.enabled")
        else "on: enabled for Envoy config / ingress / Gateway API (1.14/1.15)"
        if envoy_needs_np
        else "off"
    )
    d.socket_lb = d.kpr_full or (m >= 13 and v.flag("socketLB.enabled")) or v.flag("hostServices.enabled")
    ex["socket_lb"] = (
        "on: full kube-proxy replacement"
        if d.kpr_full
        else "on: socketLB.enabled / hostServices.enabled"
        if d.socket_lb
        else "off"
    )
    d.socket_lb_hostns_only = v.flag("socketLB.hostNamespaceOnly") or v.flag("hostServices.hostNamespaceOnly")

    # Address families and masquerading.
    d.ipv4 = v.flag("ipv4.enabled", True)
    d.ipv6 = v.flag("ipv6.enabled", False)
    v4_default = not (m >= 18 and v.flag("eni.enabled") and not (d.upgrade_compat and d.upgrade_compat < (1, 18)))
    d.v4masq = d.ipv4 and v.flag("enableIPv4Masquerade", v4_default)
    d.v6masq = d.ipv6 and v.flag("enableIPv6Masquerade", True)
    d.bpf_masq = v.flag("bpf.masquerade", False)
    d.ip_masq_agent = v.flag("ipMasqAgent.enabled")
    ex["v4masq"] = (
        "off: IPv4 disabled"
        if not d.ipv4
        else f"enableIPv4Masquerade={str(d.v4masq).lower()}"
        + ("" if v.has("enableIPv4Masquerade") else " (default" + (", ENI on 1.18+)" if not v4_default else ")"))
    )
    ex["v6masq"] = (
        "off: IPv6 disabled"
        if not d.ipv6
        else f"enableIPv6Masquerade={str(d.v6masq).lower()}" + ("" if v.has("enableIPv6Masquerade") else " (default)")
    )
    ex["bpf_masq"] = f"bpf.masquerade={str(d.bpf_masq).lower()}" + ("" if v.has("bpf.masquerade") else " (default)")

    # Load balancing.
    d.accel = v.lower("loadBalancer.acceleration") or "disabled"
    d.algorithm = v.lower("loadBalancer.algorithm") or "random"
    ex["dsr"] = f"loadBalancer.mode={d.lb_mode}" + (
        ", bpf.lbModeAnnotation" if m >= 17 and v.flag("bpf.lbModeAnnotation") else ""
    )

    # IPAM, encryption, routing details.
    d.ipam = v.lower("ipam.mode") or "cluster-pool"
    d.enc = (v.lower("encryption.type") or "ipsec") if v.flag("encryption.enabled") else "none"
    d.native_cidr_v4 = v.text("ipv4NativeRoutingCIDR") or (v.text("nativeRoutingCIDR") if m == 11 else "") or None
    d.native_cidr_v6 = (v.text("ipv6NativeRoutingCIDR") or None) if m >= 12 else None
    d.auto_direct_node_routes = v.flag("autoDirectNodeRoutes")
    chaining = v.lower("cni.chainingMode")
    d.chaining = None if chaining in ("", "none") else chaining
    d.cni_exclusive = v.flag("cni.exclusive", True)
    d.egress_gateway = v.flag("egressGateway.enabled")
    d.l7_proxy = v.flag("l7Proxy", True)
    d.k8s_service_host = v.text("k8sServiceHost") or None
    d.k8s_service_port = v.text("k8sServicePort") or None

    # Pod CIDRs Cilium allocates from.
    if d.ipam in ("cluster-pool", "cluster-pool-v2beta"):
        old = v.text("ipam.operator.clusterPoolIPv4PodCIDR") if m <= 13 else ""
        listed = v.strings("ipam.operator.clusterPoolIPv4PodCIDRList")
        if old:
            d.pod_cidrs_v4, d.pod_cidrs_source = [old], "ipam.operator.clusterPoolIPv4PodCIDR"
        elif listed:
            d.pod_cidrs_v4, d.pod_cidrs_source = listed, "ipam.operator.clusterPoolIPv4PodCIDRList"
        else:
            d.pod_cidrs_v4, d.pod_cidrs_source = [DEFAULT_POD_CIDR_V4], "chart default (clusterPoolIPv4PodCIDRList)"
    elif d.ipam == "multi-pool":
        pools = v.get("ipam.operator.autoCreateCiliumPodIPPools") or {}
        cidrs = [
            str(c)
            for p in (pools.values() if isinstance(pools, dict) else [])
            if isinstance(p, dict)
            for c in ((p.get("ipv4") or {}).get("cidrs") or [])
        ]
        d.pod_cidrs_v4 = cidrs or None
        d.pod_cidrs_source = (
            "ipam.operator.autoCreateCiliumPodIPPools" if cidrs else "CiliumPodIPPool objects (not in the values)"
        )
    elif d.ipam == "kubernetes":
        d.pod_cidrs_source = "nodes' spec.podCIDRs (cluster facts)"
    else:
        d.pod_cidrs_source = f"allocated by the {d.ipam} IPAM (cloud or external)"
    ex["pod_cidrs_v4"] = d.pod_cidrs_source

    # Facts summarised for --explain (unknown facts stay None).
    try:
        low = facts.lowest_kernel()
        below = [k.node for k in facts.kernels() if k.key == low.key]
        d.lowest_kernel = low.kernel
        ex["lowest_kernel"] = f"{low.kernel} on {', '.join(below)}" + (f" ({low.note})" if low.note else "")
    except Unknown as e:
        ex["lowest_kernel"] = f"unknown ({e.detail or ', '.join(e.missing)})"
    try:
        d.kube_proxy_present = facts.kube_proxy_present()
        ex["kube_proxy_present"] = facts.kube_proxy_source()
    except Unknown as e:
        ex["kube_proxy_present"] = f"unknown ({e.detail or ', '.join(e.missing)})"
    try:
        old_cni = facts.old_cni()
        d.old_cni = old_cni.name if old_cni else "none"
        ex["old_cni"] = (
            f"{old_cni.name} ({old_cni.evidence}) stays installed next to Cilium"
            if old_cni
            else "no other CNI will be installed next to Cilium"
        )
    except Unknown as e:
        ex["old_cni"] = f"unknown ({e.detail or ', '.join(e.missing)})"

    # BPF host routing or the legacy (host stack) path.
    legacy_raw = v.get("bpf.hostLegacyRouting")
    if legacy_raw is None and m <= 12:
        legacy_raw = v.get("bpf.hostRouting")
    d.host_legacy_routing_set = legacy_raw is not None and bool(
        legacy_raw if isinstance(legacy_raw, bool) else str(legacy_raw).lower() == "true"
    )
    reasons: list[str] = []
    if d.host_legacy_routing_set:
        reasons.append("bpf.hostLegacyRouting=true")
    if not d.kpr_full:
        reasons.append("kube-proxy replacement is not enabled (kubeProxyReplacement=true)")
    if (d.v4masq or d.v6masq) and not d.bpf_masq:
        reasons.append("masquerading is done by iptables (bpf.masquerade=false)")
    if d.enc == "ipsec" and m <= 18:
        reasons.append("IPsec encryption")
    if d.chaining and m >= 13:
        reasons.append(f"CNI chaining ({d.chaining}) makes the chart force legacy host routing")
    if m == 11 and (v.flag("endpointRoutes.enabled") or d.enc == "wireguard"):
        reasons.append("endpointRoutes or WireGuard (1.11)")
    kernel_unknown = False
    try:
        slow = facts.nodes_below((5, 10, 0))
        if slow:
            reasons.append(f"kernel below 5.10 on {len(slow)} node(s), lowest {slow[0].kernel} on {slow[0].node}")
    except Unknown:
        kernel_unknown = True
    d.host_routing_reasons = reasons
    d.host_routing = "legacy" if reasons else ("unknown" if kernel_unknown else "bpf")
    ex["host_routing"] = (
        "legacy: " + "; ".join(reasons)
        if reasons
        else "unknown: BPF host routing if every node runs kernel 5.10+ (node kernels unknown)"
        if kernel_unknown
        else "BPF host routing (kernel 5.10+, full kube-proxy replacement, BPF masquerading)"
    )
    for key, text in (
        ("ipam", f"ipam.mode={d.ipam}" + ("" if v.has("ipam.mode") else " (default)")),
        ("enc", "encryption off" if d.enc == "none" else f"encryption.type={d.enc}"),
        ("native_cidr_v4", "ipv4NativeRoutingCIDR" if d.native_cidr_v4 else "not set"),
        ("chaining", f"cni.chainingMode={d.chaining}" if d.chaining else "no chaining"),
    ):
        ex.setdefault(key, text)
    return d


# --- helm upgrade --reuse-values --------------------------------------------------------------------------------

#: For each derived variable: the values that set it and the derived variables it is computed from. With
#: ``--reuse-values`` a value the command leaves unset keeps whatever the release had, which lint cannot see, so a
#: variable is known only when one of its own values is set and every variable it is computed from is known.
#: (Inputs come before the variables computed from them.)
_REUSE_DEPENDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "routing": (("tunnel", "routingMode", "gke.enabled"), ()),
    "tproto": (("tunnel", "tunnelProtocol"), ()),
    "tunnel_port": (("tunnelPort",), ()),
    "tunnel_device": ((), ("routing", "tproto")),
    "kpr": (("kubeProxyReplacement",), ()),
    "kpr_full": ((), ("kpr",)),
    "node_port": (("nodePort.enabled",), ("kpr_full",)),
    "socket_lb": (("socketLB.enabled", "hostServices.enabled"), ("kpr_full",)),
    "socket_lb_hostns_only": (("socketLB.hostNamespaceOnly", "hostServices.hostNamespaceOnly"), ()),
    "ipv4": (("ipv4.enabled",), ()),
    "ipv6": (("ipv6.enabled",), ()),
    "v4masq": (("enableIPv4Masquerade",), ("ipv4",)),
    "v6masq": (("enableIPv6Masquerade",), ("ipv6",)),
    "bpf_masq": (("bpf.masquerade",), ()),
    "ip_masq_agent": (("ipMasqAgent.enabled",), ()),
    "lb_mode": (("loadBalancer.mode",), ()),
    "dsr": (("loadBalancer.mode", "bpf.lbModeAnnotation"), ()),
    "dispatch": (("loadBalancer.dsrDispatch",), ()),
    "accel": (("loadBalancer.acceleration",), ()),
    "algorithm": (("loadBalancer.algorithm",), ()),
    "ipam": (("ipam.mode",), ()),
    "enc": (("encryption.enabled",), ()),
    "native_cidr_v4": (("ipv4NativeRoutingCIDR", "nativeRoutingCIDR"), ()),
    "native_cidr_v6": (("ipv6NativeRoutingCIDR",), ()),
    "auto_direct_node_routes": (("autoDirectNodeRoutes",), ()),
    "chaining": (("cni.chainingMode",), ()),
    "cni_exclusive": (("cni.exclusive",), ()),
    "egress_gateway": (("egressGateway.enabled",), ()),
    "l7_proxy": (("l7Proxy",), ()),
    "k8s_service_host": (("k8sServiceHost",), ()),
    "k8s_service_port": (("k8sServicePort",), ()),
    "pod_cidrs_v4": (
        (
            "ipam.operator.clusterPoolIPv4PodCIDRList",
            "ipam.operator.clusterPoolIPv4PodCIDR",
            "ipam.operator.autoCreateCiliumPodIPPools",
        ),
        ("ipam",),
    ),
    "host_legacy_routing_set": (("bpf.hostLegacyRouting",), ()),
    "host_routing": ((), ("host_legacy_routing_set", "kpr_full", "v4masq", "v6masq", "bpf_masq", "enc", "chaining")),
}
_REUSE_DEPENDS["host_routing_reasons"] = _REUSE_DEPENDS["host_routing"]


def _own_values(name: str, minor: int) -> tuple[str, ...]:
    """The values that decide ``name`` on this minor (``tunnel`` is gone from 1.15, ``routingMode`` new in 1.14)."""
    own = _REUSE_DEPENDS[name][0]
    if name in ("routing", "tproto"):
        if minor <= 13:
            return ("tunnel",)
        if minor >= 15:
            return tuple(p for p in own if p != "tunnel")
    return own


def reuse_unknowns(values: ValuesView, d: Derived) -> dict[str, str]:
    """The derived variables an ``helm upgrade --reuse-values`` command does not determine, with the reason."""
    out: dict[str, str] = {}
    for name, (_own, inputs) in _REUSE_DEPENDS.items():
        own = _own_values(name, d.minor)
        unknown_inputs = [i for i in inputs if i in out]
        if own and not any(values.has(p) for p in own):
            out[name] = f"{' / '.join(own)} not set by the command: --reuse-values keeps the release's earlier value"
        elif unknown_inputs:
            out[name] = f"computed from {', '.join(unknown_inputs)}, which the command does not set (--reuse-values)"
    return out


class ReusedDerived(Derived):
    """The derived variables as a ``--reuse-values`` upgrade sees them: reading one that the command does not
    determine raises :class:`Unknown`, so a rule depending on it is "not checked" rather than judged on a chart
    default the release may not have."""

    reuse_unknown: dict[str, str]

    @classmethod
    def of(cls, d: Derived, unknown: dict[str, str]) -> ReusedDerived:
        out = cls.__new__(cls)
        out.__dict__.update(d.__dict__)
        out.reuse_unknown = unknown
        return out

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and name != "reuse_unknown":
            unknown = object.__getattribute__(self, "reuse_unknown")
            if name in unknown:
                raise Unknown(f"derived {name} (release values under --reuse-values)", detail=unknown[name])
        return object.__getattribute__(self, name)
