"""A step's success checks are retried while the cluster converges (--check-settle), and fail once it is over."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from cni_migrate.analysis.plan import model as m
from cni_migrate.analysis.plan import render_runbook
from cni_migrate.cli.plan import write_out
from cni_migrate.kube.client import Cluster
from cni_migrate_testbed import ControlPlane

from .apply_helpers import Events, executor_for, make_plan, replan
from .support import load_example

PROBE = "settle-probe"


def _one_step_plan(plan: m.Plan) -> m.Plan:
    """The live cluster's plan cut to one step whose success check turns true only a while after its action."""
    step = m.Step(
        id="converging-step",
        title="a step whose effect appears a moment after its action",
        scope="cluster",
        actions=[m.WaitFor(condition="nodes-ready", timeout_seconds=60)],
        success=[
            m.ObjectCheck(
                description="the probe ConfigMap exists",
                target=m.ObjectRef(api_version="v1", kind="ConfigMap", name=PROBE, namespace="default"),
            )
        ],
        rollback=m.Rollback(description="nothing to undo"),
    )
    cut = plan.model_copy(update={"phases": [m.Phase(id="only", title="one step", steps=[step])], "artifacts": []})
    return cut.model_copy(update={"digest": m.plan_content_digest(cut)})


@pytest.mark.parametrize(("settle", "succeeds"), [(30.0, True), (0.0, False)])
def test_success_checks_settle(
    fresh_control_plane: ControlPlane, tmp_path: Path, settle: float, succeeds: bool
) -> None:
    cp = fresh_control_plane
    out = tmp_path / "plan"
    cluster = load_example(cp, "flannel-graceful", make_plan("flannel-graceful", out, strategy="rolling"))
    plan = _one_step_plan(replan(cluster, out, strategy="rolling"))
    write_out(plan, render_runbook(plan), out, force=True)
    rest = cluster.rest()
    timers: list[threading.Timer] = []

    class Converging(Events):
        def __call__(self, event: str, **fields: Any) -> None:
            super().__call__(event, **fields)
            if event == "step-start":  # the effect lands 2 s after the step began, as a controller's would
                body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": PROBE, "namespace": "default"}}
                timers.append(threading.Timer(2.0, rest.create, args=(body,)))
                timers[-1].start()

    events = Converging()
    try:
        summary = executor_for(cp, out, None, events, cluster, check_settle=settle, chart_overrides={}).apply()
        checks = [e for e in events.of("check") if e["kind"] == "success"]
        if succeeds:
            assert summary.state == "succeeded", summary.message
            assert checks[0]["result"] == "fail" and checks[-1]["result"] == "pass", checks  # retried, then passed
        else:
            assert summary.state == "failed" and "success check failed: the probe ConfigMap exists" in summary.message
            assert [c["result"] for c in checks] == ["fail"]  # no settle time: checked once
    finally:
        for t in timers:
            t.join()
        Cluster.close(cluster)
