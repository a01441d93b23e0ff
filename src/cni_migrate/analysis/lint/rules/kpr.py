"""Catalog 1.2: kube-proxy replacement, API server reachability, socket-LB (CIL017-CIL029)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from cni_migrate.analysis.cidrs import try_parse, within
from cni_migrate.analysis.lint.derived import kpr_valid_values
from cni_migrate.analysis.lint.factview import KERNELS, KUBE_PROXY, socket_lb_udp_ok
from cni_migrate.analysis.lint.model import Severity
from cni_migrate.analysis.lint.rules.base import Ctx, Hit, Unknown, docs, old_kernels, rule, src, upgrade

KPR_MAPPING = "Map strict -> true; partial / disabled -> false (plus the individual feature flags, up to 1.18)"


def _kpr_messages(c: Ctx, value: str) -> str:
    if c.m <= 13:
        return f"Invalid value for --kube-proxy-replacement: {value}"
    if c.m <= 15:
        return (
            "kubeProxyReplacement must be explicitly set to a valid value (true, false, disabled (deprecated), "
            "partial (deprecated), or strict (deprecated)) to continue."
        )
    return "kubeProxyReplacement must be explicitly set to a valid value (true or false) to continue."


@rule(
    "CIL017",
    "kubeProxyReplacement value not valid for this version",
    severity="error",
    path="kubeProxyReplacement",
    fix=KPR_MAPPING + "; before 1.14 use strict / partial / disabled (probe up to 1.12)",
    ref=src("KPR"),
)
def cil017(c: Ctx) -> Iterator[Hit]:
    if not c.d.kpr_explicit:
        return
    valid = kpr_valid_values(c.m)
    if c.d.kpr not in valid:
        where = "helm fails to render" if c.m >= 14 else "cilium-agent exits"
        yield Hit(
            f"kubeProxyReplacement={c.d.kpr} is not valid on Cilium 1.{c.m} (valid: {', '.join(valid)}); {where}: "
            + _kpr_messages(c, c.d.kpr)
        )


@rule(
    "CIL018",
    "Deprecated kubeProxyReplacement value",
    severity="warning",
    versions="1.12-1.15",
    path="kubeProxyReplacement",
    fix="Use kubeProxyReplacement=true (was strict) or false (was partial/disabled) before upgrading to 1.16",
    ref=upgrade(),
)
def cil018(c: Ctx) -> Iterator[Hit]:
    if not c.d.kpr_explicit:
        return
    if (c.m in (14, 15) and c.d.kpr in ("strict", "partial", "disabled")) or (c.m == 12 and c.d.kpr == "probe"):
        yield Hit(f'Deprecated value for --kube-proxy-replacement: {c.d.kpr} (use either "true", or "false")')


@rule(
    "CIL019",
    "kubeProxyReplacement unset: the upgradeCompatibility default is invalid",
    severity="error",
    versions="1.13+",
    path="kubeProxyReplacement",
    fix="Set kubeProxyReplacement explicitly",
    ref=src("CM", since=16),
)
def cil019(c: Ctx) -> Iterator[Hit]:
    if c.d.kpr_explicit or c.d.upgrade_compat is None:
        return
    if c.d.kpr not in kpr_valid_values(c.m):
        yield Hit(
            f"with upgradeCompatibility={c.v.text('upgradeCompatibility')} the chart defaults kubeProxyReplacement "
            f"to {c.d.kpr}, which Cilium 1.{c.m} rejects: " + _kpr_messages(c, c.d.kpr),
            path="upgradeCompatibility",
        )


@rule(
    "CIL020",
    "No kube-proxy and no full kube-proxy replacement",
    severity="error",
    path="kubeProxyReplacement",
    fix="Set kubeProxyReplacement=true (strict before 1.14) with k8sServiceHost/k8sServicePort, or keep kube-proxy",
    ref=docs("network/kubernetes/kubeproxy-free"),
    facts=(KUBE_PROXY,),
)
def cil020(c: Ctx) -> Iterator[Hit]:
    if c.d.kpr_full:
        return
    if c.f.kube_proxy_present():
        return
    if c.d.kpr == "probe":
        # probe (<=1.12) enables every part of the replacement the kernel supports
        if c.f.has_facts and not old_kernels(c, (4, 19, 57), ok=socket_lb_udp_ok):
            return
        yield Hit(
            f"kube-proxy is not installed ({c.f.kube_proxy_source()}) and kubeProxyReplacement=probe replaces it only "
            "where the node kernels support socket-LB and BPF NodePort (4.19.57+); set strict to fail loudly instead",
            severity="warning",
        )
        return
    yield Hit(
        f"kube-proxy is not installed ({c.f.kube_proxy_source()}) and kubeProxyReplacement={c.d.kpr} is not a full "
        "replacement: NodePort, LoadBalancer, externalIPs, hostPort and ClusterIP access from host-network pods "
        "break, and the agent cannot reach the API server through the kubernetes Service ClusterIP"
    )


def _is_cluster_ip(c: Ctx, host: str) -> str | None:
    addr = try_parse(host)
    if addr is None or addr.prefixlen != addr.max_prefixlen:
        return None
    for cidr in c.f.service_cidrs():
        net = try_parse(cidr)
        if net is not None and within(addr, net):
            return cidr
    return None


@rule(
    "CIL021",
    "Without kube-proxy the agent needs k8sServiceHost to reach the API server",
    severity="error",
    path="k8sServiceHost",
    fix="Set k8sServiceHost to the API server's IP, DNS name or load balancer (not the kubernetes Service ClusterIP) "
    "and k8sServicePort (e.g. 6443); 1.16+: k8sServiceHost=auto on kubeadm clusters",
    ref=docs("network/kubernetes/kubeproxy-free"),
    facts=(KUBE_PROXY, "service CIDRs"),
)
def cil021(c: Ctx) -> Iterator[Hit]:
    host = c.d.k8s_service_host
    if host is None and c.m >= 18 and c.v.has("k8sServiceHostRef.name"):
        return
    if c.f.kube_proxy_present():
        return
    if host is None:
        yield Hit(
            "kube-proxy is not installed and k8sServiceHost is empty: the agent and its config init container fail "
            "with 'Unable to contact k8s api-server ... dial tcp 10.96.0.1:443: i/o timeout' (CrashLoopBackOff / "
            "Init:Error)"
        )
        return
    if c.v.opaque("k8sServiceHost") or host == "auto":
        return
    cidr = _is_cluster_ip(c, host)
    if cidr:
        yield Hit(
            f"k8sServiceHost={host} is a ClusterIP (service CIDR {cidr}); without kube-proxy nothing translates it "
            "before the agent runs, so the agent cannot reach the API server"
        )


@rule(
    "CIL022",
    "k8sServiceHost / k8sServicePort / k8sServiceHostRef must be set consistently",
    severity="error",
    path="k8sServicePort",
    fix="Always set k8sServiceHost and k8sServicePort together; set only one of k8sServiceHost and "
    "k8sServiceHostRef; use k8sServiceHost=auto only with helm install/upgrade against a kubeadm cluster",
    ref=src("DS"),
)
def cil022(c: Ctx) -> Iterator[Hit]:
    host, port = c.d.k8s_service_host, c.d.k8s_service_port
    if host and not port:
        yield Hit(
            f"k8sServiceHost={host} is set but k8sServicePort is empty: the DaemonSet gets an empty "
            "KUBERNETES_SERVICE_PORT and the agent cannot reach the API server"
        )
    if c.m >= 18 and host and c.v.has("k8sServiceHostRef.name") and c.v.has("k8sServiceHostRef.key"):
        yield Hit(
            "Both k8sServiceHostRef and k8sServiceHost are set. Please set only one of them.", path="k8sServiceHost"
        )
    if host == "auto":
        if c.m < 16:
            yield Hit("k8sServiceHost=auto is only understood from Cilium 1.16", path="k8sServiceHost")
        elif c.context.rendered_offline:
            yield Hit(
                "k8sServiceHost=auto relies on Helm's lookup of ConfigMap kube-public/cluster-info, which is empty "
                "under helm template / GitOps rendering: rendering fails"
                + (
                    " ('ConfigMap kube-public/cluster-info not found, please create it or set k8sServiceHost to a "
                    "valid value')"
                    if c.m >= 19
                    else ""
                ),
                path="k8sServiceHost",
            )


@rule(
    "CIL023",
    "Full kube-proxy replacement with kube-proxy still running",
    severity="warning",
    path="kubeProxyReplacement",
    fix="Remove kube-proxy (DaemonSet and ConfigMap) and its rules before or right after installing Cilium; if it "
    "must stay, enable kube-proxy replacement only on fresh nodes",
    ref=docs("network/kubernetes/kubeproxy-free"),
    facts=(KUBE_PROXY,),
)
def cil023(c: Ctx) -> Iterator[Hit]:
    if c.d.kpr_full and c.f.kube_proxy_present():
        yield Hit(
            f"kube-proxy is installed ({c.f.kube_proxy_source()}) and kubeProxyReplacement={c.d.kpr}: both datapaths "
            "run independently and turning the replacement on in a live cluster breaks existing connections (their NAT "
            "tables do not know each other)"
        )


@rule(
    "CIL024",
    "Socket-LB needs the cgroup socket hooks of kernel 4.19.57 / 5.1.16 / 5.2+",
    severity="error",
    path="kubeProxyReplacement",
    fix="Upgrade node kernels (4.19.57+, 5.1.16+ or 5.2+; 5.0.y was never fixed) or disable socket-LB",
    ref=src("KPR"),
    facts=(KERNELS,),
)
def cil024(c: Ctx) -> Iterator[Hit]:
    if not c.d.socket_lb:
        return
    tcp = old_kernels(c, (4, 17, 0))
    udp = old_kernels(c, (4, 19, 57), ok=socket_lb_udp_ok)
    soft = c.m == 11 and c.d.kpr in ("probe", "partial")
    sev: Severity | None = "warning" if soft else None
    tail = " (1.11 with probe/partial: socket-LB is disabled instead)" if soft else ""
    if tcp:
        yield Hit(
            f"BPF host-reachable services for TCP needs kernel 4.17.0 or newer: {tcp[0]}{tail}",
            severity=sev,
            subjects=tcp[1],
        )
    elif udp:
        yield Hit(
            f"BPF host-reachable services for UDP needs kernel 4.19.57, 5.1.16, 5.2.0 or newer: {udp[0]}{tail}",
            severity=sev,
            subjects=udp[1],
        )


@rule(
    "CIL025",
    "BPF NodePort needs kernel 4.17",
    severity="error",
    versions="1.11-1.17",
    path="kubeProxyReplacement",
    fix="Upgrade node kernels to 4.17+ (check BPF restrictions if the kernel is newer)",
    ref=src("KPR"),
    facts=(KERNELS,),
)
def cil025(c: Ctx) -> Iterator[Hit]:
    if c.d.node_port and (old := old_kernels(c, (4, 17, 0))):
        yield Hit(f"BPF NodePort services needs kernel 4.17.0 or newer: {old[0]}", subjects=old[1])


@rule(
    "CIL026",
    "Socket-LB features of kernel 5.7 (pod-namespace bypass, session affinity, TProxy)",
    severity="warning",
    path="socketLB.hostNamespaceOnly",
    fix="Run kernel 5.7+; enable socket-LB (kubeProxyReplacement=true or socketLB.enabled) if the bypass is wanted",
    ref=src("KPR"),
    facts=(KERNELS,),
)
def cil026(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.socket_lb_hostns_only and not d.socket_lb:
        yield Hit("bpf-lb-sock-hostns-only only takes effect when bpf-lb-sock is true")
    if c.m > 17:
        return  # 1.18+: the 5.7 helpers are part of the base requirement (CIL088)
    wants = []
    if d.socket_lb_hostns_only and d.socket_lb:
        wants.append(
            (
                "socketLB.hostNamespaceOnly",
                "Without network namespace cookie lookup functionality, BPF "
                "datapath cannot distinguish root and non-root namespace, skipping socket-level loadbalancing "
                "will not work. Istio routing chains will be missed. Needs kernel version >= 5.7",
            )
        )
    if d.socket_lb and (d.kpr_full or c.v.flag("sessionAffinity")):
        wants.append(
            (
                "kubeProxyReplacement",
                "Session affinity for host reachable services needs kernel 5.7.0 or "
                "newer to work properly when accessed from inside cluster",
            )
        )
    if c.v.flag("bpf.tproxy"):
        wants.append(
            (
                "bpf.tproxy",
                "Disabled support for BPF TProxy due to missing kernel support for socket assign (Linux 5.7 or later)",
            )
        )
    if wants and (old := old_kernels(c, (5, 7, 0))):
        for path, msg in wants:
            yield Hit(f"{msg}: {old[0]}", path=path, subjects=old[1])


_RANGE = re.compile(r"^\s*(\d+)\s*[,-]\s*(\d+)\s*$")


@rule(
    "CIL027",
    "NodePort range must be well-formed and not clash with the ephemeral port range",
    severity="error",
    path="nodePort.range",
    fix="Keep nodePort.autoProtectPortRange=true, fix net.ipv4.ip_local_port_range / ip_local_reserved_ports, and "
    "align nodePort.range with kube-apiserver --service-node-port-range",
    ref=src("KPR"),
    facts=("net.ipv4.ip_local_port_range on nodes", "kube-apiserver --service-node-port-range"),
)
def cil027(c: Ctx) -> Iterator[Hit]:
    if not c.d.node_port:
        return
    raw = c.v.text("nodePort.range")
    if raw:
        c.literal("nodePort.range")
        m = _RANGE.match(raw)
        if not m:
            yield Hit(f"nodePort.range {raw!r} is not MIN,MAX")
            return
        lo, hi = int(m.group(1)), int(m.group(2))
        if lo >= hi:
            yield Hit("NodePort range min port must be smaller than max port")
            return
        if (lo, hi) != (30000, 32767):
            c.missing(
                "kube-apiserver --service-node-port-range",
                detail="the API server's NodePort range is not among the facts",
            )
            c.missing("net.ipv4.ip_local_port_range on nodes", detail="node sysctls are not among the facts")
            return
    if not c.v.flag("nodePort.autoProtectPortRange", True):
        raise Unknown(
            "net.ipv4.ip_local_port_range on nodes",
            detail="with autoProtectPortRange=false the NodePort range must not overlap the ephemeral range; node "
            "sysctls are not among the facts",
        )


@rule(
    "CIL028",
    "IPsec cannot be combined with BPF NodePort before 1.16",
    severity="error",
    versions="1.11-1.15",
    path="encryption.type",
    fix="Upgrade to Cilium 1.16+, or disable kube-proxy replacement / NodePort",
    ref=src("KPR"),
)
def cil028(c: Ctx) -> Iterator[Hit]:
    if c.d.enc == "ipsec" and c.d.node_port:
        if c.m == 11 and c.d.kpr == "partial":
            yield Hit("IPSec cannot be used with BPF NodePort: 1.11 with partial disables NodePort", severity="warning")
        else:
            yield Hit("IPSec cannot be used with BPF NodePort")


@rule(
    "CIL029",
    "installNoConntrackIptablesRules prerequisites",
    severity="error",
    path="installNoConntrackIptablesRules",
    fix="Use native routing, IPv4, kubeProxyReplacement=true and bpf.masquerade=true, or drop the option",
    ref=src("DM"),
)
def cil029(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if not c.v.flag("installNoConntrackIptablesRules"):
        return
    if d.routing == "tunnel":
        yield Hit("install-no-conntrack-iptables-rules requires the agent to run in direct routing mode.")
    if not d.ipv4:
        yield Hit("install-no-conntrack-iptables-rules requires IPv4 support.")
    if not d.kpr_full:
        yield Hit(
            "install-no-conntrack-iptables-rules requires the agent to run with "
            f"kube-proxy-replacement={'strict' if c.m <= 13 else 'true'}."
        )
    if (d.v4masq or d.v6masq) and not d.bpf_masq:
        yield Hit("install-no-conntrack-iptables-rules requires the agent to run with enable-bpf-masquerade.")
