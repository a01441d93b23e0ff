"""Every rule fires, stays silent, and respects its version boundaries.

Each case lints values (``--set`` expressions, space separated) for one version, with cluster facts built by
``make_facts`` (``F(...)``) or none, and states what one rule must do: ``fire`` (a finding, optionally of a given
severity and containing a message fragment), ``silent`` (no finding and not "not checked"), or ``nc`` (reported
as not checked). ``test_every_rule_has_cases`` makes sure no rule goes without fire/silent cases and cases on
both sides of each bound of its version range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from cni_migrate.analysis.lint.rules import REGISTRY

from .helpers import UNKNOWN, make_facts, run

FIRST, LAST = 11, 19


@dataclass(frozen=True)
class F:
    """make_facts(**kw) when a case runs."""

    kw: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        return make_facts(**self.kw)


def facts(**kw: Any) -> F:
    return F(kw)


K = facts()  # a healthy default cluster: kernels 5.15, kube-proxy present, no other CNI
OLD_KERNEL = facts(kernels=("4.15.0-20-generic", "5.15.0-91-generic"))
FLANNEL = facts(cni="flannel")
NO_KP = facts(kube_proxy=False)


@dataclass(frozen=True)
class C:
    rule: str
    version: str
    vals: str
    expect: str  # fire | silent | nc
    facts: F | None = None
    sev: str | None = None
    msg: str | None = None
    ctx: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        return f"{self.rule}-{self.expect}-{self.version}-{self.vals or 'defaults'}"[:120]


def ctx(**kw: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(kw.items())


FULL = "kubeProxyReplacement=true"
NATIVE = "routingMode=native ipv4NativeRoutingCIDR=10.0.0.0/8"

CASES: list[C] = [
    # --- 1.1 routing --------------------------------------------------------------------------------------
    C("CIL001", "1.11.7", "tunnel=disabled", "fire", msg="invalid daemon configuration: native routing cidr must "
      "be configured with option --ipv4-native-routing-cidr in combination with --enable-ipv4-masquerade "
      "--tunnel=disabled --ipam=cluster-pool --enable-ipv4=true"),
    C("CIL001", "1.13", "tunnel=disabled ipam.mode=kubernetes", "fire", msg="--tunnel=disabled --ipam=kubernetes"),
    C("CIL001", "1.14", "routingMode=native", "fire", msg="--enable-ipv4-masquerade --routing-mode=native"),
    C("CIL001", "1.16", "routingMode=native", "fire", msg="--enable-ip-masq-agent=false --routing-mode=native"),
    C("CIL001", "1.18", "routingMode=native", "fire", msg="ipv4NativeRoutingCIDR must be set when routingMode is native"),
    C("CIL001", "1.14", "routingMode=native ipMasqAgent.enabled=true", "fire"),
    C("CIL001", "1.15", "routingMode=native ipMasqAgent.enabled=true", "silent"),
    C("CIL001", "1.16", NATIVE, "silent"),
    C("CIL001", "1.16", "routingMode=native enableIPv4Masquerade=false", "silent"),
    C("CIL001", "1.16", "routingMode=native ipam.mode=eni", "silent"),
    C("CIL001", "1.16", "tunnel=disabled", "silent"),  # removed value: routing stays tunnel
    C("CIL001", "1.11", "", "silent"),
    C("CIL002", "1.12", "tunnel=disabled ipv6.enabled=true ipv4NativeRoutingCIDR=10.0.0.0/8", "fire",
      msg="--ipv6-native-routing-cidr"),
    C("CIL002", "1.11", "tunnel=disabled ipv6.enabled=true ipv4NativeRoutingCIDR=10.0.0.0/8", "silent"),
    C("CIL002", "1.16", NATIVE + " ipv6.enabled=true enableIPv6Masquerade=false", "silent"),
    C("CIL002", "1.19", NATIVE + " ipv6.enabled=true", "fire", msg="ipv6NativeRoutingCIDR must be set"),
    C("CIL003", "1.16", "ipv4NativeRoutingCIDR=10.0.0.300/8", "fire", msg="Unable to parse CIDR"),
    C("CIL003", "1.16", "ipv4NativeRoutingCIDR=fd00::/64", "fire", msg="must be an IPv4 CIDR"),
    C("CIL003", "1.12", "ipv6NativeRoutingCIDR=10.0.0.0/8", "fire", msg="must be an IPv6 CIDR"),
    C("CIL003", "1.11", "ipv6NativeRoutingCIDR=10.0.0.0/8", "silent"),
    C("CIL003", "1.16", "ipv4NativeRoutingCIDR=10.0.0.0/8", "silent"),
    C("CIL003", "1.16", "ipv4NativeRoutingCIDR=$CIDR", "nc"),
    C("CIL004", "1.16", "routingMode=native ipv4NativeRoutingCIDR=10.244.0.0/16", "fire", msg="10.0.0.0/8"),
    C("CIL004", "1.16", NATIVE, "silent"),
    C("CIL004", "1.16", "routingMode=native ipam.mode=kubernetes ipv4NativeRoutingCIDR=10.245.0.0/16", "fire", K),
    C("CIL004", "1.16", "routingMode=native ipam.mode=kubernetes ipv4NativeRoutingCIDR=10.244.0.0/16", "silent", K),
    C("CIL004", "1.16", "routingMode=native ipam.mode=kubernetes ipv4NativeRoutingCIDR=10.244.0.0/16", "nc"),
    C("CIL005", "1.16", "autoDirectNodeRoutes=true", "fire", msg="cannot be used with tunneling"),
    C("CIL005", "1.16", "autoDirectNodeRoutes=true tunnel=disabled", "fire", msg="ignored"),
    C("CIL005", "1.11", "autoDirectNodeRoutes=true", "fire"),
    C("CIL005", "1.16", "autoDirectNodeRoutes=true " + NATIVE, "silent"),
    C("CIL006", "1.11.7", "tunnel=disabled autoDirectNodeRoutes=true", "fire", sev="warning",
      msg="If auto-direct-node-routes is enabled, then you are recommended to also configure ipv4-native-routing-cidr"),
    C("CIL006", "1.16", "routingMode=native autoDirectNodeRoutes=true", "fire", sev="warning"),
    C("CIL006", "1.17", "routingMode=native autoDirectNodeRoutes=true", "silent"),
    C("CIL006", "1.16", NATIVE + " autoDirectNodeRoutes=true", "silent"),
    C("CIL006", "1.16", "routingMode=native autoDirectNodeRoutes=true ipv4NativeRoutingCIDR=10.0.0.0/8 "
      "ipv6.enabled=true", "fire", msg="ipv6-native-routing-cidr"),
    C("CIL007", "1.16", NATIVE + " autoDirectNodeRoutes=true", "nc", K),
    C("CIL007", "1.16", NATIVE, "silent", K),
    C("CIL008", "1.16", "directRoutingSkipUnreachable=true", "fire"),
    C("CIL008", "1.15", "directRoutingSkipUnreachable=true", "silent"),
    C("CIL008", "1.16", NATIVE + " autoDirectNodeRoutes=true directRoutingSkipUnreachable=true", "silent"),
    C("CIL009", "1.16", NATIVE, "nc", K),
    C("CIL009", "1.16", NATIVE + " autoDirectNodeRoutes=true", "silent", K),
    C("CIL009", "1.16", NATIVE + " bgpControlPlane.enabled=true", "silent", K),
    C("CIL009", "1.16", NATIVE, "silent", facts(kube_router_args=["--run-router=true", "--advertise-pod-cidr=true"])),
    C("CIL009", "1.16", "", "silent", K),
    C("CIL010", "1.14", "routingMode=foo", "fire", msg='invalid routing mode "foo"'),
    C("CIL010", "1.13", "routingMode=foo", "silent"),
    C("CIL010", "1.16", "routingMode=native", "silent"),
    C("CIL011", "1.13", "tunnel=ipip", "fire", msg="invalid tunnel mode 'ipip'"),
    C("CIL011", "1.16", "tunnelProtocol=ipip", "fire", msg='invalid tunnel protocol "ipip"'),
    C("CIL011", "1.18", "underlayProtocol=ipv5", "fire", msg="invalid IP family for underlay"),
    C("CIL011", "1.18", "tunnelSourcePortRange=abc", "fire", msg="invalid tunnel source port range"),
    C("CIL011", "1.17", "underlayProtocol=ipv5", "silent"),
    C("CIL011", "1.16", "tunnelProtocol=geneve", "silent"),
    C("CIL011", "1.18", "tunnelSourcePortRange=1000-2000", "silent"),
    C("CIL012", "1.14", "tunnel=disabled", "fire", sev="warning"),
    C("CIL012", "1.15", "tunnel=disabled", "fire", sev="error", msg="tunnel was deprecated in v1.14 and has been "
      "removed in v1.15"),
    C("CIL012", "1.16", "tunnel=geneve", "fire", sev="error"),
    C("CIL012", "1.13", "tunnel=disabled", "silent"),
    C("CIL012", "1.16", "routingMode=native", "silent"),
    C("CIL013", "1.14", "extraConfig.tunnel=vxlan routingMode=native", "fire"),
    C("CIL013", "1.14", "extraConfig.tunnel=vxlan", "silent"),
    C("CIL013", "1.13", "extraConfig.tunnel=vxlan tunnel=disabled", "silent"),
    C("CIL013", "1.15", "extraConfig.tunnel=vxlan routingMode=native", "silent"),
    C("CIL014", "1.16", "gke.enabled=true routingMode=tunnel", "fire", msg="native when gke.enabled=true"),
    C("CIL014", "1.16", "aksbyocni.enabled=true routingMode=native", "fire", msg="tunnel when aksbyocni"),
    C("CIL014", "1.15", "gke.enabled=true routingMode=tunnel", "silent"),
    C("CIL014", "1.16", "gke.enabled=true", "silent"),
    C("CIL015", "1.12", "tunnel=vxlan", "fire", FLANNEL, msg="Address already in use"),
    C("CIL015", "1.16", "", "fire", FLANNEL),
    C("CIL015", "1.12", "tunnel=geneve", "silent", FLANNEL),
    C("CIL015", "1.16", "tunnelPort=8473", "silent", FLANNEL),
    C("CIL015", "1.16", "tunnelProtocol=geneve tunnelPort=8472", "fire", FLANNEL),
    C("CIL015", "1.16", NATIVE, "silent", FLANNEL),
    C("CIL015", "1.16", "", "silent", FLANNEL, ctx=ctx(old_cni_present=False)),
    C("CIL015", "1.16", "", "silent", facts(cni="flannel", flannel_backend="host-gw", flannel_port=0)),
    C("CIL015", "1.16", "tunnelPort=4789", "fire", facts(cni="calico", calico_vxlan=True)),
    C("CIL015", "1.16", "", "silent", facts(cni="calico", calico_vxlan=True)),
    C("CIL015", "1.16", "", "nc", facts(cni="flannel", flannel_port=UNKNOWN)),
    C("CIL015", "1.16", "", "nc"),
    C("CIL015", "1.16", "", "fire", facts(cni="canal")),
    C("CIL016", "1.16", "", "nc", K),
    C("CIL016", "1.16", NATIVE + " healthChecking=false", "silent", K),
    C("CIL097", "1.16", NATIVE + " bgpControlPlane.enabled=true", "fire", msg="programs no routes between"),
    C("CIL097", "1.16", NATIVE + " bgpControlPlane.enabled=true autoDirectNodeRoutes=true", "silent"),
    C("CIL097", "1.16", "bgpControlPlane.enabled=true", "silent"),
    C("CIL097", "1.16", NATIVE, "silent"),
    # --- 1.2 kube-proxy replacement ----------------------------------------------------------------------
    C("CIL017", "1.16", "kubeProxyReplacement=strict", "fire", msg="valid value (true or false)"),
    C("CIL017", "1.15", "kubeProxyReplacement=strict", "silent"),
    C("CIL017", "1.14", "kubeProxyReplacement=probe", "fire", msg="disabled (deprecated)"),
    C("CIL017", "1.13", "kubeProxyReplacement=probe", "fire", msg="Invalid value for --kube-proxy-replacement: probe"),
    C("CIL017", "1.12", "kubeProxyReplacement=probe", "silent"),
    C("CIL017", "1.13", "kubeProxyReplacement=true", "fire"),
    C("CIL017", "1.14", "kubeProxyReplacement=true", "silent"),
    C("CIL017", "1.11", "kubeProxyReplacement=true", "fire"),
    C("CIL017", "1.16", "kubeProxyReplacement=false", "silent"),
    C("CIL017", "1.16", "", "silent"),
    C("CIL018", "1.14", "kubeProxyReplacement=strict", "fire", sev="warning"),
    C("CIL018", "1.15", "kubeProxyReplacement=partial", "fire"),
    C("CIL018", "1.12", "kubeProxyReplacement=probe", "fire"),
    C("CIL018", "1.11", "kubeProxyReplacement=probe", "silent"),
    C("CIL018", "1.13", "kubeProxyReplacement=strict", "silent"),
    C("CIL018", "1.16", "kubeProxyReplacement=strict", "silent"),
    C("CIL018", "1.15", "kubeProxyReplacement=true", "silent"),
    C("CIL019", "1.16", "upgradeCompatibility=1.12", "fire", msg="defaults kubeProxyReplacement to disabled"),
    C("CIL019", "1.16", "upgradeCompatibility=1.14", "silent"),
    C("CIL019", "1.16", "upgradeCompatibility=1.12 kubeProxyReplacement=false", "silent"),
    C("CIL019", "1.13", "upgradeCompatibility=1.11", "fire", msg="probe"),
    C("CIL019", "1.13", "upgradeCompatibility=1.12", "silent"),
    C("CIL019", "1.14", "upgradeCompatibility=1.10", "fire"),
    C("CIL019", "1.12", "upgradeCompatibility=1.10", "silent"),
    C("CIL020", "1.16", "", "fire", NO_KP, msg="kube-proxy is not installed"),
    C("CIL020", "1.16", "", "fire", ctx=ctx(kube_proxy_present=False)),
    C("CIL020", "1.16", FULL, "silent", NO_KP),
    C("CIL020", "1.12", "kubeProxyReplacement=strict", "silent", NO_KP),
    C("CIL020", "1.11", "", "silent", NO_KP),  # probe, and every kernel supports the replacement
    C("CIL020", "1.11", "", "fire", facts(kube_proxy=False, kernels=("4.15.0",)), sev="warning", msg="probe"),
    C("CIL020", "1.16", "", "silent", K),
    C("CIL020", "1.16", "", "nc"),
    C("CIL021", "1.16", FULL, "fire", NO_KP, msg="Unable to contact k8s api-server"),
    C("CIL021", "1.16", FULL + " k8sServiceHost=10.96.0.1 k8sServicePort=443", "fire", NO_KP, msg="is a ClusterIP"),
    C("CIL021", "1.16", FULL + " k8sServiceHost=192.168.1.10 k8sServicePort=6443", "silent", NO_KP),
    C("CIL021", "1.18", FULL + " k8sServiceHostRef.name=cm k8sServiceHostRef.key=host", "silent", NO_KP),
    C("CIL021", "1.16", FULL, "silent", K),
    C("CIL021", "1.16", FULL, "nc"),
    C("CIL022", "1.16", "k8sServiceHost=api.example", "fire", msg="k8sServicePort is empty"),
    C("CIL022", "1.18", "k8sServiceHost=a k8sServicePort=6443 k8sServiceHostRef.name=n k8sServiceHostRef.key=k",
      "fire", msg="Both k8sServiceHostRef and k8sServiceHost are set"),
    C("CIL022", "1.17", "k8sServiceHost=a k8sServicePort=6443 k8sServiceHostRef.name=n k8sServiceHostRef.key=k",
      "silent"),
    C("CIL022", "1.16", "k8sServiceHost=auto k8sServicePort=6443", "fire", ctx=ctx(rendered_offline=True),
      msg="lookup"),
    C("CIL022", "1.16", "k8sServiceHost=auto k8sServicePort=6443", "silent", ctx=ctx(helm_action="install")),
    C("CIL022", "1.15", "k8sServiceHost=auto k8sServicePort=6443", "fire", msg="only understood from Cilium 1.16"),
    C("CIL022", "1.16", "k8sServiceHost=api.example k8sServicePort=6443", "silent"),
    C("CIL023", "1.16", FULL, "fire", K, sev="warning"),
    C("CIL023", "1.16", "", "silent", K),
    C("CIL023", "1.16", FULL, "silent", K, ctx=ctx(kube_proxy_present=False)),
    C("CIL024", "1.16", FULL, "fire", OLD_KERNEL, msg="for TCP needs kernel 4.17.0"),
    C("CIL024", "1.16", FULL, "fire", facts(kernels=("5.0.21",)), msg="for UDP needs kernel 4.19.57, 5.1.16, 5.2.0"),
    C("CIL024", "1.16", FULL, "fire", facts(kernels=("4.19.56",))),
    C("CIL024", "1.16", FULL, "silent", facts(kernels=("4.19.57",))),
    C("CIL024", "1.16", FULL, "silent", facts(kernels=("5.1.16",))),
    C("CIL024", "1.16", FULL, "silent", K),
    C("CIL024", "1.11", "kubeProxyReplacement=partial hostServices.enabled=true", "fire", OLD_KERNEL, sev="warning"),
    C("CIL024", "1.16", FULL, "nc"),
    C("CIL024", "1.16", "", "silent"),
    C("CIL025", "1.17", FULL, "fire", facts(kernels=("4.14.0",)), msg="BPF NodePort services needs kernel 4.17.0"),
    C("CIL025", "1.18", FULL, "silent", facts(kernels=("4.14.0",))),
    C("CIL025", "1.16", FULL, "silent", facts(kernels=("4.17.0",))),
    C("CIL025", "1.16", "", "silent", facts(kernels=("4.14.0",))),
    C("CIL026", "1.16", FULL + " socketLB.hostNamespaceOnly=true", "fire", facts(kernels=("5.4.0",)),
      msg="Needs kernel version >= 5.7"),
    C("CIL026", "1.16", FULL, "fire", facts(kernels=("5.4.0",)), msg="Session affinity"),
    C("CIL026", "1.16", "bpf.tproxy=true", "fire", facts(kernels=("5.4.0",)), msg="BPF TProxy"),
    C("CIL026", "1.16", FULL + " socketLB.hostNamespaceOnly=true", "silent", K),
    C("CIL026", "1.18", FULL + " socketLB.hostNamespaceOnly=true", "silent", facts(kernels=("5.4.0",))),
    C("CIL026", "1.18", "socketLB.hostNamespaceOnly=true", "fire", msg="only takes effect when bpf-lb-sock is true"),
    C("CIL026", "1.16", "", "silent", facts(kernels=("5.4.0",))),
    C("CIL027", "1.16", FULL + " nodePort.range=32767\\,30000", "fire", msg="min port must be smaller"),
    C("CIL027", "1.16", FULL + " nodePort.range=abc", "fire", msg="is not MIN,MAX"),
    C("CIL027", "1.16", FULL + " nodePort.range=40000\\,41000", "nc"),
    C("CIL027", "1.16", FULL + " nodePort.autoProtectPortRange=false", "nc"),
    C("CIL027", "1.16", FULL, "silent"),
    C("CIL027", "1.16", "nodePort.range=abc", "silent"),
    C("CIL028", "1.15", FULL + " encryption.enabled=true", "fire", msg="IPSec cannot be used with BPF NodePort"),
    C("CIL028", "1.16", FULL + " encryption.enabled=true", "silent"),
    C("CIL028", "1.11", "kubeProxyReplacement=partial nodePort.enabled=true encryption.enabled=true", "fire",
      sev="warning"),
    C("CIL028", "1.15", FULL + " encryption.enabled=true encryption.type=wireguard", "silent"),
    C("CIL029", "1.16", "installNoConntrackIptablesRules=true", "fire", msg="direct routing mode"),
    C("CIL029", "1.13", "installNoConntrackIptablesRules=true", "fire", msg="kube-proxy-replacement=strict"),
    C("CIL029", "1.16", f"installNoConntrackIptablesRules=true {FULL} {NATIVE} bpf.masquerade=true", "silent"),
    # --- 1.3 load balancing ------------------------------------------------------------------------------
    C("CIL030", "1.16", FULL + " loadBalancer.mode=foo", "fire", msg="Invalid value for --node-port-mode: foo"),
    C("CIL030", "1.17", "loadBalancer.mode=foo", "silent"),
    C("CIL030", "1.18", "loadBalancer.mode=foo", "fire", msg="--bpf-lb-mode"),
    C("CIL030", "1.16", FULL + " extraConfig.node-port-mode=dsr loadBalancer.mode=snat", "fire",
      msg="Both --bpf-lb-mode and --node-port-mode were set"),
    C("CIL030", "1.16", FULL + " loadBalancer.mode=hybrid", "silent"),
    C("CIL031", "1.16", FULL + " loadBalancer.mode=dsr", "fire", msg='"dsr" mode cannot be used with vxlan tunneling'),
    C("CIL031", "1.12", "kubeProxyReplacement=strict loadBalancer.mode=dsr", "fire", sev="warning"),
    C("CIL031", "1.13", "kubeProxyReplacement=strict loadBalancer.mode=dsr", "fire", sev="error",
      msg='Node Port "dsr" mode cannot be used with tunneling.'),
    C("CIL031", "1.14", FULL + " loadBalancer.mode=dsr tunnelProtocol=geneve", "fire",
      msg="with opt dispatch cannot be used with geneve tunneling"),
    C("CIL031", "1.15", FULL + " loadBalancer.mode=dsr tunnelProtocol=geneve", "fire", msg="requires geneve dispatch"),
    C("CIL031", "1.15", FULL + " loadBalancer.mode=dsr tunnelProtocol=geneve loadBalancer.dsrDispatch=geneve",
      "silent"),
    C("CIL031", "1.16", FULL + " loadBalancer.mode=dsr " + NATIVE, "silent"),
    C("CIL031", "1.16", "loadBalancer.mode=dsr", "silent"),
    C("CIL032", "1.15", FULL + " loadBalancer.mode=dsr loadBalancer.dsrDispatch=geneve " + NATIVE, "fire",
      msg="requires geneve tunnel protocol"),
    C("CIL032", "1.15", FULL + " loadBalancer.mode=dsr loadBalancer.dsrDispatch=geneve tunnelProtocol=geneve "
      + NATIVE, "silent"),
    C("CIL032", "1.14", FULL + " loadBalancer.mode=dsr loadBalancer.dsrDispatch=geneve " + NATIVE, "silent"),
    C("CIL032", "1.14", FULL + " loadBalancer.mode=dsr loadBalancer.dsrDispatch=geneve", "fire",
      msg="requires geneve tunneling"),
    C("CIL032", "1.13", "kubeProxyReplacement=strict loadBalancer.mode=dsr loadBalancer.dsrDispatch=geneve", "silent"),
    C("CIL033", "1.16", FULL + " loadBalancer.mode=dsr loadBalancer.dsrDispatch=foo", "fire",
      msg="Invalid value for --bpf-lb-dsr-dispatch: foo"),
    C("CIL033", "1.16", FULL + " loadBalancer.mode=hybrid loadBalancer.dsrDispatch=ipip", "fire"),
    C("CIL033", "1.13", "kubeProxyReplacement=strict loadBalancer.mode=dsr loadBalancer.dsrDispatch=geneve", "fire"),
    C("CIL033", "1.14", FULL + " loadBalancer.mode=dsr loadBalancer.dsrDispatch=geneve", "silent"),
    C("CIL033", "1.17", FULL + " loadBalancer.mode=hybrid bpf.lbModeAnnotation=true", "fire",
      msg="not supported as default under annotation mode"),
    C("CIL033", "1.16", FULL + " loadBalancer.mode=hybrid bpf.lbModeAnnotation=true", "silent"),
    C("CIL033", "1.16", "loadBalancer.mode=dsr loadBalancer.dsrDispatch=foo", "silent"),
    C("CIL034", "1.16", FULL + " " + NATIVE + " loadBalancer.mode=dsr loadBalancer.dsrDispatch=ipip", "fire",
      msg="only supported for --datapath-mode=lb-only"),
    C("CIL034", "1.18", FULL + " " + NATIVE + " loadBalancer.mode=dsr loadBalancer.dsrDispatch=ipip", "fire",
      msg='DSR dispatch mode "ipip" currently only available under XDP acceleration'),
    C("CIL034", "1.18", FULL + " " + NATIVE + " loadBalancer.mode=dsr loadBalancer.dsrDispatch=ipip "
      "loadBalancer.acceleration=native", "silent"),
    C("CIL034", "1.19", FULL + " " + NATIVE + " loadBalancer.mode=dsr loadBalancer.dsrDispatch=ipip", "silent"),
    C("CIL034", "1.16", FULL + " extraConfig.bpf-lb-rss-ipv4-src-cidr=10.0.0.0/8", "fire",
      msg="currently only supported under IPIP dispatch"),
    C("CIL035", "1.16", FULL + " loadBalancer.mode=dsr " + NATIVE, "nc"),
    C("CIL035", "1.16", FULL + " " + NATIVE, "silent"),
    C("CIL036", "1.16", FULL + " loadBalancer.algorithm=foo", "fire", msg="--node-port-algorithm: foo"),
    C("CIL036", "1.17", "loadBalancer.algorithm=foo", "silent"),
    C("CIL036", "1.18", "loadBalancer.algorithm=foo", "fire", msg="--bpf-lb-algorithm"),
    C("CIL036", "1.16", FULL + " loadBalancer.algorithm=maglev", "silent"),
    C("CIL037", "1.16", FULL + " loadBalancer.algorithm=maglev maglev.tableSize=1000", "fire",
      msg="supported values are: [251 509"),
    C("CIL037", "1.16", FULL + " loadBalancer.algorithm=maglev maglev.tableSize=65521", "silent"),
    C("CIL037", "1.17", FULL + " maglev.tableSize=1000", "silent"),
    C("CIL037", "1.18", "maglev.tableSize=1000", "fire"),
    C("CIL037", "1.16", FULL + " loadBalancer.algorithm=maglev maglev.tableSize=$SIZE", "nc"),
    C("CIL038", "1.16", FULL + " loadBalancer.algorithm=maglev maglev.hashSeed=not*base64", "fire",
      msg="Cannot decode base64 Maglev hash seed"),
    C("CIL038", "1.16", FULL + " loadBalancer.algorithm=maglev maglev.hashSeed=AAAA", "fire",
      msg="Decoded hash seed is 3 bytes (not 12 bytes)"),
    C("CIL038", "1.18", "maglev.hashSeed=AAAA", "fire", msg="decoded hash seed is 3 bytes"),
    C("CIL038", "1.16", FULL + " loadBalancer.algorithm=maglev maglev.hashSeed=AAAAAAAAAAAAAAAA", "silent"),
    C("CIL038", "1.16", FULL + " loadBalancer.algorithm=maglev maglev.hashSeed=$SEED", "nc"),
    C("CIL038", "1.16", "maglev.hashSeed=AAAA", "silent"),
    C("CIL039", "1.14", "loadBalancer.acceleration=best-effort", "fire"),
    C("CIL039", "1.15", "loadBalancer.acceleration=best-effort", "silent"),
    C("CIL039", "1.16", "loadBalancer.acceleration=foo", "fire", msg="--node-port-acceleration: foo"),
    C("CIL039", "1.16", "loadBalancer.acceleration=native", "silent"),
    C("CIL040", "1.16", FULL + " loadBalancer.acceleration=native devices=bond0", "fire", msg="bond0"),
    C("CIL040", "1.16", FULL + " loadBalancer.acceleration=native devices=eth0.100", "fire"),
    C("CIL040", "1.16", FULL + " loadBalancer.acceleration=native devices=eth0", "nc"),
    C("CIL040", "1.16", FULL, "silent"),
    C("CIL041", "1.16", "loadBalancer.acceleration=native", "fire", sev="warning"),
    C("CIL041", "1.18", "loadBalancer.acceleration=native", "fire"),
    C("CIL041", "1.19", "loadBalancer.acceleration=native", "silent"),
    C("CIL041", "1.16", FULL + " loadBalancer.acceleration=native", "silent"),
    C("CIL042", "1.12", "kubeProxyReplacement=strict loadBalancer.acceleration=native", "fire",
      msg="Cannot use NodePort acceleration with tunneling"),
    C("CIL042", "1.13", "kubeProxyReplacement=strict loadBalancer.acceleration=native", "silent"),
    C("CIL042", "1.11", "kubeProxyReplacement=strict tunnel=disabled egressGateway.enabled=true "
      "loadBalancer.acceleration=native", "fire", msg="egress gateway"),
    C("CIL042", "1.18", FULL + " underlayProtocol=ipv6 loadBalancer.acceleration=native", "fire",
      msg="IPv6 underlay"),
    C("CIL042", "1.17", FULL + " underlayProtocol=ipv6 loadBalancer.acceleration=native", "silent"),
    C("CIL042", "1.16", FULL + " loadBalancer.acceleration=native encryption.enabled=true encryption.type=wireguard "
      "encryption.nodeEncryption=true", "fire", sev="warning"),
    # --- 1.4 masquerading ----------------------------------------------------------------------------------
    C("CIL043", "1.14", "bpf.masquerade=true", "fire", sev="warning", msg="Falling back to iptables"),
    C("CIL043", "1.15", "bpf.masquerade=true", "fire", sev="error", msg="unable to initialize BPF masquerade"),
    C("CIL043", "1.18", "bpf.masquerade=true", "fire", sev="error"),
    C("CIL043", "1.19", "bpf.masquerade=true", "silent"),
    C("CIL043", "1.16", FULL + " bpf.masquerade=true", "silent"),
    C("CIL043", "1.16", "bpf.masquerade=true nodePort.enabled=true", "silent"),
    C("CIL044", "1.14", "bpf.masquerade=true", "fire", sev="warning", msg="requires socket-LB"),
    C("CIL044", "1.15", "bpf.masquerade=true", "fire", sev="error"),
    C("CIL044", "1.16", "bpf.masquerade=true", "fire", sev="error"),
    C("CIL044", "1.17", "bpf.masquerade=true", "silent"),
    C("CIL044", "1.13", "bpf.masquerade=true", "silent"),
    C("CIL044", "1.16", "bpf.masquerade=true socketLB.enabled=true", "silent"),
    C("CIL045", "1.14", "bpf.masquerade=true egressMasqueradeInterfaces=eth0", "fire", sev="warning"),
    C("CIL045", "1.15", "bpf.masquerade=true egressMasqueradeInterfaces=eth0", "fire", sev="error"),
    C("CIL045", "1.15", "egressMasqueradeInterfaces=eth0", "silent"),
    C("CIL046", "1.15", "bpf.masquerade=true enableIPv4Masquerade=false", "fire", sev="info"),
    C("CIL046", "1.16", "bpf.masquerade=true enableIPv4Masquerade=false", "fire", sev="error"),
    C("CIL046", "1.16", "bpf.masquerade=true", "silent"),
    C("CIL046", "1.18", "bpf.masquerade=true eni.enabled=true ipam.mode=eni", "fire", msg="BPF masquerade requires"),
    C("CIL047", "1.16", "ipMasqAgent.enabled=true", "fire", msg="BPF ip-masq-agent requires"),
    C("CIL047", "1.11", "ipMasqAgent.enabled=true", "fire", msg='--enable-ipv4-masquerade="true" and'),
    C("CIL047", "1.16", "ipMasqAgent.enabled=true bpf.masquerade=true", "silent"),
    C("CIL048", "1.13", "bpf.masquerade=true ipv6.enabled=true", "fire", msg="not supported for IPv6"),
    C("CIL048", "1.14", "bpf.masquerade=true ipv6.enabled=true", "silent"),
    C("CIL048", "1.15", "bpf.masquerade=true ipv6.enabled=true hostFirewall.enabled=true", "fire",
      msg="along with the host firewall"),
    C("CIL048", "1.16", "bpf.masquerade=true ipv6.enabled=true hostFirewall.enabled=true", "silent"),
    C("CIL048", "1.13", "bpf.masquerade=true ipv6.enabled=true enableIPv6Masquerade=false", "silent"),
    C("CIL049", "1.15", "bpf.masquerade=true enableMasqueradeRouteSource=true", "fire"),
    C("CIL049", "1.14", "bpf.masquerade=true enableMasqueradeRouteSource=true", "silent"),
    C("CIL049", "1.19", "extraConfig.enable-remote-node-masquerade=true", "fire", msg="requires BPF masquerade"),
    C("CIL049", "1.18", "extraConfig.enable-remote-node-masquerade=true", "silent"),
    C("CIL050", "1.16", FULL, "fire", sev="warning"),
    C("CIL050", "1.16", FULL + " bpf.masquerade=true", "silent"),
    C("CIL050", "1.16", FULL + " enableIPv4Masquerade=false", "silent"),
    # --- 1.5 host routing, encryption ----------------------------------------------------------------------
    C("CIL051", "1.16", "", "fire", K, sev="info"),
    C("CIL051", "1.16", FULL + " bpf.masquerade=true", "fire", facts(kernels=("5.4.0",)), sev="warning",
      msg="requires kernel 5.10"),
    C("CIL051", "1.16", FULL, "fire", K, sev="warning", msg="iptables"),
    C("CIL051", "1.16", FULL + " bpf.masquerade=true", "silent", K),
    C("CIL051", "1.16", "bpf.hostLegacyRouting=true", "silent", K),
    C("CIL051", "1.16", FULL + " bpf.masquerade=true", "nc"),
    C("CIL052", "1.16", "encryption.enabled=true encryption.type=wireguard", "fire", facts(kernels=("5.4.0",)),
      msg="WireGuard not supported by the Linux kernel"),
    C("CIL052", "1.16", "encryption.enabled=true encryption.type=wireguard", "silent", K),
    C("CIL052", "1.16", "encryption.enabled=true encryption.type=wireguard", "nc"),
    C("CIL053", "1.13", "encryption.enabled=true encryption.type=wireguard", "fire"),
    C("CIL053", "1.14", "encryption.enabled=true encryption.type=wireguard", "silent"),
    C("CIL053", "1.13", "encryption.enabled=true encryption.type=wireguard l7Proxy=false", "silent"),
    C("CIL054", "1.16", "encryption.enabled=true encryption.type=wireguard extraConfig.enable-ipsec=true", "fire",
      msg="WireGuard (--enable-wireguard) cannot be used with IPsec"),
    C("CIL054", "1.14", "encryption.enabled=true extraConfig.enable-wireguard=true", "fire", msg="IPSec"),
    C("CIL054", "1.16", "encryption.enabled=true encryption.type=wireguard", "silent"),
    C("CIL055", "1.14", "encryption.enabled=true ipv4.enabled=false ipv6.enabled=true", "fire",
      msg="IPSec requires IPv4 addressing"),
    C("CIL055", "1.18", "encryption.enabled=true ipv4.enabled=false ipv6.enabled=true", "silent", K),
    C("CIL055", "1.16", "encryption.enabled=true", "fire", OLD_KERNEL, msg="xfrm state output masks"),
    C("CIL055", "1.16", "encryption.enabled=true " + NATIVE, "nc", K),
    C("CIL055", "1.16", "encryption.enabled=true encryption.ipsec.interface=eth0 " + NATIVE, "silent", K),
    C("CIL056", "1.16", "encryption.enabled=true hostFirewall.enabled=true", "fire", msg="host firewall"),
    C("CIL056", "1.16", "encryption.enabled=true dnsProxy.enableTransparentMode=false", "fire",
      msg="DNS proxy transparent mode"),
    C("CIL056", "1.15", "encryption.enabled=true dnsProxy.enableTransparentMode=false", "silent"),
    C("CIL056", "1.14", "encryption.enabled=true ipam.mode=multi-pool " + NATIVE, "fire", msg="multi-pool"),
    C("CIL056", "1.18", "encryption.enabled=true ipam.mode=multi-pool " + NATIVE, "silent"),
    C("CIL056", "1.16", "encryption.enabled=true localRouterIPv4=169.254.0.1", "fire", msg="local-router"),
    C("CIL056", "1.16", "encryption.enabled=true", "silent"),
    C("CIL057", "1.16", "encryption.enabled=true bandwidthManager.enabled=true", "fire", sev="warning"),
    C("CIL057", "1.16", "encryption.enabled=true cni.chainingMode=generic-veth", "fire"),
    C("CIL057", "1.16", "bandwidthManager.enabled=true", "silent"),
    C("CIL058", "1.19", "encryption.enabled=true encryption.strictMode.ingress.enabled=true", "fire",
      msg="IPSec doesnt support strict ingress encryption"),
    C("CIL058", "1.19", "encryption.enabled=true encryption.type=wireguard encryption.strictMode.ingress.enabled=true "
      + NATIVE, "fire", msg="requires tunneling"),
    C("CIL058", "1.18", "encryption.enabled=true encryption.strictMode.ingress.enabled=true", "silent"),
    C("CIL058", "1.14", "encryption.enabled=true encryption.type=wireguard encryption.strictMode.enabled=true "
      "encryption.strictMode.cidr=fd00::/64", "fire", msg="must be an IPv4 CIDR"),
    C("CIL058", "1.13", "encryption.enabled=true encryption.type=wireguard encryption.strictMode.enabled=true "
      "encryption.strictMode.cidr=fd00::/64", "silent"),
    C("CIL058", "1.16", "encryption.enabled=true encryption.type=wireguard encryption.strictMode.enabled=true "
      "encryption.strictMode.cidr=10.0.0.0/8 ipv6.enabled=true", "fire", sev="warning"),
    # --- 1.6 egress gateway, BGP, L2, bandwidth, host firewall, BIG TCP, netkit, tcx ----------------------------
    C("CIL059", "1.16", "egressGateway.enabled=true", "fire"),
    C("CIL059", "1.16", FULL + " egressGateway.enabled=true bpf.masquerade=true", "silent"),
    C("CIL060", "1.16", "egressGateway.enabled=true identityAllocationMode=kvstore", "fire", K,
      msg="KV store identity allocation mode"),
    C("CIL060", "1.19", "egressGateway.enabled=true identityAllocationMode=kvstore", "fire", K, msg="kvstore identity"),
    C("CIL060", "1.15", "egressGateway.enabled=true", "fire", facts(kernels=("5.1.0",)), msg="kernel 5.2"),
    C("CIL060", "1.16", "egressGateway.enabled=true", "silent", facts(kernels=("5.1.0",))),
    C("CIL060", "1.16", "egressGateway.enabled=true ciliumEndpointSlice.enabled=true", "fire", msg="CiliumEndpointSlice"),
    C("CIL060", "1.15", "egressGateway.enabled=true remoteNodeIdentity=false", "fire", K, msg="remote node identities"),
    C("CIL060", "1.16", "egressGateway.enabled=true remoteNodeIdentity=false", "silent", K),
    C("CIL060", "1.19", "egressGateway.enabled=true underlayProtocol=ipv6", "fire", msg="IPv4 underlay"),
    C("CIL060", "1.16", "", "silent"),
    C("CIL061", "1.14", "l2announcements.enabled=true", "fire", sev="warning"),
    C("CIL061", "1.13", "l2announcements.enabled=true", "silent"),
    C("CIL061", "1.16", FULL + " l2announcements.enabled=true l2announcements.leaseDuration=3s "
      "l2announcements.leaseRenewDeadline=5s", "fire", msg="lease timings"),
    C("CIL061", "1.16", FULL + " l2announcements.enabled=true", "nc"),
    C("CIL061", "1.16", FULL, "silent"),
    C("CIL062", "1.16", "bgp.enabled=true", "fire", msg="no announcements were enabled"),
    C("CIL062", "1.16", "bgp.enabled=true bgp.announce.loadbalancerIP=true", "silent"),
    C("CIL062", "1.16", "bgp.enabled=true bgp.announce.podCIDR=true ipam.mode=crd", "fire",
      msg='not supported with IPAM mode "crd"'),
    C("CIL062", "1.17", "bgp.enabled=true bgp.announce.loadbalancerIP=true", "fire", msg="removed in 1.17"),
    C("CIL062", "1.19", "bgpControlPlane.enabled=true", "nc"),
    C("CIL062", "1.18", "bgpControlPlane.enabled=true", "silent"),
    C("CIL063", "1.16", "bandwidthManager.enabled=true", "fire", facts(kernels=("4.19.0",)), sev="warning"),
    C("CIL063", "1.12", "bandwidthManager=true", "fire", facts(kernels=("4.19.0",))),
    C("CIL063", "1.17", "bandwidthManager.enabled=true", "fire", facts(kernels=("5.0.0",))),
    C("CIL063", "1.18", "bandwidthManager.enabled=true", "silent", facts(kernels=("4.19.0",))),
    C("CIL063", "1.16", "bandwidthManager.enabled=true", "silent", K),
    C("CIL064", "1.16", "bandwidthManager.enabled=true bandwidthManager.bbr=true", "fire", K,
      msg="requires BPF host routing"),
    C("CIL064", "1.16", FULL + " bpf.masquerade=true bandwidthManager.enabled=true bandwidthManager.bbr=true", "fire",
      facts(kernels=("5.10.0",)), msg="needs kernel 5.18"),
    C("CIL064", "1.16", FULL + " bpf.masquerade=true bandwidthManager.enabled=true bandwidthManager.bbr=true",
      "silent", facts(kernels=("6.1.0",))),
    C("CIL064", "1.18", "bandwidthManager.bbrHostNamespaceOnly=true", "fire", msg="without enabling --enable-bbr"),
    C("CIL064", "1.11", "bandwidthManager.bbr=true", "silent", K),
    C("CIL064", "1.12", "bandwidthManager.bbr=true", "fire", K),
    C("CIL065", "1.15", "hostFirewall.enabled=true endpointRoutes.enabled=true remoteNodeIdentity=false devices=eth0",
      "fire"),
    C("CIL065", "1.16", "hostFirewall.enabled=true endpointRoutes.enabled=true remoteNodeIdentity=false devices=eth0",
      "silent"),
    C("CIL065", "1.16", "hostFirewall.enabled=true", "nc"),
    C("CIL066", "1.16", "enableIPv6BIGTCP=true", "fire", K, msg="not supported in tunneling mode"),
    C("CIL066", "1.13", "enableIPv6BIGTCP=true", "fire", K, sev="warning"),
    C("CIL066", "1.12", "enableIPv6BIGTCP=true", "silent", K),
    C("CIL066", "1.16", f"enableIPv4BIGTCP=true {FULL} {NATIVE} bpf.masquerade=true", "fire", K, sev="warning",
      msg="needs kernel 6.3"),
    C("CIL066", "1.16", f"enableIPv6BIGTCP=true {FULL} {NATIVE} bpf.masquerade=true", "nc", K),
    C("CIL066", "1.16", "", "silent", K),
    C("CIL067", "1.16", "bpf.datapathMode=netkit", "fire", K, msg="need kernel 6.7.0"),
    C("CIL067", "1.16", "bpf.datapathMode=foo", "fire", msg="Invalid datapath mode"),
    C("CIL067", "1.15", "bpf.datapathMode=foo", "silent"),
    C("CIL067", "1.19", "bpf.datapathMode=netkit bpf.tproxy=true", "fire", msg=".Values.bpf.tproxy cannot be enabled"),
    C("CIL067", "1.16", "bpf.datapathMode=veth", "silent"),
    C("CIL068", "1.16", "", "nc", facts(kernels=("6.6.0",))),
    C("CIL068", "1.16", "", "silent", K),
    C("CIL068", "1.15", "", "silent", facts(kernels=("6.6.0",))),
    C("CIL068", "1.18", "bpf.enableTCX=false", "nc", K),
    C("CIL068", "1.17", "bpf.enableTCX=false", "silent", K),
    # --- 1.7 IPAM ------------------------------------------------------------------------------------------
    C("CIL069", "1.15", "ipam.mode=cluster-pool-v2beta", "fire", msg="Unknown IPAM backend cluster-pool-v2beta"),
    C("CIL069", "1.14", "ipam.mode=cluster-pool-v2beta " + NATIVE, "silent"),
    C("CIL069", "1.13", "ipam.mode=multi-pool", "fire"),
    C("CIL069", "1.14", "ipam.mode=multi-pool", "silent"),
    C("CIL069", "1.11", "ipam.mode=delegated-plugin", "fire"),
    C("CIL069", "1.16", "ipam.mode=foo", "fire"),
    C("CIL069", "1.16", "ipam.mode=kubernetes", "silent"),
    C("CIL070", "1.16", "ipam.mode=eni ipv6.enabled=true " + NATIVE, "fire", msg="IPv6 cannot be enabled in ENI"),
    C("CIL070", "1.17", "ipam.mode=eni", "fire", sev="error", msg="Cannot specify IPAM mode eni in tunnel mode."),
    C("CIL070", "1.16", "ipam.mode=eni", "fire", sev="warning"),
    C("CIL070", "1.17", "ipam.mode=eni routingMode=native cluster.id=200 cluster.name=c1", "fire", sev="error",
      msg="cluster ID is 128-255"),
    C("CIL070", "1.16", "ipam.mode=eni routingMode=native cluster.id=200 cluster.name=c1", "fire", sev="warning"),
    C("CIL070", "1.17", "cni.chainingMode=aws-cni cluster.id=130 cluster.name=c1", "fire"),
    C("CIL070", "1.17", "ipam.mode=eni routingMode=native cluster.id=5 cluster.name=c1", "silent"),
    C("CIL071", "1.14", "ipam.mode=multi-pool", "fire", msg="Cannot specify IPAM mode multi-pool in tunnel mode."),
    C("CIL071", "1.17", "ipam.mode=multi-pool", "fire"),
    C("CIL071", "1.18", "ipam.mode=multi-pool", "silent"),
    C("CIL071", "1.12", "ipam.mode=cluster-pool-v2beta", "fire"),
    C("CIL071", "1.11", "ipam.mode=cluster-pool-v2beta", "silent"),
    C("CIL071", "1.14", "ipam.mode=multi-pool identityAllocationMode=kvstore " + NATIVE, "fire", msg="kvstore"),
    C("CIL071", "1.14", "ipam.mode=multi-pool " + NATIVE, "silent"),
    C("CIL072", "1.16", "ipam.mode=kubernetes", "fire", facts(node_pod_cidrs=[[], ["10.244.1.0/24"], []]),
      msg="required IPv4 PodCIDR not available"),
    C("CIL072", "1.16", "ipam.mode=kubernetes", "silent", K),
    C("CIL072", "1.16", "ipam.mode=kubernetes", "nc"),
    C("CIL072", "1.16", "", "nc"),
    C("CIL072", "1.16", "ipam.operator.clusterPoolIPv4PodCIDRList={10.244.0.0/16}", "fire", K, sev="warning",
      msg="spec.podCIDR will not match"),
    C("CIL072", "1.16", "ipam.operator.clusterPoolIPv4PodCIDRList={172.20.0.0/16}", "silent", K),
    C("CIL073", "1.16", "", "fire", K, msg="10.96.0.0/12"),
    C("CIL073", "1.16", "ipam.operator.clusterPoolIPv4PodCIDRList={172.20.0.0/16}", "silent", K),
    C("CIL073", "1.16", "ipam.operator.clusterPoolIPv4PodCIDRList={192.168.0.0/16}", "fire", K, msg="node-1 address"),
    C("CIL073", "1.16", "ipam.operator.clusterPoolIPv4PodCIDRList={172.20.0.0/16}", "fire",
      facts(lb_cidrs=["172.20.200.0/24"]), msg="LoadBalancer range"),
    C("CIL073", "1.16", "ipam.mode=kubernetes", "fire", facts(node_pod_cidrs=[["10.96.0.0/24"], ["10.244.1.0/24"], ["10.244.2.0/24"]])),
    C("CIL073", "1.16", "ipam.mode=kubernetes", "silent", K),
    C("CIL073", "1.16", "ipam.operator.clusterPoolIPv4PodCIDRList={172.20.0.0/16}", "nc"),
    C("CIL073", "1.16", "ipam.mode=eni " + NATIVE, "silent", K),
    C("CIL074", "1.14", "ipam.operator.clusterPoolIPv4PodCIDR=10.0.0.0/8", "fire", msg="removed, use"),
    C("CIL074", "1.13", "ipam.operator.clusterPoolIPv4PodCIDR=10.0.0.0/8", "silent"),
    C("CIL074", "1.14", "ipam.operator.clusterPoolIPv4PodCIDRList={10.0.0.0/8}", "silent"),
    C("CIL075", "1.13", "ipam.mode=delegated-plugin", "fire", msg="--local-router-ipv4 must be provided"),
    C("CIL075", "1.12", "ipam.mode=delegated-plugin", "silent"),
    C("CIL075", "1.16", "localRouterIPv4=169.254.0.1", "fire", msg="in tunnel mode"),
    C("CIL075", "1.16", "localRouterIPv4=169.254.0.1 endpointRoutes.enabled=true " + NATIVE, "silent"),
    C("CIL076", "1.16", "ipv4.enabled=false", "fire", msg="Either IPv4 or IPv6 addressing must be enabled"),
    C("CIL076", "1.16", "nat46x64Gateway.enabled=true", "fire", msg="requires both --enable-ipv4 and --enable-ipv6"),
    C("CIL076", "1.12", "nat46x64Gateway.enabled=true", "silent"),
    C("CIL076", "1.16", "ipv6.enabled=true", "nc"),
    C("CIL076", "1.16", "", "silent"),
    # --- 1.8 existing CNI, chaining, Istio -------------------------------------------------------------------
    C("CIL077", "1.16", "", "fire", FLANNEL, msg="flannel is still installed"),
    C("CIL077", "1.16", "", "fire", facts(cni="calico")),
    C("CIL077", "1.16", "", "silent", FLANNEL, ctx=ctx(migration="rolling")),
    C("CIL077", "1.16", "", "silent", FLANNEL, ctx=ctx(old_cni_present=False)),
    C("CIL077", "1.16", "cni.chainingMode=generic-veth cni.exclusive=false", "silent", FLANNEL),
    C("CIL077", "1.16", "", "silent", K),
    C("CIL077", "1.16", "", "nc"),
    C("CIL077", "1.16", "", "nc", facts(cni="unknown")),
    C("CIL078", "1.16", "cni.chainingMode=generic-veth", "fire", msg="cni.exclusive=true"),
    C("CIL078", "1.16", "cni.chainingMode=aws-cni cni.exclusive=false", "fire", msg="routingMode=native"),
    C("CIL078", "1.16", "cni.chainingMode=aws-cni cni.exclusive=false routingMode=native enableIPv4Masquerade=false "
      "endpointRoutes.enabled=true", "silent"),
    C("CIL078", "1.16", "cni.chainingMode=none", "silent"),
    C("CIL079", "1.16", FULL, "fire", facts(istio=True), msg="bypasses the sidecar"),
    C("CIL079", "1.16", FULL + " socketLB.hostNamespaceOnly=true", "silent", facts(istio=True)),
    C("CIL079", "1.16", FULL, "silent", K),
    C("CIL079", "1.16", "", "fire", facts(istio=True, istio_evidence=("DaemonSet istio-system/istio-cni-node",)),
      msg="Istio CNI"),
    C("CIL079", "1.16", "cni.exclusive=false", "silent", facts(istio=True)),
    C("CIL079", "1.16", FULL, "nc"),
    # --- 1.9 chart-level and the rest ---------------------------------------------------------------------------
    C("CIL080", "1.13", "ingressController.enabled=true", "fire", msg="either 'partial' or 'strict'"),
    C("CIL080", "1.12", "ingressController.enabled=true", "silent"),
    C("CIL080", "1.14", "ingressController.enabled=true kubeProxyReplacement=disabled", "fire",
      msg="explicitly set to 'false' or 'true'"),
    C("CIL080", "1.16", "ingressController.enabled=true l7Proxy=false", "fire", msg="l7Proxy to be set to 'true'"),
    C("CIL080", "1.16", "ingressController.enabled=true ingressController.service.externalTrafficPolicy=Foo", "fire",
      msg="externalTrafficPolicy"),
    C("CIL080", "1.16", FULL + " ingressController.enabled=true", "silent"),
    C("CIL080", "1.16", FULL + " gatewayAPI.enabled=true", "nc"),
    C("CIL081", "1.16", "hubble.enabled=false hubble.relay.enabled=true", "fire", msg="Hubble Relay requires"),
    C("CIL081", "1.16", "hubble.ui.enabled=true", "fire", msg="Hubble UI requires"),
    C("CIL081", "1.16", "hubble.ui.enabled=true hubble.relay.enabled=true", "silent"),
    C("CIL081", "1.16", "hubble.tls.auto.method=certmanager", "fire", msg="certManagerIssuerRef"),
    C("CIL082", "1.16", "cluster.name=", "fire", msg="cannot be empty"),
    C("CIL082", "1.16", "cluster.name=" + "a" * 33, "fire", msg="more than 32 characters"),
    C("CIL082", "1.15", "cluster.name=" + "a" * 33, "silent"),
    C("CIL082", "1.16", "cluster.name=Bad_Name", "fire", msg="must match"),
    C("CIL082", "1.16", "cluster.id=5", "fire", msg="cannot use default value with cluster.id != 0"),
    C("CIL082", "1.16", "cluster.name=c1 cluster.id=300", "fire", msg="must be in range 0..255"),
    C("CIL082", "1.16", "cluster.name=c1 cluster.id=300 clustermesh.maxConnectedClusters=511", "silent"),
    C("CIL082", "1.15", "cluster.name=c1 clustermesh.maxConnectedClusters=100", "fire", msg="255 or 511"),
    C("CIL082", "1.14", "cluster.name=c1 clustermesh.maxConnectedClusters=100", "silent"),
    C("CIL082", "1.16", "cluster.name=c1 cluster.id=1", "silent"),
    C("CIL083", "1.16", "ciliumEndpointSlice.enabled=true disableEndpointCRD=true", "fire", msg="disableEndpointCRD"),
    C("CIL083", "1.13", "enableCiliumEndpointSlice=true disableEndpointCRD=true", "silent"),
    C("CIL083", "1.14", "enableCiliumEndpointSlice=true disableEndpointCRD=true", "fire"),
    C("CIL083", "1.18", "enableCiliumEndpointSlice=true", "fire", msg="has been removed in v1.18"),
    C("CIL083", "1.17", "enableCiliumEndpointSlice=true", "silent"),
    C("CIL083", "1.18", "ciliumEndpointSlice.enabled=true ciliumEndpointSlice.sliceMode=identity", "fire"),
    C("CIL084", "1.16", "installIptablesRules=false", "fire", msg="L7 proxy requires iptables rules"),
    C("CIL084", "1.16", "installIptablesRules=false l7Proxy=false", "silent"),
    C("CIL085", "1.16", "identityAllocationMode=foo", "fire", msg="It must be one of kvstore or crd"),
    C("CIL085", "1.16", "identityAllocationMode=doublewrite-readcrd", "fire"),
    C("CIL085", "1.17", "identityAllocationMode=doublewrite-readcrd etcd.enabled=true", "silent"),
    C("CIL085", "1.16", "identityAllocationMode=kvstore", "fire", msg="etcd"),
    C("CIL085", "1.16", "identityAllocationMode=kvstore etcd.endpoints={https://etcd:2379}", "silent"),
    C("CIL086", "1.18", "hostPort.enabled=true", "fire", sev="warning"),
    C("CIL086", "1.17", "hostPort.enabled=true", "silent"),
    C("CIL086", "1.19", "nodePort.enabled=true", "fire", msg="removed in 1.19"),
    C("CIL086", "1.19", FULL + " nodePort.enabled=true", "silent"),
    C("CIL087", "1.16", "remoteNodeIdentity=false", "fire", sev="error", msg="has been removed in v1.16"),
    C("CIL087", "1.15", "remoteNodeIdentity=false", "fire", sev="info", msg="deprecated since v1.15"),
    C("CIL087", "1.14", "remoteNodeIdentity=false", "silent"),
    C("CIL087", "1.12", "nativeRoutingCIDR=10.0.0.0/8", "fire", sev="warning", msg="ignores it silently"),
    C("CIL087", "1.11", "nativeRoutingCIDR=10.0.0.0/8", "fire", sev="info"),
    C("CIL087", "1.17", "encryption.keyFile=keys", "fire", sev="error", msg="the chart fails on it"),
    C("CIL087", "1.13", "bandwidthManager=true", "fire", sev="warning"),
    C("CIL087", "1.16", "", "silent"),
    C("CIL088", "1.18", "", "fire", facts(kernels=("5.4.0-150-generic",)), sev="error", msg="bpf_redirect_neigh"),
    C("CIL088", "1.18", "", "silent", facts(kernels=("5.10.0",))),
    C("CIL088", "1.17", "", "fire", facts(kernels=("5.3.0",)), sev="warning", msg="documented minimum kernel 5.4"),
    C("CIL088", "1.16", "", "fire", facts(kernels=("5.1.0",)), sev="error", msg="large programs"),
    C("CIL088", "1.14", "", "fire", facts(kernels=("4.15.0",)), sev="warning"),
    C("CIL088", "1.11", "", "fire", facts(kernels=("4.4.0",)), sev="error", msg="minimal supported kernel version"),
    C("CIL088", "1.13", "", "silent", facts(kernels=("4.15.0",))),
    C("CIL088", "1.18", "", "silent", facts(kernels=("4.18.0-372.9.1.el8.x86_64",))),
    C("CIL088", "1.16", "", "fire", facts(kernels=("4.18.0-305.el8.x86_64",)), sev="error"),
    C("CIL088", "1.16", "", "nc"),
    C("CIL089", "1.16", "", "nc", K),
    C("CIL090", "1.16", "vtep.enabled=true vtep.endpoint=10.0.0.1 vtep.cidr=10.1.0.0/24", "fire",
      msg="same number of entries"),
    C("CIL090", "1.15", "vtep.enabled=true vtep.endpoint=10.0.0.1 vtep.cidr=10.1.0.0/24 vtep.mac=aa:bb:cc:dd:ee:ff",
      "fire", facts(kernels=("5.1.0",)), msg="large programs"),
    C("CIL090", "1.16", "vtep.enabled=true vtep.endpoint=10.0.0.1 vtep.cidr=10.1.0.0/24 vtep.mac=aa:bb:cc:dd:ee:ff",
      "silent", facts(kernels=("5.1.0",))),
    C("CIL090", "1.16", "vtep.enabled=true vtep.endpoint=10.0.0.x vtep.cidr=10.1.0.0/24 vtep.mac=aa:bb:cc:dd:ee:ff",
      "fire", msg="invalid VTEP IP"),
    C("CIL090", "1.11", "vtep.enabled=true vtep.endpoint=10.0.0.1", "silent"),
    C("CIL090", "1.12", "vtep.enabled=true vtep.endpoint=10.0.0.1", "fire"),
    C("CIL091", "1.14", "highScaleIPcache.enabled=true", "fire", msg="requires native routing"),
    C("CIL091", "1.13", "highScaleIPcache.enabled=true", "silent"),
    C("CIL091", "1.18", "highScaleIPcache.enabled=true", "fire", msg="removed in 1.18"),
    C("CIL091", "1.16", f"highScaleIPcache.enabled=true {FULL} {NATIVE} wellKnownIdentities.enabled=true "
      "loadBalancer.mode=dsr loadBalancer.dsrDispatch=geneve tunnelProtocol=geneve", "silent"),
    C("CIL092", "1.16", FULL + " cgroup.autoMount.enabled=false", "nc", K),
    C("CIL092", "1.16", FULL, "silent", K),
    C("CIL093", "1.16", FULL, "nc", K),
    C("CIL093", "1.16", "", "silent", K),
    C("CIL094", "1.16", FULL + " loadBalancer.mode=dsr " + NATIVE, "nc", K),
    C("CIL094", "1.16", FULL + " loadBalancer.mode=dsr devices=eth0 " + NATIVE, "silent", K),
    C("CIL095", "1.19", FULL + " encryption.enabled=true bpf.masquerade=true", "nc", K),
    C("CIL095", "1.18", FULL + " encryption.enabled=true bpf.masquerade=true", "silent", K),
    C("CIL095", "1.19", FULL + " encryption.enabled=true bpf.masquerade=true bpf.hostLegacyRouting=true", "silent", K),
    C("CIL096", "1.16", "encryption.enabled=true encryption.type=wireguard hostFirewall.enabled=true", "fire",
      sev="warning"),
    C("CIL096", "1.16", "encryption.enabled=true encryption.type=wireguard clustermesh.useAPIServer=true", "nc"),
    C("CIL096", "1.16", "encryption.enabled=true encryption.type=wireguard", "silent"),
    # --- cni-migrate's own rules -----------------------------------------------------------------------------
    C("CNM001", "1.16", "", "fire", facts(releases=[("kube-system", "cilium", 3)]), ctx=ctx(helm_action="install"),
      msg="cannot re-use a name that is still in use"),
    C("CNM001", "1.16", "", "silent", facts(releases=[("kube-system", "cilium", 3)]), ctx=ctx(helm_action="upgrade")),
    C("CNM001", "1.16", "", "silent", facts(releases=[("cilium", "cilium", 1)]), ctx=ctx(helm_action="install")),
    C("CNM001", "1.16", "", "nc", facts(releases=UNKNOWN), ctx=ctx(helm_action="install")),
    C("CNM001", "1.16", "", "silent", facts(releases=[("kube-system", "cilium", 3)])),
    C("CNM002", "1.16", "", "fire", K, ctx=ctx(helm_action="upgrade"), msg="has no deployed releases"),
    C("CNM002", "1.16", "", "silent", K, ctx=ctx(helm_action="upgrade", upgrade_install=True)),
    C("CNM002", "1.16", "", "silent", facts(releases=[("kube-system", "cilium", 3)]), ctx=ctx(helm_action="upgrade")),
    C("CNM003", "1.16", "", "fire", facts(cni="calico"), msg="cilium_host"),
    C("CNM003", "1.16", "", "fire", facts(cni="calico", calico_autodetect="firstFound=true")),
    C("CNM003", "1.16", "", "fire", facts(cni="calico", calico_autodetect="interface=.*")),
    C("CNM003", "1.16", "", "silent", facts(cni="calico", calico_autodetect="interface=eth0")),
    C("CNM003", "1.16", "", "silent", facts(cni="calico", calico_autodetect="kubernetes-internal-ip")),
    C("CNM003", "1.16", "", "silent", facts(cni="calico"), ctx=ctx(old_cni_present=False)),
    C("CNM003", "1.16", "", "silent", FLANNEL),
    C("CNM003", "1.16", "", "silent", facts(cni="canal")),
    C("CNM004", "1.16", "ipam.mode=kubernetes", "fire", FLANNEL, ctx=ctx(migration="rolling"), msg="same ranges"),
    C("CNM004", "1.16", "", "silent", FLANNEL, ctx=ctx(migration="rolling")),
    C("CNM004", "1.16", "ipam.mode=kubernetes", "silent", facts(cni="calico"), ctx=ctx(migration="rolling")),
    C("CNM005", "1.16", "ipam.operator.clusterPoolIPv4PodCIDRList={10.244.128.0/17}", "fire", FLANNEL,
      ctx=ctx(migration="rolling")),
    C("CNM005", "1.16", "ipam.operator.clusterPoolIPv4PodCIDRList={172.20.0.0/16}", "silent", FLANNEL,
      ctx=ctx(migration="rolling")),
    C("CNM005", "1.16", "ipam.mode=kubernetes", "fire", facts(cni="calico", calico_pools=("10.244.0.0/16",))),
    C("CNM005", "1.16", "", "silent", K),
    C("CNM006", "1.16", FULL + " bpf.masquerade=true", "fire", FLANNEL, ctx=ctx(migration="rolling"),
      msg="BPF host routing"),
    C("CNM006", "1.16", FULL + " bpf.masquerade=true bpf.hostLegacyRouting=true", "silent", FLANNEL,
      ctx=ctx(migration="rolling")),
    C("CNM006", "1.16", "", "silent", FLANNEL, ctx=ctx(migration="rolling")),
    C("CNM006", "1.16", FULL + " bpf.masquerade=true", "nc", facts(cni="flannel", nodes_known=False),
      ctx=ctx(migration="rolling")),
    C("CNM007", "1.16", "tunnelPort=8473", "fire", FLANNEL, ctx=ctx(migration="rolling"), sev="warning"),
    C("CNM007", "1.16", "tunnelProtocol=geneve", "silent", FLANNEL, ctx=ctx(migration="rolling")),
    C("CNM007", "1.16", "", "silent", FLANNEL, ctx=ctx(migration="rolling")),
    C("CNM008", "1.16", "k8sServiceHost=192.168.1.10 k8sServicePort=8443", "fire", K, msg="192.168.1.10:6443"),
    C("CNM008", "1.16", "k8sServiceHost=192.168.1.10 k8sServicePort=6443", "silent", K),
    C("CNM008", "1.16", "k8sServiceHost=api.example k8sServicePort=8443", "silent", K),
    C("CNM008", "1.16", "k8sServiceHost=192.168.1.10 k8sServicePort=8443", "nc"),
    C("CNM011", "1.16", "ipam.operator.clusterPoolIPv4PodCIDRList={172.20.0.0/16}", "fire", K, sev="warning",
      msg="clusterCIDR is 10.244.0.0/16"),
    C("CNM011", "1.16", "ipam.operator.clusterPoolIPv4PodCIDRList={10.244.128.0/17}", "silent", K),
    C("CNM011", "1.16", "ipam.operator.clusterPoolIPv4PodCIDRList={172.20.0.0/16} kubeProxyReplacement=true", "silent",
      K),
    C("CNM011", "1.16", "ipam.operator.clusterPoolIPv4PodCIDRList={172.20.0.0/16}", "silent", K,
      ctx=ctx(kube_proxy_present=False)),
    C("CNM011", "1.16", "ipam.operator.clusterPoolIPv4PodCIDRList={172.20.0.0/16}", "nc"),
    C("CNM009", "1.16", "", "fire", ctx=ctx(reuse_values=True), sev="info"),
    C("CNM009", "1.16", "", "silent"),
    C("CNM010", "1.20.1", "", "fire", sev="info"),
    C("CNM010", "1.19", "", "silent"),
]  # fmt: skip


def _check(case: C) -> None:
    facts_obj = case.facts.build() if case.facts is not None else None
    report = run(case.vals, case.version, facts_obj, **dict(case.ctx))
    found = [f for f in report.findings if f.id == case.rule]
    nc = [n for n in report.not_checked if n.id == case.rule]
    if case.expect == "fire":
        assert found, f"{case.rule} did not fire; findings: {report.ids()}; not checked: {[n.id for n in nc]}"
        if case.sev:
            assert any(f.severity == case.sev for f in found), [f.severity for f in found]
        if case.msg:
            assert any(case.msg in f.message for f in found), [f.message for f in found]
        for f in found:
            assert f.fix and f.reference.startswith("https://"), f
    elif case.expect == "silent":
        assert not found, [f.message for f in found]
        assert not nc, nc
    else:
        assert nc, f"{case.rule} not reported as not checked; findings: {[f.message for f in found]}"
        assert all(nc[0].missing), nc


@pytest.mark.parametrize("case", CASES, ids=str)
def test_rule_case(case: C) -> None:
    _check(case)


def _minor(version: str) -> int:
    return int(version.split(".")[1])


@pytest.mark.parametrize("rule_id", sorted(REGISTRY))
def test_every_rule_has_cases(rule_id: str) -> None:
    rule = REGISTRY[rule_id]
    cases = [c for c in CASES if c.rule == rule_id]
    fires = [c for c in cases if c.expect in ("fire", "nc")]
    silents = [c for c in cases if c.expect == "silent"]
    assert fires, f"{rule_id}: no case fires it"
    if rule_id != "CIL089":  # needs the kernel build configuration, never among the facts
        assert silents, f"{rule_id}: no case keeps it silent"
    lo, hi = rule.versions.lo, rule.versions.hi
    if lo > FIRST:
        assert any(_minor(c.version) == lo for c in fires), f"{rule_id}: no firing case at its first version 1.{lo}"
        assert any(_minor(c.version) == lo - 1 for c in silents), f"{rule_id}: no silent case at 1.{lo - 1}"
    if hi is not None and hi < LAST:
        assert any(_minor(c.version) == hi for c in fires), f"{rule_id}: no firing case at its last version 1.{hi}"
        assert any(_minor(c.version) == hi + 1 for c in silents), f"{rule_id}: no silent case at 1.{hi + 1}"


def test_catalog_ids_are_all_registered() -> None:
    expected = {f"CIL{n:03d}" for n in range(1, 97)}
    assert expected <= set(REGISTRY), sorted(expected - set(REGISTRY))
    own = sorted(r for r in REGISTRY if not r.startswith("CIL"))
    assert all(r.startswith("CNM") for r in own)


def test_rules_are_declarative_units() -> None:
    for rid, rule in REGISTRY.items():
        assert rule.title and rule.fix, rid
        assert rule.severity in ("error", "warning", "info"), rid
        for minor in range(FIRST, LAST + 1):
            assert rule.reference(minor).startswith("https://"), rid
