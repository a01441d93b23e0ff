"""Catalog 1.3: service load-balancing mode, DSR dispatch, Maglev, XDP acceleration (CIL030-CIL042)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator

from cni_migrate.analysis.lint.rules.base import Ctx, Hit, Unknown, docs, rule, src

MAGLEV_SIZES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071)
# Devices without native XDP: bonds, VLANs, teams, WireGuard / kubespan, dummies, bridges.
_NO_NATIVE_XDP = re.compile(r"^(bond|team|vlan|wg|kubespan|dummy|br|virbr|docker|cni|flannel|cali|tunl|vxlan)|\.\d+$")


def _legacy(c: Ctx, new: str) -> str:
    return f"--node-port-{new}" if c.m <= 17 else f"--bpf-lb-{new}"


@rule(
    "CIL030",
    "loadBalancer.mode must be snat, dsr or hybrid",
    severity="error",
    path="loadBalancer.mode",
    fix="Use loadBalancer.mode snat, dsr or hybrid; set only loadBalancer.* (not the legacy node-port-* options)",
    ref=src("KPR"),
)
def cil030(c: Ctx) -> Iterator[Hit]:
    mode = c.d.lb_mode
    if mode not in ("snat", "dsr", "hybrid") and (c.m >= 18 or c.d.node_port):
        yield Hit(f"Invalid value for {_legacy(c, 'mode')}: {mode}")
    legacy = c.v.lower("extraConfig.node-port-mode")
    new = c.v.lower("extraConfig.bpf-lb-mode") or (mode if c.v.has("loadBalancer.mode") else "")
    if legacy and new and legacy != new:
        yield Hit(
            "Both --bpf-lb-mode and --node-port-mode were set. Only use --bpf-lb-mode instead.",
            path="extraConfig.node-port-mode",
        )


@rule(
    "CIL031",
    "DSR with tunnel routing",
    severity="error",
    path="loadBalancer.mode",
    fix="routingMode=native, or tunnelProtocol=geneve with loadBalancer.dsrDispatch=geneve, or loadBalancer.mode=snat",
    ref=docs("network/kubernetes/kubeproxy-free"),
)
def cil031(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if not (d.dsr and d.node_port and d.routing == "tunnel"):
        return
    why = " (the removed `tunnel` value is ignored, so routing is tunnel)" if d.tunnel_value_ignored else ""
    if c.m <= 12:
        yield Hit(
            f'Disabling NodePort\'s "dsr" mode feature due to tunneling mode being enabled: services are SNATed{why}',
            severity="warning",
        )
    elif c.m == 13:
        yield Hit(f'Node Port "dsr" mode cannot be used with tunneling.{why}')
    elif d.tproto == "vxlan":
        yield Hit(f'Node Port "dsr" mode cannot be used with vxlan tunneling.{why}')
    elif d.tproto == "geneve" and d.dispatch != "geneve":
        if c.m == 14:
            yield Hit(f'Node Port "dsr" mode with {d.dispatch} dispatch cannot be used with geneve tunneling.{why}')
        else:
            yield Hit(f'Tunnel routing with Node Port "dsr" mode requires geneve dispatch.{why}')


@rule(
    "CIL032",
    "DSR with geneve dispatch needs tunnelProtocol=geneve",
    severity="error",
    versions="1.14+",
    path="tunnelProtocol",
    fix="Set tunnelProtocol=geneve explicitly",
    ref=src("KPR", since=15),
)
def cil032(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if not (d.dsr and d.dispatch == "geneve" and d.tproto != "geneve"):
        return
    if c.m == 14:
        if d.routing == "tunnel":
            yield Hit('Node Port "dsr" mode with "geneve" dispatch requires geneve tunneling.')
        return
    yield Hit('Node Port "dsr" mode with "geneve" dispatch requires geneve tunnel protocol.')


@rule(
    "CIL033",
    "DSR dispatch must be valid for the load-balancer mode",
    severity="error",
    path="loadBalancer.dsrDispatch",
    fix="dsr: opt, ipip or geneve (geneve from 1.14); hybrid: opt or geneve; no hybrid default under annotation mode",
    ref=src("KPR"),
)
def cil033(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if not d.node_port and c.m <= 17:
        return
    valid = {"dsr": ["opt", "ipip", "geneve"], "hybrid": ["opt", "geneve"]}.get(d.lb_mode)
    if valid and c.m <= 13:
        valid = [x for x in valid if x != "geneve"]
    if valid and d.dispatch not in valid:
        yield Hit(f"Invalid value for --bpf-lb-dsr-dispatch: {d.dispatch} (with loadBalancer.mode={d.lb_mode})")
    if c.m >= 17 and c.v.flag("bpf.lbModeAnnotation"):
        if d.lb_mode == "hybrid":
            flag = "--node-port-mode" if c.m == 17 else "--bpf-lb-mode"
            yield Hit(
                f"The value {flag}=hybrid is not supported as default under annotation mode", path="loadBalancer.mode"
            )
        elif c.m == 17 and d.dispatch != "ipip":
            yield Hit("DSR annotation mode on 1.17 supports only the ipip dispatch")


@rule(
    "CIL034",
    "DSR with IPIP dispatch needs XDP acceleration (and lb-only up to 1.17)",
    severity="error",
    versions="1.11-1.18",
    path="loadBalancer.dsrDispatch",
    fix="Use dsrDispatch opt or geneve (or a standalone load balancer with XDP)",
    ref=src("KPR"),
)
def cil034(c: Ctx) -> Iterator[Hit]:
    d = c.d
    ipip = d.lb_mode == "dsr" and d.dispatch == "ipip" and d.node_port
    if ipip:
        datapath = c.v.lower("bpf.datapathMode") or c.v.lower("datapathMode") or "veth"
        if c.m <= 17 and datapath != "lb-only":
            yield Hit("DSR dispatch mode ipip only supported for --datapath-mode=lb-only")
        elif d.accel == "disabled":
            q = '"ipip"' if c.m == 18 else "ipip"
            yield Hit(f"DSR dispatch mode {q} currently only available under XDP acceleration")
    for fam in ("ipv4", "ipv6"):
        key = f"extraConfig.bpf-lb-rss-{fam}-src-cidr"
        if c.v.has(key) and not ipip:
            yield Hit(
                f"Invalid value for --bpf-lb-rss-{fam}-src-cidr: currently only supported under IPIP dispatch for DSR",
                path=key,
            )


@rule(
    "CIL035",
    "DSR with IP-option dispatch needs an underlay that forwards IP options",
    severity="warning",
    path="loadBalancer.dsrDispatch",
    fix="Prefer loadBalancer.dsrDispatch=geneve (with tunnelProtocol=geneve) or snat in clouds; on AWS disable the "
    "source/destination check",
    ref=docs("network/kubernetes/kubeproxy-free"),
    facts=("underlay forwards IP options (cloud provider)",),
)
def cil035(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.dsr and d.dispatch == "opt" and d.node_port and d.routing == "native":
        raise Unknown(
            "underlay forwards IP options (cloud provider)",
            detail="some fabrics and clouds drop packets with unknown IP options; the underlay is not among the facts",
        )
    return iter(())


@rule(
    "CIL036",
    "loadBalancer.algorithm must be random or maglev",
    severity="error",
    path="loadBalancer.algorithm",
    fix="Use loadBalancer.algorithm random or maglev",
    ref=src("KPR"),
)
def cil036(c: Ctx) -> Iterator[Hit]:
    if c.d.algorithm not in ("random", "maglev") and (c.m >= 18 or c.d.node_port):
        yield Hit(f"Invalid value for {_legacy(c, 'algorithm')}: {c.d.algorithm}")


def _maglev_gated(c: Ctx) -> bool:
    return c.m >= 18 or (c.d.node_port and c.d.algorithm == "maglev")


@rule(
    "CIL037",
    "maglev.tableSize must be one of the supported primes",
    severity="error",
    path="maglev.tableSize",
    fix="Pick a listed prime (default 16381; more than 100 x the largest backend count per service)",
    ref=src("MAG"),
)
def cil037(c: Ctx) -> Iterator[Hit]:
    if not c.v.has("maglev.tableSize") or not _maglev_gated(c):
        return
    raw = c.literal("maglev.tableSize")
    try:
        size = int(raw)
    except (TypeError, ValueError):
        size = -1
    if size not in MAGLEV_SIZES:
        yield Hit(
            f"Invalid value for --bpf-lb-maglev-table-size: {raw}, supported values are: "
            f"[{' '.join(str(s) for s in MAGLEV_SIZES)}]"
        )


@rule(
    "CIL038",
    "maglev.hashSeed must be base64 of exactly 12 bytes",
    severity="error",
    path="maglev.hashSeed",
    fix="Generate it with `head -c12 /dev/urandom | base64 -w0` (16 characters) and use the same value on all nodes",
    ref=src("MAG"),
)
def cil038(c: Ctx) -> Iterator[Hit]:
    if not c.v.has("maglev.hashSeed") or not _maglev_gated(c):
        return
    seed = str(c.literal("maglev.hashSeed"))
    prefix = "Failed to initialize maglev hash seeds: Cannot decode" if c.m <= 17 else "cannot decode"
    try:
        raw = base64.b64decode(seed, validate=True)
    except (binascii.Error, ValueError) as e:
        yield Hit(f'{prefix} base64 Maglev hash seed "{seed}": {e}')
        return
    if len(raw) != 12:
        word = "Decoded" if c.m <= 17 else "decoded"
        yield Hit(f"{word} hash seed is {len(raw)} bytes (not 12 bytes)")


@rule(
    "CIL039",
    "loadBalancer.acceleration must be a supported mode",
    severity="error",
    path="loadBalancer.acceleration",
    fix="Use disabled, native or (1.15+) best-effort",
    ref=src("KPR"),
)
def cil039(c: Ctx) -> Iterator[Hit]:
    valid = ["disabled", "native", "testing-only"] + (["best-effort"] if c.m >= 15 else [])
    if c.d.accel not in valid:
        yield Hit(f"Invalid value for --node-port-acceleration: {c.d.accel} (valid on 1.{c.m}: {', '.join(valid)})")


@rule(
    "CIL040",
    "Native XDP acceleration needs native XDP support on every selected device",
    severity="error",
    path="loadBalancer.acceleration",
    fix="loadBalancer.acceleration=best-effort (1.15+), restrict devices to NICs with native XDP, or disabled",
    ref=docs("network/kubernetes/kubeproxy-free"),
    facts=("native XDP support of node NICs",),
)
def cil040(c: Ctx) -> Iterator[Hit]:
    if not (c.d.accel == "native" and c.d.node_port):
        return
    devices = c.v.strings("devices") or []
    bad = [dev for dev in devices if _NO_NATIVE_XDP.search(dev)]
    if bad:
        yield Hit(
            f"devices {', '.join(bad)} have no native XDP driver support (bond/VLAN/team/WireGuard/dummy devices): "
            "'Failed to compile XDP program ... attaching XDP program to interface: operation not supported' "
            "-> CrashLoopBackOff",
            path="devices",
            subjects=tuple(bad),
        )
        return
    raise Unknown(
        "native XDP support of node NICs",
        detail="NIC drivers (and whether auto-detected devices are bonds or VLANs) are not among the facts",
    )


@rule(
    "CIL041",
    "XDP acceleration without NodePort is silently not used",
    severity="warning",
    versions="1.11-1.18",
    path="loadBalancer.acceleration",
    fix="Enable kubeProxyReplacement=true, or set loadBalancer.acceleration=disabled",
    ref=src("KPR"),
)
def cil041(c: Ctx) -> Iterator[Hit]:
    if c.d.accel != "disabled" and not c.d.node_port:
        yield Hit(
            f"loadBalancer.acceleration={c.d.accel} has no effect: XDP acceleration is only set up with BPF NodePort "
            f"(kubeProxyReplacement={c.d.kpr})"
        )


@rule(
    "CIL042",
    "XDP acceleration conflicts (tunneling up to 1.12, egress gateway on 1.11, IPv6 underlay 1.18+, WireGuard)",
    severity="error",
    path="loadBalancer.acceleration",
    fix="Set loadBalancer.acceleration=disabled, or change the conflicting setting",
    ref=src("KPR"),
)
def cil042(c: Ctx) -> Iterator[Hit]:
    d = c.d
    if d.accel == "disabled":
        return
    if c.m <= 12 and d.routing == "tunnel":
        yield Hit(
            "Cannot use NodePort acceleration with tunneling. Either run cilium-agent with "
            "--node-port-acceleration=disabled or --tunnel=disabled"
        )
    if c.m == 11 and d.egress_gateway:
        yield Hit(
            "Cannot use NodePort acceleration with the egress gateway. Run cilium-agent with either "
            "--node-port-acceleration=disabled or enable-ipv4-egress-gateway=false"
        )
    if c.m >= 18 and d.routing == "tunnel" and c.v.lower("underlayProtocol") == "ipv6":
        yield Hit("XDP acceleration cannot be used with an IPv6 underlay")
    if d.enc == "wireguard" and c.v.flag("encryption.nodeEncryption"):
        yield Hit(
            "With node-port-acceleration: native and enable-wireguard, encrypt-node enabled, N/S Loadbalancer traffic "
            "won't be encrypted when an intermediate node redirects a request to another node where a selected "
            "backend is running.",
            severity="warning",
        )
