"""The cluster's Calico policies carried over to Cilium: what ``cni-migrate policy`` and the plans share.

:func:`migrate_policies` parses the raw objects the facts layer read (both Calico API versions), translates them
for a Cilium version and keeps, for every policy, the object it came from (its API group and stored name, so a
plan can name it to kubectl). :func:`cluster_endpoints` turns the cluster's namespaces and pods into the policy
model's universe parts, so the checker compares verdicts for the workloads that really exist too.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from cni_migrate.analysis.policy.calico import parse_policy, parse_tier
from cni_migrate.analysis.policy.model import (
    DEFAULT_TIER_ORDER,
    Endpoint,
    IPNet,
    NamedPort,
    Namespace,
    Policy,
    PolicyInputError,
    PolicySet,
    Tier,
    Universe,
)
from cni_migrate.analysis.policy.translate import Translation, Untranslatable, translate
from cni_migrate.analysis.selectors import And, Compare, Expr, Has, Not, Or
from cni_migrate.facts.model import ClusterFacts
from cni_migrate.facts.objects import Obj, dig, meta, name_of, namespace_of
from cni_migrate.facts.policies import CalicoPolicyObjects

MANAGED_LABELS = {"app.kubernetes.io/managed-by": "cni-migrate"}
CILIUM_POLICY_CRDS = ("ciliumnetworkpolicies.cilium.io", "ciliumclusterwidenetworkpolicies.cilium.io")


class PolicySetError(ValueError):
    """A Calico policy or tier that is not valid input; ``obj`` is the offending object (to name its file)."""

    def __init__(self, message: str, obj: Obj | None) -> None:
        super().__init__(message)
        self.obj = obj


@dataclass(frozen=True)
class SourcePolicy:
    """A Calico policy as the cluster stores it: the reference a plan gives kubectl."""

    ref: str  # the policy model's ref: "GlobalNetworkPolicy allow-dns", "NetworkPolicy prod/web"
    api_version: str
    kind: str
    name: str
    namespace: str | None
    resource_version: str | None = None  # as read (a live read or a captured snapshot has it)

    @property
    def resource(self) -> str:
        """kubectl's fully qualified resource: ``globalnetworkpolicies.crd.projectcalico.org``."""
        group = self.api_version.rsplit("/", 1)[0]
        plural = {"NetworkPolicy": "networkpolicies", "GlobalNetworkPolicy": "globalnetworkpolicies"}[self.kind]
        return f"{plural}.{group}"


@dataclass(frozen=True)
class PolicyMigration:
    """The translation of a cluster's Calico policies for one Cilium version."""

    cilium_version: str
    policy_set: PolicySet
    sources: Mapping[str, SourcePolicy]  # by ref
    translation: Translation
    pod_cidrs: tuple[IPNet, ...] = ()
    left_out: tuple[str, ...] = ()
    existing_cilium: frozenset[tuple[str, str, str]] = frozenset()  # (kind, namespace or "", name)

    @property
    def objects(self) -> list[dict[str, Any]]:
        """The Cilium manifests, labelled as cni-migrate's (the label is metadata only: it selects nothing)."""
        out = []
        for o in self.translation.objects:
            obj = orjson.loads(orjson.dumps(o))
            md = obj.setdefault("metadata", {})
            md["labels"] = {**(md.get("labels") or {}), **MANAGED_LABELS}
            out.append(obj)
        return out

    @property
    def untranslatable(self) -> tuple[Untranslatable, ...]:
        return self.translation.untranslatable

    def untranslatable_policies(self) -> list[SourcePolicy]:
        """Every policy without a Cilium translation: those a finding names, as the policy or as the other policy
        of an order conflict (the translator emits neither), in input order."""
        named = {u.policy for u in self.untranslatable} | {u.other_policy for u in self.untranslatable}
        exact = set(self.translation.exact)
        return [s for ref, s in self.sources.items() if ref in named or ref not in exact]

    def findings_of(self, ref: str) -> list[Untranslatable]:
        return [u for u in self.untranslatable if ref in (u.policy, u.other_policy)]

    def unchanged_check(self) -> tuple[str, str] | None:
        """A shell command listing the cluster's Calico policies (kind, namespace, name, resourceVersion; one line
        each, sorted) piped to sha256sum, and the digest it prints when the policies are the ones translated; None
        when the input carries no resourceVersions (a hand-made snapshot) or has no policies."""
        srcs = list(self.sources.values())
        if not srcs or any(s.resource_version is None for s in srcs):
            return None
        lines = sorted(f"{s.kind}/{s.namespace or ''}/{s.name}:{s.resource_version}\n" for s in srcs)
        digest = hashlib.sha256("".join(lines).encode()).hexdigest()
        resources = sorted({(s.resource, s.kind) for s in srcs})
        gets = "; ".join(
            f"kubectl get {res} -A -l 'app.kubernetes.io/managed-by!=cni-migrate' -o "
            f"jsonpath='{{range .items[*]}}{kind}/{{.metadata.namespace}}/{{.metadata.name}}:"
            f'{{.metadata.resourceVersion}}{{"\\n"}}{{end}}\''
            for res, kind in resources
        )
        return f"{{ {gets}; }} | LC_ALL=C sort | sha256sum", digest

    def digest(self) -> str:
        """Changes when the translated objects or the findings do."""
        body = {
            "objects": self.objects,
            "untranslatable": [describe(u) for u in self.untranslatable],
        }
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def describe(u: Untranslatable) -> str:
    """One line: the policy, the field, why, the policy it conflicts with and a flow whose verdict would change."""
    return str(u)


