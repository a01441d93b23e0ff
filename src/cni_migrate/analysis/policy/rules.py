"""Calico rules translated one by one into Cilium terms (selector alternatives, peers, L4), with whatever has no
exact Cilium form reported as :class:`Untranslatable` naming the policy and the field.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from cni_migrate.analysis.policy.calico_eval import opaque_reason
from cni_migrate.analysis.policy.labels import (
    NS_KEY,
    SA_KEY,
    TRUE,
    Conj,
    NoEquivalent,
    Req,
    _merge,
    conj_and,
    has_key,
    namespace_key,
    pod_key,
    to_dnf,
)
from cni_migrate.analysis.policy.model import (
    DIRECTIONS,
    EGRESS,
    INGRESS,
    LOG,
    Flow,
    IPNet,
    Peer,
    Policy,
    PolicySet,
    PortRange,
    Rule,
)
from cni_migrate.analysis.selectors import Not

_WORLD = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


@dataclass(frozen=True)
class Untranslatable:
    policy: str  # Policy.ref
    field: str  # path in the Calico object
    reason: str  # one line
    other_policy: str | None = None  # order conflicts: the policy of the other rule of the pair
    example_flow: str | None = None  # Flow.describe() of a flow whose verdict would change
    flow: Flow | None = dc_field(default=None, compare=False, repr=False)  # that flow, for tests and tools
    direction: str | None = None  # of the verdict that changes
    namespace_labels: Mapping[str, Mapping[str, str]] | None = dc_field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        out = f"{self.policy}: {self.field}: {self.reason}"
        if self.other_policy:
            out += f" (together with {self.other_policy})"
        if self.example_flow:
            out += f"; e.g. {self.example_flow}"
        return out


# --- rule-level translation --------------------------------------------------------------------------------


class _Fail(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Remote:
    """A rule's peer as Cilium sees it: every peer, or pods (label alternatives) and/or outside CIDRs."""

    any: bool = False
    pods: tuple[Conj, ...] = ()
    nets: tuple[tuple[IPNet, tuple[IPNet, ...]], ...] = ()  # outside addresses: cidr, except

    @property
    def empty(self) -> bool:
        return not self.any and not self.pods and not self.nets


