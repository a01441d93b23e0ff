"""Parse Calico NetworkPolicy, GlobalNetworkPolicy and Tier objects (``crd.projectcalico.org/v1`` and
``projectcalico.org/v3``) into the policy model, strictly: an unknown field, a malformed selector or a policy in
a tier that does not exist is a :class:`PolicyInputError` naming the policy and the field.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from cni_migrate.analysis.policy.model import (
    ALLOW,
    DEFAULT_TIER_ORDER,
    DENY,
    EGRESS,
    INGRESS,
    L4_PROTOCOLS,
    LOG,
    PASS,
    IPNet,
    Peer,
    Policy,
    PolicyInputError,
    PolicySet,
    Port,
    PortRange,
    Rule,
    Selector,
    Tier,
)
from cni_migrate.analysis.selectors import SelectorError, parse_calico_selector

CALICO_API_VERSIONS = ("crd.projectcalico.org/v1", "projectcalico.org/v3")

_SPEC_FIELDS = {
    "tier",
    "order",
    "selector",
    "namespaceSelector",
    "serviceAccountSelector",
    "types",
    "ingress",
    "egress",
    "doNotTrack",
    "preDNAT",
    "applyOnForward",
    "performanceHints",
}
_NP_ONLY_NOT = {"namespaceSelector", "doNotTrack", "preDNAT", "applyOnForward"}  # GlobalNetworkPolicy only
_RULE_FIELDS = {
    "action",
    "protocol",
    "notProtocol",
    "icmp",
    "notICMP",
    "ipVersion",
    "source",
    "destination",
    "http",
    "metadata",
}
_ENTITY_FIELDS = {
    "nets",
    "notNets",
    "selector",
    "notSelector",
    "namespaceSelector",
    "serviceAccounts",
    "ports",
    "notPorts",
    "services",
}
_PROTOCOLS = {"TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite"}
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _fail(ref: str, path: str, what: str) -> PolicyInputError:
    return PolicyInputError(f"{ref}: {path}: {what}")


def _check_fields(ref: str, path: str, obj: Any, allowed: set[str]) -> Mapping[str, Any]:
    if obj is None:
        return {}
    if not isinstance(obj, Mapping):
        raise _fail(ref, path, f"expected an object, found {type(obj).__name__}")
    for k in obj:
        if k not in allowed:
            raise _fail(ref, f"{path}.{k}", f"unknown field (expected one of {', '.join(sorted(allowed))})")
    return obj


def _selector(ref: str, path: str, value: Any) -> Selector | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(ref, path, "expected a Calico selector string")
    try:
        return Selector(value, parse_calico_selector(value))
    except SelectorError as e:
        raise _fail(ref, path, f"malformed selector: {e}") from None


def _nets(ref: str, path: str, value: Any) -> tuple[IPNet, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _fail(ref, path, "expected a list of CIDRs")
    out: list[IPNet] = []
    for i, v in enumerate(value):
        try:
            out.append(ipaddress.ip_network(str(v), strict=False))
        except ValueError:
            raise _fail(ref, f"{path}[{i}]", f"{v!r} is not a CIDR or IP address") from None
    return tuple(out)


def _ports(ref: str, path: str, value: Any) -> tuple[Port, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _fail(ref, path, "expected a list of ports (numbers, 'lo:hi' ranges or port names)")
    out: list[Port] = []
    for i, v in enumerate(value):
        where = f"{path}[{i}]"
        if isinstance(v, bool):
            raise _fail(ref, where, "expected a port number, range or name")
        if isinstance(v, int):
            lo = hi = v
        elif isinstance(v, str) and re.fullmatch(r"\d+", v):
            lo = hi = int(v)
        elif isinstance(v, str) and re.fullmatch(r"\d+:\d+", v):
            a, b = v.split(":")
            lo, hi = int(a), int(b)
        elif isinstance(v, str) and _PORT_NAME.fullmatch(v) and len(v) <= 15:
            out.append(v)
            continue
        else:
            raise _fail(ref, where, f"{v!r} is not a port number, 'lo:hi' range or port name")
        if not (0 <= lo <= hi <= 65535):
            raise _fail(ref, where, f"{v!r}: ports are 0-65535 and a range is low:high")
        out.append(PortRange(lo, hi))
    return tuple(out)


def _peer(ref: str, path: str, value: Any) -> Peer:
    obj = _check_fields(ref, path, value, _ENTITY_FIELDS)
    sa = obj.get("serviceAccounts")
    sa_names: tuple[str, ...] | None = None
    sa_sel: Selector | None = None
    if sa is not None:
        sa = _check_fields(ref, f"{path}.serviceAccounts", sa, {"names", "selector"})
        names = sa.get("names")
        if names is not None:
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise _fail(ref, f"{path}.serviceAccounts.names", "expected a list of ServiceAccount names")
            sa_names = tuple(names)
        sa_sel = _selector(ref, f"{path}.serviceAccounts.selector", sa.get("selector"))
    return Peer(
        nets=_nets(ref, f"{path}.nets", obj.get("nets")),
        not_nets=_nets(ref, f"{path}.notNets", obj.get("notNets")),
        selector=_selector(ref, f"{path}.selector", obj.get("selector")),
        not_selector=_selector(ref, f"{path}.notSelector", obj.get("notSelector")),
        namespace_selector=_selector(ref, f"{path}.namespaceSelector", obj.get("namespaceSelector")),
        sa_names=sa_names,
        sa_selector=sa_sel,
        ports=_ports(ref, f"{path}.ports", obj.get("ports")),
        not_ports=_ports(ref, f"{path}.notPorts", obj.get("notPorts")),
        services=obj.get("services") is not None,
    )


def _protocol(ref: str, path: str, value: Any) -> str | int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 255:
        return value
    if isinstance(value, str):
        if value in _PROTOCOLS:
            return value
        if value.isdigit() and 1 <= int(value) <= 255:
            return int(value)
    raise _fail(ref, path, f"{value!r}: expected TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 1-255")


def _rule(ref: str, direction: str, index: int, value: Any) -> Rule:
    path = f"spec.{direction}[{index}]"
    obj = _check_fields(ref, path, value, _RULE_FIELDS)
    action = obj.get("action")
    if action not in (ALLOW, DENY, PASS, LOG):
        raise _fail(ref, f"{path}.action", f"{action!r}: expected Allow, Deny, Pass or Log")
    protocol = _protocol(ref, f"{path}.protocol", obj.get("protocol"))
    not_protocol = _protocol(ref, f"{path}.notProtocol", obj.get("notProtocol"))
    icmp_type = icmp_code = None
    icmp = obj.get("icmp")
    if icmp is not None:
        icmp = _check_fields(ref, f"{path}.icmp", icmp, {"type", "code"})
        if protocol not in ("ICMP", "ICMPv6"):
            raise _fail(ref, f"{path}.icmp", "needs protocol ICMP or ICMPv6")
        for k in ("type", "code"):
            v = icmp.get(k)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 255):
                raise _fail(ref, f"{path}.icmp.{k}", f"{v!r}: expected a number 0-255")
        icmp_type, icmp_code = icmp.get("type"), icmp.get("code")
        if icmp_code is not None and icmp_type is None:
            raise _fail(ref, f"{path}.icmp.code", "a code needs a type")
    ip_version = obj.get("ipVersion")
    if ip_version not in (None, 4, 6):
        raise _fail(ref, f"{path}.ipVersion", f"{ip_version!r}: expected 4 or 6")
    src = _peer(ref, f"{path}.source", obj.get("source"))
    dst = _peer(ref, f"{path}.destination", obj.get("destination"))
    for side, peer in (("source", src), ("destination", dst)):
        # libcalico-go Protocol.SupportsPorts: TCP, UDP, SCTP by name or number (6, 17, 132)
        if (peer.ports or peer.not_ports) and protocol not in (*L4_PROTOCOLS, "UDPLite", 6, 17, 132):
            raise _fail(ref, f"{path}.{side}.ports", "ports need protocol TCP, UDP, SCTP or UDPLite")
    return Rule(
        direction=direction,
        index=index,
        action=str(action),
        protocol=protocol,
        not_protocol=not_protocol,
        icmp_type=icmp_type,
        icmp_code=icmp_code,
        not_icmp=obj.get("notICMP") is not None,
        ip_version=ip_version,
        source=src,
        destination=dst,
        http=obj.get("http") is not None,
    )


def _default_types(ingress: list[Any], egress: list[Any]) -> frozenset[str]:
    # Calico's defaults when spec.types is absent.
    if egress and not ingress:
        return frozenset({EGRESS})
    if egress and ingress:
        return frozenset({INGRESS, EGRESS})
    return frozenset({INGRESS})


def parse_policy(obj: Mapping[str, Any], tiers: Mapping[str, Tier] | None = None) -> Policy:
    """One NetworkPolicy or GlobalNetworkPolicy of either API version."""
    kind, api = obj.get("kind"), obj.get("apiVersion")
    md = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(md, Mapping)
    name = md.get("name")
    ns = md.get("namespace")
    ref = f"{kind} {ns}/{name}" if ns else f"{kind} {name}"
    if api not in CALICO_API_VERSIONS or kind not in ("NetworkPolicy", "GlobalNetworkPolicy"):
        raise PolicyInputError(
            f"{ref}: apiVersion/kind {api}/{kind}: expected a Calico NetworkPolicy or GlobalNetworkPolicy"
        )
    if not isinstance(name, str) or not name:
        raise _fail(ref, "metadata.name", "missing")
    if kind == "NetworkPolicy" and not isinstance(ns, str):
        raise _fail(ref, "metadata.namespace", "a NetworkPolicy needs a namespace")
    allowed = _SPEC_FIELDS - _NP_ONLY_NOT if kind == "NetworkPolicy" else _SPEC_FIELDS
    spec = _check_fields(ref, "spec", obj.get("spec"), allowed)
    tier = spec.get("tier") or "default"
    if not isinstance(tier, str):
        raise _fail(ref, "spec.tier", "expected a tier name")
    if tiers is not None and tier not in tiers:
        known = ", ".join(sorted(tiers))
        raise _fail(ref, "spec.tier", f"tier {tier!r} does not exist (known tiers: {known})")
    order = spec.get("order")
    if order is not None and (isinstance(order, bool) or not isinstance(order, int | float)):
        raise _fail(ref, "spec.order", f"{order!r}: expected a number")
    selector = _selector(ref, "spec.selector", spec.get("selector") or "all()")
    assert selector is not None
    ingress_raw = spec.get("ingress") or []
    egress_raw = spec.get("egress") or []
    for d, raw in ((INGRESS, ingress_raw), (EGRESS, egress_raw)):
        if not isinstance(raw, list):
            raise _fail(ref, f"spec.{d}", "expected a list of rules")
    types_raw = spec.get("types")
    if types_raw is None:
        types = _default_types(ingress_raw, egress_raw)
    else:
        if not isinstance(types_raw, list) or any(t not in ("Ingress", "Egress") for t in types_raw):
            raise _fail(ref, "spec.types", f"{types_raw!r}: expected a list of Ingress and/or Egress")
        types = frozenset(str(t).lower() for t in types_raw)
    for flag in ("doNotTrack", "preDNAT", "applyOnForward"):
        if flag in spec and not isinstance(spec[flag], bool):
            raise _fail(ref, f"spec.{flag}", "expected true or false")
    return Policy(
        kind=str(kind),
        api_version=str(api),
        name=name,
        namespace=ns if kind == "NetworkPolicy" else None,
        tier=tier,
        order=float(order) if order is not None else None,
        selector=selector,
        namespace_selector=_selector(ref, "spec.namespaceSelector", spec.get("namespaceSelector")),
        sa_selector=_selector(ref, "spec.serviceAccountSelector", spec.get("serviceAccountSelector")),
        types=types,
        ingress=tuple(_rule(ref, INGRESS, i, r) for i, r in enumerate(ingress_raw)),
        egress=tuple(_rule(ref, EGRESS, i, r) for i, r in enumerate(egress_raw)),
        do_not_track=bool(spec.get("doNotTrack")),
        pre_dnat=bool(spec.get("preDNAT")),
        apply_on_forward=bool(spec.get("applyOnForward")),
    )


def parse_tier(obj: Mapping[str, Any]) -> Tier:
    md = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(md, Mapping)
    name = md.get("name")
    ref = f"Tier {name}"
    if not isinstance(name, str) or not name:
        raise PolicyInputError("Tier without metadata.name")
    spec = _check_fields(ref, "spec", obj.get("spec"), {"order", "defaultAction"})
    order = spec.get("order")
    if order is not None and (isinstance(order, bool) or not isinstance(order, int | float)):
        raise _fail(ref, "spec.order", f"{order!r}: expected a number")
    action = spec.get("defaultAction") or DENY
    if action not in (DENY, PASS):
        raise _fail(ref, "spec.defaultAction", f"{action!r}: expected Deny or Pass")
    return Tier(name, float(order) if order is not None else None, str(action))


def parse_policy_set(policies: Iterable[Mapping[str, Any]], tiers: Iterable[Mapping[str, Any]] = ()) -> PolicySet:
    """Tiers first (the implicit ``default`` tier always exists), then every policy, checked against them."""
    by_name: dict[str, Tier] = {"default": Tier("default", DEFAULT_TIER_ORDER)}
    for t in tiers:
        tier = parse_tier(t)
        by_name[tier.name] = tier
    parsed = tuple(parse_policy(p, by_name) for p in policies)
    return PolicySet(parsed, by_name)
