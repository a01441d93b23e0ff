"""The test oracle: two evaluators written for the tests only, independent of cni_migrate's calico_eval and
cilium_eval (and of its selector parser), over the raw objects.

* :func:`calico_verdict` reads Calico NetworkPolicy / GlobalNetworkPolicy / Tier dicts: tiers by order (no order
  last, the ``default`` tier at 1,000,000), policies by order then name, rules in order, first Allow/Deny wins, Log
  goes on, Pass leaves the tier, a tier with a selecting policy and no match ends in its defaultAction (Deny, or
  Pass), and an endpoint no tier selects is allowed by its profile.
* :func:`cilium_verdict` reads CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy dicts: a matching deny rule
  wins over everything, then a matching allow rule, then default deny if a selecting rule has ingress (or egress)
  rules and, from Cilium 1.16, its enableDefaultDeny does not turn that off; nothing selecting: allowed.

Selectors are given to the Calico oracle as predicates (``SELECTORS``: text -> function of a label dict), which
the generator registers next to the text it puts in the objects.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Pred = Callable[[Mapping[str, str]], bool]
SELECTORS: dict[str, Pred] = {"all()": lambda _l: True}

POD_CIDR = ipaddress.ip_network("10.0.0.0/16")


@dataclass(frozen=True)
class Pod:
    name: str
    ns: str
    ip: str
    labels: Mapping[str, str] = field(default_factory=dict)
    sa: str = "default"
    ports: tuple[tuple[str, str, int], ...] = ()  # (name, protocol, number)

    def named(self, name: str, proto: str) -> int | None:
        for n, p, num in self.ports:
            if n == name and p == proto:
                return num
        return None


@dataclass(frozen=True)
class Ext:
    ip: str


Peer = Pod | Ext


@dataclass(frozen=True)
class OFlow:
    src: Peer
    dst: Peer
    proto: str | int  # TCP, UDP, SCTP, ICMP, ICMPv6 or a number
    port: int | None = None  # or ICMP type

    def addr(self, side: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address((self.src if side == "src" else self.dst).ip)


@dataclass(frozen=True)
class World:
    namespaces: Mapping[str, Mapping[str, str]]
    pods: tuple[Pod, ...]
    externals: tuple[Ext, ...]


_NUM = {"TCP": 6, "UDP": 17, "SCTP": 132, "ICMP": 1, "ICMPv6": 58}


# --- Calico --------------------------------------------------------------------------------------------------


def _sel(text: str | None) -> Pred:
    if text is None:
        return lambda _l: True
    return SELECTORS[text]


def _calico_pod_labels(p: Pod) -> dict[str, str]:
    out = dict(p.labels)
    out["projectcalico.org/namespace"] = p.ns
    out["projectcalico.org/orchestrator"] = "k8s"
    out["projectcalico.org/serviceaccount"] = p.sa
    return out


def _calico_ns_labels(w: World, ns: str) -> dict[str, str]:
    out = dict(w.namespaces.get(ns, {}))
    out["projectcalico.org/name"] = ns
    return out


def _types(spec: Mapping[str, Any]) -> set[str]:
    if spec.get("types") is not None:
        return {t.lower() for t in spec["types"]}
    ing, eg = bool(spec.get("ingress")), bool(spec.get("egress"))
    if eg and not ing:
        return {"egress"}
    if eg and ing:
        return {"ingress", "egress"}
    return {"ingress"}


def _calico_selects(w: World, pol: Mapping[str, Any], ep: Peer) -> bool:
    if not isinstance(ep, Pod):
        return False
    md, spec = pol["metadata"], pol.get("spec") or {}
    if pol["kind"] == "NetworkPolicy" and md["namespace"] != ep.ns:
        return False
    if not _sel(spec.get("selector") or "all()")(_calico_pod_labels(ep)):
        return False
    nss = spec.get("namespaceSelector")
    return nss is None or _sel(nss)(_calico_ns_labels(w, ep.ns))


def _in_nets(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: Sequence[str]) -> bool:
    return any(ip in ipaddress.ip_network(n) for n in nets if ipaddress.ip_network(n).version == ip.version)


def _calico_port(spec: str | int, flow: OFlow) -> bool:
    if isinstance(spec, int):
        return flow.port == spec
    if ":" in spec:
        lo, hi = spec.split(":")
        return flow.port is not None and int(lo) <= flow.port <= int(hi)
    if spec.isdigit():
        return flow.port == int(spec)
    return isinstance(flow.dst, Pod) and flow.dst.named(spec, str(flow.proto)) == flow.port


def _calico_entity(w: World, pol: Mapping[str, Any], ent: Mapping[str, Any], ep: Peer, flow: OFlow, dst: bool) -> bool:
    ip = ipaddress.ip_address(ep.ip)
    if "nets" in ent and not _in_nets(ip, ent["nets"]):
        return False
    if "notNets" in ent and _in_nets(ip, ent["notNets"]):
        return False
    sas = (ent.get("serviceAccounts") or {}).get("names")
    namespaced = pol["kind"] == "NetworkPolicy"
    # libcalico-go getEndpointSelector: a namespaced policy's notSelector also limits the peer to its namespace
    if "selector" in ent or "namespaceSelector" in ent or sas is not None or (namespaced and "notSelector" in ent):
        if not isinstance(ep, Pod):
            return False
        if "namespaceSelector" in ent:
            if not _sel(ent["namespaceSelector"])(_calico_ns_labels(w, ep.ns)):
                return False
        elif pol["kind"] == "NetworkPolicy" and ep.ns != pol["metadata"]["namespace"]:
            return False
        if "selector" in ent and not _sel(ent["selector"])(_calico_pod_labels(ep)):
            return False
        if sas is not None and ep.sa not in sas:
            return False
    if "notSelector" in ent and isinstance(ep, Pod) and _sel(ent["notSelector"])(_calico_pod_labels(ep)):
        return False
    if dst:
        if "ports" in ent and not any(_calico_port(p, flow) for p in ent["ports"]):
            return False
        if "notPorts" in ent and any(_calico_port(p, flow) for p in ent["notPorts"]):
            return False
    return True


def _proto_is(want: str | int, flow: OFlow) -> bool:
    fam = ipaddress.ip_address(flow.dst.ip).version
    if want in ("ICMP", 1):
        return flow.proto == "ICMP" and fam == 4
    if want in ("ICMPv6", 58):
        return flow.proto == "ICMP" and fam == 6
    w = _NUM.get(want, want) if isinstance(want, str) else want
    f = _NUM.get(flow.proto, flow.proto) if isinstance(flow.proto, str) else flow.proto
    return w == f


def _calico_rule(w: World, pol: Mapping[str, Any], rule: Mapping[str, Any], flow: OFlow) -> bool:
    if "protocol" in rule and not _proto_is(rule["protocol"], flow):
        return False
    if "notProtocol" in rule and _proto_is(rule["notProtocol"], flow):
        return False
    icmp = rule.get("icmp")
    if icmp is not None and "type" in icmp and flow.port != icmp["type"]:
        return False
    if "ipVersion" in rule and ipaddress.ip_address(flow.dst.ip).version != rule["ipVersion"]:
        return False
    dst_ent = rule.get("destination") or {}
    if ("ports" in dst_ent or "notPorts" in dst_ent) and flow.proto not in ("TCP", "UDP", "SCTP"):
        return False
    return _calico_entity(w, pol, rule.get("source") or {}, flow.src, flow, False) and _calico_entity(
        w, pol, dst_ent, flow.dst, flow, True
    )


def _okey(order: float | None, name: str) -> tuple[bool, float, str]:
    return (order is None, order if order is not None else 0.0, name)


def calico_verdict(
    w: World, policies: Sequence[Mapping[str, Any]], tiers: Sequence[Mapping[str, Any]], flow: OFlow, direction: str
) -> tuple[bool, str]:
    local = flow.dst if direction == "ingress" else flow.src
    tier_info: dict[str, tuple[float | None, str]] = {"default": (1_000_000.0, "Deny")}
    for t in tiers:
        spec = t.get("spec") or {}
        tier_info[t["metadata"]["name"]] = (spec.get("order"), spec.get("defaultAction") or "Deny")
    tier_names = sorted(tier_info, key=lambda n: _okey(tier_info[n][0], n))
    for tier in tier_names:
        pols = [
            p
            for p in policies
            if ((p.get("spec") or {}).get("tier") or "default") == tier
            and direction in _types(p.get("spec") or {})
            and _calico_selects(w, p, local)
        ]
        if not pols:
            continue
        pols.sort(key=lambda p: _okey((p.get("spec") or {}).get("order"), p["metadata"]["name"]))
        passed = False
        for p in pols:
            for i, r in enumerate((p.get("spec") or {}).get(direction) or []):
                if not _calico_rule(w, p, r, flow):
                    continue
                act = r["action"]
                if act == "Log":
                    continue
                if act == "Pass":
                    passed = True
                    break
                return act == "Allow", f"{p['metadata']['name']} {direction}[{i}] {act}"
            if passed:
                break
        if passed or tier_info[tier][1] == "Pass":
            continue
        return False, f"end of tier {tier}"
    return True, "profile"


# --- Cilium --------------------------------------------------------------------------------------------------


def _cilium_labels(w: World, p: Pod) -> dict[str, str]:
    out = {f"k8s:{k}": v for k, v in p.labels.items()}
    out["k8s:io.kubernetes.pod.namespace"] = p.ns
    out["k8s:io.cilium.k8s.policy.serviceaccount"] = p.sa
    out["k8s:io.cilium.k8s.policy.cluster"] = "default"
    for k, v in w.namespaces.get(p.ns, {}).items():
        out[f"k8s:io.cilium.k8s.namespace.labels.{k}"] = v
    return out


def _norm(key: str) -> str:
    if key.startswith(("k8s:", "any:")):
        key = key.split(":", 1)[1]
    return "k8s:" + key


def _ls_match(sel: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(_norm(k)) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = _norm(e["key"]), e["operator"], e.get("values") or []
        have = labels.get(k)
        ok = {
            "In": have is not None and have in vals,
            "NotIn": have is None or have not in vals,
            "Exists": have is not None,
            "DoesNotExist": have is None,
        }[op]
        if not ok:
            return False
    return True


def _mentions_ns(sel: Mapping[str, Any]) -> bool:
    keys = list(sel.get("matchLabels") or {}) + [e["key"] for e in sel.get("matchExpressions") or []]
    return any(_norm(k) == "k8s:io.kubernetes.pod.namespace" for k in keys)


def _cilium_l3(w: World, obj: Mapping[str, Any], rule: Mapping[str, Any], pre: str, peer: Peer) -> bool | None:
    fields = [f"{pre}{x}" for x in ("Endpoints", "CIDR", "CIDRSet", "Entities")]
    if not any(f in rule for f in fields):
        return None
    if isinstance(peer, Pod):
        for sel in rule.get(f"{pre}Endpoints") or []:
            scoped = obj["kind"] == "CiliumNetworkPolicy" and not _mentions_ns(sel)
            if scoped and peer.ns != obj["metadata"]["namespace"]:
                continue
            if _ls_match(sel, _cilium_labels(w, peer)):
                return True
    else:
        ip = ipaddress.ip_address(peer.ip)
        for c in rule.get(f"{pre}CIDR") or []:
            if _in_nets(ip, [c]):
                return True
        for cs in rule.get(f"{pre}CIDRSet") or []:
            if _in_nets(ip, [cs["cidr"]]) and not _in_nets(ip, cs.get("except") or []):
                return True
    for ent in rule.get(f"{pre}Entities") or []:
        if ent == "all" or (ent == "world" and isinstance(peer, Ext)) or (ent == "cluster" and isinstance(peer, Pod)):
            return True
    return False


def _cilium_l4(rule: Mapping[str, Any], flow: OFlow) -> bool | None:
    if "toPorts" not in rule and "icmps" not in rule:
        return None
    for tp in rule.get("toPorts") or []:
        for pp in tp.get("ports") or []:
            proto = pp.get("protocol") or "ANY"
            if flow.proto not in ("TCP", "UDP", "SCTP") or (proto != "ANY" and proto != flow.proto):
                continue
            port = pp["port"]
            if port.isdigit():
                lo = int(port)
                hi = int(pp.get("endPort") or lo)
                if lo == 0 or (flow.port is not None and lo <= flow.port <= hi):
                    return True
            elif isinstance(flow.dst, Pod) and flow.dst.named(port, str(flow.proto)) == flow.port:
                return True
    fam = f"IPv{ipaddress.ip_address(flow.dst.ip).version}"
    for ic in rule.get("icmps") or []:
        for f in ic.get("fields") or []:
            if flow.proto == "ICMP" and (f.get("family") or "IPv4") == fam and int(f["type"]) == flow.port:
                return True
    return False


def _cilium_rule(w: World, obj: Mapping[str, Any], rule: Mapping[str, Any], flow: OFlow, direction: str) -> bool:
    pre, peer = ("from", flow.src) if direction == "ingress" else ("to", flow.dst)
    l3, l4 = _cilium_l3(w, obj, rule, pre, peer), _cilium_l4(rule, flow)
    if l3 is None and l4 is None:
        return False  # an empty rule selects, matches nothing
    return l3 is not False and l4 is not False


def cilium_verdict(
    w: World, objects: Sequence[Mapping[str, Any]], flow: OFlow, direction: str, version: tuple[int, int]
) -> tuple[bool, str]:
    local = flow.dst if direction == "ingress" else flow.src
    if not isinstance(local, Pod):
        return True, "not an endpoint"
    default_deny = False
    allowed_by = None
    for obj in objects:
        if obj["kind"] == "CiliumNetworkPolicy" and obj["metadata"]["namespace"] != local.ns:
            continue
        specs = ([obj["spec"]] if "spec" in obj else []) + list(obj.get("specs") or [])
        for spec in specs:
            if not _ls_match(spec.get("endpointSelector") or {}, _cilium_labels(w, local)):
                continue
            allows, denies = spec.get(direction) or [], spec.get(direction + "Deny") or []
            if allows or denies:
                opt = (spec.get("enableDefaultDeny") or {}).get(direction) if version >= (1, 16) else None
                if opt is not False:
                    default_deny = True
            for r in denies:
                if _cilium_rule(w, obj, r, flow, direction):
                    return False, f"{obj['metadata']['name']} deny"
            for r in allows:
                if allowed_by is None and _cilium_rule(w, obj, r, flow, direction):
                    allowed_by = obj["metadata"]["name"]
    if allowed_by:
        return True, f"{allowed_by} allow"
    return (not default_deny), ("default deny" if default_deny else "no policy")


def all_flows(w: World, l4: Sequence[tuple[str | int, int | None]]) -> list[OFlow]:
    peers: list[Peer] = [*w.pods, *w.externals]
    out = []
    for s in peers:
        for d in peers:
            if s is d or not (isinstance(s, Pod) or isinstance(d, Pod)):
                continue
            for proto, port in l4:
                out.append(OFlow(s, d, proto, port))
    return out