def _ref(obj: Obj) -> str:
    ns = namespace_of(obj)
    return f"{obj.get('kind')} {ns}/{name_of(obj)}" if ns else f"{obj.get('kind')} {name_of(obj)}"


def parse_objects(objs: CalicoPolicyObjects) -> tuple[PolicySet, dict[str, SourcePolicy]]:
    """The policy set of the raw objects; a bad one raises :class:`PolicySetError` naming it and the field."""
    tiers: dict[str, Tier] = {"default": Tier("default", DEFAULT_TIER_ORDER)}
    for t in objs.tiers:
        try:
            tier = parse_tier(t)
        except PolicyInputError as e:
            raise PolicySetError(str(e), t) from None
        tiers[tier.name] = tier
    policies: list[Policy] = []
    sources: dict[str, SourcePolicy] = {}
    for o in objs.policies:
        try:
            p = parse_policy(o, tiers)
        except PolicyInputError as e:
            raise PolicySetError(str(e), o) from None
        except (TypeError, AttributeError, ValueError) as e:  # a field of a shape the parser did not foresee
            raise PolicySetError(f"{_ref(o)}: not a valid Calico policy ({e})", o) from None
        if p.ref in sources:
            raise PolicySetError(f"{p.ref}: defined twice in the input", o)
        policies.append(p)
        sources[p.ref] = SourcePolicy(
            ref=p.ref,
            api_version=str(o.get("apiVersion")),
            kind=p.kind,
            name=name_of(o),
            namespace=p.namespace,
            resource_version=rv if isinstance(rv := meta(o).get("resourceVersion"), str) and rv else None,
        )
    return PolicySet(tuple(policies), tiers), sources


def pod_cidrs_of(facts: ClusterFacts) -> tuple[IPNet, ...]:
    """The cluster's pod address ranges: the facts' pod CIDRs and Calico's IPPools (a ``nets`` entry inside them
    means pods, which Cilium matches by identity, not by address)."""
    texts = list(facts.network.pod_cidrs.value or [])
    calico = facts.cni.calico
    if calico is not None:
        texts += [p.cidr for p in calico.ip_pools.value or []]
    out: list[IPNet] = []
    for t in texts:
        try:
            net = ipaddress.ip_network(t, strict=False)
        except ValueError:
            continue
        if net not in out:
            out.append(net)
    return tuple(out)


def cluster_universe(
    objs: CalicoPolicyObjects, pod_cidrs: Sequence[IPNet], label_keys: frozenset[str] | None = None
) -> Universe | None:
    """The cluster's namespaces and pods as a universe (no outside addresses: the checker adds its own)."""
    namespaces, pods = cluster_endpoints(objs, label_keys)
    if not pods:
        return None
    return Universe(namespaces, pods, (), tuple(pod_cidrs))


