"""``cni-migrate plan``: output formats, --out artifacts, exit codes, the README's main-job command."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from plan_helpers import EXAMPLES, SEED
from typer.testing import CliRunner

from cni_migrate.cli.main import app

runner = CliRunner()
LOSSY = str(EXAMPLES / "calico-bgp-lossy")
FLANNEL = str(EXAMPLES / "flannel-graceful")
BASE = ["plan", "--to", "cilium", "--cilium-version", "1.16.5"]


def test_readme_main_job_shows_the_plan() -> None:
    r = runner.invoke(app, ["--snapshot", LOSSY, *BASE, "--strategy", "offline"])
    assert r.exit_code == 0, r.output
    assert "calico -> Cilium 1.16.5, offline" in r.stdout
    for sid in ("backup-kube-proxy", "delete-old-cni", "install-cilium", "verify-nodeport"):
        assert sid in r.stdout


def test_out_writes_values_manifests_plan_and_runbook(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    args = ["--snapshot", LOSSY, *BASE, "--strategy", "offline", "--bgp", "kube-router", "--maglev", "--out", str(out)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "manifests/kube-router.yaml",
        "manifests/verify-nodeport.yaml",
        "plan.json",
        "plan.yaml",
        "runbook.md",
        "values/install.yaml",
    ]
    doc = yaml.safe_load((out / "plan.yaml").read_text())
    assert doc == json.loads((out / "plan.json").read_text())
    assert doc["schema_version"] == "cni-migrate.io/plan/v1"
    (seed,) = doc["generated"]
    assert seed["origin"] == "generated"
    # planning again into the same directory keeps the generated seed: byte-identical plan
    before = (out / "plan.json").read_bytes()
    assert runner.invoke(app, args).exit_code == 0
    assert (out / "plan.json").read_bytes() == before
    assert "# Runbook: calico to Cilium 1.16.5 (offline)" in (out / "runbook.md").read_text()


def test_out_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("mine")
    r = runner.invoke(app, ["--snapshot", LOSSY, *BASE, "--strategy", "offline", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "not empty" in r.output


def test_formats() -> None:
    r = runner.invoke(app, ["--snapshot", FLANNEL, *BASE, "--strategy", "rolling", "-o", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["inputs"]["strategy"] == "rolling"
    r = runner.invoke(app, ["--snapshot", FLANNEL, *BASE, "--strategy", "rolling", "-o", "yaml"])
    assert yaml.safe_load(r.stdout)["inputs"]["old_cni"] == "flannel"
    r = runner.invoke(app, ["--snapshot", FLANNEL, *BASE, "--strategy", "rolling", "-o", "markdown"])
    assert r.stdout.startswith("# Runbook: flannel to Cilium 1.16.5 (rolling)")
    r = runner.invoke(app, ["--snapshot", FLANNEL, "-o", "json", *BASE, "--strategy", "rolling"])
    assert json.loads(r.stdout)["schema_version"] == "cni-migrate.io/plan/v1"  # the global -o applies too


def test_same_command_same_output() -> None:
    args = ["--snapshot", LOSSY, *BASE, "--strategy", "offline", "--maglev", "--maglev-seed", SEED, "-o", "json"]
    assert runner.invoke(app, args).stdout == runner.invoke(app, args).stdout


def test_option_errors_exit_2() -> None:
    r = runner.invoke(app, ["--snapshot", FLANNEL, *BASE, "--strategy", "rolling", "--routing", "native"])
    assert r.exit_code == 2
    assert "cannot plan" in r.output and "--routing native with --strategy rolling" in r.output
    r = runner.invoke(app, ["--snapshot", FLANNEL, *BASE, "--strategy", "rolling", "--ipam", "calico"])
    assert r.exit_code == 2 and "--ipam 'calico'" in r.output
    r = runner.invoke(app, ["--snapshot", FLANNEL, *BASE, "--strategy", "sideways"])
    assert r.exit_code == 2


def test_lint_refusal_exits_1(tmp_path: Path) -> None:
    values = tmp_path / "base.yaml"
    values.write_text("tunnel: vxlan\n")
    r = runner.invoke(app, ["--snapshot", LOSSY, *BASE, "--strategy", "offline", "--values", str(values)])
    assert r.exit_code == 1
    assert "refuses to emit a values file that fails lint" in r.output and "CIL012" in r.output
    values.write_text("- a list\n")
    r = runner.invoke(app, ["--snapshot", LOSSY, *BASE, "--strategy", "offline", "--values", str(values)])
    assert r.exit_code == 2 and "must be a mapping" in r.output
