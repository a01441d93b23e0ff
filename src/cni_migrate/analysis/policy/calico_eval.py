"""Calico's verdict for a flow: tiers in order, policies by order then name, first matching rule wins, Pass
skips to the next tier, a tier whose policies select the endpoint but match nothing ends in its default action
(Deny unless the Tier says Pass), and an endpoint no policy selects falls to its profile (allow).

Features the evaluator cannot decide at this level (``http``, ``services``, source ports, ``notICMP``,
service-account label selectors) make a rule *opaque*: it never matches here, and :func:`opaque_reason` says so
(such policies are also untranslatable, so they are reported either way).
"""

from __future__ import annotations

from dataclasses import dataclass

from cni_migrate.analysis.policy.model import (
    ALLOW,
    DENY,
    INGRESS,
    L4_PROTOCOLS,
    LOG,
    PASS,
    Endpoint,
    Flow,
    Peer,
    Policy,
    PolicySet,
    PortRange,
    Rule,
    Selector,
    Universe,
)
from cni_migrate.analysis.selectors import Matcher, compile_calico

_PROTO_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132, "ICMP": 1, "ICMPv6": 58, "UDPLite": 136}


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    why: str  # the deciding rule, or the default that applied
    policy: str | None = None  # the ref of the policy whose rule decided


def calico_labels(ep: Endpoint) -> dict[str, str]:
    """The labels Calico gives a pod's workload endpoint."""
    labels = dict(ep.labels)
    labels["projectcalico.org/namespace"] = ep.namespace or ""
    labels["projectcalico.org/orchestrator"] = "k8s"
    labels["projectcalico.org/serviceaccount"] = ep.service_account
    return labels


def namespace_labels(universe: Universe, ns: str) -> dict[str, str]:
    labels = dict(universe.namespace_labels(ns))
    labels["projectcalico.org/name"] = ns
    return labels


def opaque_reason(rule: Rule) -> str | None:
    if rule.http:
        return "http match (needs Calico's application layer)"
    for side, peer in (("source", rule.source), ("destination", rule.destination)):
        if peer.services:
            return f"{side}.services"
        if peer.sa_selector is not None:
            return f"{side}.serviceAccounts.selector (ServiceAccount labels)"
    if rule.source.ports is not None or rule.source.not_ports is not None:
        return "source ports"
    if rule.not_icmp:
        return "notICMP"
    return None


def _proto_number(p: str | int) -> int:
    return p if isinstance(p, int) else _PROTO_NUMBERS[p]


def _protocol_matches(want: str | int, flow: Flow) -> bool:
    if want in {"ICMPv6", 58}:
        return flow.protocol == "ICMP" and flow.dst.ip.version == 6
    if want in {"ICMP", 1}:
        return flow.protocol == "ICMP" and flow.dst.ip.version == 4
    return _proto_number(want) == _proto_number(flow.protocol)


def port_matches(port: PortRange | str, flow: Flow) -> bool:
    if flow.port is None:
        return False
    if isinstance(port, PortRange):
        return port.lo <= flow.port <= port.hi
    resolved = flow.dst.named_port(port, str(flow.protocol))
    return resolved is not None and resolved == flow.port


