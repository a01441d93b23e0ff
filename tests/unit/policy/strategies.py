"""Hypothesis strategies for the differential oracle: Calico policy sets (as raw objects, with their selectors
registered as predicates in ``oracle.SELECTORS``) and worlds (namespaces, pods with labels, service accounts and
named ports, outside addresses)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

from .oracle import SELECTORS, Ext, Pod, Pred, World

NAMESPACES = ("ns1", "ns2", "ns3")
EXTERNALS = ("10.1.0.5", "192.168.1.10", "8.8.8.8", "2001:db8::5")
L4_POINTS: tuple[tuple[str | int, int | None], ...] = (
    ("TCP", 80),
    ("SCTP", 80),
    ("TCP", 8080),
    ("TCP", 8050),
    ("UDP", 53),
    ("ICMP", 8),
    ("ICMP", 0),
    (47, None),
)


def _register(text: str, pred: Pred) -> str:
    SELECTORS.setdefault(text, pred)
    return text


def _atom_eq(k: str, v: str) -> tuple[str, Pred]:
    return f"{k} == '{v}'", lambda lb: lb.get(k) == v


def _atom_ne(k: str, v: str) -> tuple[str, Pred]:
    return f"{k} != '{v}'", lambda lb: lb.get(k) != v


def _atom_has(k: str) -> tuple[str, Pred]:
    return f"has({k})", lambda lb: k in lb


def _atom_in(k: str, vs: tuple[str, ...]) -> tuple[str, Pred]:
    body = ", ".join(f"'{v}'" for v in vs)
    return f"{k} in {{{body}}}", lambda lb: lb.get(k) in vs


def _atom_not_in(k: str, vs: tuple[str, ...]) -> tuple[str, Pred]:
    body = ", ".join(f"'{v}'" for v in vs)
    return f"{k} not in {{{body}}}", lambda lb: lb.get(k) not in vs


def _selector_strategy(keys: tuple[str, ...], values: tuple[str, ...]) -> st.SearchStrategy[str]:
    atoms = st.one_of(
        st.just(("all()", lambda _lb: True)),
        st.builds(_atom_has, st.sampled_from(keys)),
        st.builds(_atom_eq, st.sampled_from(keys), st.sampled_from(values)),
        st.builds(_atom_ne, st.sampled_from(keys), st.sampled_from(values)),
        st.builds(_atom_in, st.sampled_from(keys), st.sets(st.sampled_from(values), min_size=1).map(tuple)),
        st.builds(_atom_not_in, st.sampled_from(keys), st.sets(st.sampled_from(values), min_size=1).map(tuple)),
    )

    def neg(a: tuple[str, Pred]) -> tuple[str, Pred]:
        text, p = a
        return f"!({text})", lambda lb: not p(lb)

    def both(a: tuple[str, Pred], b: tuple[str, Pred]) -> tuple[str, Pred]:
        return f"({a[0]}) && ({b[0]})", lambda lb: a[1](lb) and b[1](lb)

    def either(a: tuple[str, Pred], b: tuple[str, Pred]) -> tuple[str, Pred]:
        return f"({a[0]}) || ({b[0]})", lambda lb: a[1](lb) or b[1](lb)

    tree = st.recursive(
        atoms,
        lambda inner: st.one_of(st.builds(neg, inner), st.builds(both, inner, inner), st.builds(either, inner, inner)),
        max_leaves=3,
    )
    return tree.map(lambda t: _register(*t))


POD_SELECTORS = _selector_strategy(("app", "tier", "projectcalico.org/namespace"), ("a", "b", "ns1"))
NS_SELECTORS = _selector_strategy(("team", "projectcalico.org/name"), ("x", "ns2"))
NETS = ("10.0.0.0/8", "10.0.0.0/16", "192.168.0.0/16", "192.168.1.0/24", "0.0.0.0/0", "8.8.8.8/32")


@st.composite
def _peer(draw: st.DrawFn, ports_side: bool, proto: str | None) -> dict[str, Any]:
    kind = draw(st.sampled_from(["none", "sel", "ns", "sel+ns", "nets", "notNets", "sa", "notSel", "nets+notNets"]))
    out: dict[str, Any] = {}
    if kind in ("sel", "sel+ns"):
        out["selector"] = draw(POD_SELECTORS)
    if kind in ("ns", "sel+ns"):
        out["namespaceSelector"] = draw(NS_SELECTORS)
    if kind in ("nets", "nets+notNets"):
        out["nets"] = draw(st.lists(st.sampled_from(NETS), min_size=1, max_size=2, unique=True))
    if kind in ("notNets", "nets+notNets"):
        out["notNets"] = draw(st.lists(st.sampled_from(NETS), min_size=1, max_size=1))
    if kind == "sa":
        out["serviceAccounts"] = {"names": ["sa1"]}
    if kind == "notSel":
        out["notSelector"] = draw(POD_SELECTORS)
    if ports_side and proto in ("TCP", "UDP"):
        named = "http" if proto == "TCP" else "dns"
        ports = draw(st.sampled_from([None, [80], ["8000:8100"], [named], [80, named], "not80"]))
        if ports == "not80":
            out["notPorts"] = [80]
        elif ports is not None:
            out["ports"] = ports
    return out


@st.composite
def rules(draw: st.DrawFn, direction: str) -> dict[str, Any]:
    action = draw(st.sampled_from(["Allow", "Allow", "Deny", "Deny", "Pass", "Log"]))
    proto = draw(st.sampled_from([None, None, "TCP", "UDP", "ICMP", "SCTP", 6, 47]))
    r: dict[str, Any] = {"action": action}
    if proto:
        r["protocol"] = proto
    if isinstance(proto, int):
        proto = {6: "TCP"}.get(proto)  # ports only with a named port protocol
    if proto == "ICMP" and draw(st.booleans()):
        r["icmp"] = {"type": 8}
    remote = draw(_peer(direction == "egress", proto))
    addresses_only = not any(k in remote for k in ("selector", "namespaceSelector", "serviceAccounts"))
    if "nets" in remote and addresses_only and draw(st.integers(0, 4)) == 0:
        r["ipVersion"] = 4
    local: dict[str, Any] = {}
    if direction == "ingress" and proto in ("TCP", "UDP"):
        # the ports live on the destination (the local endpoint) for ingress
        local = {k: v for k, v in draw(_peer(True, proto)).items() if k in ("ports", "notPorts")}
    src, dst = (remote, local) if direction == "ingress" else (local, remote)
    if src:
        r["source"] = src
    if dst:
        r["destination"] = dst
    return r


@st.composite
def policy_sets(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tiers: list[dict[str, Any]] = []
    if draw(st.integers(0, 5)) == 0:
        # a tier without an order comes after every ordered one, the default tier included
        tiers.append(
            {"apiVersion": "crd.projectcalico.org/v1", "kind": "Tier", "metadata": {"name": "late"}, "spec": {}}
        )
    if draw(st.integers(0, 2)) == 0:
        tiers.append(
            {
                "apiVersion": "projectcalico.org/v3",
                "kind": "Tier",
                "metadata": {"name": "security"},
                "spec": {"order": 10, "defaultAction": draw(st.sampled_from(["Deny", "Pass"]))},
            }
        )
    n = draw(st.integers(1, 4))
    policies = []
    for i in range(n):
        glob = draw(st.booleans())
        tier = draw(st.sampled_from(["default", *(t["metadata"]["name"] for t in tiers)]))
        name = f"p{i}" if tier == "default" else f"{tier}.p{i}"
        spec: dict[str, Any] = {"selector": draw(POD_SELECTORS)}
        if tier != "default":
            spec["tier"] = tier
        order = draw(st.sampled_from([None, 10, 20, 20, 30]))
        if order is not None:
            spec["order"] = order
        if glob and draw(st.integers(0, 3)) == 0:
            spec["namespaceSelector"] = draw(NS_SELECTORS)
        types = draw(st.sampled_from([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
        if types is not None:
            spec["types"] = types
        for d in ("ingress", "egress"):
            rs = draw(st.lists(rules(d), max_size=3))
            if rs:
                spec[d] = rs
        api = draw(st.sampled_from(["projectcalico.org/v3", "crd.projectcalico.org/v1"]))
        md: dict[str, Any] = {"name": name}
        if not glob:
            md["namespace"] = draw(st.sampled_from(NAMESPACES[:2]))
        policies.append(
            {
                "apiVersion": api,
                "kind": "GlobalNetworkPolicy" if glob else "NetworkPolicy",
                "metadata": md,
                "spec": spec,
            }
        )
    return policies, tiers


PORT_SETS: tuple[tuple[tuple[str, str, int], ...], ...] = (
    (),
    (("http", "TCP", 8080),),
    (("http", "TCP", 80),),
    (("dns", "UDP", 53), ("http", "TCP", 8050)),
)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    namespaces: dict[str, Mapping[str, str]] = {}
    for ns in NAMESPACES:
        team = draw(st.sampled_from([None, "x", "y"]))
        namespaces[ns] = {"team": team} if team else {}
    n = draw(st.integers(2, 5))
    pods = []
    for i in range(n):
        labels = draw(st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["a", "b", "c"]), max_size=2))
        pods.append(
            Pod(
                f"pod{i}",
                draw(st.sampled_from(NAMESPACES)),
                f"10.0.0.{i + 2}",
                labels,
                draw(st.sampled_from(["default", "sa1"])),
                draw(st.sampled_from(PORT_SETS)),
            )
        )
    exts = draw(st.lists(st.sampled_from(EXTERNALS), min_size=1, max_size=3, unique=True))
    return World(namespaces, tuple(pods), tuple(Ext(x) for x in exts))