@dataclass(frozen=True)
class L4:
    """What a rule matches above L3: everything, or ports (proto, lo, hi), named ports, ICMP (family, type)."""

    any: bool = True
    ports: tuple[tuple[str, int, int], ...] = ()
    named: tuple[tuple[str, str], ...] = ()
    icmp: tuple[tuple[int, int], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.any and not self.ports and not self.named and not self.icmp


@dataclass(frozen=True)
class RuleT:
    """One Calico rule, translated: the policy's endpoint alternatives, the peer and the L4 part."""

    policy: Policy
    rule: Rule
    local: tuple[Conj, ...]
    remote: Remote
    l4: L4
    pos: tuple[int, int, int]  # evaluation order: tier index, policy index within the tier, rule index

    @property
    def path(self) -> str:
        return f"spec.{self.rule.direction}[{self.rule.index}]"

    @property
    def catch_all(self) -> bool:
        return self.remote.any and self.l4.any


def _dnf(ref_path: str, text: str, expr: Any, keymap: Any) -> list[Conj]:
    try:
        return to_dnf(expr, keymap)
    except NoEquivalent as e:
        raise _Fail(ref_path, f"selector {text!r}: {e}") from None


def _proto_name(p: str | int) -> str | int:
    names = {6: "TCP", 17: "UDP", 132: "SCTP", 1: "ICMP", 58: "ICMPv6"}
    return names.get(p, p) if isinstance(p, int) else p


def _classify(net: IPNet, pod_cidrs: Sequence[IPNet]) -> str:
    """'all' if the net covers every pod CIDR, 'none' if it covers no pod address, else 'some'."""
    fam = [c for c in pod_cidrs if c.version == net.version]
    if not pod_cidrs:
        return "all" if net.prefixlen == 0 else "unknown"
    if not fam:
        return "none"
    if all(c.subnet_of(net) for c in fam):  # type: ignore[arg-type]
        return "all"
    if not any(c.overlaps(net) for c in fam):
        return "none"
    return "some"


def _remote(p: Policy, rule: Rule, peer: Peer, side: str, pod_cidrs: Sequence[IPNet]) -> Remote:
    base = f"spec.{rule.direction}[{rule.index}].{side}"
    nets, not_nets = peer.nets, peer.not_nets
    if rule.ip_version is not None:
        if peer.pods_only(p.namespace is not None) or nets is None:
            raise _Fail(
                f"spec.{rule.direction}[{rule.index}].ipVersion", "Cilium cannot limit pod peers to one IP family"
            )
        nets = tuple(n for n in nets if n.version == rule.ip_version)
    # Which pods the address part lets through.
    pods_ok = True
    for label, group, want in (("nets", nets, True), ("notNets", not_nets, False)):
        if group is None:
            continue
        kinds = {_classify(n, pod_cidrs) for n in group}
        if "unknown" in kinds:
            raise _Fail(
                f"{base}.{label}",
                "the cluster's pod CIDRs are not known, so it is unclear whether these "
                "nets hold pod addresses (Cilium matches pods by labels, never by CIDR)",
            )
        if "some" in kinds:
            raise _Fail(f"{base}.{label}", "covers part of the pod CIDRs; Cilium's CIDR rules never match pods")
        covers = "all" in kinds
        if want and not covers:
            pods_ok = False
        if not want and covers:
            pods_ok = False
    if rule.ip_version is not None and pods_ok and any(c.version != rule.ip_version for c in pod_cidrs):
        raise _Fail(f"spec.{rule.direction}[{rule.index}].ipVersion", "Cilium cannot limit pod peers to one IP family")
    pods: list[Conj] = []
    if pods_ok:
        conjs: list[Conj] = list(TRUE)
        if peer.selector is not None:
            conjs = _dnf(f"{base}.selector", peer.selector.text, peer.selector.expr, pod_key)
        if peer.not_selector is not None:
            neg = _dnf(f"{base}.notSelector", peer.not_selector.text, Not(peer.not_selector.expr), pod_key)
            conjs = _and(f"{base}.notSelector", conjs, neg)
        if peer.namespace_selector is not None:
            ns = _dnf(
                f"{base}.namespaceSelector",
                peer.namespace_selector.text,
                peer.namespace_selector.expr,
                namespace_key,
            )
            conjs = _and(f"{base}.namespaceSelector", conjs, ns)
            scope = Req(NS_KEY, "Exists")
        elif p.namespace is not None and peer.pods_only(True):
            scope = Req(NS_KEY, "In", (p.namespace,))
        else:
            scope = Req(NS_KEY, "Exists")
        conjs = _and(f"{base}.selector", conjs, [(scope,)])
        if peer.sa_names is not None:
            conjs = _and(
                f"{base}.serviceAccounts.names", conjs, [(Req(SA_KEY, "In", tuple(sorted(set(peer.sa_names)))),)]
            )
        pods = [_tidy(c) for c in conjs]
    out_nets: list[tuple[IPNet, tuple[IPNet, ...]]] = []
    if not peer.pods_only(p.namespace is not None):
        for n in nets if nets is not None else _WORLD:
            if rule.ip_version is not None and n.version != rule.ip_version:
                continue
            excepts = [x for x in not_nets or () if x.version == n.version]
            if any(n.subnet_of(x) for x in excepts):  # type: ignore[arg-type]
                continue
            inner = tuple(sorted({x for x in excepts if x.subnet_of(n)}, key=str))  # type: ignore[arg-type]
            out_nets.append((n, inner))
    if (
        pods_ok
        and not peer.pods_only(p.namespace is not None)
        and peer.not_selector is None
        and nets is None
        and not not_nets
        and rule.ip_version is None
    ):
        return Remote(any=True)
    return Remote(pods=tuple(dict.fromkeys(pods)), nets=tuple(out_nets))


def _tidy(c: Conj) -> Conj:
    """An ``Exists`` next to an ``In`` on the same key says nothing more."""
    keys_in = {r.key for r in c if r.op == "In"}
    return tuple(r for r in c if not (r.op == "Exists" and r.key in keys_in))


def _and(path: str, a: list[Conj], b: list[Conj]) -> list[Conj]:
    try:
        return conj_and(a, b)
    except NoEquivalent as e:
        raise _Fail(path, str(e)) from None


def _port_ranges(path: str, ports: Iterable[PortRange | str]) -> tuple[list[tuple[int, int]], list[str]]:
    nums: list[tuple[int, int]] = []
    names: list[str] = []
    for port in ports:
        if isinstance(port, PortRange):
            nums.append((port.lo, port.hi))
        else:
            names.append(port)
    return nums, names


def _subtract(ranges: list[tuple[int, int]], minus: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = ranges
    for lo2, hi2 in minus:
        nxt: list[tuple[int, int]] = []
        for lo, hi in out:
            if hi2 < lo or lo2 > hi:
                nxt.append((lo, hi))
                continue
            if lo < lo2:
                nxt.append((lo, lo2 - 1))
            if hi2 < hi:
                nxt.append((hi2 + 1, hi))
        out = nxt
    return sorted(set(out))


def _l4(rule: Rule) -> L4:
    base = f"spec.{rule.direction}[{rule.index}]"
    if rule.not_protocol is not None:
        raise _Fail(f"{base}.notProtocol", "Cilium rules cannot exclude a protocol")
    if rule.icmp_code is not None:
        raise _Fail(f"{base}.icmp.code", "Cilium matches ICMP types, not codes")
    proto = _proto_name(rule.protocol) if rule.protocol is not None else None
    dst = rule.destination
    if proto is None:
        return L4(any=True)
    if proto in ("ICMP", "ICMPv6"):
        fam = 4 if proto == "ICMP" else 6
        types = [rule.icmp_type] if rule.icmp_type is not None else list(range(256))
        return L4(any=False, icmp=tuple((fam, t) for t in types))
    if proto not in ("TCP", "UDP", "SCTP"):
        raise _Fail(f"{base}.protocol", f"{rule.protocol!r}: Cilium policies match TCP, UDP, SCTP and ICMP only")
    nums, names = _port_ranges(f"{base}.destination.ports", dst.ports or ())
    if dst.ports is None:
        nums = [(0, 65535)]
    if dst.not_ports is not None:
        minus, minus_names = _port_ranges(f"{base}.destination.notPorts", dst.not_ports)
        if minus_names:
            raise _Fail(f"{base}.destination.notPorts", "Cilium cannot exclude a named port")
        if names:
            raise _Fail(f"{base}.destination.notPorts", "notPorts next to named ports cannot be subtracted exactly")
        nums = _subtract(nums, minus)
    # Port 0 carries no traffic (and Cilium's port 0 means every port): ranges start at 1 unless they are all ports.
    nums = [(lo, hi) if (lo, hi) == (0, 65535) else (max(lo, 1), hi) for lo, hi in nums]
    nums = sorted({(lo, hi) for lo, hi in nums if lo <= hi})
    return L4(any=False, ports=tuple((proto, lo, hi) for lo, hi in nums), named=tuple((proto, n) for n in names))


def _check_local(rule: Rule) -> None:
    local = rule.local
    side = "destination" if rule.direction == INGRESS else "source"
    base = f"spec.{rule.direction}[{rule.index}].{side}"
    for attr, name in (
        ("selector", "selector"),
        ("not_selector", "notSelector"),
        ("namespace_selector", "namespaceSelector"),
        ("nets", "nets"),
        ("not_nets", "notNets"),
        ("sa_names", "serviceAccounts"),
    ):
        if getattr(local, attr) is not None:
            raise _Fail(f"{base}.{name}", "a rule that narrows the policy's own endpoints has no Cilium equivalent")


def _opaque_path(rule: Rule, reason: str) -> str:
    base = f"spec.{rule.direction}[{rule.index}]"
    if rule.http:
        return f"{base}.http"
    for side, peer in (("source", rule.source), ("destination", rule.destination)):
        if peer.services:
            return f"{base}.{side}.services"
        if peer.sa_selector is not None:
            return f"{base}.{side}.serviceAccounts.selector"
    if "source ports" in reason:
        return f"{base}.source.ports"
    return f"{base}.notICMP"


def endpoint_alternatives(p: Policy) -> list[Conj]:
    """The policy's selected endpoints as Cilium label alternatives (raises _Fail)."""
    conjs = _dnf("spec.selector", p.selector.text, p.selector.expr, pod_key)
    if p.namespace_selector is not None:
        ns = _dnf("spec.namespaceSelector", p.namespace_selector.text, p.namespace_selector.expr, namespace_key)
        conjs = _and("spec.namespaceSelector", conjs, ns)
    if p.namespace is not None:
        # A CiliumNetworkPolicy selects in its namespace only; a namespace test in the selector must agree.
        conjs = [c for c in conjs if _merge(c, (Req(NS_KEY, "In", (p.namespace,)),)) is not None]
        conjs = [tuple(r for r in c if r.key != NS_KEY) for c in conjs]
    else:
        # Pods only: an empty endpointSelector of a clusterwide policy also selects Cilium's health endpoint.
        conjs = [c if has_key(c, NS_KEY) else (*c, Req(NS_KEY, "Exists")) for c in conjs]
    return [_tidy(c) for c in conjs]


@dataclass
class PolicyT:
    policy: Policy
    local: tuple[Conj, ...]
    rules: dict[str, list[RuleT]]
    tier_index: int
    policy_index: int


def translate_policy(
    p: Policy, tier_index: int, policy_index: int, pod_cidrs: Sequence[IPNet]
) -> tuple[PolicyT | None, list[Untranslatable]]:
    problems: list[Untranslatable] = []

    def fail(path: str, reason: str) -> None:
        problems.append(Untranslatable(p.ref, path, reason))

    for flag, name, what in (
        (p.do_not_track, "doNotTrack", "untracked host-endpoint policy"),
        (p.pre_dnat, "preDNAT", "host-endpoint policy before DNAT"),
        (p.apply_on_forward, "applyOnForward", "host-endpoint policy on forwarded traffic"),
    ):
        if flag:
            fail(f"spec.{name}", f"{what}: Cilium's host firewall has no equivalent")
    if p.sa_selector is not None:
        fail("spec.serviceAccountSelector", "ServiceAccount labels are not part of Cilium endpoint identities")
    local: list[Conj] = []
    try:
        local = endpoint_alternatives(p)
    except _Fail as e:
        fail(e.path, e.reason)
    rules: dict[str, list[RuleT]] = {INGRESS: [], EGRESS: []}
    for d in DIRECTIONS:
        if d not in p.types:
            continue  # Calico ignores rules of a direction the policy does not apply to
        for r in p.rules(d):
            if r.action == LOG:
                continue
            why = opaque_reason(r)
            if why is not None:
                fail(_opaque_path(r, why), f"{why} has no Cilium L3/L4 equivalent")
                continue
            try:
                _check_local(r)
                remote = _remote(p, r, r.remote, "source" if d == INGRESS else "destination", pod_cidrs)
                l4 = _l4(r)
            except _Fail as e:
                fail(e.path, e.reason)
                continue
            if remote.empty or l4.empty:
                continue  # matches nothing
            rules[d].append(RuleT(p, r, tuple(local), remote, l4, (tier_index, policy_index, r.index)))
    if problems:
        return None, problems
    return PolicyT(p, tuple(dict.fromkeys(local)), rules, tier_index, policy_index), []


def ordered_policies(policy_set: PolicySet) -> list[tuple[int, int, Policy]]:
    tiers = policy_set.tier_order()
    by_tier: dict[str, list[Policy]] = {t: [] for t in tiers}
    for p in policy_set.policies:
        by_tier.setdefault(p.tier, []).append(p)
    out: list[tuple[int, int, Policy]] = []
    for ti, t in enumerate(by_tier):
        for pi, p in enumerate(sorted(by_tier[t], key=Policy.sort_key)):
            out.append((ti, pi, p))
    return out
