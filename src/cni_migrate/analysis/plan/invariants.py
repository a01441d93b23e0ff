"""Properties every generated plan must have, checked on the plan document itself.

* Nothing destructive comes before its backup: every object a step deletes, patches or strips finalizers from
  was saved by an earlier Backup action (or was created by the plan itself), every leftover sweep by name was
  preceded by a backup with the same pattern, and every piece of node state a node command removes was saved on
  that node before.
* Every rollback that restores from a backup names a backup the plan takes earlier.
"""

from __future__ import annotations

from collections import defaultdict

from cni_migrate.analysis.plan.model import (
    ApplyObjects,
    Backup,
    DeleteObjects,
    NodeCommands,
    ObjectRef,
    PatchObject,
    Plan,
    RemoveFinalizers,
    RestoreBackup,
)


def obj_ref(obj: dict[str, object]) -> ObjectRef | None:
    md = obj.get("metadata")
    if not isinstance(md, dict) or "name" not in md:
        return None
    ns = md.get("namespace")
    return ObjectRef(
        api_version=str(obj.get("apiVersion")),
        kind=str(obj.get("kind")),
        name=str(md["name"]),
        namespace=str(ns) if ns else None,
    )


def backup_violations(plan: Plan) -> list[str]:
    backups: list[Backup] = []
    created: set[str] = set()
    patterns: set[str] = set()
    saved: dict[str, set[str]] = defaultdict(set)
    out: list[str] = []

    def covered(ref: ObjectRef) -> bool:
        return ref.key() in created or any(b.covers(ref) for b in backups)

    for step in plan.steps():
        for a in step.actions:
            if isinstance(a, Backup):
                backups.append(a)
                if a.name_match is not None:
                    patterns.add(a.name_match.pattern)
            elif isinstance(a, ApplyObjects):
                for o in a.objects:
                    ref = obj_ref(o)
                    if ref is not None:
                        created.add(ref.key())
            elif isinstance(a, DeleteObjects):
                for ref in a.objects:
                    if not covered(ref):
                        out.append(f"step {step.id}: deletes {ref.text()} ({ref.api_version}) before any backup of it")
                for sel in a.selectors:
                    if not any(s == sel for b in backups for s in b.selectors):
                        out.append(f"step {step.id}: deletes every {sel.kind} of {sel.group} without a backup")
                if a.name_match is not None and a.name_match.pattern not in patterns:
                    out.append(f"step {step.id}: deletes objects matching /{a.name_match.pattern}/ without a backup")
            elif isinstance(a, PatchObject | RemoveFinalizers):
                if not covered(a.target):
                    verb = "patches" if isinstance(a, PatchObject) else "removes finalizers of"
                    out.append(f"step {step.id}: {verb} {a.target.text()} before any backup of it")
            elif isinstance(a, NodeCommands):
                for cmd in a.commands:
                    for node in a.nodes:
                        missing = [k for k in cmd.removes if k not in saved[node]]
                        if missing:
                            out.append(f"step {step.id}: removes {', '.join(missing)} on node {node} before saving it")
                            break
                    for node in a.nodes:
                        saved[node].update(cmd.saves)
    return out


def restore_violations(plan: Plan) -> list[str]:
    destinations: set[str] = set()
    out: list[str] = []
    for step in plan.steps():
        for a in step.actions:
            if isinstance(a, Backup):
                destinations.add(a.destination)
        for a in step.rollback.actions:
            if isinstance(a, RestoreBackup) and a.source not in destinations:
                out.append(f"step {step.id}: its rollback restores from {a.source}, which no earlier step backs up")
    return out


def check_plan(plan: Plan) -> list[str]:
    return backup_violations(plan) + restore_violations(plan)
