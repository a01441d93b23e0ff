"""Cilium's verdict for a flow over CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy objects (as dicts).

Per direction: a deny rule that matches wins; else an allow rule that matches allows; else the endpoint is denied
if a selecting policy has rules in that direction (``ingress``/``ingressDeny``; ``enableDefaultDeny`` false opts
a policy out), and allowed otherwise. A rule with neither an L3 peer nor ports matches nothing (``ingress: [{}]``
only turns default deny on); an L3-only rule matches every protocol and port; an L4-only rule every peer. CIDR
peers match addresses outside the cluster only; endpoint peers of a namespaced policy without a namespace label
are limited to the policy's namespace. The universe has pods and outside addresses only, so the ``cluster``
entity is every pod and ``world`` every outside address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from cni_migrate.analysis.policy.model import INGRESS, L4_PROTOCOLS, Endpoint, Flow, Universe

_NS = "io.kubernetes.pod.namespace"
SelectedRule = tuple[str, Mapping[str, Any], str | None, Mapping[str, Any]]  # where, rule, namespace scope, object


def cilium_labels(ep: Endpoint, universe: Universe) -> dict[str, str]:
    """A pod's Cilium endpoint labels, keys without their ``k8s:`` source."""
    labels = dict(ep.labels)
    labels[_NS] = ep.namespace or ""
    labels["io.cilium.k8s.policy.serviceaccount"] = ep.service_account
    labels["io.cilium.k8s.policy.cluster"] = "default"
    for k, v in universe.namespace_labels(ep.namespace or "").items():
        labels[f"io.cilium.k8s.namespace.labels.{k}"] = v
    return labels


def _key(k: str) -> str:
    for prefix in ("k8s:", "any:"):
        if k.startswith(prefix):
            return k[len(prefix) :]
    return k


