"""Calico NetworkPolicy / GlobalNetworkPolicy to CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy, exactly,
or a report of what Cilium cannot express.

Two layers:

1. **Rule by rule** (:func:`_translate_policy`): selectors through :mod:`labels` (disjunctive normal form),
   ``nets``/``notNets`` into CIDR sets with ``except`` (pod addresses are matched as pods, so a net must cover
   every pod CIDR or none), ports, ranges (``endPort``), named ports, ICMP types, service accounts,
   namespaceSelector. Whatever has no exact Cilium form (``contains``/``starts with``/``ends with``, ``http``,
   ``services``, source ports, ``notProtocol``, ICMP codes, rules narrowing the selected endpoint, host-endpoint
   flags, ...) is reported with the policy and the field.
2. **The set** (:func:`translate`): Calico evaluates tiers in order, policies by order then name, first match
   wins, ``Pass`` skips to the next tier, a tier that selects an endpoint and matches nothing denies; Cilium denies
   whatever any deny rule matches, allows the union of its allow rules and is default deny once selected. A
   Calico Deny that an *earlier* Allow overlaps cannot stay a Cilium deny (it would win); if no *later* Allow
   overlaps it either, it is left to Cilium's default deny (the common "allow these, then deny everything"), else
   the pair is reported. Pass rules, tiers whose default action is Pass and allows in later tiers behind an
   ending tier are checked flow by flow on a representative universe (:mod:`check`); a difference is reported
   with the two policies, the rules and an example flow, and the policies involved get no Cilium object.

Names: ``calico-<tier>-<name>`` (the Calico name without its ``<tier>.`` prefix, lower case; longer than 253
characters: cut and suffixed with a hash), in the Calico policy's namespace for a NetworkPolicy.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cni_migrate.analysis.policy.check import hazard_differences
from cni_migrate.analysis.policy.labels import NS_KEY, Conj, Req, _merge, to_label_selector
from cni_migrate.analysis.policy.model import ALLOW, DENY, DIRECTIONS, INGRESS, PASS, IPNet, Policy, PolicySet, Universe
from cni_migrate.analysis.policy.rules import (
    L4,
    PolicyT,
    Remote,
    RuleT,
    Untranslatable,
    ordered_policies,
    translate_policy,
)

__all__ = ["Translation", "Untranslatable", "cilium_name", "has_enable_default_deny", "parse_version", "translate"]

CILIUM_API_VERSION = "cilium.io/v2"
ANNOTATION_PREFIX = "cni-migrate.io/"
MANAGED_BY = ("app.kubernetes.io/managed-by", "cni-migrate")
_MAX_PORTS = 40  # Cilium's maxItems for toPorts[].ports and icmps[].fields
_WORLD = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


@dataclass(frozen=True)
class Translation:
    objects: tuple[dict[str, Any], ...]  # cilium.io/v2 CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy
    exact: tuple[str, ...]  # refs of policies translated exactly
    untranslatable: tuple[Untranslatable, ...]
    cilium_version: str = ""
    # The rule-by-rule translation of every policy that has one, including those in a reported order conflict:
    # what the conflicts' example flows were checked against. Never to be applied.
    direct: tuple[dict[str, Any], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.untranslatable


class VersionError(ValueError):
    pass


def parse_version(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?", text.strip())
    if not m:
        raise VersionError(f"cilium version {text!r}: expected MAJOR.MINOR[.PATCH], e.g. 1.16.3")
    ver = (int(m.group(1)), int(m.group(2)))
    if ver < (1, 14):
        raise VersionError(f"cilium version {text!r}: policies are translated for Cilium 1.14 and later")
    return ver


def has_enable_default_deny(ver: tuple[int, int]) -> bool:
    """``enableDefaultDeny`` exists from Cilium 1.16 (cilium/cilium#30572)."""
    return ver >= (1, 16)


def has_end_port(ver: tuple[int, int]) -> bool:
    """``endPort`` (port ranges) exists in Cilium's policy CRDs from 1.16 (pkg/policy/api/l4.go PortProtocol);
    before, a range is written as its single ports when it is short enough (:data:`RANGE_EXPAND_LIMIT`)."""
    return ver >= (1, 16)


RANGE_EXPAND_LIMIT = 200  # ports of one rule written one by one on Cilium < 1.16; wider ranges are reported


# --- Cilium objects ----------------------------------------------------------------------------------------


def cilium_name(p: Policy) -> str:
    name = p.name
    if p.tier != "default" and name.startswith(p.tier + "."):
        name = name[len(p.tier) + 1 :]
    out = f"calico-{p.tier}-{name}".lower()
    if len(out) > 253:
        digest = hashlib.sha256(out.encode()).hexdigest()[:10]
        out = f"{out[:242]}-{digest}"
    return out


def _l4_fields(l4: L4) -> dict[str, Any]:
    if l4.any:
        return {}
    out: dict[str, Any] = {}
    entries: list[dict[str, Any]] = []
    for proto, lo, hi in l4.ports:
        if lo == 0 and hi == 65535:
            entries.append({"port": "0", "protocol": proto})  # Cilium's port 0: every port
            continue
        if lo == hi:
            entries.append({"port": str(lo), "protocol": proto})
        else:
            entries.append({"port": str(lo), "endPort": hi, "protocol": proto})
    for proto, name in l4.named:
        entries.append({"port": name, "protocol": proto})
    if entries:
        out["toPorts"] = [{"ports": entries[i : i + _MAX_PORTS]} for i in range(0, len(entries), _MAX_PORTS)]
    if l4.icmp:
        fields = [{"family": f"IPv{fam}", "type": t} for fam, t in l4.icmp]
        out["icmps"] = [{"fields": fields[i : i + _MAX_PORTS]} for i in range(0, len(fields), _MAX_PORTS)]
    return out


def cilium_rules(rt: RuleT) -> list[dict[str, Any]]:
    """The Cilium rules (one per kind of L3 peer: Cilium refuses mixing them) of one translated Calico rule."""
    side = "from" if rt.rule.direction == INGRESS else "to"
    l4 = _l4_fields(rt.l4)
    if rt.remote.any:
        return [dict(l4) if l4 else {f"{side}Entities": ["all"]}]
    out: list[dict[str, Any]] = []
    if rt.remote.pods:
        out.append({f"{side}Endpoints": [to_label_selector(c) for c in rt.remote.pods], **l4})
    if rt.remote.nets:
        nets = rt.remote.nets
        if {n for n, x in nets if not x} >= set(_WORLD) and len(nets) == 2:
            out.append({f"{side}Entities": ["world"], **l4})
        else:
            cset = [{"cidr": str(n), **({"except": [str(x) for x in xs]} if xs else {})} for n, xs in nets]
            out.append({f"{side}CIDRSet": cset, **l4})
    return out


def _annotations(p: Policy) -> dict[str, str]:
    a = {
        ANNOTATION_PREFIX + "calico-kind": p.kind,
        ANNOTATION_PREFIX + "calico-name": p.name,
        ANNOTATION_PREFIX + "calico-tier": p.tier,
        ANNOTATION_PREFIX + "calico-api-version": p.api_version,
    }
    if p.namespace is not None:
        a[ANNOTATION_PREFIX + "calico-namespace"] = p.namespace
    if p.order is not None:
        a[ANNOTATION_PREFIX + "calico-order"] = format(p.order, "g")
    return a


def build_object(
    pt: PolicyT,
    allows: Mapping[str, list[RuleT]],
    denies: Mapping[str, list[RuleT]],
    no_default_deny: Iterable[str] = (),
    enable_default_deny: bool = True,
) -> dict[str, Any] | None:
    """The Cilium object of one Calico policy, or None when it selects nothing."""
    p = pt.policy
    if not pt.local:
        return None
    body: dict[str, Any] = {}
    off = set(no_default_deny)
    for d in DIRECTIONS:
        if d not in p.types:
            continue
        a = [cr for rt in allows.get(d, []) for cr in cilium_rules(rt)]
        x = [cr for rt in denies.get(d, []) for cr in cilium_rules(rt)]
        if a:
            body[d] = a
        if x:
            body[f"{d}Deny"] = x
        if d in off:  # the policy passes what it does not decide: it must not turn default deny on
            if (a or x) and enable_default_deny:
                body.setdefault("enableDefaultDeny", {})[d] = False
        elif not a and not x:
            body[d] = [{}]  # selected in this direction with nothing allowed: default deny only
    if not body:
        return None
    md: dict[str, Any] = {
        "name": cilium_name(p),
        "labels": {MANAGED_BY[0]: MANAGED_BY[1]},
        "annotations": _annotations(p),
    }
    if p.namespace is not None:
        md["namespace"] = p.namespace
    obj: dict[str, Any] = {
        "apiVersion": CILIUM_API_VERSION,
        "kind": "CiliumNetworkPolicy" if p.kind == "NetworkPolicy" else "CiliumClusterwideNetworkPolicy",
        "metadata": md,
    }
    specs = [{"endpointSelector": to_label_selector(c), **body} for c in pt.local]
    if len(specs) == 1:
        obj["spec"] = specs[0]
    else:
        obj["specs"] = specs
    return obj


# --- the set: order, Deny precedence, tiers, Pass ----------------------------------------------------------


def _scoped(pt: PolicyT) -> tuple[Conj, ...]:
    ns = pt.policy.namespace
    if ns is None:
        return pt.local
    return tuple((*c, Req(NS_KEY, "In", (ns,))) for c in pt.local)


def _conjs_overlap(a: Sequence[Conj], b: Sequence[Conj]) -> bool:
    return any(_merge(x, y) is not None for x in a for y in b)


def _remote_overlap(a: Remote, b: Remote) -> bool:
    if a.any or b.any:
        return True
    if _conjs_overlap(a.pods, b.pods):
        return True
    for n1, x1 in a.nets:
        for n2, x2 in b.nets:
            if n1.version != n2.version or not n1.overlaps(n2):
                continue
            inner = n1 if n1.subnet_of(n2) else n2  # type: ignore[arg-type]
            if not any(inner.subnet_of(x) for x in (*x1, *x2)):  # type: ignore[arg-type]
                return True
    return False


def _l4_overlap(a: L4, b: L4) -> bool:
    if a.any or b.any:
        return True
    for p1, lo1, hi1 in a.ports:
        for p2, lo2, hi2 in b.ports:
            if p1 == p2 and lo1 <= hi2 and lo2 <= hi1:
                return True
    protos_a = {p for p, *_ in a.ports} | {p for p, _ in a.named}
    protos_b = {p for p, *_ in b.ports} | {p for p, _ in b.named}
    # A named port resolves to some number on the destination: assume it can meet any port of its protocol.
    if any(p in protos_b for p, _ in a.named) or any(p in protos_a for p, _ in b.named):
        return True
    return bool(set(a.icmp) & set(b.icmp))


def rules_overlap(a: RuleT, b: RuleT, scoped: Mapping[int, tuple[Conj, ...]]) -> bool:
    """Conservative: False only when no flow can match both rules at a common endpoint."""
    return (
        _l4_overlap(a.l4, b.l4)
        and _conjs_overlap(scoped[id(a.policy)], scoped[id(b.policy)])
        and _remote_overlap(a.remote, b.remote)
    )


@dataclass
class _Plan:
    allows: dict[int, dict[str, list[RuleT]]]
    denies: dict[int, dict[str, list[RuleT]]]
    no_default_deny: dict[int, set[str]]
    hazards: dict[int, str]  # id(policy) -> why its endpoints need a flow-by-flow check


def _reachable(rules: list[RuleT]) -> list[RuleT]:
    """Rules after a catch-all rule of the same policy are never reached."""
    out: list[RuleT] = []
    for r in rules:
        out.append(r)
        if r.catch_all:
            break
    return out


def plan_set(pts: Sequence[PolicyT], policy_set: PolicySet, ver: tuple[int, int]) -> _Plan:
    scoped = {id(pt.policy): _scoped(pt) for pt in pts}
    plan = _Plan({}, {}, {}, {})
    for pt in pts:
        key = id(pt.policy)
        plan.allows[key] = {d: [] for d in DIRECTIONS}
        plan.denies[key] = {d: [] for d in DIRECTIONS}
        plan.no_default_deny[key] = set()
    for d in DIRECTIONS:
        active = [pt for pt in pts if d in pt.policy.types and pt.local]
        reach = {id(pt.policy): _reachable(pt.rules[d]) for pt in active}
        transparent: dict[int, bool] = {}
        ends: dict[int, bool] = {}  # the policy ends its tier's evaluation for every flow (a catch-all Allow/Deny)
        for pt in active:
            rs = reach[id(pt.policy)]
            last = rs[-1] if rs else None
            tier_pass = policy_set.tiers[pt.policy.tier].default_action == PASS
            transparent[id(pt.policy)] = bool(last and last.catch_all and last.rule.action == PASS) or (
                tier_pass and not (last and last.catch_all)
            )
            ends[id(pt.policy)] = bool(last and last.catch_all and last.rule.action in (ALLOW, DENY))
        # Only policies that can select a common endpoint meet: a NetworkPolicy those of its namespace and the
        # global ones, a GlobalNetworkPolicy all.
        by_ns: dict[str | None, list[PolicyT]] = {}
        for pt in active:
            by_ns.setdefault(pt.policy.namespace, []).append(pt)
        glob = by_ns.get(None, [])

        def neighbours(
            pt: PolicyT,
            active: list[PolicyT] = active,
            by_ns: dict[str | None, list[PolicyT]] = by_ns,
            glob: list[PolicyT] = glob,
        ) -> list[PolicyT]:
            return active if pt.policy.namespace is None else by_ns[pt.policy.namespace] + glob

        allows_of = {k: [r for r in rs if r.rule.action == ALLOW] for k, rs in reach.items()}
        for pt in active:
            k = id(pt.policy)
            near: list[RuleT] | None = None
            for r in reach[k]:
                if r.rule.action == ALLOW:
                    plan.allows[k][d].append(r)
                elif r.rule.action == DENY:
                    if near is None:
                        near = [a for o in neighbours(pt) for a in allows_of[id(o.policy)]]
                    earlier = [a for a in near if a.pos < r.pos and rules_overlap(a, r, scoped)]
                    later = [a for a in near if a.pos > r.pos and rules_overlap(a, r, scoped)]
                    if not earlier:
                        plan.denies[k][d].append(r)
                    elif not later and not transparent[k]:
                        pass  # left to Cilium's default deny: nothing after it allows what it denies
                    else:
                        plan.denies[k][d].append(r)
                        plan.hazards.setdefault(k, f"{d}: Deny {r.path} after an overlapping Allow, before another")
                        for a in earlier:
                            plan.hazards.setdefault(id(a.policy), f"{d}: Allow {a.path} before an overlapping Deny")
                elif not r.catch_all:
                    plan.hazards.setdefault(k, f"{d}: Pass {r.path} on part of the traffic")
            if transparent[k]:
                plan.no_default_deny[k].add(d)
                if not has_enable_default_deny(ver) and (plan.allows[k][d] or plan.denies[k][d]):
                    plan.hazards.setdefault(
                        k, f"{d}: passes to the next tier, but Cilium {ver[0]}.{ver[1]} has no enableDefaultDeny"
                    )
        # Policies later in the same tier as a transparent one are skipped for its endpoints; allows in later
        # tiers behind a tier that ends in deny are never reached in Calico.
        for pt in active:
            k = id(pt.policy)
            if not transparent[k] and ends[k]:
                continue  # neither passes its endpoints on nor ends its tier in deny
            for other in neighbours(pt):
                ko = id(other.policy)
                if ko == k or not _conjs_overlap(scoped[k], scoped[ko]):
                    continue
                # After a passing policy, another of its tier is skipped for its endpoints; before it, the other's
                # default deny is not the tier's end any more.
                same_tier = other.tier_index == pt.tier_index
                after = other.policy_index > pt.policy_index
                if transparent[k] and same_tier and (not transparent[ko] or (after and reach[ko])):
                    plan.hazards.setdefault(ko, f"{d}: in the tier of {pt.policy.ref}, which passes its endpoints on")
                if other.tier_index > pt.tier_index and not transparent[k] and not ends[k] and plan.allows[ko][d]:
                    plan.hazards.setdefault(ko, f"{d}: allows behind tier {pt.policy.tier!r}, which ends in deny")
                    plan.hazards.setdefault(k, f"{d}: its tier ends in deny before allows of later tiers")
    return plan


def _pos(r: RuleT) -> tuple[int, int, int]:
    return r.pos


def _ports_one_by_one(obj: dict[str, Any]) -> dict[str, Any]:
    """The object with every ``endPort`` range written as its single ports (Cilium < 1.16 has no endPort)."""

    def walk(x: Any) -> Any:
        if isinstance(x, list):
            return [walk(v) for v in x]
        if not isinstance(x, dict):
            return x
        if "toPorts" in x:
            x = {**x, "toPorts": [_split_entry(tp) for tp in x["toPorts"]]}
            x["toPorts"] = [tp for group in x["toPorts"] for tp in group]
        return {k: walk(v) for k, v in x.items()}

    return dict(walk(obj))


def _split_entry(tp: dict[str, Any]) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = []
    for p in tp.get("ports") or []:
        if "endPort" in p:
            lo, hi = int(p["port"]), int(p["endPort"])
            ports.extend({"port": str(n), "protocol": p["protocol"]} for n in range(lo, hi + 1))
        else:
            ports.append(p)
    if not ports:
        return [tp]
    return [{**tp, "ports": ports[i : i + _MAX_PORTS]} for i in range(0, len(ports), _MAX_PORTS)]


def _wide_ranges(p: Policy, rule_lists: Iterable[list[RuleT]], ver: tuple[int, int]) -> list[Untranslatable]:
    out: list[Untranslatable] = []
    for rts in rule_lists:
        for rt in rts:
            wide = [
                (lo, hi) for _, lo, hi in rt.l4.ports if hi - lo + 1 > RANGE_EXPAND_LIMIT and (lo, hi) != (0, 65535)
            ]
            if wide:
                lo, hi = wide[0]
                out.append(
                    Untranslatable(
                        p.ref,
                        f"{rt.path}.ports",
                        f"port range {lo}:{hi}: Cilium {ver[0]}.{ver[1]} has no endPort (from 1.16) and the range is "
                        f"too wide to list port by port (over {RANGE_EXPAND_LIMIT})",
                    )
                )
    return out


def translate(
    policy_set: PolicySet,
    *,
    cilium_version: str,
    pod_cidrs: Sequence[IPNet] = (),
    universe: Universe | None = None,
) -> Translation:
    """Translate every policy of the set; see the module docstring. ``pod_cidrs`` (the cluster's pod address
    ranges) decide whether a ``nets`` entry means pods, outside addresses or both; ``universe`` (a
    :class:`~cni_migrate.analysis.policy.model.Universe`, e.g. from facts) adds real pods to the flows the set is
    checked on."""
    ver = parse_version(cilium_version)
    problems: list[Untranslatable] = []
    pts: list[PolicyT] = []
    for ti, pi, p in ordered_policies(policy_set):
        pt, probs = translate_policy(p, ti, pi, pod_cidrs)
        problems.extend(probs)
        if pt is not None:
            pts.append(pt)
    plan = plan_set(pts, policy_set, ver)
    objects: dict[int, dict[str, Any]] = {}
    end_port = has_end_port(ver)
    for pt in pts:
        k = id(pt.policy)
        # checked with endPort (the same ports, cheaper to evaluate); written port by port below before 1.16
        obj = build_object(pt, plan.allows[k], plan.denies[k], plan.no_default_deny[k], has_enable_default_deny(ver))
        if obj is not None:
            objects[k] = obj
        if not end_port:
            problems.extend(_wide_ranges(pt.policy, [*plan.allows[k].values(), *plan.denies[k].values()], ver))
    bad: set[str] = {u.policy for u in problems}
    if plan.hazards:
        conflicts = hazard_differences(policy_set, pts, plan.hazards, objects, pod_cidrs, universe)
        problems.extend(conflicts)
        for u in conflicts:
            bad.add(u.policy)
            if u.other_policy:
                bad.add(u.other_policy)
    kept = [objects[id(pt.policy)] for pt in pts if pt.policy.ref not in bad and id(pt.policy) in objects]
    if not end_port:
        kept = [_ports_one_by_one(o) for o in kept]
    exact = tuple(pt.policy.ref for pt in pts if pt.policy.ref not in bad)
    direct = tuple(objects[id(pt.policy)] for pt in pts if id(pt.policy) in objects)
    return Translation(tuple(kept), exact, tuple(problems), cilium_version, direct)
