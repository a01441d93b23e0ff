"""Catalog 1.1: routing mode, tunnel, native-routing CIDR (CIL001-CIL016)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from cni_migrate.analysis.cidrs import try_parse, within
from cni_migrate.analysis.lint.factview import OLD_CNI_VXLAN
from cni_migrate.analysis.lint.rules.base import Ctx, Hit, Unknown, docs, issue, rule, src, upgrade

NATIVE_CIDR_FIX = (
    "Set ipv4NativeRoutingCIDR to a CIDR covering every pod IP (the pod CIDR, or the VPC CIDR), or disable IPv4 "
    "masquerading (enableIPv4Masquerade=false) if pod IPs are routable, or (1.15+) use ipMasqAgent.enabled=true "
    "with bpf.masquerade=true"
)


@rule(
    "CIL001",
    "Native routing with IPv4 masquerading needs ipv4NativeRoutingCIDR",
    severity="error",
    path="ipv4NativeRoutingCIDR",
    fix=NATIVE_CIDR_FIX,
    ref=src("CFG"),
)
def cil001(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if not (d.routing == "native" and d.ipv4 and d.v4masq and not d.native_cidr_v4):
        return
    if d.ipam in ("eni", "alibabacloud") or (c.m >= 15 and d.ip_masq_agent):
        return
    if c.m <= 13:
        msg = (
            "invalid daemon configuration: native routing cidr must be configured with option "
            "--ipv4-native-routing-cidr in combination with --enable-ipv4-masquerade --tunnel=disabled "
            f"--ipam={d.ipam} --enable-ipv4=true"
        )
    elif c.m == 14:
        msg = (
            "invalid daemon configuration: native routing cidr must be configured with option "
            "--ipv4-native-routing-cidr in combination with --enable-ipv4-masquerade --routing-mode=native "
            f"--ipam={d.ipam} --enable-ipv4=true"
        )
    else:
        msg = (
            "invalid daemon configuration: native routing cidr must be configured with option "
            "--ipv4-native-routing-cidr in combination with --enable-ipv4=true --enable-ipv4-masquerade=true "
            f"--enable-ip-masq-agent=false --routing-mode=native --ipam={d.ipam}"
        )
    if c.m >= 18:
        msg = "ipv4NativeRoutingCIDR must be set when routingMode is native (helm fails to render); agent: " + msg
    yield Hit(f"cilium-agent will crash-loop: {msg}")


@rule(
    "CIL002",
    "Native routing with IPv6 masquerading needs ipv6NativeRoutingCIDR",
    severity="error",
    versions="1.12+",
    path="ipv6NativeRoutingCIDR",
    fix="Set ipv6NativeRoutingCIDR, or enableIPv6Masquerade=false (it defaults to true)",
    ref=src("CFG", since=12),
)
def cil002(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if not (d.routing == "native" and d.ipv6 and d.v6masq and not d.native_cidr_v6):
        return
    if c.m >= 15 and d.ip_masq_agent:
        return
    if c.m <= 13:
        flags = "--enable-ipv6-masquerade --tunnel=disabled --enable-ipv6=true"
    elif c.m == 14:
        flags = "--enable-ipv6-masquerade --routing-mode=native --enable-ipv6=true"
    else:
        flags = "--enable-ipv6=true --enable-ipv6-masquerade=true --enable-ip-masq-agent=false --routing-mode=native"
    msg = f"native routing cidr must be configured with option --ipv6-native-routing-cidr in combination with {flags}"
    if c.m >= 18:
        msg = "ipv6NativeRoutingCIDR must be set when routingMode is native (helm fails to render); agent: " + msg
    yield Hit(f"cilium-agent will crash-loop: {msg}")


@rule(
    "CIL003",
    "Native-routing CIDR must parse and match its address family",
    severity="error",
    path="ipv4NativeRoutingCIDR",
    fix="Fix the CIDR literal (e.g. 10.0.0.0/8) and put IPv4 in ipv4NativeRoutingCIDR, IPv6 in ipv6NativeRoutingCIDR",
    ref=src("CFG"),
)
def cil003(c: Ctx) -> Iterator[Hit]:
    for path, family in (("ipv4NativeRoutingCIDR", 4), ("ipv6NativeRoutingCIDR", 6)):
        if family == 6 and c.m < 12:
            continue
        text = c.v.text(path)
        if not text:
            continue
        c.literal(path)
        net = try_parse(text)
        if net is None:
            yield Hit(f"Unable to parse CIDR '{text}' ({path})", path=path)
        elif net.version != family:
            yield Hit(f"ipv{family}-native-routing-cidr must be an IPv{family} CIDR: {path}={text}", path=path)


@rule(
    "CIL004",
    "Native-routing CIDR should contain every pod CIDR",
    severity="warning",
    path="ipv4NativeRoutingCIDR",
    fix="Make ipv4NativeRoutingCIDR a superset of all pod CIDRs (and only of routable ranges)",
    ref=docs("network/concepts/masquerading"),
    facts=("node podCIDRs",),
)
def cil004(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if not d.native_cidr_v4 or c.v.opaque("ipv4NativeRoutingCIDR"):
        return
    native = try_parse(d.native_cidr_v4)
    if native is None or native.version != 4:
        return  # CIL003
    if d.pod_cidrs_v4 is not None:
        pods = [(d.pod_cidrs_source, p) for p in d.pod_cidrs_v4]
    elif d.ipam == "kubernetes":
        pods = [(f"node {n}", p) for n, cidrs in c.f.node_pod_cidrs() for p in cidrs]
    else:
        return
    outside = []
    for where, text in pods:
        net = try_parse(text)
        if net is not None and net.version == 4 and not within(net, native):
            outside.append(f"{text} ({where})")
    if outside:
        yield Hit(
            f"pod CIDRs outside ipv4NativeRoutingCIDR {d.native_cidr_v4}: {', '.join(outside[:5])}; traffic to "
            "them is masqueraded, so pod-to-pod traffic across nodes gets SNATed (breaks policy and observability)",
            subjects=tuple(outside),
        )


@rule(
    "CIL005",
    "autoDirectNodeRoutes cannot be used with tunnel routing",
    severity="error",
    path="autoDirectNodeRoutes",
    fix="Use routingMode=native (tunnel=disabled before 1.14), or drop autoDirectNodeRoutes",
    ref=src("DM"),
)
def cil005(c: Ctx) -> Iterator[Hit]:
    if c.d.auto_direct_node_routes and c.d.routing == "tunnel":
        extra = " (the removed `tunnel` value is ignored, so routing is tunnel)" if c.d.tunnel_value_ignored else ""
        yield Hit(
            "auto-direct-node-routes cannot be used with tunneling. Packets must be routed through the tunnel "
            f"device.{extra}"
        )


@rule(
    "CIL006",
    "autoDirectNodeRoutes without a native-routing CIDR",
    severity="warning",
    versions="1.11-1.16",
    path="ipv4NativeRoutingCIDR",
    fix="Set ipv4NativeRoutingCIDR (and ipv6NativeRoutingCIDR with IPv6); see CIL001",
    ref=src("CFG"),
)
def cil006(c: Ctx) -> Iterator[Hit]:
    # The catalog dates this warning from 1.12 (branch points); the kube-proxy-free seed shows 1.11.7 logging it
    # (a backport), so 1.11 is included.
    d = c.d
    if not d.auto_direct_node_routes:
        return
    for fam, enabled, cidr in (("ipv4", d.ipv4, d.native_cidr_v4), ("ipv6", d.ipv6, d.native_cidr_v6)):
        if enabled and not cidr and (fam == "ipv4" or c.m >= 12):
            yield Hit(
                f"If auto-direct-node-routes is enabled, then you are recommended to also configure "
                f"{fam}-native-routing-cidr. If {fam}-native-routing-cidr is not configured, this may lead to pod to "
                "pod traffic being masqueraded, which can cause problems with performance, observability and policy",
                path=f"{fam}NativeRoutingCIDR",
            )


@rule(
    "CIL007",
    "autoDirectNodeRoutes needs every node on one L2 segment",
    severity="error",
    path="autoDirectNodeRoutes",
    fix="Use tunnel routing, or BGP (bgpControlPlane / kube-router) or cloud routes; 1.16+: "
    "directRoutingSkipUnreachable=true together with BGP",
    ref=src("NODE"),
    facts=("nodes share one L2 network",),
)
def cil007(c: Ctx) -> Iterator[Hit]:
    if c.d.auto_direct_node_routes and c.d.routing == "native":
        raise Unknown(
            "nodes share one L2 network",
            detail="node routes and subnets are not among the collected facts; routes via a gateway fail with "
            "'route to destination <ip> contains gateway <gw>, must be directly reachable'",
        )
    return iter(())


@rule(
    "CIL008",
    "directRoutingSkipUnreachable needs autoDirectNodeRoutes",
    severity="error",
    versions="1.16+",
    path="directRoutingSkipUnreachable",
    fix="Enable autoDirectNodeRoutes or drop directRoutingSkipUnreachable",
    ref=src("CFG", since=16),
)
def cil008(c: Ctx) -> Iterator[Hit]:
    if c.v.flag("directRoutingSkipUnreachable") and not c.d.auto_direct_node_routes:
        yield Hit(
            "Flag direct-routing-skip-unreachable cannot be enabled when auto-direct-node-routes is not enabled. "
            "As if auto-direct-node-routes is then enabled, it may lead to unexpected behaviour causing network "
            "connectivity issues."
        )


@rule(
    "CIL009",
    "Native routing needs the underlay (or a BGP speaker) to route pod CIDRs",
    severity="warning",
    path="routingMode",
    fix="Enable autoDirectNodeRoutes (nodes on one L2 network), bgpControlPlane, a BGP speaker or cloud routes, "
    "or use tunnel routing",
    ref=docs("network/concepts/routing"),
    facts=("underlay routes pod CIDRs",),
)
def cil009(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.routing != "native" or d.auto_direct_node_routes or c.v.flag("bgpControlPlane.enabled"):
        return iter(())
    if d.ipam in ("eni", "azure", "alibabacloud") or c.v.flag("gke.enabled"):
        return iter(())
    if c.f.has_facts and c.f.kube_router_advertises_pod_cidrs():
        return iter(())
    raise Unknown(
        "underlay routes pod CIDRs",
        detail="whether the network (BGP speaker, static or cloud routes) routes pod CIDRs is not among the facts",
    )


@rule(
    "CIL010",
    "routingMode must be tunnel or native",
    severity="error",
    versions="1.14+",
    path="routingMode",
    fix="Use routingMode=tunnel or routingMode=native",
    ref=src("CFG", since=14),
)
def cil010(c: Ctx) -> Iterator[Hit]:
    raw = c.v.lower("routingMode")
    if raw and raw not in ("tunnel", "native") and not (c.m == 14 and c.v.has("tunnel")):
        yield Hit(f'invalid routing mode "{raw}", valid modes = {{"tunnel", "native"}}')


@rule(
    "CIL011",
    "Tunnel protocol, underlay family and source port range must be valid",
    severity="error",
    path="tunnelProtocol",
    fix="tunnelProtocol: vxlan or geneve (tunnel: vxlan, geneve or disabled before 1.14); underlayProtocol: ipv4 or "
    "ipv6; tunnelSourcePortRange: MIN-MAX",
    ref=src("CFG"),
)
def cil011(c: Ctx) -> Iterator[Hit]:
    if c.m <= 13:
        t = c.v.lower("tunnel")
        if c.v.has("tunnel") and t not in ("vxlan", "geneve", "disabled"):
            yield Hit(f"invalid tunnel mode '{t}', valid modes = {{vxlan, geneve, disabled}}", path="tunnel")
    else:
        p = c.v.lower("tunnelProtocol")
        if p and p not in ("vxlan", "geneve"):
            yield Hit(f'invalid tunnel protocol "{p}"')
    if c.m >= 18:
        u = c.v.lower("underlayProtocol")
        if u and u not in ("ipv4", "ipv6"):
            yield Hit(f'invalid IP family for underlay "{u}"', path="underlayProtocol")
        r = c.v.text("tunnelSourcePortRange")
        if r:
            m = re.fullmatch(r"(\d+)-(\d+)", r)
            if not m or int(m.group(1)) > int(m.group(2)) or int(m.group(2)) > 65535:
                yield Hit(f'invalid tunnel source port range "{r}"', path="tunnelSourcePortRange")


def _tunnel_mapping(c: Ctx) -> str:
    t = c.v.lower("tunnel")
    if t == "disabled":
        return "tunnel: disabled -> routingMode: native"
    return f"tunnel: {t} -> routingMode: tunnel, tunnelProtocol: {t}"


@rule(
    "CIL012",
    "The tunnel value was deprecated in 1.14 and removed in 1.15",
    severity="error",
    versions="1.14+",
    path="tunnel",
    fix="tunnel: disabled -> routingMode: native; tunnel: vxlan/geneve -> routingMode: tunnel + tunnelProtocol",
    ref=upgrade(15, "helm-options"),
)
def cil012(c: Ctx) -> Iterator[Hit]:
    if not c.v.has("tunnel"):
        return
    if c.m == 14:
        yield Hit(
            "tunnel is deprecated in 1.14 (the chart still maps it to routingMode/tunnelProtocol) and is removed in "
            "1.15",
            severity="warning",
            fix=_tunnel_mapping(c),
        )
        return
    yield Hit(
        "tunnel was deprecated in v1.14 and has been removed in v1.15. For details please refer to "
        "https://docs.cilium.io/en/v1.15/operations/upgrade/#helm-options (charts 1.15.0 and 1.16.0 ignore it "
        f"silently: routing falls back to {c.d.routing}"
        + (f" with {c.d.tproto}" if c.d.routing == "tunnel" else "")
        + ")",
        fix=_tunnel_mapping(c),
    )


@rule(
    "CIL013",
    "The tunnel agent option conflicts with routing-mode (1.14)",
    severity="error",
    versions="1.14",
    path="extraConfig.tunnel",
    fix="Use only routingMode / tunnelProtocol; remove tunnel from extraConfig",
    ref=src("CFG", since=14),
)
def cil013(c: Ctx) -> Iterator[Hit]:
    if c.v.has("extraConfig.tunnel") and c.d.routing != "tunnel":
        yield Hit("Option --routing-mode cannot be used in combination with --tunnel")


@rule(
    "CIL014",
    "routingMode conflicts with gke.enabled or aksbyocni.enabled",
    severity="error",
    versions="1.16+",
    path="routingMode",
    fix="Drop routingMode or set native (GKE) / tunnel (AKS BYO CNI)",
    ref=src("CM", since=16),
)
def cil014(c: Ctx) -> Iterator[Hit]:
    raw = c.v.lower("routingMode")
    if c.v.flag("gke.enabled") and raw and raw != "native":
        yield Hit("RoutingMode must be set to native when gke.enabled=true")
    if c.v.flag("aksbyocni.enabled") and raw and raw != "tunnel":
        yield Hit("RoutingMode must be set to tunnel when aksbyocni.enabled=true")


@rule(
    "CIL015",
    "Tunnel port clashes with the VXLAN device of the CNI still installed",
    severity="error",
    path="tunnelPort",
    fix="Remove the old CNI and its VXLAN device first, or for a live migration use a distinct port "
    "(tunnelPort: 8473) or tunnelProtocol: geneve (6081), plus a distinct pod CIDR",
    ref=issue(8990),
    facts=("installed CNI", OLD_CNI_VXLAN),
)
def cil015(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.tunnel_device is None:
        return
    old = c.f.old_cni()
    if old is None:
        return
    if old.vxlan_unknown:
        raise Unknown(OLD_CNI_VXLAN, detail=old.vxlan_unknown)
    if old.vxlan_port is not None and old.vxlan_port == d.tunnel_port:
        yield Hit(
            f"Cilium's {d.tunnel_device} device would use UDP port {d.tunnel_port}, which {old.name}'s VXLAN device "
            f"{old.vxlan_device} ({old.evidence}) already uses on every node: the agent fails with "
            "'RTNETLINK answers: Address already in use' ('Error while creating daemon') and crash-loops, and "
            f"{old.name} fails the same way afterwards",
            path="tunnelPort" if c.v.has("tunnelPort") else ("tunnelProtocol" if c.m >= 14 else "tunnel"),
            subjects=(f"{old.name}:{old.vxlan_port}",),
        )


@rule(
    "CIL016",
    "Node firewalls must let tunnel, health and WireGuard traffic through",
    severity="warning",
    fix="Open UDP 8472 (VXLAN) / 6081 (Geneve) / tunnelPort, TCP 4240 (health) and UDP 51871 (WireGuard) between "
    "all nodes",
    ref=docs("operations/system_requirements"),
    facts=("node firewall rules",),
)
def cil016(c: Ctx) -> Iterator[Hit]:
    ports = ["TCP 4240 (health)"] if c.v.flag("healthChecking", True) else []
    if c.d.tunnel_device:
        ports.append(f"UDP {c.d.tunnel_port} ({c.d.tproto if c.d.routing == 'tunnel' else 'geneve'})")
    if c.d.enc == "wireguard":
        ports.append("UDP 51871 (WireGuard)")
    if ports:
        raise Unknown(
            "node firewall rules", detail=f"whether {', '.join(ports)} are open between nodes is not among the facts"
        )
    return iter(())


@rule(
    "CIL097",
    "Native routing with the BGP control plane needs routes between the nodes",
    severity="warning",
    path="autoDirectNodeRoutes",
    fix="Set autoDirectNodeRoutes=true when all nodes share one L2 segment; otherwise make the BGP routers accept "
    "and re-advertise every node's pod CIDR (they carry all pod traffic between nodes)",
    ref=docs("network/bgp-control-plane/bgp-control-plane"),
)
def cil097(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.routing != "native" or d.auto_direct_node_routes or not c.v.flag("bgpControlPlane.enabled"):
        return
    yield Hit(
        "Cilium's BGP control plane advertises pod CIDRs to its peers but programs no routes between the nodes "
        "(Calico's BIRD did): without autoDirectNodeRoutes, pod traffic between nodes depends on the routers "
        "sending it back"
    )