def selector_matches(sel: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(_key(k)) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        key, op, vals = _key(e["key"]), e["operator"], e.get("values") or []
        present = key in labels
        if (
            (op == "In" and not (present and labels[key] in vals))
            or (op == "NotIn" and present and labels[key] in vals)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def _has_ns(sel: Mapping[str, Any]) -> bool:
    keys = [_key(k) for k in sel.get("matchLabels") or {}]
    keys += [_key(e["key"]) for e in sel.get("matchExpressions") or []]
    return _NS in keys


def compile_selector(sel: Mapping[str, Any]) -> Callable[[Mapping[str, str]], bool]:
    """A closure equivalent to ``selector_matches(sel, labels)``."""
    eq = [(_key(k), v) for k, v in (sel.get("matchLabels") or {}).items()]
    exprs = [
        (_key(e["key"]), e["operator"], frozenset(e.get("values") or ())) for e in sel.get("matchExpressions") or []
    ]

    def match(labels: Mapping[str, str]) -> bool:
        for k, v in eq:
            if labels.get(k) != v:
                return False
        for k, op, vals in exprs:
            have = labels.get(k)
            if op == "In":
                if have is None or have not in vals:
                    return False
            elif op == "NotIn":
                if have is not None and have in vals:
                    return False
            elif op == "Exists":
                if have is None:
                    return False
            elif have is not None:
                return False
        return True

    return match


class _CompiledL3:
    """The L3 part of one Cilium rule, parsed once."""

    def __init__(self, rule: Mapping[str, Any], side: str) -> None:
        eps, cidrs, sets, ents = (rule.get(f"{side}{k}") for k in ("Endpoints", "CIDR", "CIDRSet", "Entities"))
        self.has_l3 = not (eps is None and cidrs is None and sets is None and ents is None)
        self.eps = [(_has_ns(sel), compile_selector(sel)) for sel in eps or []]
        self.cidrs = [ipaddress.ip_network(c, strict=False) for c in cidrs or []]
        self.sets = [
            (
                ipaddress.ip_network(x["cidr"], strict=False),
                [ipaddress.ip_network(e, strict=False) for e in x.get("except") or []],
            )
            for x in sets or []
        ]
        names = set(ents or [])
        self.all_ents = "all" in names
        self.cluster_ent = "cluster" in names
        self.world_ent = any(e.startswith("world") for e in names)


class CiliumEvaluator:
    def __init__(self, policies: list[Mapping[str, Any]], universe: Universe) -> None:
        self.policies = policies
        self.universe = universe
        self._labels: dict[int, dict[str, str]] = {}
        self._selected: dict[tuple[int, str], tuple[list[SelectedRule], list[SelectedRule], bool]] = {}
        self._l3_cache: dict[tuple[int, str], _CompiledL3] = {}

    def labels(self, ep: Endpoint) -> dict[str, str]:
        got = self._labels.get(id(ep))
        if got is None:
            got = self._labels[id(ep)] = cilium_labels(ep, self.universe)
        return got

    @staticmethod
    def specs(pol: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """The rules of an object: ``spec`` and/or ``specs`` (each with its own endpointSelector)."""
        out: list[Mapping[str, Any]] = []
        if pol.get("spec"):
            out.append(pol["spec"])
        out.extend(pol.get("specs") or [])
        return out

    def _selects(self, pol: Mapping[str, Any], spec: Mapping[str, Any], ep: Endpoint) -> bool:
        ns = (pol.get("metadata") or {}).get("namespace")
        if not ep.is_pod or (pol.get("kind") == "CiliumNetworkPolicy" and ep.namespace != ns):
            return False
        return "nodeSelector" not in spec and selector_matches(spec.get("endpointSelector") or {}, self.labels(ep))

    def _peer_l3(self, rule: Mapping[str, Any], side: str, peer: Endpoint, ns: str | None) -> bool | None:
        """True/False when the rule has an L3 part; None when it has none."""
        key = (id(rule), side)
        c = self._l3_cache.get(key)
        if c is None:
            c = self._l3_cache[key] = _CompiledL3(rule, side)
        if not c.has_l3:
            return None
        if peer.is_pod:
            if c.eps:
                labels = self.labels(peer)
                for has_ns, match in c.eps:
                    if (ns is None or has_ns or peer.namespace == ns) and match(labels):
                        return True
            return c.all_ents or c.cluster_ent
        for net in c.cidrs:
            if peer.ip in net:
                return True
        for net, excepts in c.sets:
            if peer.ip in net and not any(peer.ip in x for x in excepts):
                return True
        return c.all_ents or c.world_ent

    @staticmethod
    def _l4(rule: Mapping[str, Any], flow: Flow) -> bool | None:
        ports, icmps = rule.get("toPorts"), rule.get("icmps")
        if ports is None and icmps is None:
            return None
        for pr in ports or []:
            for p in pr.get("ports") or []:
                proto = p.get("protocol") or "ANY"
                if flow.protocol not in L4_PROTOCOLS or proto not in ("ANY", flow.protocol):
                    continue
                port = str(p.get("port") or "0")
                if port.isdigit():
                    lo = int(port)
                    hi = int(p.get("endPort") or lo)
                    if lo == 0 or (flow.port is not None and lo <= flow.port <= hi):
                        return True
                elif flow.dst.named_port(port, str(flow.protocol)) == flow.port:
                    return True
        for ic in icmps or []:
            for f in ic.get("fields") or []:
                fam = f.get("family") or "IPv4"
                if flow.protocol == "ICMP" and fam == f"IPv{flow.dst.ip.version}" and f.get("type") == flow.icmp_type:
                    return True
        return False

    def selected(self, local: Endpoint, direction: str) -> tuple[list[SelectedRule], list[SelectedRule], bool]:
        """(deny rules, allow rules, enforced) of the specs selecting ``local``: each rule as (where, rule,
        namespace scope, object). Cached per endpoint."""
        key = (id(local), direction)
        got = self._selected.get(key)
        if got is None:
            got = self._selected[key] = self._select(local, direction)
        return got

    def _select(self, local: Endpoint, direction: str) -> tuple[list[SelectedRule], list[SelectedRule], bool]:
        denies: list[SelectedRule] = []
        allows: list[SelectedRule] = []
        enforced = False
        for pol, ns, name, spec in self._specs_selecting(local):
            a, x = spec.get(direction) or [], spec.get(f"{direction}Deny") or []
            if (a or x) and (spec.get("enableDefaultDeny") or {}).get(direction, True):
                enforced = True
            denies += [(f"{name} {direction}Deny[{i}]", r, ns, pol) for i, r in enumerate(x)]
            allows += [(f"{name} {direction}[{i}]", r, ns, pol) for i, r in enumerate(a)]
        return denies, allows, enforced

    def _specs_selecting(
        self, local: Endpoint
    ) -> Iterator[tuple[Mapping[str, Any], str | None, str, Mapping[str, Any]]]:
        """(object, its namespace or None when clusterwide, its name for reports, spec) of every spec selecting
        ``local``, in object order."""
        for pol in self.policies:
            md = pol.get("metadata") or {}
            ns = md.get("namespace") if pol.get("kind") == "CiliumNetworkPolicy" else None
            name = f"{pol.get('kind')} {ns + '/' if ns else ''}{md.get('name')}"
            for spec in self.specs(pol):
                if self._selects(pol, spec, local):
                    yield pol, ns, name, spec

    def rule_l3(self, rule: Mapping[str, Any], direction: str, flow: Flow, ns: str | None) -> bool | None:
        side, peer = ("from", flow.src) if direction == INGRESS else ("to", flow.dst)
        return self._peer_l3(rule, side, peer, ns)

    rule_l4 = _l4

    def _rule_matches(self, rule: Mapping[str, Any], direction: str, flow: Flow, ns: str | None) -> bool:
        side, peer = ("from", flow.src) if direction == INGRESS else ("to", flow.dst)
        l3, l4 = self._peer_l3(rule, side, peer, ns), self._l4(rule, flow)
        if l3 is None and l4 is None:
            return False
        return l3 is not False and l4 is not False

    def decide(self, flow: Flow, direction: str) -> tuple[bool, str, Mapping[str, Any] | None]:
        """(allowed, why, the object whose rule decided or None for a default)."""
        local = flow.dst if direction == INGRESS else flow.src
        enforced, allow_by, allow_obj = False, None, None
        for pol, ns, name, spec in self._specs_selecting(local):
            allows, denies = spec.get(direction) or [], spec.get(f"{direction}Deny") or []
            if (allows or denies) and (spec.get("enableDefaultDeny") or {}).get(direction, True):
                enforced = True
            for i, r in enumerate(denies):
                if self._rule_matches(r, direction, flow, ns):
                    return False, f"{name} {direction}Deny[{i}]", pol
            if allow_by is None:
                for i, r in enumerate(allows):
                    if self._rule_matches(r, direction, flow, ns):
                        allow_by, allow_obj = f"{name} {direction}[{i}]", pol
                        break
        if allow_by is not None:
            return True, allow_by, allow_obj
        if enforced:
            return False, "default deny (selected, nothing allows)", None
        return True, "no policy selects", None

    def verdict(self, flow: Flow, direction: str) -> tuple[bool, str]:
        allowed, why, _ = self.decide(flow, direction)
        return allowed, why
