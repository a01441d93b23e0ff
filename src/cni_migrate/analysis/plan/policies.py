"""Calico's policies in the plans: a gate that refuses to go on while some cannot be translated exactly, and the
step that creates their Cilium translation (rolling: before policy enforcement is switched back on; offline:
right after Cilium is installed, before the workloads restart)."""

from __future__ import annotations

from cni_migrate.analysis.calico_policies import CILIUM_POLICY_CRDS, MANAGED_LABELS, PolicyMigration, describe
from cni_migrate.analysis.plan.common import Builder, kubectl
from cni_migrate.analysis.plan.invariants import obj_ref
from cni_migrate.analysis.plan.model import (
    ApplyObjects,
    Check,
    CommandCheck,
    Decision,
    DeleteObjects,
    Disruption,
    ObjectCheck,
    ObjectRef,
    Rollback,
    Step,
    WaitFor,
)
from cni_migrate.analysis.plan.oldcni import ref
from cni_migrate.analysis.plan.options import PlanError

POLICY_MANIFEST = "manifests/cilium-policies.yaml"
GATE_STEP = "calico-policy-gate"
APPLY_STEP = "apply-cilium-policies"
# Up to this many translated objects get one success check each; more are counted by label in one command.
MAX_OBJECT_CHECKS = 50
_POLICY_FACTS = ("policies.calico_network_policies", "policies.calico_global_network_policies")


def policy_decision(b: Builder, pm: PolicyMigration) -> Decision:
    """What the plan does with the cluster's Calico policies, for the decisions table."""
    bad = pm.untranslatable_policies()
    n = len(pm.policy_set.policies)
    value = f"{len(pm.translation.exact)} of {n} translated, {len(bad)} without a translation"
    if not n:
        reason = "the cluster has no Calico NetworkPolicies or GlobalNetworkPolicies"
    else:
        reason = (
            f"{len(pm.objects)} Cilium policies for Cilium {pm.cilium_version} created by step {APPLY_STEP}"
            if pm.objects
            else "no Cilium policy to create"
        )
        if bad:
            reason += f"; the plan stops at step {GATE_STEP} while {', '.join(s.ref for s in bad)} exist"
    return Decision(
        option="calico-policies",
        value=value,
        origin="derived",
        reason=reason,
        facts=b.fr(*_POLICY_FACTS),
    )


def policy_warnings(pm: PolicyMigration) -> list[str]:
    """One warning per untranslatable policy, naming it, the field, the reason, the policy it conflicts with and
    a flow whose verdict would change."""
    return [
        f"Calico policy without an exact Cilium translation: {describe(u)}; the plan stops at step {GATE_STEP} "
        "while it exists (deleting Calico's CRDs would delete it unenforced)"
        for u in pm.untranslatable
    ]


def policy_gate_step(b: Builder, pm: PolicyMigration | None) -> Step | None:
    """A precondition per untranslatable policy: it must no longer exist in the cluster."""
    if pm is None or not pm.untranslatable:
        return None
    checks: list[Check] = []
    for src in pm.untranslatable_policies():
        why = "; ".join(describe(u) for u in pm.findings_of(src.ref)) or "no Cilium object was emitted for it"
        ns = ["-n", src.namespace] if src.namespace else []
        checks.append(
            CommandCheck(
                description=f"{src.ref} ({src.api_version}) has no exact Cilium translation ({why}): it must be "
                "rewritten or removed before the migration",
                argv=kubectl("get", src.resource, src.name, *ns, "--ignore-not-found", "-o", "name"),
                reject=".",
            )
        )
    n = len(checks)
    b.warnings.extend(policy_warnings(pm))
    return Step(
        id=GATE_STEP,
        title=f"Refuse to go on while {n} Calico polic{'y' if n == 1 else 'ies'} without an exact Cilium translation "
        "exist",
        scope="cluster",
        description="Cilium cannot express these policies with the same verdict on every flow (the checks say which "
        "field, why, the policy they conflict with and an example flow), so migrating would silently change what "
        "the cluster allows. Rewrite them in a form that translates (`cni-migrate policy translate -o table` shows "
        "what is wrong) or, if the cluster can do without them, save and delete them; then plan again, so the "
        "translated policies the plan creates match the cluster's.",
        actions=[],
        preconditions=checks,
        rollback=Rollback(description="nothing to undo: the gate changes nothing"),
        relies_on=b.fr(*_POLICY_FACTS),
    )


