"""The migration planner: cluster facts + the SRE's options -> a reviewed, machine-readable plan.

``build_plan(facts, options, tool_version=...)`` returns a :class:`~.model.Plan` (schema
``cni-migrate.io/plan/v1``, see docs/plan.md) or raises :class:`~.options.PlanError` whose lines name the option
and the fact at fault. ``render_runbook(plan)`` gives the Markdown runbook. Pure: no I/O, no clock; the only
randomness is a Maglev hash seed when one is needed and not supplied, and it is recorded in the plan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from cni_migrate.analysis.calico_policies import PolicyMigration
from cni_migrate.analysis.plan.common import Builder
from cni_migrate.analysis.plan.invariants import check_plan
from cni_migrate.analysis.plan.model import SCHEMA_VERSION, Plan, PlanInputs, plan_content_digest
from cni_migrate.analysis.plan.offline import build_offline
from cni_migrate.analysis.plan.options import PlanError, PlanOptions, Resolved, resolve
from cni_migrate.analysis.plan.policies import policy_decision
from cni_migrate.analysis.plan.rolling import build_rolling
from cni_migrate.analysis.plan.runbook import render_runbook
from cni_migrate.facts.gcpause import gc_paused
from cni_migrate.facts.model import ClusterFacts

__all__ = [
    "SCHEMA_VERSION",
    "Plan",
    "PlanError",
    "PlanOptions",
    "PolicyMigration",
    "Resolved",
    "build_plan",
    "check_plan",
    "facts_digest",
    "gc_paused",
    "render_runbook",
    "resolve",
]


def facts_digest(facts: ClusterFacts) -> str:
    return hashlib.sha256(facts.model_dump_json().encode()).hexdigest()


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def build_plan(
    facts: ClusterFacts,
    options: PlanOptions,
    *,
    tool_version: str,
    reuse: Mapping[str, str] | None = None,
    policies: PolicyMigration | None = None,
) -> Plan:
    """``reuse``: values an earlier plan generated (e.g. the Maglev seed), so re-planning keeps them.
    ``policies``: the cluster's Calico policies translated for the target Cilium version (see
    :func:`cni_migrate.analysis.calico_policies.migrate_policies`); the plan creates the translation and stops at a
    gate while some policy has none. Without it the plan only warns that Calico's policies are not carried over."""
    with gc_paused():
        return _build(facts, options, tool_version, reuse, policies)


def _build(
    facts: ClusterFacts,
    options: PlanOptions,
    tool_version: str,
    reuse: Mapping[str, str] | None,
    policies: PolicyMigration | None,
) -> Plan:
    r = resolve(facts, options, reuse)
    if policies is not None and policies.cilium_version != str(r.version):
        raise PlanError(
            [
                f"internal: the policies were translated for Cilium {policies.cilium_version}, "
                f"the plan is for {r.version}"
            ],
            kind="internal",
        )
    digest = facts_digest(facts)
    opts = options.model_dump(mode="json")
    body = {"facts": digest, "options": opts, "generated": [g.value for g in r.generated]}
    if policies is not None:
        body["policies"] = policies.digest()
    seed = json.dumps(body, sort_keys=True)
    plan_id = hashlib.sha256(seed.encode()).hexdigest()[:12]
    b = Builder(r, plan_id, policies)
    phases = build_offline(b) if options.strategy == "offline" else build_rolling(b)
    plan = Plan(
        id=plan_id,
        generated_by=f"cni-migrate {tool_version}",
        inputs=PlanInputs(
            facts_source=f"{facts.source.kind} {facts.source.location}",
            facts_digest=digest,
            cluster_nodes=len(facts.nodes),
            old_cni=r.old_cni,
            cilium_version=str(r.version),
            strategy=options.strategy,
            options=opts,
        ),
        backup_dir=b.backup_dir,
        node_backup_dir=b.node_dir,
        decisions=[*r.decisions, *([policy_decision(b, policies)] if policies is not None else [])],
        generated=r.generated,
        warnings=_dedupe([*r.warnings, *b.warnings]),
        blocking_pdbs=[
            f"{p.namespace}/{p.name} (disruptions allowed: {p.disruptions_allowed})"
            for p in facts.pdbs.value or []
            if p.blocks_eviction
        ],
        lint=b.lint,
        phases=phases,
        artifacts=[b.artifacts[k] for k in sorted(b.artifacts)],
    )
    plan.digest = plan_content_digest(plan)
    problems = check_plan(plan)
    if problems:  # a planner bug, never the user's: refuse rather than emit an unsafe plan
        raise PlanError([f"internal: the generated plan is unsafe: {p}" for p in problems], kind="internal")
    return plan