def migrate_policies(
    objs: CalicoPolicyObjects, cilium_version: str, *, pod_cidrs: Sequence[IPNet] = (), use_pods: bool = True
) -> PolicyMigration:
    """Parse and translate. ``use_pods``: the cluster's pods join the flows the translation is checked on."""
    policy_set, sources = parse_objects(objs)
    universe = (
        cluster_universe(objs, pod_cidrs, pod_label_keys(policy_set)) if use_pods and policy_set.policies else None
    )
    return PolicyMigration(
        cilium_version=cilium_version,
        policy_set=policy_set,
        sources=sources,
        translation=translate(policy_set, cilium_version=cilium_version, pod_cidrs=pod_cidrs, universe=universe),
        pod_cidrs=tuple(pod_cidrs),
        left_out=objs.left_out,
        existing_cilium=objs.cilium_policies,
    )


# --- the cluster's workloads as the policy model's universe parts ---------------------------------------------


def _labels(obj: Obj) -> dict[str, str]:
    labels = meta(obj).get("labels")
    if not isinstance(labels, dict):
        return {}
    return {str(k): str(v) for k, v in labels.items()}


def _named_ports(pod: Obj) -> tuple[NamedPort, ...]:
    out: list[NamedPort] = []
    for c in dig(pod, "spec", "containers") or []:
        for p in (c.get("ports") or []) if isinstance(c, dict) else []:
            if not isinstance(p, dict) or not isinstance(p.get("name"), str):
                continue
            port = p.get("containerPort")
            if isinstance(port, int) and not isinstance(port, bool):
                out.append(NamedPort(p["name"], str(p.get("protocol") or "TCP"), port))
    return tuple(out)


def _expr_keys(e: Expr, out: set[str]) -> None:
    if isinstance(e, Has | Compare):
        out.add(e.key)
    elif isinstance(e, Not):
        _expr_keys(e.expr, out)
    elif isinstance(e, And | Or):
        for item in e.items:
            _expr_keys(item, out)


def pod_label_keys(policy_set: PolicySet) -> frozenset[str]:
    """Every label key a policy's pod selectors look at (the policies' own and their rules' selectors and
    notSelectors): pods that agree on these keys are told apart by no selector."""
    out: set[str] = set()
    for p in policy_set.policies:
        _expr_keys(p.selector.expr, out)
        for rule in (*p.ingress, *p.egress):
            for peer in (rule.source, rule.destination):
                for sel in (peer.selector, peer.not_selector):
                    if sel is not None:
                        _expr_keys(sel.expr, out)
    return frozenset(out)


def cluster_endpoints(
    objs: CalicoPolicyObjects, label_keys: frozenset[str] | None = None
) -> tuple[dict[str, Namespace], tuple[Endpoint, ...]]:
    """The namespaces, and the pods Calico gives a workload endpoint (with a pod IP, not hostNetwork), one per
    class: pods alike in namespace, labels, service account and named ports (the replicas of a workload) get the
    same verdict on every flow, as a ``nets`` rule inside the pod ranges is never translated, so one stands for
    all. With ``label_keys`` (:func:`pod_label_keys`) only those labels tell classes apart, which keeps a
    150,000-pod cluster to the few classes its policies can distinguish."""
    namespaces = {name_of(n): Namespace(name_of(n), _labels(n)) for n in objs.namespaces if name_of(n)}
    pods: list[Endpoint] = []
    seen: set[tuple[object, ...]] = set()
    for p in objs.pods:
        if dig(p, "spec", "hostNetwork") is True:
            continue
        ip_text = dig(p, "status", "podIP")
        ns = namespace_of(p)
        if not isinstance(ip_text, str) or not ns:
            continue
        try:
            ip = ipaddress.ip_address(ip_text)
        except ValueError:
            continue
        sa = dig(p, "spec", "serviceAccountName")
        labels = _labels(p)
        account = sa if isinstance(sa, str) and sa else "default"
        named = _named_ports(p)
        shown = labels if label_keys is None else {k: v for k, v in labels.items() if k in label_keys}
        key = (ns, tuple(sorted(shown.items())), account, named)
        if key in seen:
            continue
        seen.add(key)
        pods.append(
            Endpoint(name=name_of(p), ip=ip, namespace=ns, labels=labels, service_account=account, named_ports=named)
        )
        namespaces.setdefault(ns, Namespace(ns, {}))
    return namespaces, tuple(pods)
