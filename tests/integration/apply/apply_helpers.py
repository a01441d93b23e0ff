"""Helpers of the executor's end-to-end tests: a fresh control plane per example (the example's node names and
node count must be the whole cluster, as the plan demands), the plan written as `plan --out` writes it, node
sandboxes, and an executor factory with the testbed's kubectl and helm."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cni_migrate.actions.executor.planfile import load_plan
from cni_migrate.actions.executor.run import Executor, RunOptions
from cni_migrate.actions.executor.tools import Tools
from cni_migrate.analysis.plan import Plan, PlanOptions, build_plan, render_runbook
from cni_migrate.cli.plan import write_out
from cni_migrate.facts import extract_facts, facts_from_snapshot
from cni_migrate.facts.live import read_cluster
from cni_migrate.kube.client import Cluster
from cni_migrate_testbed import ControlPlane
from cni_migrate_testbed.binaries import find_binary

from .support import CHART, EXAMPLES, NodeSandbox


def make_plan(example: str, out: Path, **options: Any) -> Plan:
    opts = PlanOptions(cilium_version=options.pop("cilium_version", "1.16.5"), **options)
    plan = build_plan(facts_from_snapshot(str(EXAMPLES / example)), opts, tool_version="test")
    write_out(plan, render_runbook(plan), out, force=True)
    return plan


def replan(cluster: Cluster, out: Path, **options: Any) -> Plan:
    """Plan again from the live cluster (as an SRE runs `plan` against it): the plan then names this cluster's
    kube-system UID and node names, which its preflight proves before anything runs."""
    opts = PlanOptions(cilium_version=options.pop("cilium_version", "1.16.5"), **options)
    plan = build_plan(extract_facts(read_cluster(cluster), kind="live"), opts, tool_version="test")
    write_out(plan, render_runbook(plan), out, force=True)
    return plan


class Events(list[dict[str, Any]]):
    def __call__(self, event: str, **fields: Any) -> None:
        self.append({"event": event, **fields})

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self if e["event"] == event]


def tools_for(cp: ControlPlane) -> Tools:
    return Tools(
        str(cp.admin_kubeconfig),
        None,
        kubectl=str(find_binary("kubectl", cp.cache)),
        helm=str(find_binary("helm", cp.cache)),
    )


def run_options_for_tests(**extra: Any) -> RunOptions:
    base: dict[str, Any] = {
        "yes": True,
        "skip_checks": frozenset({"exec", "nodeport", "cni"}),
        "chart_overrides": {"cilium/cilium": str(CHART)},
        "finalizer_grace": 1.0,
        "drain_timeout": 30.0,
        "eviction_retry": 0.3,
        "poll": 0.2,
        "check_settle": 20.0,
    }
    base.update(extra)
    return RunOptions(**base)


ExecutorFactory = Callable[..., Executor]


def executor_for(
    cp: ControlPlane, out: Path, sandbox: NodeSandbox | None, events: Events, cluster: Cluster, **extra: Any
) -> Executor:
    return Executor(
        cluster.rest(),
        load_plan(out),
        tools_for(cp),
        transport=sandbox,
        options=run_options_for_tests(**extra),
        emit=events,
        facts=lambda: extract_facts(read_cluster(cluster), kind="live"),
    )
