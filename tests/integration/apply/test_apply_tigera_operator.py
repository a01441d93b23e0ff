"""The operator-installed Calico example (examples/calico-operator-multipool) end to end: the Installation deleted
while the operator still runs, finalizers it leaves stuck cleared after the grace time from the backup, the operator
and calico-system removed, Cilium installed; rollback returns every object, finalizers included."""

from __future__ import annotations

from pathlib import Path

import pytest

from cni_migrate.kube.client import Cluster
from cni_migrate_testbed import ControlPlane
from cni_migrate_testbed.waiting import wait_for

from .apply_helpers import Events, executor_for, make_plan, replan
from .support import SNAPSHOT_KINDS, NodeSandbox, load_example, object_set, seed_calico_like
from .tigera_standin import CNI_PROTECTOR, OPERATOR_CLEANUP, PROTECTED, TigeraOperatorStandIn

EXAMPLE = "calico-operator-multipool"
KINDS = [*SNAPSHOT_KINDS, ("operator.tigera.io/v1", "Installation"), ("operator.tigera.io/v1", "APIServer")]


def _deployment_available(rest, ns: str, name: str) -> bool:  # type: ignore[no-untyped-def]
    dep = rest.get("apps/v1", "Deployment", name, ns)
    return bool(dep and (dep.get("status") or {}).get("availableReplicas") == 1)


@pytest.mark.parametrize("stuck", [True, False], ids=["operator-leaves-finalizers", "operator-cleans-up"])
def test_operator_calico_offline_runs_to_completion_and_rolls_back(
    fresh_control_plane: ControlPlane, tmp_path: Path, stuck: bool
) -> None:
    cp = fresh_control_plane
    out = tmp_path / "plan"
    plan = make_plan(EXAMPLE, out, strategy="offline")
    cluster = load_example(cp, EXAMPLE, plan)
    plan = replan(cluster, out, strategy="offline")
    rest = cluster.rest()
    # the plan's precondition: the operator runs (kwok runs its pod), so it can process the finalizers
    wait_for("tigera-operator available", lambda: _deployment_available(rest, "tigera-operator", "tigera-operator"))
    before = object_set(rest, KINDS)
    assert before["operator.tigera.io/Installation//default"]["metadata"]["finalizers"] == [OPERATOR_CLEANUP]
    nodes = sorted({n for s in plan.steps() for n in s.nodes})
    sandbox = NodeSandbox(tmp_path / "nodes", nodes)
    for i, n in enumerate(nodes):
        seed_calico_like(sandbox, n, f"10.33.{i}.0/26", f"10.33.{(i + 1) % len(nodes)}.0/26")
    try:
        events = Events()
        with TigeraOperatorStandIn(rest, stuck=stuck) as operator:
            # a healthy operator gets the grace time to finish before the executor goes on and deletes it
            summary = executor_for(cp, out, sandbox, events, cluster, finalizer_grace=10.0).apply()
        ns = rest.get("v1", "Namespace", "calico-system")
        # a namespace stuck in Terminating says what holds it
        assert summary.state == "succeeded", (
            f"{summary.message}\noperator: {operator.actions} {operator.errors}\ncalico-system: {(ns or {}).get('status')}"
        )
        assert "deleted DaemonSet calico-system/calico-node" in operator.actions
        assert operator.actions[-1] == "operator pod gone: stopped", operator.actions
        stripped = [e for e in events.of("action-done") if e["action"] == "remove-finalizers" and e["state"] == "done"]
        if stuck:
            # every finalizer the operator left was removed by the executor, from objects it had backed up
            assert not any("removed" in a for a in operator.actions)
            cleared = " ".join(e["message"] for e in stripped)
            assert len(stripped) == len(PROTECTED) + 1, cleared  # the CNI's identity and the Installation
            assert "Installation default" in cleared and "ServiceAccount calico-system/calico-node" in cleared
        else:
            # nothing was stuck: the executor waited and stripped nothing
            assert {f"removed {CNI_PROTECTOR} from {k} {n}" for _, k, n, _ in PROTECTED} <= set(operator.actions)
            assert not stripped, stripped
        after = object_set(rest, KINDS)
        for gone in (
            "operator.tigera.io/Installation//default",
            "apps/Deployment/tigera-operator/tigera-operator",
            "/Namespace//calico-system",
            "/Namespace//tigera-operator",
            "/ServiceAccount/calico-system/calico-node",
            "rbac.authorization.k8s.io/ClusterRole//calico-node",
            "apps/DaemonSet/kube-system/kube-proxy",
        ):
            assert before.get(gone) is not None and gone not in after, gone
        assert not [k for k in after if k.startswith("apiextensions.k8s.io/") and "tigera.io" in k]
        assert rest.get("apps/v1", "DaemonSet", "cilium", "kube-system") is not None
        for n in nodes:
            r = sandbox.run(n, "ls /etc/cni/net.d; ip route show proto bird; iptables-save", timeout=30)
            assert r.ok, r.stderr
            assert "calico" not in r.stdout and "proto bird" not in r.stdout and "HOST-OWN" in r.stdout

        rb = executor_for(cp, out, sandbox, Events(), cluster).rollback()
        assert rb.state == "rolled-back", rb.message
        restored = object_set(rest, KINDS)
        assert set(restored) == set(before), (sorted(set(restored) - set(before)), sorted(set(before) - set(restored)))
        for k in before:
            assert restored[k] == before[k], k
        # finalizers are restored last, so the operator's protections are back as they were
        for api, kind, name, ns in PROTECTED:
            obj = rest.get(api, kind, name, ns)
            assert obj is not None and CNI_PROTECTOR in (obj["metadata"].get("finalizers") or []), (kind, name)
    finally:
        sandbox.close()
        Cluster.close(cluster)
