"""Issue 14 item 4: the plans carry Calico's policies over to Cilium. The rolling plan creates the translated policies
before its final values switch policyEnforcementMode back to default; the offline plan right after installing
Cilium, before the workloads restart; both stop at a gate, naming each policy, while one has no exact translation
(this also names them in the warnings: issue 16 item 6). The rollback deletes what was created."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import yaml
from plan_helpers import index, make_plan, values

from calico_policy_samples import ALLOW_DNS, WEB_INGRESS
from cni_migrate.analysis.calico_policies import PolicyMigration, migrate_policies
from cni_migrate.analysis.plan import PlanError, PlanOptions, build_plan, render_runbook
from cni_migrate.analysis.plan.model import ApplyObjects, CommandCheck, DeleteObjects, ObjectCheck, WaitFor
from cni_migrate.analysis.plan.policies import APPLY_STEP, GATE_STEP, POLICY_MANIFEST
from cni_migrate.facts import ClusterFacts
from cni_migrate.facts.policies import CalicoPolicyObjects

V1 = "crd.projectcalico.org/v1"

UNTRANSLATABLE = {  # Cilium's label selectors have no substring match
    "apiVersion": V1,
    "kind": "NetworkPolicy",
    "metadata": {"name": "default.by-prefix", "namespace": "shop"},
    "spec": {
        "selector": "app == 'db'",
        "types": ["Ingress"],
        "ingress": [{"action": "Allow", "source": {"selector": "app starts with 'web'"}}],
    },
}


def migration(*policies: dict[str, Any], existing: frozenset[tuple[str, str, str]] = frozenset()) -> PolicyMigration:
    objs = CalicoPolicyObjects(
        policies=tuple(policies),
        tiers=(),
        namespaces=(),
        pods=(),
        service_accounts=(),
        listed=True,
        cilium_policies=existing,
    )
    return migrate_policies(objs, "1.16.5")


def plan_with(facts: ClusterFacts, strategy: str, pm: PolicyMigration) -> Any:
    return build_plan(facts, PlanOptions(cilium_version="1.16.5", strategy=strategy), tool_version="test", policies=pm)


@pytest.fixture(scope="module")
def good() -> PolicyMigration:
    pm = migration(ALLOW_DNS, WEB_INGRESS)
    assert pm.translation.ok and len(pm.objects) >= 2, pm.translation.untranslatable
    return pm


@pytest.fixture(scope="module")
def bad() -> PolicyMigration:
    pm = migration(ALLOW_DNS, UNTRANSLATABLE)
    assert [u.policy for u in pm.untranslatable] == ["NetworkPolicy shop/default.by-prefix"]
    return pm


def _apply_step_checks(plan: Any, pm: PolicyMigration) -> None:
    step = plan.step(APPLY_STEP)
    applies = [a for a in step.actions if isinstance(a, ApplyObjects)]
    assert len(applies) == 1 and applies[0].artifact == POLICY_MANIFEST
    assert applies[0].objects == pm.objects
    # the artifact holds exactly those objects, labelled as cni-migrate's
    docs = [d for d in yaml.safe_load_all(plan.artifact(POLICY_MANIFEST).content) if d]
    assert docs == pm.objects
    assert all(d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "cni-migrate" for d in docs)
    assert {d["kind"] for d in docs} == {"CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"}
    # Cilium's policy CRDs are waited for before the apply
    waits = [a for a in step.actions if isinstance(a, WaitFor)]
    assert [w.target.name for w in waits if w.target] == [
        "ciliumnetworkpolicies.cilium.io",
        "ciliumclusterwidenetworkpolicies.cilium.io",
    ]
    assert step.actions.index(applies[0]) > max(step.actions.index(w) for w in waits)
    # success: each object exists; rollback: each is deleted
    names = sorted((d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs)
    checked = sorted(
        (c.target.kind, c.target.namespace, c.target.name) for c in step.success if isinstance(c, ObjectCheck)
    )
    assert checked == names
    (delete,) = step.rollback.actions
    assert isinstance(delete, DeleteObjects)
    assert sorted((r.kind, r.namespace, r.name) for r in delete.objects) == names


def test_rolling_applies_the_policies_before_enforcement_is_switched_back_on(
    multipool: ClusterFacts, good: PolicyMigration
) -> None:
    plan = plan_with(multipool, "rolling", good)
    _apply_step_checks(plan, good)
    # while both CNIs run, Cilium enforces nothing; the final values switch it back on, after the apply
    assert values(plan, "values/10-migration.yaml")["policyEnforcementMode"] == "never"
    assert values(plan, "values/20-final.yaml")["policyEnforcementMode"] == "default"
    assert index(plan, APPLY_STEP) < index(plan, "cilium-final-values")
    assert index(plan, APPLY_STEP) > max(i for i, s in enumerate(plan.steps()) if s.id.startswith("migrate-"))
    assert GATE_STEP not in [s.id for s in plan.steps()]
    # no warning about policies lost with Calico's CRDs: they are carried over
    assert not [w for w in plan.warnings if "NetworkPolic" in w]


def test_offline_applies_the_policies_with_cilium_before_the_workloads_restart(
    lossy: ClusterFacts, good: PolicyMigration
) -> None:
    plan = plan_with(lossy, "offline", good)
    _apply_step_checks(plan, good)
    ids = [s.id for s in plan.steps()]
    assert ids[ids.index("install-cilium") + 1] == APPLY_STEP
    assert index(plan, APPLY_STEP) < index(plan, "restart-unmanaged-pods")


def test_the_runbook_applies_the_policies_file_pinned_to_the_context(
    multipool: ClusterFacts, good: PolicyMigration
) -> None:
    plan = build_plan(
        multipool,
        PlanOptions(cilium_version="1.16.5", strategy="rolling", kube_context="prod-admin"),
        tool_version="test",
        policies=good,
    )
    book = render_runbook(plan)
    section = book[book.index(f"`{APPLY_STEP}`") :]
    section = section[: section.index("cilium-final-values")]
    assert (
        "kubectl --context prod-admin apply --server-side --field-manager=cni-migrate -f manifests/cilium-policies.yaml"
        in section
    )
    for d in good.objects:
        assert d["metadata"]["name"] in section  # the rollback deletes each by name


@pytest.mark.parametrize("strategy", ["rolling", "offline"])
def test_untranslatable_policies_stop_the_plan_at_a_gate_naming_each(
    multipool: ClusterFacts, lossy: ClusterFacts, bad: PolicyMigration, strategy: str
) -> None:
    facts = multipool if strategy == "rolling" else lossy
    plan = plan_with(facts, strategy, bad)
    gate = plan.step(GATE_STEP)
    phase = next(p for p in plan.phases if any(s.id == GATE_STEP for s in p.steps))
    assert phase.id == "preflight"
    assert index(plan, GATE_STEP) < index(plan, "review")  # before anything changes
    (check,) = gate.preconditions
    assert isinstance(check, CommandCheck)
    assert check.argv == [
        "kubectl",
        "get",
        "networkpolicies.crd.projectcalico.org",
        "default.by-prefix",
        "-n",
        "shop",
        "--ignore-not-found",
        "-o",
        "name",
    ]
    assert check.reject == "."  # fails while the policy exists
    assert "NetworkPolicy shop/default.by-prefix" in check.description
    assert "spec.ingress[0].source.selector" in check.description
    named = [w for w in plan.warnings if "NetworkPolicy shop/default.by-prefix" in w]
    assert named and GATE_STEP in named[0]
    (decision,) = [d for d in plan.decisions if d.option == "calico-policies"]
    assert decision.value == "1 of 2 translated, 1 without a translation"
    assert "NetworkPolicy shop/default.by-prefix" in decision.reason and GATE_STEP in decision.reason
    # the translatable policy is still carried over
    assert plan.step(APPLY_STEP)


def test_without_the_policies_the_plan_warns_with_counts(multipool: ClusterFacts) -> None:
    plan = make_plan(multipool, "rolling")
    assert GATE_STEP not in [s.id for s in plan.steps()]
    assert APPLY_STEP not in [s.id for s in plan.steps()]
    assert any("2 GlobalNetworkPolicies" in w and "not translated" in w for w in plan.warnings)


def test_a_translated_name_taken_by_an_existing_cilium_policy_is_refused(multipool: ClusterFacts) -> None:
    first = migration(WEB_INGRESS)
    cnp = first.objects[0]
    taken = frozenset({(cnp["kind"], cnp["metadata"].get("namespace", ""), cnp["metadata"]["name"])})
    with pytest.raises(PlanError) as e:
        plan_with(multipool, "rolling", migration(WEB_INGRESS, existing=taken))
    assert cnp["metadata"]["name"] in e.value.problems[0] and "exists already" in e.value.problems[0]


def test_the_policies_change_the_plan_id(multipool: ClusterFacts, good: PolicyMigration) -> None:
    a = plan_with(multipool, "rolling", good)
    b = plan_with(multipool, "rolling", migration(ALLOW_DNS))
    assert a.id != b.id


def test_the_apply_step_first_proves_the_policies_are_the_ones_translated(multipool: ClusterFacts) -> None:
    captured = [json.loads(json.dumps(p)) for p in (ALLOW_DNS, WEB_INGRESS)]
    for i, p in enumerate(captured):
        p["metadata"]["resourceVersion"] = str(100 + i)
    step = plan_with(multipool, "rolling", migration(*captured)).step(APPLY_STEP)
    (check,) = step.preconditions
    assert isinstance(check, CommandCheck) and check.shell and check.expect
    lines = "GlobalNetworkPolicy//default.allow-dns:100\nNetworkPolicy/shop/default.web-ingress:101\n"
    assert check.expect == f"^{hashlib.sha256(lines.encode()).hexdigest()} "
    assert (
        "globalnetworkpolicies.crd.projectcalico.org" in check.shell
        and "networkpolicies.crd.projectcalico.org" in check.shell
    )
    # a hand-made snapshot has no resourceVersions: nothing to compare with
    assert not plan_with(multipool, "rolling", migration(ALLOW_DNS, WEB_INGRESS)).step(APPLY_STEP).preconditions
