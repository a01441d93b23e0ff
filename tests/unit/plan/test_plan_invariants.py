"""Properties of every generated plan: nothing destructive before its backup, rollbacks restore from real backups,
the same input gives the same document, and the schema is what docs/plan.md describes."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from plan_helpers import SEED, load, make_plan

import cni_migrate.analysis.plan as planner
from cni_migrate.analysis.plan import Plan, PlanError, PlanOptions, build_plan, check_plan
from cni_migrate.analysis.plan.model import SCHEMA_VERSION, Backup, DeleteObjects, NodeCommand, NodeCommands, Step
from cni_migrate.cli.plan import plan_json

VARIANTS: list[tuple[str, str, str, dict[str, Any]]] = [
    (example, strategy, version, extra)
    for (example, strategy, extra), version in itertools.product(
        [
            ("calico-bgp-lossy", "offline", {}),
            ("calico-bgp-lossy", "offline", {"bgp": "kube-router", "maglev": True, "lb_mode": "hybrid"}),
            ("calico-bgp-lossy", "offline", {"node_cleanup": "reboot"}),
            ("calico-bgp-lossy", "rolling", {}),
            ("calico-bgp-lossy", "rolling", {"kube_proxy_replacement": "true", "reboot_migrated_nodes": True}),
            ("flannel-graceful", "offline", {}),
            ("flannel-graceful", "rolling", {}),
            ("flannel-graceful", "rolling", {"kube_proxy_replacement": "true", "batch_size": 2}),
            ("calico-operator-multipool", "offline", {}),
            ("calico-operator-multipool", "rolling", {"kube_proxy_replacement": "true"}),
        ],
        ["1.16.5", "1.17.3"],
    )
]


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    out = {}
    facts = {}
    for example, strategy, version, extra in VARIANTS:
        f = facts.setdefault(example, load(example))
        out[f"{example}/{strategy}/{version}/{json.dumps(extra, sort_keys=True)}"] = make_plan(
            f, strategy, version, **extra
        )
    return out


def test_no_destructive_step_before_its_backup(plans: dict[str, Plan]) -> None:
    for name, plan in plans.items():
        assert check_plan(plan) == [], name


def test_backups_come_before_the_first_destructive_step(plans: dict[str, Plan]) -> None:
    for name, plan in plans.items():
        steps = plan.steps()
        first_destructive = min(
            i
            for i, s in enumerate(steps)
            if any(
                isinstance(a, DeleteObjects) or (isinstance(a, NodeCommands) and any(c.removes for c in a.commands))
                for a in s.actions
            )
        )
        backups = [i for i, s in enumerate(steps) if any(isinstance(a, Backup) for a in s.actions)]
        assert backups and max(backups) < first_destructive, name


def test_every_step_is_complete(plans: dict[str, Plan]) -> None:
    for name, plan in plans.items():
        ids = [s.id for s in plan.steps()]
        assert len(ids) == len(set(ids)), name
        for s in plan.steps():
            assert s.title and s.rollback.description, (name, s.id)
            if s.disruption.disruptive:
                assert s.disruption.what and s.disruption.estimate_seconds > 0, (name, s.id)
            if s.scope == "node":
                assert s.nodes, (name, s.id)


def test_every_referenced_artifact_exists(plans: dict[str, Plan]) -> None:
    for name, plan in plans.items():
        paths = {a.path for a in plan.artifacts}
        for s in plan.steps():
            for a in s.actions:
                for attr in ("artifact", "values_file"):
                    ref = getattr(a, attr, None)
                    if ref and not str(ref).startswith("charts/"):
                        assert ref in paths, (name, s.id, ref)


def test_every_values_file_was_linted_clean(plans: dict[str, Plan]) -> None:
    for name, plan in plans.items():
        linted = {x.artifact for x in plan.lint}
        assert linted == {a.path for a in plan.artifacts if a.kind == "values"}, name
        assert all(x.errors == 0 for x in plan.lint), name


def test_check_plan_catches_a_delete_before_its_backup(plans: dict[str, Plan]) -> None:
    plan = next(iter(plans.values()))
    phases = [p.model_copy(deep=True) for p in plan.phases]
    for p in phases:
        p.steps = [s for s in p.steps if s.id != "backup-nodes" and not any(isinstance(a, Backup) for a in s.actions)]
    broken = plan.model_copy(update={"phases": phases})
    problems = check_plan(broken)
    assert any("deletes DaemonSet kube-system/calico-node" in p for p in problems)
    assert any("before saving it" in p for p in problems)  # node state removed unsaved
    assert any("restores from" in p for p in problems)


def test_check_plan_catches_node_state_removed_unsaved() -> None:
    step = Step(
        id="x",
        title="x",
        scope="node",
        nodes=["n1"],
        actions=[
            NodeCommands(nodes=["n1"], commands=[NodeCommand(run="ipvsadm -C", description="d", removes=["ipvs"])])
        ],
        rollback={"description": "none"},  # type: ignore[arg-type]
    )
    plan = make_plan(load("flannel-graceful"), "offline")
    plan.phases[0].steps.insert(0, step)
    assert check_plan(plan) == ["step x: removes ipvs on node n1 before saving it"]


def test_same_input_same_bytes() -> None:
    facts = load("calico-bgp-lossy")
    opts = {"bgp": "kube-router", "maglev": True, "maglev_seed": SEED}
    a = plan_json(make_plan(facts, "offline", **opts))
    b = plan_json(make_plan(load("calico-bgp-lossy"), "offline", **opts))
    assert a == b
    r1 = plan_json(make_plan(facts, "rolling"))
    assert r1 == plan_json(make_plan(facts, "rolling"))


def test_generated_seed_is_recorded_and_reused() -> None:
    facts = load("calico-bgp-lossy")
    opts = PlanOptions(cilium_version="1.16.5", strategy="offline", maglev=True)
    p1 = build_plan(facts, opts, tool_version="t")
    (g,) = p1.generated
    assert g.origin == "generated" and len(g.value) == 16
    assert f"hashSeed: {g.value}" in p1.artifact("values/install.yaml").content
    p2 = build_plan(facts, opts, tool_version="t", reuse={"maglev.hashSeed": g.value})
    assert plan_json(p1) == plan_json(p2)


def test_schema(plans: dict[str, Plan]) -> None:
    plan = next(iter(plans.values()))
    doc = json.loads(plan_json(plan))
    assert doc["schema_version"] == SCHEMA_VERSION == "cni-migrate.io/plan/v1"
    assert set(doc) >= {"id", "inputs", "decisions", "phases", "artifacts", "lint", "backup_dir", "warnings"}
    step = doc["phases"][1]["steps"][0]
    assert set(step) >= {
        "id",
        "title",
        "scope",
        "actions",
        "preconditions",
        "success",
        "rollback",
        "disruption",
        "relies_on",
    }
    assert all("action" in a for a in step["actions"])
    assert Plan.model_validate(doc) == plan  # the document round-trips into the model


def test_internal_errors_refuse_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner, "check_plan", lambda plan: ["boom"])
    with pytest.raises(PlanError) as e:
        make_plan(load("flannel-graceful"), "offline")
    assert e.value.kind == "internal"
