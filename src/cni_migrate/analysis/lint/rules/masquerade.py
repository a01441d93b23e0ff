"""Catalog 1.4: masquerading, iptables vs BPF, ip-masq-agent (CIL043-CIL050)."""

from __future__ import annotations

from collections.abc import Iterator

from cni_migrate.analysis.lint.rules.base import Ctx, Hit, docs, rule, src


@rule(
    "CIL043",
    "BPF masquerading needs NodePort (kube-proxy replacement)",
    severity="error",
    versions="1.11-1.18",
    path="bpf.masquerade",
    fix="kubeProxyReplacement=true (or nodePort.enabled=true up to 1.18), or bpf.masquerade=false",
    ref=src("DD"),
)
def cil043(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if not (d.bpf_masq and (d.v4masq or d.v6masq) and not d.node_port):
        return
    if c.m <= 14:
        yield Hit(
            'BPF masquerade requires NodePort (--enable-node-port="true"). Falling back to iptables-based '
            "masquerading (this also forces legacy host routing)",
            severity="warning",
        )
    else:
        yield Hit(
            'unable to initialize BPF masquerade support: BPF masquerade requires NodePort (--enable-node-port="true")'
        )


@rule(
    "CIL044",
    "BPF masquerading with tunnel routing needs socket-LB (1.14-1.16)",
    severity="error",
    versions="1.14-1.16",
    path="bpf.masquerade",
    fix="Enable socket-LB (kubeProxyReplacement=true or socketLB.enabled=true) or disable bpf.masquerade",
    ref=src("DD", since=14),
)
def cil044(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.bpf_masq and d.routing == "tunnel" and not d.socket_lb:
        yield Hit(
            'BPF masquerade requires socket-LB (--bpf-lb-sock="false")', severity="warning" if c.m == 14 else None
        )


@rule(
    "CIL045",
    "BPF masquerading does not take egressMasqueradeInterfaces",
    severity="error",
    path="egressMasqueradeInterfaces",
    fix="Use devices instead of egressMasqueradeInterfaces",
    ref=src("DD"),
)
def cil045(c: Ctx) -> Iterator[Hit]:
    if c.d.bpf_masq and c.v.text("egressMasqueradeInterfaces"):
        yield Hit(
            "BPF masquerade does not allow to specify devices via --egress-masquerade-interfaces (use --devices "
            "instead)" + (" - falling back to iptables masquerading" if c.m <= 14 else ""),
            severity="warning" if c.m <= 14 else None,
        )


@rule(
    "CIL046",
    "BPF masquerading with both masquerade families disabled",
    severity="error",
    path="bpf.masquerade",
    fix="Enable enableIPv4Masquerade (or enableIPv6Masquerade), or turn off bpf.masquerade",
    ref=src("DD"),
)
def cil046(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.bpf_masq and not d.v4masq and not d.v6masq:
        if c.m <= 15:
            yield Hit(
                'Auto-disabling "enable-bpf-masquerade" feature since IPv4 and IPv6 masquerading are disabled',
                severity="info",
            )
        else:
            yield Hit('BPF masquerade requires (--enable-ipv4-masquerade="true" or --enable-ipv6-masquerade="true")')


@rule(
    "CIL047",
    "ip-masq-agent needs BPF masquerading",
    severity="error",
    path="ipMasqAgent.enabled",
    fix="Set bpf.masquerade=true and keep a masquerade family enabled",
    ref=src("DD"),
)
def cil047(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if not d.ip_masq_agent:
        return
    if c.m == 11:
        if not (d.bpf_masq and d.v4masq):
            yield Hit('BPF ip-masq-agent requires --enable-ipv4-masquerade="true" and --enable-bpf-masquerade="true"')
        if not d.ipv4:
            yield Hit('BPF ip-masq-agent requires IPv4 support (--enable-ipv4="true")')
    elif not (d.bpf_masq and (d.v4masq or d.v6masq)):
        yield Hit(
            'BPF ip-masq-agent requires (--enable-ipv4-masquerade="true" or --enable-ipv6-masquerade="true") and '
            '--enable-bpf-masquerade="true"'
        )


@rule(
    "CIL048",
    "IPv6 BPF masquerading is unsupported (<=1.13; with the host firewall 1.14-1.15)",
    severity="error",
    versions="1.11-1.15",
    path="enableIPv6Masquerade",
    fix="enableIPv6Masquerade=false (iptables masquerading for IPv6 is fine)",
    ref=src("DM"),
)
def cil048(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if not (d.bpf_masq and d.v6masq):
        return
    if c.m <= 13:
        yield Hit(
            "BPF masquerade is not supported for IPv6. (enableIPv6Masquerade defaults to true, so enabling IPv6 with "
            "bpf.masquerade is enough to trigger it)"
        )
    elif c.v.flag("hostFirewall.enabled"):
        yield Hit("IPv6 BPF masquerade is not supported along with the host firewall.")


@rule(
    "CIL049",
    "Masquerade-to-route-source and remote-node masquerading vs BPF masquerading",
    severity="error",
    versions="1.15+",
    path="enableMasqueradeRouteSource",
    fix="Pick one: BPF masquerading or masquerading to the route source",
    ref=src("DD"),
)
def cil049(c: Ctx) -> Iterator[Hit]:
    if c.d.bpf_masq and c.v.flag("enableMasqueradeRouteSource"):
        yield Hit(
            'BPF masquerading to route source (--enable-masquerade-to-route-source="true") currently not supported '
            'with BPF-based masquerading (--enable-bpf-masquerade="true")'
        )
    if c.m >= 19 and c.v.flag("extraConfig.enable-remote-node-masquerade") and not c.d.bpf_masq:
        yield Hit(
            "Option enable-remote-node-masquerade requires BPF masquerade to be enabled (enable-bpf-masquerade)",
            path="extraConfig.enable-remote-node-masquerade",
        )


@rule(
    "CIL050",
    "Full kube-proxy replacement with iptables masquerading",
    severity="warning",
    path="bpf.masquerade",
    fix="Set bpf.masquerade=true",
    ref=docs("network/kubernetes/kubeproxy-free"),
)
def cil050(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.kpr_full and (d.v4masq or d.v6masq) and not d.bpf_masq:
        yield Hit(
            "masquerading by iptables next to BPF NodePort SNAT risks port collisions and dropped NodePort "
            "connections, and prevents BPF host routing"
        )
