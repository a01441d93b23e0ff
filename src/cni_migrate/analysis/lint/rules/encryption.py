"""Catalog 1.5: host routing, encryption (CIL051-CIL058)."""

from __future__ import annotations

from collections.abc import Iterator

from cni_migrate.analysis.cidrs import try_parse
from cni_migrate.analysis.lint.factview import KERNELS
from cni_migrate.analysis.lint.rules.base import Ctx, Hit, Unknown, docs, old_kernels, rule, src


@rule(
    "CIL051",
    "BPF host routing falls back to legacy host routing",
    severity="warning",
    path="bpf.hostLegacyRouting",
    fix="For BPF host routing: kernel 5.10+, kubeProxyReplacement=true, bpf.masquerade=true, no IPsec (<=1.18), no "
    "CNI chaining; or accept legacy routing (set bpf.hostLegacyRouting=true to make it explicit)",
    ref=src("KPR"),
    facts=(KERNELS,),
)
def cil051(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.host_legacy_routing_set:
        return
    if d.host_routing == "unknown":
        raise Unknown(KERNELS, detail="BPF host routing needs kernel 5.10 on every node")
    if d.host_routing != "legacy":
        return
    reasons = d.host_routing_reasons
    # Severity by cause: a warning when the configuration otherwise asks for the fast path (full kube-proxy
    # replacement), info for the default configuration, which never had BPF host routing.
    wanted = d.kpr_full
    kernel = next((r for r in reasons if r.startswith("kernel")), None)
    if kernel and c.m <= 19:
        yield Hit(
            "BPF host routing requires kernel 5.10 or newer. Falling back to legacy host routing "
            f"(enable-host-legacy-routing=true): {kernel}",
            severity="warning" if wanted else "info",
        )
    other = [r for r in reasons if not r.startswith("kernel")]
    if other:
        yield Hit(
            "BPF host routing is not used, traffic goes through the host stack (legacy host routing): "
            + "; ".join(other),
            severity="warning" if wanted else "info",
        )


@rule(
    "CIL052",
    "WireGuard needs kernel support (5.6+ or the module)",
    severity="error",
    path="encryption.type",
    fix="Run kernel 5.6+ (or install the WireGuard module)",
    ref=src("WG"),
    facts=(KERNELS,),
)
def cil052(c: Ctx) -> Iterator[Hit]:
    if c.d.enc == "wireguard" and (old := old_kernels(c, (5, 6, 0))):
        tail = "" if c.m >= 17 else ", or set enable-wireguard-userspace-fallback=true"
        yield Hit(
            "WireGuard not supported by the Linux kernel (netlink: operation not supported). Please upgrade your "
            f"kernel, manually install the kernel module (https://www.wireguard.com/install/){tail}: {old[0]} (unless "
            "those nodes have the WireGuard module)",
            subjects=old[1],
        )


@rule(
    "CIL053",
    "WireGuard is incompatible with the L7 proxy before 1.14",
    severity="error",
    versions="1.11-1.13",
    path="l7Proxy",
    fix="Set l7Proxy=false or upgrade to Cilium 1.14+",
    ref=src("DM"),
)
def cil053(c: Ctx) -> Iterator[Hit]:
    if c.d.enc == "wireguard" and c.d.l7_proxy:
        yield Hit("Wireguard (--enable-wireguard) is not compatible with L7 proxy (--enable-l7-proxy)")


@rule(
    "CIL054",
    "WireGuard and IPsec cannot both be enabled",
    severity="error",
    path="extraConfig",
    fix="Choose one encryption type (encryption.type) and remove enable-ipsec / enable-wireguard from extraConfig",
    ref=src("DM"),
)
def cil054(c: Ctx) -> Iterator[Hit]:
    wg = c.d.enc == "wireguard" or c.v.flag("extraConfig.enable-wireguard")
    ipsec = c.d.enc == "ipsec" or c.v.flag("extraConfig.enable-ipsec")
    if wg and ipsec:
        ipsec_word = "IPSec" if c.m <= 14 else "IPsec"
        wg_word = "Wireguard" if c.m <= 14 else "WireGuard"
        yield Hit(f"{wg_word} (--enable-wireguard) cannot be used with {ipsec_word} (--enable-ipsec)")


@rule(
    "CIL055",
    "IPsec prerequisites (IPv4, kernel 4.19 with tunnels, an encryption interface)",
    severity="error",
    path="encryption.type",
    fix="Enable IPv4, run kernel 4.19+, or set encryption.ipsec.interface",
    ref=src("DM"),
    facts=(KERNELS, "default-route device on nodes"),
)
def cil055(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.enc != "ipsec":
        return
    if not d.ipv4 and 14 <= c.m <= 17:
        yield Hit('IPSec requires IPv4 addressing to be enabled (--enable-ipv4="true")', path="ipv4.enabled")
    if d.routing == "tunnel" and (old := old_kernels(c, (4, 19, 0))):
        yield Hit(
            f"IPSec with tunneling requires support for xfrm state output masks (Linux 4.19 or later).: {old[0]}",
            subjects=old[1],
        )
    has_iface = c.v.text("encryption.ipsec.interface") or c.v.text("encryption.interface")
    if d.routing == "native" and not has_iface and d.ipam != "eni":
        c.missing(
            "default-route device on nodes",
            detail="without encryption.ipsec.interface the agent uses the default-route device ('Ipsec default "
            'interface lookup failed, consider "encrypt-interface" ...\'); node routes are not among the facts',
        )


@rule(
    "CIL056",
    "IPsec conflicts (host firewall, DNS proxy transparent mode, multi-pool, local router IPs)",
    severity="error",
    path="encryption.type",
    fix="Drop the conflicting feature; keep dnsProxy.enableTransparentMode=true",
    ref=src("DM"),
)
def cil056(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.enc != "ipsec":
        return
    if c.v.flag("hostFirewall.enabled"):
        yield Hit("IPSec cannot be used with the host firewall.", path="hostFirewall.enabled")
    compat_default = not (d.upgrade_compat and d.upgrade_compat < (1, 12))
    if c.m >= 16 and d.l7_proxy and not c.v.flag("dnsProxy.enableTransparentMode", compat_default):
        yield Hit(
            'IPSec requires DNS proxy transparent mode to be enabled (--dnsproxy-enable-transparent-mode="true")',
            path="dnsProxy.enableTransparentMode",
        )
    if (d.ipam == "multi-pool" and 14 <= c.m <= 17) or (d.ipam == "cluster-pool-v2beta" and 12 <= c.m <= 14):
        yield Hit(f"Cannot specify IPAM mode {d.ipam} with enable-ipsec.", path="ipam.mode")
    if c.v.text("localRouterIPv4") or c.v.text("localRouterIPv6"):
        yield Hit("Cannot specify local-router-ipv4 or local-router-ipv6 with enable-ipsec.", path="localRouterIPv4")


@rule(
    "CIL057",
    "IPsec limitations (bandwidth manager, chaining, IPv6-only, node count)",
    severity="warning",
    path="encryption.type",
    fix="Avoid the combination",
    ref=docs("security/network/encryption-ipsec"),
)
def cil057(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.enc != "ipsec":
        return
    if c.v.flag("bandwidthManager.enabled"):
        yield Hit(
            "The bandwidth manager cannot be used with IPSec. Disabling the bandwidth manager.",
            path="bandwidthManager.enabled",
        )
    if d.chaining:
        yield Hit(f"IPsec is not supported with CNI chaining ({d.chaining})", path="cni.chainingMode")
    if d.ipv6 and not d.ipv4:
        yield Hit("IPsec is not supported on IPv6-only clusters", path="ipv6.enabled")
    if c.f.has_facts:
        try:
            if c.f.node_count() > 65535:
                yield Hit("IPsec supports at most 65535 nodes")
        except Unknown:
            pass


@rule(
    "CIL058",
    "Encryption strict mode requirements",
    severity="error",
    versions="1.14+",
    path="encryption.strictMode.cidr",
    fix="Strict ingress encryption: WireGuard with tunnel routing (1.19+); strict-mode CIDR must be IPv4",
    ref=src("DD"),
)
def cil058(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if c.m >= 19 and c.v.flag("encryption.strictMode.ingress.enabled"):
        if d.enc == "ipsec":
            yield Hit("IPSec doesnt support strict ingress encryption.", path="encryption.strictMode.ingress.enabled")
        if d.routing != "tunnel":
            yield Hit(
                "Strict ingress encryption requires tunneling to be enabled.",
                path="encryption.strictMode.ingress.enabled",
            )
    strict = c.v.flag("encryption.strictMode.enabled") or c.v.flag("encryption.strictMode.egress.enabled")
    if not strict:
        return
    for path in ("encryption.strictMode.cidr", "encryption.strictMode.egress.cidr"):
        text = c.v.text(path)
        if text:
            c.literal(path)
            net = try_parse(text)
            if net is None or net.version != 4:
                yield Hit("encryption-strict-mode-cidr must be an IPv4 CIDR", path=path)
    if d.ipv6:
        yield Hit(
            "WireGuard encryption strict mode only support IPv4. IPv6 traffic is not protected and can be leaked.",
            severity="warning",
            path="ipv6.enabled",
        )