class CalicoEvaluator:
    """Verdicts of one policy set over one universe; selectors are compiled once."""

    def __init__(self, policy_set: PolicySet, universe: Universe) -> None:
        self.set = policy_set
        self.universe = universe
        self._compiled: dict[str, Matcher] = {}
        self._ns_labels: dict[str, dict[str, str]] = {}
        self._ep_labels: dict[int, dict[str, str]] = {}
        order = policy_set.tier_order()
        by_tier: dict[str, list[Policy]] = {t: [] for t in order}
        for p in policy_set.policies:
            by_tier.setdefault(p.tier, []).append(p)
        self.tiers: list[tuple[str, list[Policy]]] = [(t, sorted(by_tier[t], key=Policy.sort_key)) for t in by_tier]

    def _m(self, sel: Selector) -> Matcher:
        m = self._compiled.get(sel.text)
        if m is None:
            m = self._compiled[sel.text] = compile_calico(sel.expr)
        return m

    def _labels(self, ep: Endpoint) -> dict[str, str]:
        key = id(ep)
        got = self._ep_labels.get(key)
        if got is None:
            got = self._ep_labels[key] = calico_labels(ep)
        return got

    def _nsl(self, ns: str) -> dict[str, str]:
        got = self._ns_labels.get(ns)
        if got is None:
            got = self._ns_labels[ns] = namespace_labels(self.universe, ns)
        return got

    def selects(self, policy: Policy, ep: Endpoint) -> bool:
        if not ep.is_pod:
            return False
        if policy.namespace is not None and ep.namespace != policy.namespace:
            return False
        if not self._m(policy.selector)(self._labels(ep)):
            return False
        if policy.namespace_selector is not None and not self._m(policy.namespace_selector)(
            self._nsl(ep.namespace or "")
        ):
            return False
        return policy.sa_selector is None or self._m(policy.sa_selector)({})

    def selecting(self, ep: Endpoint, direction: str) -> list[tuple[str, list[Policy]]]:
        out = []
        for tier, pols in self.tiers:
            sel = [p for p in pols if direction in p.types and self.selects(p, ep)]
            if sel:
                out.append((tier, sel))
        return out

    def _peer_matches(self, peer: Peer, ep: Endpoint, scope_ns: str | None, flow: Flow, is_dst: bool) -> bool:
        if peer.nets is not None and not any(ep.ip in n for n in peer.nets if n.version == ep.ip.version):
            return False
        if peer.not_nets is not None and any(ep.ip in n for n in peer.not_nets if n.version == ep.ip.version):
            return False
        if peer.pods_only(scope_ns is not None):
            if not ep.is_pod:
                return False
            if peer.namespace_selector is not None:
                if not self._m(peer.namespace_selector)(self._nsl(ep.namespace or "")):
                    return False
            elif scope_ns is not None and ep.namespace != scope_ns:
                return False
            if peer.selector is not None and not self._m(peer.selector)(self._labels(ep)):
                return False
            if peer.sa_names is not None and ep.service_account not in peer.sa_names:
                return False
            if peer.sa_selector is not None:
                return False
        if peer.not_selector is not None and ep.is_pod and self._m(peer.not_selector)(self._labels(ep)):
            return False
        if is_dst:
            if peer.ports is not None and not any(port_matches(p, flow) for p in peer.ports):
                return False
            if peer.not_ports is not None and any(port_matches(p, flow) for p in peer.not_ports):
                return False
        return not peer.services

    def rule_l3(self, policy: Policy, rule: Rule, flow: Flow) -> bool:
        """The endpoint/address part of a rule (no ports, no protocol); opaque rules never match."""
        if opaque_reason(rule) is not None:
            return False
        ns = policy.namespace
        return self._peer_matches(rule.source, flow.src, ns, flow, False) and self._peer_matches(
            rule.destination, flow.dst, ns, flow, False
        )

    @staticmethod
    def _protocol_part(rule: Rule, flow: Flow) -> bool:
        """Protocol, ICMP and IP version; a rule with destination ports matches only port-carrying protocols."""
        if rule.protocol is not None and not _protocol_matches(rule.protocol, flow):
            return False
        if rule.not_protocol is not None and _protocol_matches(rule.not_protocol, flow):
            return False
        if rule.icmp_type is not None and (flow.protocol != "ICMP" or flow.icmp_type != rule.icmp_type):
            return False
        if rule.icmp_code is not None and flow.icmp_code != rule.icmp_code:
            return False
        if rule.ip_version is not None and flow.dst.ip.version != rule.ip_version:
            return False
        dst = rule.destination
        return (dst.ports is None and dst.not_ports is None) or flow.protocol in L4_PROTOCOLS

    @classmethod
    def rule_l4(cls, rule: Rule, flow: Flow) -> bool:
        """The protocol, ICMP, IP version and destination-port part of a rule."""
        if not cls._protocol_part(rule, flow):
            return False
        dst = rule.destination
        if dst.ports is not None or dst.not_ports is not None:
            if dst.ports is not None and not any(port_matches(p, flow) for p in dst.ports):
                return False
            if dst.not_ports is not None and any(port_matches(p, flow) for p in dst.not_ports):
                return False
        return True

    def rule_matches(self, policy: Policy, rule: Rule, flow: Flow) -> bool:
        if opaque_reason(rule) is not None or not self._protocol_part(rule, flow):
            return False
        ns = policy.namespace
        return self._peer_matches(rule.source, flow.src, ns, flow, False) and self._peer_matches(
            rule.destination, flow.dst, ns, flow, True
        )

    def verdict(self, flow: Flow, direction: str, selecting: list[tuple[str, list[Policy]]] | None = None) -> Verdict:
        local = flow.dst if direction == INGRESS else flow.src
        tiers = self.selecting(local, direction) if selecting is None else selecting
        for tier, pols in tiers:
            passed = False
            for p in pols:
                for r in p.rules(direction):
                    if r.action == LOG or not self.rule_matches(p, r, flow):
                        continue
                    where = f"{p.ref} {direction}[{r.index}] ({r.action})"
                    if r.action == ALLOW:
                        return Verdict(True, where, p.ref)
                    if r.action == DENY:
                        return Verdict(False, where, p.ref)
                    assert r.action == PASS
                    passed = True
                    break
                if passed:
                    break
            if passed or self.set.tiers[tier].default_action == PASS:
                continue
            return Verdict(False, f"end of tier {tier!r} (its policies select the endpoint, none matched)", pols[0].ref)
        return Verdict(True, "no Calico policy decides: the namespace profile allows")


def calico_flow_verdict(ev: CalicoEvaluator, flow: Flow) -> tuple[Verdict | None, Verdict | None]:
    """(egress verdict at the source pod, ingress verdict at the destination pod); None where not a pod."""
    eg = ev.verdict(flow, "egress") if flow.src.is_pod else None
    ing = ev.verdict(flow, INGRESS) if flow.dst.is_pod else None
    return eg, ing
