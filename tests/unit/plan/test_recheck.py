"""Facts re-checked by the executor against the live cluster: what refuses a plan, what only warns."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from plan_helpers import EXAMPLES, make_plan

from cni_migrate.analysis.plan.recheck import changed_facts
from cni_migrate.facts import ClusterFacts, facts_from_snapshot


def _snapshot_without_ippools(tmp: Path, cidr_edit: dict[str, str] | None = None) -> ClusterFacts:
    """The operator example after the plan deleted Calico (no Installation, no IPPool left), or with one pool's
    CIDR edited."""
    dst = tmp / "snap"
    shutil.copytree(EXAMPLES / "calico-operator-multipool", dst)
    f = dst / "calico.yaml"
    doc = yaml.safe_load(f.read_text())
    items = []
    for item in doc["items"]:
        if cidr_edit is None and str(item["apiVersion"]).split("/")[0] in (
            "crd.projectcalico.org",
            "operator.tigera.io",
        ):
            continue
        if item["kind"] == "IPPool":
            item["spec"]["cidr"] = cidr_edit.get(item["spec"]["cidr"], item["spec"]["cidr"])
        items.append(item)
    doc["items"] = items
    f.write_text(yaml.safe_dump(doc))
    return facts_from_snapshot(str(dst))


def test_environment_fact_whose_evidence_was_deleted_only_warns(multipool: ClusterFacts, tmp_path: Path) -> None:
    plan = make_plan(multipool, "offline")
    install = [plan.step("install-cilium")]
    assert any(r.path == "network.pod_cidrs" for r in install[0].relies_on)
    changes = changed_facts(plan, _snapshot_without_ippools(tmp_path), install, environment_only=True)
    pod = [c for c in changes if c.path == "network.pod_cidrs"]
    # read from Calico's IPPools, gone now: the fallback source (a default) differs, and that is no change
    assert pod and pod[0].warning and pod[0].unreadable, changes
    assert "can no longer be read" in pod[0].text() and "10.60.0.0/18" in pod[0].text()


def test_environment_fact_that_changed_refuses(multipool: ClusterFacts, tmp_path: Path) -> None:
    """The service CIDR comes from kube-apiserver's flags, not from the old CNI: a change between phases refuses."""
    plan = make_plan(multipool, "offline")
    dst = tmp_path / "snap"
    shutil.copytree(EXAMPLES / "calico-operator-multipool", dst)
    pods = dst / "pods.yaml"
    pods.write_text(
        pods.read_text().replace("--service-cluster-ip-range=10.96.0.0/12", "--service-cluster-ip-range=10.112.0.0/12")
    )
    users = [s for s in plan.steps() if any(r.path == "network.service_cidrs" for r in s.relies_on)]
    assert users
    live = facts_from_snapshot(str(dst))
    svc = [c for c in changed_facts(plan, live, users, environment_only=True) if c.path == "network.service_cidrs"]
    assert svc and not svc[0].warning and not svc[0].unreadable
    assert "10.112.0.0/12" in svc[0].text() and "changed since planning" in svc[0].text()


def test_before_the_first_step_an_unreadable_fact_refuses(multipool: ClusterFacts, tmp_path: Path) -> None:
    """Before anything ran, nothing of the plan can have removed the evidence: a missing fact is a change."""
    plan = make_plan(multipool, "offline")
    changes = changed_facts(plan, _snapshot_without_ippools(tmp_path), plan.steps(), environment_only=False)
    pod = [c for c in changes if c.path == "network.pod_cidrs"]
    assert pod and not pod[0].warning


def test_unchanged_cluster_has_no_changes(multipool: ClusterFacts) -> None:
    plan = make_plan(multipool, "offline")
    assert changed_facts(plan, multipool, plan.steps(), environment_only=False) == []
