"""The plan's node cleanup calls the node agent first; the shell equivalent stays, guarded to run only where the
agent is not installed, and the rollback calls the agent's restore."""

from __future__ import annotations

import subprocess

from plan_helpers import index, make_plan, node_runs

from cni_migrate.analysis.plan.model import NodeCommands
from cni_migrate.facts import ClusterFacts


def test_clean_nodes_calls_the_agent_then_guarded_shell(lossy: ClusterFacts) -> None:
    plan = make_plan(lossy)
    runs = [r for i, r in node_runs(plan) if i == index(plan, "clean-nodes")]
    assert runs[0].startswith("if command -v cni-migrate >/dev/null 2>&1; then cni-migrate node clean --old-cni calico")
    assert "--kube-proxy" in runs[0] and "--backup-dir /var/backups/cni-migrate/" in runs[0]
    assert all(r.startswith("command -v cni-migrate >/dev/null 2>&1 || { ") for r in runs[1:])
    assert any("ip route flush proto bird" in r for r in runs[1:])
    for r in runs:
        subprocess.run(["sh", "-n", "-c", r], check=True)  # each is valid shell


def test_flannel_plan_cleans_flannel_with_the_agent(flannel: ClusterFacts) -> None:
    plan = make_plan(flannel)
    runs = [r for i, r in node_runs(plan) if i == index(plan, "clean-nodes")]
    assert "cni-migrate node clean --old-cni flannel" in runs[0]


def test_rollback_calls_the_agents_restore(lossy: ClusterFacts) -> None:
    plan = make_plan(lossy)
    step = plan.steps()[index(plan, "clean-nodes")]
    assert step.rollback is not None
    runs = [c.run for a in step.rollback.actions if isinstance(a, NodeCommands) for c in a.commands]
    assert "cni-migrate node restore --backup-dir" in runs[0]
