"""Does the cluster still look as the plan assumed? Compare the facts a plan's steps rely on with fresh facts.

Pure: the executor passes the live facts in. Facts the plan itself changes (the old CNI, kube-proxy, workloads)
are compared only before the first step; environment facts (CIDRs, API endpoint, nodes, Kubernetes version) are
compared before every phase, since nothing in a plan changes them and a change means the plan no longer fits; one
that can no longer be read then, or was read from the old CNI's objects the plan deletes (Calico's IPPools), is a
warning.
Pod and workload counts churn on any live cluster: a difference there is a warning, never a refusal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from cni_migrate.analysis.plan.factrefs import fact_ref, node_ref
from cni_migrate.analysis.plan.model import FactRef, Plan, Step
from cni_migrate.facts.model import ClusterFacts

ENVIRONMENT = ("network.", "nodes", "kubernetes_version")
CHURN = ("workloads.", "pdbs", "policies.")
# Facts read from the old CNI's own objects (Calico's IPPools, Flannel's net-conf): the plan deletes that evidence.
OLD_CNI_EVIDENCE = ("Calico", "IPPool", "Flannel", "flannel")


@dataclass(frozen=True)
class FactChange:
    path: str
    planned: object
    now: object
    steps: tuple[str, ...]
    warning: bool
    unreadable: bool = False

    def text(self) -> str:
        steps = ", ".join(self.steps[:5]) + (" ..." if len(self.steps) > 5 else "")
        if self.unreadable:
            return (
                f"fact {self.path} can no longer be read as planned (planned {_show(self.planned)}, now "
                f"{_show(self.now)}): its evidence is gone, as an earlier step of the plan removes it; going on with "
                f"the planned value (relied on by {steps})"
            )
        return (
            f"fact {self.path} changed since planning: planned {_show(self.planned)}, now {_show(self.now)} "
            f"(relied on by {steps})"
        )


def _show(value: object) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


def _live(facts: ClusterFacts, ref: FactRef) -> FactRef:
    if ref.path.startswith("nodes[]."):
        names = sorted(ref.value) if isinstance(ref.value, dict) else []
        return node_ref(facts, names, ref.path.removeprefix("nodes[]."))
    return fact_ref(facts, ref.path)


def changed_facts(
    plan: Plan, facts: ClusterFacts, steps: Iterable[Step], *, environment_only: bool
) -> list[FactChange]:
    seen: dict[str, tuple[FactRef, list[str]]] = {}
    for s in steps:
        for ref in s.relies_on:
            if environment_only and not ref.path.startswith(ENVIRONMENT):
                continue
            key = ref.path + json.dumps(ref.value, sort_keys=True, default=str)
            seen.setdefault(key, (ref, []))[1].append(s.id)
    out = []
    for ref, users in seen.values():
        now = _live(facts, ref)
        if _norm(now.value) != _norm(ref.value):
            # Between phases an environment fact that can no longer be read, or that came from the old CNI's
            # objects (the pod CIDRs of Calico's IPPools, deleted by the plan), lost its evidence: warn, go on.
            unreadable = (
                environment_only
                and ref.value is not None
                and (now.value is None or any(w in (ref.source or "") for w in OLD_CNI_EVIDENCE))
            )
            out.append(
                FactChange(
                    ref.path,
                    ref.value,
                    now.value,
                    tuple(users),
                    ref.path.startswith(CHURN) or unreadable,
                    unreadable,
                )
            )
    return out


def _canonical(value: object) -> object:
    """Lists of facts are sets (the API lists by name, a snapshot keeps file order): compare them unordered."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted((_canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True, default=str))
    return value


def _norm(value: object) -> str:
    return json.dumps(_canonical(value), sort_keys=True, default=str)


def plan_nodes(plan: Plan) -> set[str]:
    """Every node name the plan mentions: node steps, their actions and checks, relied-on node facts."""
    names: set[str] = set()
    for s in plan.steps():
        names.update(s.nodes)
        for a in [*s.actions, *s.rollback.actions]:
            names.update(getattr(a, "nodes", []) or [])
        for c in [*s.preconditions, *s.success]:
            names.update(getattr(c, "nodes", []) or [])
            names.update((getattr(c, "addresses", None) or {}).keys())
        for ref in s.relies_on:
            if ref.path.startswith("nodes[].") and isinstance(ref.value, dict):
                names.update(ref.value)
    return names
