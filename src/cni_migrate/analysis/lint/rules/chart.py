"""Catalog 1.9: Helm-chart-level validation, removed values, kernel floor and remaining feature checks
(CIL080-CIL096)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from cni_migrate.analysis.lint.factview import KERNELS
from cni_migrate.analysis.lint.rules.base import Ctx, Hit, Unknown, docs, old_kernels, rule, src, upgrade


@rule(
    "CIL080",
    "Ingress / Gateway API / EnvoyConfig requirements",
    severity="error",
    versions="1.13+",
    path="kubeProxyReplacement",
    fix="Set kubeProxyReplacement explicitly, keep l7Proxy=true, use externalTrafficPolicy Cluster or Local, and "
    "install the Gateway API CRDs before enabling gatewayAPI",
    ref=src("VAL"),
    facts=("Gateway API CRDs",),
)
def cil080(c: Ctx) -> Iterator[Hit]:
    ingress = c.v.flag("ingressController.enabled")
    gateway = c.v.flag("gatewayAPI.enabled")
    envoy = c.v.flag("envoyConfig.enabled")
    l7lb = c.m >= 15 and c.v.lower("loadBalancer.l7.backend") == "envoy"
    if not (ingress or gateway or envoy or l7lb):
        return
    d = c.d
    if c.m == 13 and (ingress or gateway) and d.kpr not in ("partial", "strict"):
        yield Hit(
            "Ingress/Gateway API controller requires .Values.kubeProxyReplacement to be set to either "
            "'partial' or 'strict'"
        )
    if c.m >= 14 and (ingress or gateway or envoy):
        compat_default = not d.kpr_explicit and d.upgrade_compat is not None and d.upgrade_compat < (1, 14)
        if d.kpr == "disabled" or compat_default:
            yield Hit(
                "Ingress/Gateway API controller and EnvoyConfig require .Values.kubeProxyReplacement to be "
                "explicitly set to 'false' or 'true'"
            )
    if c.m >= 14 and not d.l7_proxy:
        who = (
            "Ingress or Gateway API controller"
            if c.m == 14
            else ("Ingress/Gateway API controller, EnvoyConfig or Envoy L7 Load Balancer")
        )
        yield Hit(f"{who} requires .Values.l7Proxy to be set to 'true'", path="l7Proxy")
    if c.m >= 16:
        stype = c.v.text("ingressController.service.type") or "LoadBalancer"
        etp = c.v.text("ingressController.service.externalTrafficPolicy")
        if ingress and stype in ("LoadBalancer", "NodePort") and etp and etp not in ("Cluster", "Local"):
            yield Hit(
                "Cilium Ingress services of type 'LoadBalancer' or 'NodePort' need an externalTrafficPolicy set "
                "to 'Cluster' or 'Local'.",
                path="ingressController.service.externalTrafficPolicy",
            )
        getp = c.v.text("gatewayAPI.externalTrafficPolicy")
        if gateway and getp and getp not in ("Cluster", "Local"):
            yield Hit(
                "Cilium GatewayAPI needs an externalTrafficPolicy set to 'Cluster' or 'Local'.",
                path="gatewayAPI.externalTrafficPolicy",
            )
    if gateway:
        if c.m == 17 and not d.node_port:
            yield Hit(
                "Gateway API support requires either kube-proxy-replacement or enable-node-port enabled",
                severity="warning",
                path="gatewayAPI.enabled",
            )
        c.missing(
            "Gateway API CRDs",
            detail="the operator fails with 'Required GatewayAPI resources are not found' without them; CRDs are "
            "not among the facts",
        )


@rule(
    "CIL081",
    "Hubble Relay / UI / cert-manager dependencies",
    severity="error",
    path="hubble.relay.enabled",
    fix="Enable hubble.enabled for Relay, hubble.relay.enabled for the UI, and set certManagerIssuerRef with "
    "cert-manager TLS",
    ref=src("VAL"),
)
def cil081(c: Ctx) -> Iterator[Hit]:
    hubble = c.v.flag("hubble.enabled", True)
    relay = c.v.flag("hubble.relay.enabled")
    if relay and not hubble:
        yield Hit("Hubble Relay requires .Values.hubble.enabled=true")
    if c.v.flag("hubble.ui.enabled") and not c.v.flag("hubble.ui.standalone.enabled") and not relay:
        yield Hit("Hubble UI requires .Values.hubble.relay.enabled=true", path="hubble.ui.enabled")
    tls_auto = c.v.flag("hubble.tls.auto.enabled", True)
    if (
        tls_auto
        and c.v.lower("hubble.tls.auto.method") == "certmanager"
        and not c.v.get("hubble.tls.auto.certManagerIssuerRef")
    ):
        yield Hit(
            "Hubble TLS certgen method=certmanager requires user specify .Values.hubble.tls.auto.certManagerIssuerRef",
            path="hubble.tls.auto.certManagerIssuerRef",
        )


_NAME_RE = re.compile(r"^([a-z0-9][-a-z0-9]*)?[a-z0-9]$")


@rule(
    "CIL082",
    "cluster.name / cluster.id / maxConnectedClusters validity",
    severity="error",
    path="cluster.name",
    fix="Use a DNS-label cluster.name of at most 32 characters, a unique cluster.id in 0..255 (0..511 with "
    "maxConnectedClusters=511), and not the name 'default' with a non-zero id",
    ref=src("VAL"),
)
def cil082(c: Ctx) -> Iterator[Hit]:
    name = c.v.text("cluster.name", "default") if c.v.has("cluster.name") else "default"
    if c.v.has("cluster.name") and not name:
        yield Hit("The cluster name is invalid: cannot be empty")
    elif c.m >= 16 and not c.v.opaque("cluster.name"):
        lenient = c.m == 16 and c.d.upgrade_compat is not None and c.d.upgrade_compat <= (1, 15)
        if len(name) > 32 and not lenient:
            yield Hit("The cluster name is invalid: must not be more than 32 characters")
        if not _NAME_RE.match(name) and not lenient:
            yield Hit(f"The cluster name is invalid: {name!r} must match ^([a-z0-9][-a-z0-9]*)?[a-z0-9]$")
    raw_id = c.v.get("cluster.id")
    try:
        cid = int(raw_id) if raw_id is not None else 0
    except (TypeError, ValueError):
        yield Hit(f"invalid cluster id {raw_id}: must be a number", path="cluster.id")
        return
    if name == "default" and cid != 0:
        yield Hit(
            "The cluster name is invalid: cannot use default value with cluster.id != 0"
            if c.m >= 15
            else "cannot use default cluster name (default) with option cluster-id",
            path="cluster.id",
        )
    max_cc = c.v.get("clustermesh.maxConnectedClusters")
    limit = 511 if str(max_cc) == "511" else 255
    if not 0 <= cid <= limit:
        yield Hit(f"invalid cluster id {cid}: must be in range 0..{limit}", path="cluster.id")
    if c.m >= 15 and max_cc is not None and str(max_cc) not in ("255", "511"):
        yield Hit("max-connected-clusters must be set to 255 or 511", path="clustermesh.maxConnectedClusters")


@rule(
    "CIL083",
    "CiliumEndpointSlice settings",
    severity="error",
    versions="1.14+",
    path="ciliumEndpointSlice.enabled",
    fix="Use ciliumEndpointSlice.enabled (1.16+) with disableEndpointCRD=false; drop enableCiliumEndpointSlice and "
    "ciliumEndpointSlice.sliceMode on 1.18+",
    ref=src("VAL"),
)
def cil083(c: Ctx) -> Iterator[Hit]:
    ces = c.v.flag("ciliumEndpointSlice.enabled") or c.v.flag("enableCiliumEndpointSlice")
    if ces and c.v.flag("disableEndpointCRD"):
        yield Hit(
            "if Cilium Endpoint Slice is enabled (.Values.ciliumEndpointSlice.enabled=true), it requires "
            ".Values.disableEndpointCRD=false",
            path="disableEndpointCRD",
        )
    if c.m >= 18 and c.v.has("enableCiliumEndpointSlice"):
        yield Hit(
            "enableCiliumEndpointSlice was deprecated in v1.16 and has been removed in v1.18. Use "
            "ciliumEndpointSlice.enabled instead.",
            path="enableCiliumEndpointSlice",
        )
    if c.m >= 18 and c.v.has("ciliumEndpointSlice.sliceMode"):
        yield Hit(
            "ciliumEndpointSlice.sliceMode was removed in v1.18 (only fcfs remains)",
            path="ciliumEndpointSlice.sliceMode",
        )


@rule(
    "CIL084",
    "The L7 proxy needs iptables rules",
    severity="error",
    path="installIptablesRules",
    fix="Keep installIptablesRules=true (or disable l7Proxy); load xt_socket / TPROXY modules for L7 and FQDN policy",
    ref=src("DM"),
)
def cil084(c: Ctx) -> Iterator[Hit]:
    if c.d.l7_proxy and not c.v.flag("installIptablesRules", True):
        yield Hit('L7 proxy requires iptables rules (--install-iptables-rules="true")')


@rule(
    "CIL085",
    "identityAllocationMode validity",
    severity="error",
    path="identityAllocationMode",
    fix="Use identityAllocationMode=crd (default); kvstore needs etcd settings",
    ref=src("CFG"),
)
def cil085(c: Ctx) -> Iterator[Hit]:
    mode = c.v.lower("identityAllocationMode") or "crd"
    valid = ["crd", "kvstore"] + (["doublewrite-readkvstore", "doublewrite-readcrd"] if c.m >= 17 else [])
    if mode not in valid:
        tail = "kvstore or crd" if c.m < 17 else "kvstore, crd or doublewrite-readkvstore / doublewrite-readcrd"
        yield Hit(f'Invalid identity allocation mode "{mode}". It must be one of {tail}')
    elif mode != "crd" and not (c.v.flag("etcd.enabled") or c.v.strings("etcd.endpoints")):
        yield Hit(
            f"identityAllocationMode={mode} needs an etcd kvstore (etcd.enabled / etcd.endpoints)",
            path="etcd.endpoints",
        )


@rule(
    "CIL086",
    "Service features only kubeProxyReplacement=true enables (1.18 deprecations, 1.19 removals)",
    severity="warning",
    versions="1.18+",
    path="kubeProxyReplacement",
    fix="Switch to kubeProxyReplacement=true",
    ref=upgrade(),
)
def cil086(c: Ctx) -> Iterator[Hit]:
    if c.d.kpr_full:
        return
    if c.m == 18:
        for path in ("hostPort.enabled", "externalIPs.enabled"):
            if c.v.flag(path):
                yield Hit(
                    f"{path} is not rendered by the 1.18 chart: the feature is only enabled by "
                    "kube-proxy-replacement (The flag will be removed in v1.19.)",
                    path=path,
                )
    else:
        for path in (
            "nodePort.enabled",
            "sessionAffinity",
            "svcSourceRangeCheck",
            "enableInternalTrafficPolicy",
            "extraConfig.enable-node-port",
            "extraConfig.enable-host-port",
            "extraConfig.enable-external-ips",
        ):
            if c.v.has(path):
                yield Hit(
                    f"{path} was removed in 1.19: these features are only enabled by --kube-proxy-replacement=true",
                    path=path,
                )


# (path, deprecated in minor or None, removed in minor or None, replacement)
RENAMED: tuple[tuple[str, int | None, int | None, str], ...] = (
    ("nativeRoutingCIDR", 11, 12, "ipv4NativeRoutingCIDR"),
    ("prefilter", 11, 12, "loadBalancer.acceleration (bpf-lb-acceleration) and enableXDPPrefilter"),
    ("bpf.hostRouting", 12, 13, "bpf.hostLegacyRouting"),
    ("hostServices.protocols", 12, 13, "(none: always TCP and UDP)"),
    ("hostServices.enabled", 13, None, "socketLB.enabled"),
    ("hostServices.hostNamespaceOnly", 13, None, "socketLB.hostNamespaceOnly"),
    ("clustermesh.apiserver.tls.ca", 14, 15, "tls.ca.cert / tls.ca.key"),
    ("enableK8sEventHandover", 14, 15, "(none)"),
    ("enableCnpStatusUpdates", 14, 15, "(none)"),
    ("containerRuntime.integration", 14, 16, "bpf.autoMount.enabled"),
    ("encryption.keyFile", 14, 16, "encryption.ipsec.keyFile"),
    ("encryption.mountPath", 14, 16, "encryption.ipsec.mountPath"),
    ("encryption.secretName", 14, 16, "encryption.ipsec.secretName"),
    ("encryption.interface", 14, 16, "encryption.ipsec.interface"),
    ("proxy.prometheus", 14, 16, "envoy.prometheus"),
    ("egressGateway.installRoutes", 15, 16, "(none)"),
    ("remoteNodeIdentity", 15, 16, "(none: always on)"),
    ("endpointStatus", None, 16, "(none)"),
    ("etcd.managed", None, 16, "(none)"),
    ("proxy.sidecarImageRegex", None, 16, "(none)"),
    ("enableCiliumEndpointSlice", 16, None, "ciliumEndpointSlice.enabled"),  # removal: CIL083
    ("enableRuntimeDeviceDetection", 16, 18, "(none: always on; see nodePort.addresses)"),
    ("encryption.wireguard.userspaceFallback", 16, 17, "(none: kernel WireGuard required)"),
    ("highScaleIPcache", 17, None, "(none)"),  # removal: CIL091
    ("externalWorkloads.enabled", None, 18, "(none)"),
    ("sessionAffinity", 18, None, "kubeProxyReplacement=true"),  # removal: CIL086
    ("svcSourceRangeCheck", 18, None, "kubeProxyReplacement=true"),
    ("enableInternalTrafficPolicy", 18, None, "kubeProxyReplacement=true"),
    ("l2podAnnouncements.interface", None, 19, "l2podAnnouncements.interfacePattern"),  # 1.19.5: REMOVED_IN_PATCH
    ("localRedirectPolicy", 18, None, "localRedirectPolicies.enabled"),
    ("encryption.strictMode.cidr", 19, None, "encryption.strictMode.egress.cidr"),
    (
        "encryption.strictMode.allowRemoteNodeIdentities",
        19,
        None,
        "encryption.strictMode.egress.allowRemoteNodeIdentities",
    ),
)

#: Values whose removal came in a patch release of the minor listed in RENAMED, and what the chart does with them
#: from then on. l2podAnnouncements.interface: the 1.19.0-1.19.4 charts still ship and use it; 1.19.5 replaced it by
#: interfacePattern and ignores it (it does not fail the chart).
REMOVED_IN_PATCH: dict[str, int] = {"l2podAnnouncements.interface": 5}


def _removed_in_patch(c: Ctx, path: str, removed: int, replacement: str) -> Hit | None:
    patch = REMOVED_IN_PATCH[path]
    first = f"1.{removed}.{patch}"
    if c.version.minor == removed and c.patch is not None and c.patch < patch:
        return None  # still part of this chart
    if c.version.minor == removed and c.patch is None:
        message = f"{path} is ignored from v{first} on (the chart no longer reads it); use {replacement}"
    else:
        message = f"{path} was replaced in v{first} and is ignored (the chart no longer reads it); use {replacement}"
    return Hit(message, path=path, severity="warning", fix=f"Replace {path} with {replacement}")


@rule(
    "CIL087",
    "Values removed (or deprecated) in the target version",
    severity="error",
    path=None,
    fix="Rename per the upgrade notes (catalog section 3)",
    ref=upgrade(anchor="helm-options"),
)
def cil087(c: Ctx) -> Iterator[Hit]:
    for path, deprecated, removed, replacement in RENAMED:
        if not c.v.has(path):
            continue
        if path == "encryption.strictMode.cidr" and c.v.has("encryption.strictMode.egress.cidr"):
            continue
        if path in REMOVED_IN_PATCH and removed is not None and c.m >= removed:
            hit = _removed_in_patch(c, path, removed, replacement)
            if hit is not None:
                yield hit
            continue
        if removed is not None and c.m >= removed:
            since = f"deprecated in v1.{deprecated} and " if deprecated else ""
            yield Hit(
                f"{path} was {since}has been removed in v1.{removed}"
                + (" (the chart fails on it)" if c.m >= 17 else " (the chart ignores it silently)")
                + f"; use {replacement}",
                path=path,
                severity="error" if c.m >= 15 else "warning",
                fix=f"Replace {path} with {replacement}",
            )
        elif deprecated is not None and c.m >= deprecated:
            gone = f", removed in v1.{removed}" if removed else ""
            yield Hit(
                f"{path} is deprecated since v1.{deprecated}{gone}; use {replacement}",
                path=path,
                severity="info",
                fix=f"Replace {path} with {replacement}",
            )
    bw = c.v.get("bandwidthManager")
    if isinstance(bw, bool | str) and not isinstance(bw, dict):
        if c.m >= 13:
            yield Hit(
                "bandwidthManager: true|false was removed in v1.13; use bandwidthManager.enabled",
                path="bandwidthManager",
                severity="error" if c.m >= 15 else "warning",
            )
        elif c.m == 12:
            yield Hit(
                "bandwidthManager: true|false is deprecated since v1.12; use bandwidthManager.enabled",
                path="bandwidthManager",
                severity="info",
            )


# (first minor, docs minimum, hard minimum, hard-failure message)
_FLOORS = (
    (11, (4, 9, 17), (4, 8, 0), "kernel version: NOT OK: minimal supported kernel version is 4.8.0"),
    (14, (4, 19, 57), (4, 8, 0), "kernel version: NOT OK: minimal supported kernel version is 4.8.0"),
    (16, (5, 4, 0), (5, 2, 0), "Require support for large programs (Linux 5.2.0 or newer)"),
    (18, (5, 10, 0), (5, 10, 0), "Require support for bpf_redirect_neigh() (Linux 5.10.0 or newer)"),
)


@rule(
    "CIL088",
    "Node kernels below the minimum of the Cilium version",
    severity="error",
    path=None,
    fix="Upgrade the node kernels, or stay on an older Cilium minor",
    ref=docs("operations/system_requirements"),
    facts=(KERNELS,),
)
def cil088(c: Ctx) -> Iterator[Hit]:
    _, docs_min, hard_min, msg = next(f for f in reversed(_FLOORS) if c.m >= f[0])
    if hard := old_kernels(c, hard_min):
        yield Hit(f"Cilium 1.{c.m} fails to start: {msg}: {hard[0]}", subjects=hard[1])
    elif soft := old_kernels(c, docs_min):
        want = ".".join(str(x) for x in docs_min if x or docs_min.index(x) < 2)
        yield Hit(
            f"below the documented minimum kernel {want} for Cilium 1.{c.m}: {soft[0]}",
            severity="warning",
            subjects=soft[1],
        )


@rule(
    "CIL089",
    "Kernel build options Cilium needs",
    severity="error",
    path=None,
    fix="Use a distribution kernel with CONFIG_BPF_SYSCALL, CONFIG_BPF_JIT, CONFIG_NET_CLS_BPF, CONFIG_NET_CLS_ACT, "
    "CONFIG_NET_SCH_INGRESS, CONFIG_CGROUP_BPF, CONFIG_PERF_EVENTS (and the per-feature options)",
    ref=docs("operations/system_requirements"),
    facts=("kernel configuration",),
)
def cil089(c: Ctx) -> Iterator[Hit]:
    raise Unknown(
        "kernel configuration",
        detail="kernel build options (/proc/config.gz, /boot/config-*) are not among the facts",
    )


@rule(
    "CIL090",
    "VTEP integration requirements",
    severity="error",
    versions="1.12+",
    path="vtep.enabled",
    fix="Kernel 5.2+; vtep.endpoint, vtep.cidr and vtep.mac must be space-separated lists of equal length",
    ref=src("REQ", since=14),
    facts=(KERNELS,),
)
def cil090(c: Ctx) -> Iterator[Hit]:
    if not c.v.flag("vtep.enabled"):
        return
    lists = {k: (c.v.text(f"vtep.{k}") or "").split() for k in ("endpoint", "cidr", "mac")}
    if len({len(v) for v in lists.values()}) != 1 or not lists["endpoint"]:
        yield Hit(
            "Failed to validate VTEP configuration: vtep.endpoint, vtep.cidr and vtep.mac must have the same "
            "number of entries"
        )
    else:
        for ip in lists["endpoint"]:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                yield Hit(f"Failed to validate VTEP configuration: invalid VTEP IP: {ip}", path="vtep.endpoint")
        for mac in lists["mac"]:
            if not re.fullmatch(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}", mac):
                yield Hit(f"Failed to validate VTEP configuration: invalid VTEP MAC: {mac}", path="vtep.mac")
    if c.m <= 15 and (old := old_kernels(c, (5, 2, 0))):
        yield Hit(
            "VXLAN Tunnel Endpoint (VTEP) Integration: requires support for large programs (Linux 5.2.0 or "
            f"newer): {old[0]}",
            subjects=old[1],
        )


@rule(
    "CIL091",
    "High-scale ipcache requirements (removed in 1.18)",
    severity="error",
    versions="1.14+",
    path="highScaleIPcache.enabled",
    fix="Meet the requirements (native routing, DSR with geneve dispatch, well-known identities, no egress gateway, "
    "IPsec or IPv6) or drop highScaleIPcache",
    ref=src("DM", since=14),
)
def cil091(c: Ctx) -> Iterator[Hit]:
    if not c.v.flag("highScaleIPcache.enabled"):
        return
    d = c.d
    if c.m >= 18:
        yield Hit("highScaleIPcache was removed in 1.18")
        return
    if d.routing == "tunnel":
        yield Hit("The high-scale IPcache mode requires native routing.")
    if d.egress_gateway:
        yield Hit("The egress gateway is not supported in high scale IPcache mode.")
    if d.enc == "ipsec":
        yield Hit("IPsec is not supported in high scale IPcache mode.")
    if d.ipv6:
        yield Hit("The high-scale IPcache mode is not supported with IPv6.")
    if not c.v.flag("wellKnownIdentities.enabled"):
        yield Hit("The high-scale IPcache mode requires well-known identities to be enabled.")
    if not (d.lb_mode == "dsr" and d.dispatch == "geneve"):
        yield Hit('The high-scale IPcache mode requires Node Port mode "dsr" with geneve dispatch')


@rule(
    "CIL092",
    "Socket-LB with cgroup auto-mount disabled needs cgroup v2 at cgroup.hostRoot",
    severity="error",
    path="cgroup.autoMount.enabled",
    fix="Keep cgroup.autoMount.enabled=true, or mount cgroup2 on the nodes and set cgroup.hostRoot",
    ref=docs("network/kubernetes/kubeproxy-free"),
    facts=("cgroup v2 mounted at cgroup.hostRoot on nodes",),
)
def cil092(c: Ctx) -> Iterator[Hit]:
    if c.d.socket_lb and not c.v.flag("cgroup.autoMount.enabled", True):
        raise Unknown(
            "cgroup v2 mounted at cgroup.hostRoot on nodes",
            detail=f"cgroup.hostRoot={c.v.text('cgroup.hostRoot') or '/run/cilium/cgroupv2'}; node mounts are not "
            "among the facts",
        )
    return iter(())


@rule(
    "CIL093",
    "Pod hostPorts inside the NodePort range; SCTP Services with kube-proxy replacement",
    severity="warning",
    path="kubeProxyReplacement",
    fix="Move hostPorts out of the NodePort range",
    ref=docs("network/kubernetes/kubeproxy-free"),
    facts=("Pod hostPorts and SCTP Services",),
)
def cil093(c: Ctx) -> Iterator[Hit]:
    if c.d.kpr_full:
        raise Unknown(
            "Pod hostPorts and SCTP Services",
            detail="hostPorts inside the NodePort range are ignored with a warning, and SCTP Services are not "
            "load-balanced by the replacement; pod ports and Services are not among the facts",
        )
    return iter(())


@rule(
    "CIL094",
    "DSR on several native devices needs rp_filter 0 or 2",
    severity="warning",
    path="loadBalancer.mode",
    fix="sysctl -w net.ipv4.conf.<dev>.rp_filter=2 (or 0) on each node",
    ref=src("KPR"),
    facts=("rp_filter and native devices of nodes",),
)
def cil094(c: Ctx) -> Iterator[Hit]:
    devices = c.v.strings("devices")
    if c.d.dsr and c.d.node_port and c.d.routing == "native" and (devices is None or len(devices) > 1):
        raise Unknown(
            "rp_filter and native devices of nodes",
            detail="'DSR might not work for requests sent to other than <dev> device'; node sysctls and devices are "
            "not among the facts",
        )
    return iter(())


@rule(
    "CIL095",
    "IPsec with BPF host routing needs the CVE-2025-37959 kernel fix (1.19)",
    severity="warning",
    versions="1.19+",
    path="encryption.type",
    fix="Run a kernel with the fix, or set bpf.hostLegacyRouting=true",
    ref=upgrade(19),
    facts=("kernel fix for CVE-2025-37959",),
)
def cil095(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.enc == "ipsec" and d.kpr_full and d.bpf_masq and not d.host_legacy_routing_set:
        raise Unknown(
            "kernel fix for CVE-2025-37959",
            detail="distribution kernels carry the fix under different versions; kernel patch levels are not facts",
        )
    return iter(())


@rule(
    "CIL096",
    "WireGuard limitations (host firewall, mixed cluster mesh)",
    severity="warning",
    path="encryption.type",
    fix="Accept the limitation or redesign",
    ref=docs("security/network/encryption-wireguard"),
    facts=("cluster mesh peers' encryption",),
)
def cil096(c: Ctx) -> Iterator[Hit]:
    if c.d.enc != "wireguard":
        return
    if c.v.flag("hostFirewall.enabled"):
        yield Hit("host policies do not apply on the WireGuard interface", path="hostFirewall.enabled")
    if c.v.flag("clustermesh.useAPIServer") or c.v.get("clustermesh.config.clusters"):
        c.missing(
            "cluster mesh peers' encryption",
            detail="a cluster mesh mixing WireGuard and non-WireGuard clusters is unsupported",
        )