def _check_collisions(pm: PolicyMigration, refs: list[ObjectRef]) -> None:
    existing = {(k, ns or None, name) for k, ns, name in pm.existing_cilium}
    clash = [r for r in refs if (r.kind, r.namespace, r.name) in existing]
    if clash:
        raise PlanError(
            [
                f"{r.text()} exists already (facts policies.cilium_network_policies): the Cilium translation of "
                "Calico's policies would replace it; rename or delete it, then plan again"
                for r in clash
            ]
        )


def apply_policies_step(b: Builder, pm: PolicyMigration | None, *, enforced_now: bool) -> Step | None:
    """Create the translated policies (after waiting for Cilium's policy CRDs); the rollback deletes them.
    ``enforced_now``: Cilium enforces policies as soon as they exist (offline), else only from the final values."""
    if pm is None:
        return None
    objects = pm.objects
    if not objects:
        return None
    refs = [r for r in (obj_ref(o) for o in objects) if r is not None]
    _check_collisions(pm, refs)
    path = b.manifest(
        POLICY_MANIFEST,
        objects,
        "Cilium policies translated from Calico's NetworkPolicies and GlobalNetworkPolicies "
        f"(Cilium {pm.cilium_version})",
    )
    n_ns = sum(1 for r in refs if r.kind == "CiliumNetworkPolicy")
    n_cw = len(refs) - n_ns
    waits = [
        WaitFor(
            condition="condition",
            target=ref("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd),
            value="Established",
            timeout_seconds=300,
        )
        for crd in CILIUM_POLICY_CRDS
    ]
    success: list[Check]
    if len(refs) <= MAX_OBJECT_CHECKS:
        success = [ObjectCheck(description=f"{r.text()} exists", target=r) for r in refs]
    else:
        label = ",".join(f"{k}={v}" for k, v in sorted(MANAGED_LABELS.items()))
        success = [
            CommandCheck(
                description=f"the {len(refs)} translated Cilium policies exist",
                shell=f"kubectl get ciliumnetworkpolicies.cilium.io,ciliumclusterwidenetworkpolicies.cilium.io -A "
                f"-l {label} -o name | wc -l",
                expect=rf"^\s*{len(refs)}\s*$",
            )
        ]
    preconditions: list[Check] = []
    unchanged = pm.unchanged_check()
    if unchanged is not None:
        shell, digest = unchanged
        preconditions.append(
            CommandCheck(
                description=f"the cluster's {len(pm.sources)} Calico policies are the ones the plan translated (same "
                "names and resourceVersions); if one changed, translate again (`cni-migrate policy translate`) and "
                "plan again, or apply the new translation yourself",
                shell=shell,
                expect=f"^{digest} ",
            )
        )
    when = (
        "Cilium enforces them as soon as they exist"
        if enforced_now
        else "Cilium enforces nothing yet (policyEnforcementMode=never); they take effect when the final values "
        "switch enforcement back to default"
    )
    return Step(
        id=APPLY_STEP,
        title=f"Create the Cilium policies translated from Calico's ({n_ns} CiliumNetworkPolicies, {n_cw} "
        "CiliumClusterwideNetworkPolicies)",
        scope="cluster",
        description=f"Translated exactly (`cni-migrate policy check` finds no flow whose verdict differs); {when}.",
        actions=[*waits, ApplyObjects(artifact=path, objects=objects)],
        preconditions=preconditions,
        success=success,
        rollback=Rollback(
            description="delete the Cilium policies this step created", actions=[DeleteObjects(objects=refs)]
        ),
        disruption=Disruption(
            what="none if the translation is exact: the same flows stay allowed"
            if enforced_now
            else "none: nothing is enforced until the final values"
        ),
        relies_on=b.fr(*_POLICY_FACTS),
    )
