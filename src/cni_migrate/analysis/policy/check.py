"""Compare a Calico policy set with Cilium policies flow class by flow class, and build the universe of flow
classes to compare on when there is no live cluster.

The representative universe is made from the policies themselves: for every selector alternative (and every
pairwise combination that can matter: two policies selecting one endpoint, an Allow and a Deny or a Pass meeting
the same peer) a *witness* pod that satisfies it with nothing else set, and a second one where keys the
alternative only excludes carry some other value; a bare pod per namespace and one in a namespace no policy
names; for every CIDR an outside address in it (and in each ``except``) plus addresses outside all of them; for
every port range its ends and the ports just outside; named ports resolved on the pods; every ICMP type used and
one unused; and one protocol no rule names. Facts (real namespaces and pods) are added when given.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cni_migrate.analysis.policy.calico_eval import CalicoEvaluator
from cni_migrate.analysis.policy.cilium_eval import CiliumEvaluator
from cni_migrate.analysis.policy.labels import NS_KEY, NS_LABEL_PREFIX, SA_KEY, Conj, Req, _merge
from cni_migrate.analysis.policy.model import (
    ALLOW,
    DIRECTIONS,
    EGRESS,
    INGRESS,
    LOG,
    PASS,
    Endpoint,
    Flow,
    IPNet,
    NamedPort,
    Namespace,
    Policy,
    PolicySet,
    Universe,
)
from cni_migrate.analysis.policy.rules import PolicyT, Untranslatable, ordered_policies, translate_policy

ANNOTATION_SOURCE = ("cni-migrate.io/calico-kind", "cni-migrate.io/calico-namespace", "cni-migrate.io/calico-name")
_DEFAULT_POD_CIDR = ipaddress.ip_network("10.244.0.0/16")
_OTHER = "zz-other"


@dataclass(frozen=True)
class FlowDiff:
    flow: str  # Flow.describe()
    direction: str  # ingress (at the destination pod) or egress (at the source pod)
    calico_allowed: bool
    calico_why: str  # the deciding rule, or the default that applied
    calico_policy: str | None
    cilium_allowed: bool
    cilium_why: str
    cilium_policy: str | None  # the Calico policy the deciding Cilium object came from, else the object's name
    example: Flow | None = None

    def __str__(self) -> str:
        c = "allows" if self.calico_allowed else "denies"
        k = "allows" if self.cilium_allowed else "denies"
        return f"{self.flow} ({self.direction}): Calico {c} ({self.calico_why}), Cilium {k} ({self.cilium_why})"


def source_ref(obj: Mapping[str, Any] | None) -> str | None:
    """The Calico policy a generated Cilium object came from (its annotations), else its own kind and name."""
    if obj is None:
        return None
    md = obj.get("metadata") or {}
    ann = md.get("annotations") or {}
    kind, ns, name = (ann.get(k) for k in ANNOTATION_SOURCE)
    if kind and name:
        return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"
    ns = md.get("namespace")
    return f"{obj.get('kind')} {ns + '/' if ns else ''}{md.get('name')}"


# --- witnesses ------------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, pod_cidrs: Sequence[IPNet]) -> None:
        v4 = [c for c in pod_cidrs if c.version == 4]
        self.pod_net = v4[0] if v4 else (pod_cidrs[0] if pod_cidrs else _DEFAULT_POD_CIDR)
        self.pod_cidrs = tuple(pod_cidrs) or (self.pod_net,)
        self._ips = self.pod_net.hosts()
        self.namespaces: dict[str, dict[str, str]] = {}
        self.pods: dict[tuple[Any, ...], Endpoint] = {}
        self.externals: dict[str, Endpoint] = {}
        self.named: tuple[NamedPort, ...] = ()
        self._fresh_ns = 0

    def namespace(self, name: str, labels: Mapping[str, str] | None = None) -> bool:
        have = self.namespaces.setdefault(name, {})
        for k, v in (labels or {}).items():
            if have.get(k, v) != v:
                return False
        have.update(labels or {})
        return True

    def pod(self, ns: str, labels: Mapping[str, str], sa: str = "default", named: bool = True) -> Endpoint:
        key = (ns, tuple(sorted(labels.items())), sa, named)
        got = self.pods.get(key)
        if got is None:
            self.namespace(ns)
            name = f"w{len(self.pods)}"
            got = self.pods[key] = Endpoint(name, self._next_ip(), ns, dict(labels), sa, self.named if named else ())
        return got

    def _next_ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        ip = next(self._ips)
        assert isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
        return ip

    def external(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        if any(ip in c for c in self.pod_cidrs if c.version == ip.version):
            return
        self.externals.setdefault(str(ip), Endpoint(f"x{len(self.externals)}", ip))

    def witness(self, conj: Conj, default_ns: str | None, fresh: bool) -> Endpoint | None:
        """A pod satisfying the alternative; ``fresh``: keys it only excludes get another value."""
        by_key: dict[str, list[Any]] = {}
        for r in conj:
            by_key.setdefault(r.key, []).append(r)
        ns_name: str | None = None
        ns_labels: dict[str, str] = {}
        labels: dict[str, str] = {}
        sa = "default"
        for key, reqs in by_key.items():
            value = _value(reqs, fresh)
            if key == NS_KEY:
                if value is None:
                    return None  # every pod has a namespace
                ns_name = value if value != _OTHER else None
                if ns_name is None:
                    excluded = {v for r in reqs if r.op == "NotIn" for v in r.values}
                    ns_name = default_ns if default_ns and default_ns not in excluded else None
            elif key == SA_KEY:
                if value is None:
                    return None
                sa = value
            elif key.startswith(NS_LABEL_PREFIX):
                if value is not None:
                    ns_labels[key[len(NS_LABEL_PREFIX) :]] = value
            elif value is not None:
                labels[key.removeprefix("k8s:")] = value
        if sa == "default" and SA_KEY not in by_key:
            sa = "default"
        if ns_name is None:
            ns_name = default_ns if (default_ns and not ns_labels) else self._new_ns()
        if not self.namespace(ns_name, ns_labels):
            return None
        return self.pod(ns_name, labels, sa)

    def _new_ns(self) -> str:
        self._fresh_ns += 1
        return f"wns-{self._fresh_ns}"

    def universe(self) -> Universe:
        return Universe(
            {n: Namespace(n, dict(lbl)) for n, lbl in self.namespaces.items()},
            tuple(self.pods.values()),
            tuple(self.externals.values()),
            self.pod_cidrs,
        )


def _value(reqs: Sequence[Any], fresh: bool) -> str | None:
    """A value meeting all requirements on one key; None = the key absent (or, for NS/SA keys, impossible)."""
    ins = [set(r.values) for r in reqs if r.op == "In"]
    notin = {v for r in reqs if r.op == "NotIn" for v in r.values}
    if any(r.op == "DoesNotExist" for r in reqs):
        return None
    if ins:
        ok = sorted(set.intersection(*ins) - notin)
        return ok[0] if ok else None
    if any(r.op == "Exists" for r in reqs) or fresh:
        v = _OTHER
        while v in notin:
            v += "x"
        return v
    return None


def _l4_points(pts: Iterable[PolicyT]) -> tuple[list[tuple[str | int, int | None, int | None]], list[NamedPort]]:
    """Representative (protocol, port or ICMP type, ICMP code) points and the named ports pods carry."""
    points: set[tuple[str | int, int | None, int | None]] = {("TCP", 1, None), ("UDP", 1, None), ("SCTP", 1, None)}
    points |= {("ICMP", 8, 0), ("ICMP", 250, 0), (47, None, None)}
    ranges: dict[str, list[tuple[int, int]]] = {}
    names: dict[tuple[str, str], None] = {}
    for pt in pts:
        for d in DIRECTIONS:
            for rt in pt.rules[d]:
                for proto, lo, hi in rt.l4.ports:
                    ranges.setdefault(proto, []).append((lo, hi))
                    for p in (lo, hi + 1):  # one point in every interval the ranges cut the ports into
                        if 0 <= p <= 65535:
                            points.add((proto, p, None))
                for proto, name in rt.l4.named:
                    names[(proto, name)] = None
                for _fam, t in rt.l4.icmp[:1] if len(rt.l4.icmp) > 1 else rt.l4.icmp:
                    points.add(("ICMP", t, 0))
    named: list[NamedPort] = []
    for i, (proto, name) in enumerate(names):
        inside = [lo for lo, hi in ranges.get(proto, []) if lo > 0 and hi < 65535]
        port = inside[i % len(inside)] if inside else 20000 + i
        named.append(NamedPort(name, proto, port))
        points.add((proto, port, None))
    return sorted(points, key=str), named


def _ext_addresses(net: IPNet, excepts: Sequence[IPNet]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    out = []
    for cand in (net.network_address + 1 if net.num_addresses > 2 else net.network_address, net.broadcast_address):
        if not any(cand in x for x in excepts):
            out.append(cand)
    for x in excepts:
        out.append(x.network_address)
    if net.prefixlen == 0:
        out.append(ipaddress.ip_address("198.51.100.7" if net.version == 4 else "2001:db8::7"))
    return out


def build_universe(
    pts: Sequence[PolicyT],
    pod_cidrs: Sequence[IPNet] = (),
    namespaces: Iterable[Namespace] = (),
    pods: Iterable[Endpoint] = (),
    pairs: bool = True,
) -> tuple[Universe, list[tuple[str | int, int | None, int | None]], list[Endpoint], list[Endpoint]]:
    """The representative universe of a set of translated policies, the L4 points to try, the pods worth trying
    as the local end (witnesses of what policies select, bare pods, the given pods) and the endpoints worth trying
    as the remote end (witnesses of rule peers, bare pods, the given pods, outside addresses)."""
    b = _Builder(pod_cidrs)
    points, named = _l4_points(pts)
    b.named = tuple(named)
    for n in namespaces:
        b.namespace(n.name, n.labels)
    extra = list(pods)
    for pt in pts:
        if pt.policy.namespace is not None:
            b.namespace(pt.policy.namespace)
    locals_: list[tuple[Conj, str | None]] = []
    remotes: list[tuple[Conj, str | None]] = []
    by_action: dict[str, list[tuple[Conj, str | None]]] = {}
    for pt in pts:
        ns = pt.policy.namespace
        locals_ += [(c, ns) for c in pt.local]
        for d in DIRECTIONS:
            for rt in pt.rules[d]:
                remotes += [(c, ns) for c in rt.remote.pods]
                by_action.setdefault(rt.rule.action, []).extend((c, ns) for c in rt.remote.pods)
                for net, excepts in rt.remote.nets:
                    for ip in _ext_addresses(net, excepts):
                        b.external(ip)
    for text in ("198.51.100.7", "2001:db8::7", "192.0.2.200"):
        b.external(ipaddress.ip_address(text))
    local_conjs = list(locals_)
    remote_conjs = list(remotes)
    if pairs:
        local_conjs += _pair_merges(locals_) + _avoiding(locals_)
        # Peers of two rules of one action meet without changing a verdict; of different actions (or a Pass)
        # they are where order matters.
        allow, deny, pas = (by_action.get(a, []) for a in ("Allow", "Deny", "Pass"))
        remote_conjs += _cross_merges(allow, deny) + _cross_merges(allow + deny, pas) + _pair_merges(pas)
        remote_conjs += _avoiding(remotes)
    local_pods: dict[int, Endpoint] = {}
    remote_pods: dict[int, Endpoint] = {}
    for group, into in ((local_conjs, local_pods), (remote_conjs, remote_pods)):
        for c, ns in dict.fromkeys(group):
            for fresh in (False, True):
                w = b.witness(c, ns, fresh)
                if w is not None:
                    into[id(w)] = w
    for ns in list(b.namespaces):
        for w in (b.pod(ns, {}, named=False), b.pod(ns, {}, "other-sa")):
            local_pods[id(w)] = remote_pods[id(w)] = w
    w = b.pod(b._new_ns(), {})
    remote_pods[id(w)] = w
    u = b.universe()
    if extra:
        u = Universe(u.namespaces, (*u.pods, *extra), u.externals, u.pod_cidrs)
    return u, points, [*local_pods.values(), *extra], [*remote_pods.values(), *extra, *u.externals]


def _pair_merges(items: list[tuple[Conj, str | None]], limit: int = 4000) -> list[tuple[Conj, str | None]]:
    out: list[tuple[Conj, str | None]] = []
    uniq = list(dict.fromkeys(items))
    for i, (a, na) in enumerate(uniq):
        for b_, nb in uniq[i + 1 :]:
            if na is not None and nb is not None and na != nb:
                continue
            m = _merge(a, b_)
            if m is not None:
                out.append((m, na or nb))
                if len(out) >= limit:
                    return out
    return out


def _cross_merges(
    a: list[tuple[Conj, str | None]], b: list[tuple[Conj, str | None]], limit: int = 4000
) -> list[tuple[Conj, str | None]]:
    out: list[tuple[Conj, str | None]] = []
    for x, nx in dict.fromkeys(a):
        for y, ny in dict.fromkeys(b):
            if nx is not None and ny is not None and nx != ny:
                continue
            m = _merge(x, y)
            if m is not None:
                out.append((m, nx or ny))
                if len(out) >= limit:
                    return out
    return out


_NEGATE = {"In": "NotIn", "NotIn": "In", "Exists": "DoesNotExist", "DoesNotExist": "Exists"}


def _avoiding(items: list[tuple[Conj, str | None]], limit: int = 4000) -> list[tuple[Conj, str | None]]:
    """Alternatives that meet one and miss another: ``a`` with one requirement of ``b`` negated."""
    out: list[tuple[Conj, str | None]] = []
    uniq = list(dict.fromkeys(items))
    for a, na in uniq:
        for b_, nb in uniq:
            if a is b_ or (na is not None and nb is not None and na != nb):
                continue
            for r in b_:
                m = _merge(a, (Req(r.key, _NEGATE[r.op], r.values),))
                if m is not None:
                    out.append((m, na or nb))
            if len(out) >= limit:
                return out
    return out


def representative_universe(
    policy_set: PolicySet,
    *,
    namespaces: Iterable[Namespace] = (),
    pods: Iterable[Endpoint] = (),
    pod_cidrs: Sequence[IPNet] = (),
) -> Universe:
    """Flow classes of a policy set (plus facts' namespaces and pods), for ``check`` without a live cluster.
    Policies that cannot be translated contribute nothing of their own."""
    pts = []
    for ti, pi, p in ordered_policies(policy_set):
        pt, _ = translate_policy(p, ti, pi, pod_cidrs)
        if pt is not None:
            pts.append(pt)
    return build_universe(pts, pod_cidrs, namespaces, pods)[0]


def universe_flows(
    universe: Universe, points: Sequence[tuple[str | int, int | None, int | None]] | None = None
) -> list[Flow]:
    """Every ordered pair of distinct endpoints with at least one pod, at every L4 point."""
    pts = points if points is not None else _default_points(universe)
    everyone = (*universe.pods, *universe.externals)
    out: list[Flow] = []
    for src in everyone:
        for dst in everyone:
            if src is dst or not (src.is_pod or dst.is_pod):
                continue
            out.extend(_flows(src, dst, pts))
    return out


def _default_points(universe: Universe) -> list[tuple[str | int, int | None, int | None]]:
    pts: set[tuple[str | int, int | None, int | None]] = {("TCP", 80, None), ("UDP", 53, None), ("ICMP", 8, 0)}
    for p in universe.pods:
        for n in p.named_ports:
            pts.add((n.protocol, n.port, None))
    return sorted(pts, key=str)


def _flows(src: Endpoint, dst: Endpoint, points: Sequence[tuple[str | int, int | None, int | None]]) -> list[Flow]:
    out = []
    for proto, port, code in points:
        if proto == "ICMP":
            out.append(Flow(src, dst, "ICMP", None, port, code))
        elif isinstance(proto, int):
            out.append(Flow(src, dst, proto))
        else:
            out.append(Flow(src, dst, proto, port))
    return out


def check(
    policy_set: PolicySet,
    cilium_objects: Sequence[Mapping[str, Any]],
    universe: Universe,
    flows: Iterable[Flow] | None = None,
    points: Sequence[Point] | None = None,
) -> tuple[FlowDiff, ...]:
    """Every flow whose verdict differs between the Calico set and the Cilium objects, per direction (egress at a
    source pod, ingress at a destination pod). ``flows`` given: exactly those; else every pair of the universe's
    endpoints at every L4 point (``points``, default: what the universe's pods and some common ports need), one
    flow per class of endpoints the policies cannot tell apart."""
    cal = CalicoEvaluator(policy_set, universe)
    cil = CiliumEvaluator(list(cilium_objects), universe)
    out: list[FlowDiff] = []
    if flows is not None:
        for f in flows:
            for d in DIRECTIONS:
                local = f.dst if d == INGRESS else f.src
                if not local.is_pod:
                    continue
                cv = cal.verdict(f, d)
                allowed, why, obj = cil.decide(f, d)
                if cv.allowed != allowed:
                    out.append(
                        FlowDiff(f.describe(), d, cv.allowed, cv.why, cv.policy, allowed, why, source_ref(obj), f)
                    )
        return tuple(out)
    pts = points if points is not None else _default_points(universe)
    everyone = (*universe.pods, *universe.externals)
    for d in DIRECTIONS:
        locs = _distinct_locals(cal, cil, universe.pods, d)
        index = _RemoteIndex(cal, cil, everyone, d, locs)
        for local in locs:
            out.extend(_compare_local(index, local, pts))
    return tuple(out)


Point = tuple[str | int, int | None, int | None]


def _distinct_locals(cal: CalicoEvaluator, cil: CiliumEvaluator, pods: Iterable[Endpoint], d: str) -> list[Endpoint]:
    """One pod per class the policies cannot tell apart as the local end: same selecting Calico policies, same
    selecting Cilium specs, same namespace, same named ports (for ingress)."""
    seen: dict[tuple[Any, ...], Endpoint] = {}
    for ep in pods:
        cpols = tuple(id(p) for _, ps in cal.selecting(ep, d) for p in ps)
        denies, allows, enforced = cil.selected(ep, d)
        key = (
            cpols,
            tuple(id(r) for _, r, _, _ in denies),
            tuple(id(r) for _, r, _, _ in allows),
            enforced,
            ep.namespace,
            ep.named_ports if d == INGRESS else (),
        )
        seen.setdefault(key, ep)
    return list(seen.values())


class _RemoteIndex:
    """The endpoint/address part of every rule, Calico's and Cilium's, for every remote endpoint, computed once
    per direction: it depends on the remote only (the local end is what the policy selects), except for a
    Calico rule that narrows its own endpoints, which is left to the per-flow evaluation."""

    def __init__(
        self,
        cal: CalicoEvaluator,
        cil: CiliumEvaluator,
        remotes: Sequence[Endpoint],
        d: str,
        locals_: Sequence[Endpoint] | None = None,
    ) -> None:
        """``locals_``: the local ends that will be compared; only the rules that apply to them are indexed."""
        self.d = d
        self.cal, self.cil = cal, cil
        if locals_ is None:
            pols = [p for p in cal.set.policies if d in p.types]
            self.krules: list[tuple[Mapping[str, Any], str | None]] = []
            for pol in cil.policies:
                ns = (pol.get("metadata") or {}).get("namespace") if pol.get("kind") == "CiliumNetworkPolicy" else None
                for spec in cil.specs(pol):
                    for r in (*(spec.get(d) or []), *(spec.get(f"{d}Deny") or [])):
                        self.krules.append((r, ns))
        else:
            chosen: dict[int, Policy] = {}
            krules: dict[int, tuple[Mapping[str, Any], str | None]] = {}
            for ep in locals_:
                for _, ps in cal.selecting(ep, d):
                    chosen.update((id(p), p) for p in ps)
                denies, allows, _ = cil.selected(ep, d)
                krules.update((id(r), (r, ns)) for _, r, ns, _ in (*denies, *allows))
            pols = list(chosen.values())
            self.krules = list(krules.values())
        self.crules = [(p, r) for p in pols for r in p.rules(d) if r.action != LOG]
        self.local_dependent = {id(r) for _, r in self.crules if _narrows_local(r)}
        self.remotes: list[Endpoint] = []
        self.c3: list[dict[int, bool]] = []
        self.k3: list[dict[int, bool | None]] = []
        classes: set[tuple[Any, ...]] = set()
        plain = [(p, r) for p, r in self.crules if id(r) not in self.local_dependent]
        for remote in remotes:
            probe = Flow(remote, remote, "TCP", 1)
            c3 = {id(r): cal.rule_l3(p, r, probe) for p, r in plain}
            k3 = {id(r): cil.rule_l3(r, d, probe, ns) for r, ns in self.krules}
            if not self.local_dependent:
                # Remotes no rule tells apart are one class (two representatives: a local end is never its own
                # remote).
                key = (tuple(c3.values()), tuple(k3.values()), remote.ip.version, remote.named_ports, remote.is_pod)
                seen = (key, 0) in classes
                if seen and (key, 1) in classes:
                    continue
                classes.add((key, 1 if seen else 0))
            self.remotes.append(remote)
            self.c3.append(c3)
            self.k3.append(k3)


def _narrows_local(rule: Any) -> bool:
    local = rule.local
    return any(
        getattr(local, a) is not None
        for a in ("nets", "not_nets", "selector", "not_selector", "namespace_selector", "sa_names", "sa_selector")
    ) or bool(local.services)


def _compare_local(
    index: _RemoteIndex,
    local: Endpoint,
    points: Sequence[Point],
) -> list[FlowDiff]:
    """The differing flows at one local endpoint: remotes the rules that apply here cannot tell apart are tried
    once, at every L4 point."""
    cal, cil, d = index.cal, index.cil, index.d
    selecting = cal.selecting(local, d)
    tiers = [
        (tier, [(p, [r for r in p.rules(d) if r.action != LOG]) for p in pols], cal.set.tiers[tier].default_action)
        for tier, pols in selecting
    ]
    crules = [(p, r) for _, pols, _ in tiers for p, rs in pols for r in rs]
    denies, allows, enforced = cil.selected(local, d)
    seen: set[tuple[Any, ...]] = set()
    l4_classes: dict[tuple[Any, ...], list[Point]] = {}
    out: list[FlowDiff] = []
    for i, remote in enumerate(index.remotes):
        if remote is local:
            continue
        src, dst = (remote, local) if d == INGRESS else (local, remote)
        row, krow = index.c3[i], index.k3[i]
        probe = Flow(src, dst, "TCP", 1)
        c3 = {id(r): (cal.rule_l3(p, r, probe) if id(r) in index.local_dependent else row[id(r)]) for p, r in crules}
        d3 = tuple(krow[id(r)] for _, r, _, _ in denies)
        a3 = tuple(krow[id(r)] for _, r, _, _ in allows)
        key = (tuple(c3.values()), d3, a3, dst.ip.version, dst.named_ports, dst.is_pod)
        if key in seen:
            continue
        seen.add(key)
        l4_key = (dst.named_ports, dst.ip.version, dst.is_pod)
        pts = l4_classes.get(l4_key)
        if pts is None:
            pts = l4_classes[l4_key] = _l4_classes(cil, crules, [*denies, *allows], src, dst, points)
        for f in _flows(src, dst, pts):
            allowed_c, why_c, pol_c = _calico_decide(tiers, c3, f, d)
            allowed_k, why_k, obj_k = _cilium_decide(cil, denies, allows, enforced, d3, a3, f)
            if allowed_c != allowed_k:
                out.append(FlowDiff(f.describe(), d, allowed_c, why_c, pol_c, allowed_k, why_k, source_ref(obj_k), f))
    return out


def _l4_classes(
    cil: CiliumEvaluator,
    crules: Sequence[tuple[Policy, Any]],
    krules: Sequence[tuple[str, Mapping[str, Any], str | None, Mapping[str, Any]]],
    src: Endpoint,
    dst: Endpoint,
    points: Sequence[Point],
) -> list[Point]:
    """One L4 point per class the rules that apply cannot tell apart (the L4 part of a rule depends on the
    protocol, the port and the destination's named ports and address family only)."""
    seen: set[tuple[Any, ...]] = set()
    out: list[Point] = []
    for pt, f in zip(points, _flows(src, dst, points), strict=True):
        key = (
            tuple(CalicoEvaluator.rule_l4(r, f) for _, r in crules),
            tuple(cil.rule_l4(r, f) for _, r, _, _ in krules),
        )
        if key not in seen:
            seen.add(key)
            out.append(pt)
    return out


def _calico_decide(
    tiers: Sequence[tuple[str, Sequence[tuple[Policy, Sequence[Any]]], str]],
    l3: Mapping[int, bool],
    f: Flow,
    d: str,
) -> tuple[bool, str, str | None]:
    for tier, pols, default in tiers:
        passed = False
        for p, rs in pols:
            for r in rs:
                if not l3[id(r)] or not CalicoEvaluator.rule_l4(r, f):
                    continue
                where = f"{p.ref} {d}[{r.index}] ({r.action})"
                if r.action == PASS:
                    passed = True
                    break
                return r.action == ALLOW, where, p.ref
            if passed:
                break
        if passed or default == PASS:
            continue
        return False, f"end of tier {tier!r} (its policies select the endpoint, none matched)", pols[0][0].ref
    return True, "no Calico policy decides: the namespace profile allows", None


def _cilium_decide(
    cil: CiliumEvaluator,
    denies: Sequence[tuple[str, Mapping[str, Any], str | None, Mapping[str, Any]]],
    allows: Sequence[tuple[str, Mapping[str, Any], str | None, Mapping[str, Any]]],
    enforced: bool,
    d3: Sequence[bool | None],
    a3: Sequence[bool | None],
    f: Flow,
) -> tuple[bool, str, Mapping[str, Any] | None]:
    for (where, r, _, obj), l3 in zip(denies, d3, strict=True):
        if l3 is not False and _l4_ok(cil, r, l3, f):
            return False, where, obj
    for (where, r, _, obj), l3 in zip(allows, a3, strict=True):
        if l3 is not False and _l4_ok(cil, r, l3, f):
            return True, where, obj
    if enforced:
        return False, "default deny (selected, nothing allows)", None
    return True, "no policy selects", None


def _l4_ok(cil: CiliumEvaluator, rule: Mapping[str, Any], l3: bool | None, f: Flow) -> bool:
    l4 = cil.rule_l4(rule, f)
    if l3 is None and l4 is None:
        return False
    return l4 is not False


# --- the translator's flow-by-flow check of hazards ---------------------------------------------------------


def hazard_differences(
    policy_set: PolicySet,
    pts: Sequence[PolicyT],
    hazards: Mapping[int, str],
    objects: Mapping[int, Mapping[str, Any]],
    pod_cidrs: Sequence[IPNet],
    universe: Universe | None,
) -> list[Untranslatable]:
    """Differences, on the representative universe of the policies that meet a hazard, between Calico's
    verdicts and the planned Cilium objects; one report per (policy, other policy, rule, direction)."""
    hazard_ns = {pt.policy.namespace for pt in pts if id(pt.policy) in hazards}
    all_ns = None in hazard_ns
    scope = [pt for pt in pts if all_ns or pt.policy.namespace is None or pt.policy.namespace in hazard_ns]
    u, points, local_pods, remote_eps = build_universe(
        scope, pod_cidrs, universe.namespaces.values() if universe else (), universe.pods if universe else ()
    )
    # Calico's side is the whole set in these namespaces, untranslatable policies included (an example flow must
    # hold for the real set); differences such a policy decides are already reported with its field.
    translatable = {pt.policy.ref for pt in pts}
    sub = PolicySet(
        tuple(p for p in policy_set.policies if all_ns or p.namespace is None or p.namespace in hazard_ns),
        policy_set.tiers,
    )
    objs = [objects[id(pt.policy)] for pt in scope if id(pt.policy) in objects]
    cal = CalicoEvaluator(sub, u)
    cil = CiliumEvaluator(objs, u)
    hazard_pols = [pt.policy for pt in pts if id(pt.policy) in hazards]
    everyone = remote_eps
    ns_labels = {n: dict(v.labels) for n, v in u.namespaces.items()}
    seen: dict[tuple[str, str | None, str, str], Untranslatable] = {}
    for d in DIRECTIONS:
        candidates = [e for e in local_pods if any(d in p.types and cal.selects(p, e) for p in hazard_pols)]
        locs = _distinct_locals(cal, cil, candidates, d)
        index = _RemoteIndex(cal, cil, everyone, d, locs)
        for local in locs:
            for diff in _compare_local(index, local, points):
                assert diff.example is not None
                if diff.calico_policy is not None and diff.calico_policy not in translatable:
                    continue
                other = diff.cilium_policy
                pol = diff.calico_policy or other or _first_selecting(cal, hazard_pols, local, d)
                if other == pol:
                    other = None
                fld = _field_of(diff.calico_why, d)
                key = (pol, other, fld, d)
                if key in seen:
                    continue
                calico = "allows" if diff.calico_allowed else "denies"
                cilium = "allow" if diff.cilium_allowed else "deny"
                seen[key] = Untranslatable(
                    pol,
                    fld,
                    f"Calico {calico} ({diff.calico_why}) where the Cilium translation would {cilium} "
                    f"({diff.cilium_why}): the verdict depends on Calico's order, tiers or Pass",
                    other,
                    diff.flow,
                    diff.example,
                    d,
                    ns_labels,
                )
    return list(seen.values())


def _first_selecting(cal: CalicoEvaluator, pols: Sequence[Policy], ep: Endpoint, direction: str) -> str:
    for p in pols:
        if direction in p.types and cal.selects(p, ep):
            return p.ref
    return pols[0].ref


def _field_of(why: str, direction: str) -> str:
    for part in why.split():
        if part.startswith(f"{direction}["):
            return f"spec.{part}"
    return f"spec.{direction}"


def selecting_policies(cal: CalicoEvaluator, ep: Endpoint, direction: str) -> list[Policy]:
    return [p for _, ps in cal.selecting(ep, direction) for p in ps]


__all__ = ["EGRESS", "FlowDiff", "build_universe", "check", "representative_universe", "universe_flows"]


def check_by_namespace(
    policy_set: PolicySet,
    cilium_objects: Sequence[Mapping[str, Any]],
    pod_cidrs: Sequence[IPNet] = (),
) -> tuple[FlowDiff, ...]:
    """:func:`check` without a live cluster, namespace by namespace: for each namespace with NetworkPolicies, its
    policies and the GlobalNetworkPolicies against the Cilium objects of that namespace and the clusterwide ones, on
    their representative universe; then the GlobalNetworkPolicies alone. A NetworkPolicy only ever selects pods of
    its namespace, so every flow class of the set is met in one of the parts."""
    pts: list[PolicyT] = []
    for ti, pi, p in ordered_policies(policy_set):
        pt, _ = translate_policy(p, ti, pi, pod_cidrs)
        if pt is not None:
            pts.append(pt)
    by_ns: dict[str | None, list[PolicyT]] = {}
    for pt in pts:
        by_ns.setdefault(pt.policy.namespace, []).append(pt)
    objs_by_ns: dict[str | None, list[Mapping[str, Any]]] = {}
    for o in cilium_objects:
        ns = (o.get("metadata") or {}).get("namespace") if o.get("kind") == "CiliumNetworkPolicy" else None
        objs_by_ns.setdefault(ns, []).append(o)
    glob = by_ns.get(None, [])
    calico_by_ns: dict[str | None, list[Policy]] = {}
    for p in policy_set.policies:
        calico_by_ns.setdefault(p.namespace, []).append(p)
        by_ns.setdefault(p.namespace, [])
    out: list[FlowDiff] = []
    parts = sorted((ns for ns in by_ns if ns is not None), key=str)
    for ns in [*parts, None]:
        scope = glob if ns is None else by_ns[ns] + glob
        u, points, local_pods, remote_eps = build_universe(scope, pod_cidrs)
        # Calico's side: every policy there, untranslatable ones included (their flows differ for real).
        calico = [*(calico_by_ns.get(ns, []) if ns is not None else []), *calico_by_ns.get(None, [])]
        sub = PolicySet(tuple(calico), policy_set.tiers)
        objs = [*(objs_by_ns.get(ns, []) if ns is not None else []), *objs_by_ns.get(None, [])]
        pods = [e for e in local_pods if e.namespace == ns] if ns is not None else local_pods
        cal = CalicoEvaluator(sub, u)
        cil = CiliumEvaluator(objs, u)
        everyone = remote_eps
        for d in DIRECTIONS:
            locs = _distinct_locals(cal, cil, pods, d)
            index = _RemoteIndex(cal, cil, everyone, d, locs)
            for local in locs:
                out.extend(_compare_local(index, local, points))
    return tuple(out)
