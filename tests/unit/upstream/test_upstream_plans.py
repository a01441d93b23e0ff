"""Plans for clusters built from the upstream manifests; an internal invariant failure is exit 3, never 1."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner
from upstream_data import cluster_objects, facts

import cni_migrate.analysis.plan as planner
from cni_migrate.analysis.plan import PlanOptions, build_plan, check_plan
from cni_migrate.analysis.plan.model import PatchObject, Plan
from cni_migrate.cli.main import app


def plan(name: str, strategy: str, **kw: object) -> Plan:
    opts = PlanOptions(cilium_version="1.16.5", strategy=strategy, **kw)  # type: ignore[arg-type]
    return build_plan(facts(name), opts, tool_version="test")


@pytest.mark.parametrize("name", ["canal-3.26", "canal-3.28", "canal-3.29"])
def test_canal_rolling_plan_is_built_without_an_autodetection_pin(name: str) -> None:
    p = plan(name, "rolling")
    ids = [s.id for s in p.steps()]
    assert "pin-calico-autodetection" not in ids  # CALICO_NETWORKING_BACKEND=none, IP="": nothing autodetected
    assert check_plan(p) == []
    patched = [a.target.text() for s in p.steps() for a in s.actions if isinstance(a, PatchObject)]
    assert not any("calico-node" in t for t in patched)
    deleted = {
        r.text() for s in p.steps() if s.id == "delete-old-cni" for a in s.actions for r in getattr(a, "objects", [])
    }
    assert "DaemonSet kube-system/canal" in deleted


def test_canal_offline_plan() -> None:
    p = plan("canal-3.28", "offline")
    assert check_plan(p) == []
    assert p.inputs.old_cni == "canal"


def test_calico_rolling_plan_pins_the_daemonset_the_facts_saw() -> None:
    p = plan("calico-3.28", "rolling")
    (step,) = [s for s in p.steps() if s.id == "pin-calico-autodetection"]
    (patch,) = [a for a in step.actions if isinstance(a, PatchObject)]
    assert patch.target.text() == "DaemonSet kube-system/calico-node"


def _snapshot(tmp_path: Path, name: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "objects.yaml").write_text(yaml.safe_dump_all(cluster_objects(name)))
    return d


def test_canal_rolling_plan_from_the_cli(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path, "canal-3.28")
    r = CliRunner().invoke(
        app, ["--snapshot", str(snap), "plan", "--to", "cilium", "--cilium-version", "1.16.5", "--strategy", "rolling"]
    )
    assert r.exit_code == 0, r.output


def test_an_internal_invariant_failure_exits_3_with_an_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = _snapshot(tmp_path, "canal-3.28")
    monkeypatch.setattr(planner, "check_plan", lambda plan: ["step x: deletes Foo before any backup of it"])
    r = CliRunner().invoke(
        app, ["--snapshot", str(snap), "plan", "--to", "cilium", "--cilium-version", "1.16.5", "--strategy", "offline"]
    )
    assert r.exit_code == 3, r.output
    assert "internal error" in r.output
    assert "a bug in the tool" in r.output
    assert "step x: deletes Foo" in r.output
