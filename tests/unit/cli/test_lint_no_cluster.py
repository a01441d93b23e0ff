"""``lint`` with no cluster configured lints values and version alone; a cluster asked for explicitly must work."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from cni_migrate.cli.lint import NO_CLUSTER_NOTE
from cni_migrate.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
VALUES = "ipam:\n  mode: kubernetes\nroutingMode: tunnel\ntunnelProtocol: vxlan\n"


def _run(tmp: Path, *argv: str) -> Result:
    (tmp / "values.yaml").write_text(VALUES)
    env = {"KUBECONFIG": None, "HOME": str(tmp), "COLUMNS": "200"}  # no ~/.kube/config, no $KUBECONFIG
    return CliRunner(env=env).invoke(app, [*argv])


def test_no_kubeconfig_lints_values_alone(tmp_path: Path) -> None:
    r = _run(tmp_path, "lint", str(tmp_path / "values.yaml"), "--cilium-version", "1.16.5", "-o", "json")
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [NO_CLUSTER_NOTE]
    assert NO_CLUSTER_NOTE == "no cluster: cluster rules not checked; use --snapshot or --context"
    doc = json.loads(r.stdout)
    assert doc["inputs"]["facts"] == "none (no cluster: cluster rules not checked)"
    # The same cluster rules are reported not checked as with an explicit --no-cluster.
    explicit = _run(tmp_path, "lint", str(tmp_path / "values.yaml"), "--cilium-version", "1.16.5", "--no-cluster")
    explicit_json = _run(
        tmp_path, "-o", "json", "lint", str(tmp_path / "values.yaml"), "--cilium-version", "1.16.5", "--no-cluster"
    )
    assert explicit.exit_code == 0 and explicit.stderr == ""
    not_checked = [n["id"] for n in doc["not_checked"]]
    assert not_checked and not_checked == [n["id"] for n in json.loads(explicit_json.stdout)["not_checked"]]
    assert doc["findings"] == json.loads(explicit_json.stdout)["findings"]


def test_no_kubeconfig_table_names_the_fallback(tmp_path: Path) -> None:
    r = _run(tmp_path, "lint", str(tmp_path / "values.yaml"), "--cilium-version", "1.16.5")
    assert r.exit_code == 0, r.output
    assert "facts: none (no cluster: cluster rules not checked)" in r.stdout
    assert "Not checked" in r.stdout
    assert r.stderr.strip() == NO_CLUSTER_NOTE


def test_quiet_silences_the_note(tmp_path: Path) -> None:
    r = _run(tmp_path, "-q", "lint", str(tmp_path / "values.yaml"), "--cilium-version", "1.16.5")
    assert r.exit_code == 0 and r.stderr == ""


def test_explicit_context_or_kubeconfig_that_fails_exits_2(tmp_path: Path) -> None:
    for flags in (["--context", "prod"], ["--kubeconfig", str(tmp_path / "missing.yaml")]):
        for argv in (
            [*flags, "lint", str(tmp_path / "values.yaml"), "--cilium-version", "1.16.5"],
            ["lint", str(tmp_path / "values.yaml"), "--cilium-version", "1.16.5", *flags],
        ):
            r = _run(tmp_path, *argv)
            assert r.exit_code == 2, (argv, r.output)
            assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
            assert NO_CLUSTER_NOTE not in r.output
            assert "Traceback" not in r.output


def test_kubeconfig_without_the_named_context_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: a\n  cluster: {server: 'https://127.0.0.1:1'}\n"
        "contexts:\n- name: a\n  context: {cluster: a, user: a}\nusers:\n- name: a\n  user: {token: x}\n"
    )
    r = _run(tmp_path, "--kubeconfig", str(cfg), "--context", "b", "lint", "--cilium-version", "1.16.5")
    assert r.exit_code == 2 and "error:" in r.stderr and NO_CLUSTER_NOTE not in r.output, r.output


def test_snapshot_still_checks_cluster_rules(tmp_path: Path) -> None:
    snap = str(EXAMPLES / "calico-operator-multipool")
    r = _run(
        tmp_path, "lint", str(tmp_path / "values.yaml"), "--cilium-version", "1.16.5", "--snapshot", snap, "-o", "json"
    )
    assert r.exit_code in (0, 1), r.output
    doc = json.loads(r.stdout)
    assert doc["inputs"]["facts"] == f"snapshot {snap}"
    assert NO_CLUSTER_NOTE not in r.stderr
    fallback = json.loads(
        _run(tmp_path, "lint", str(tmp_path / "values.yaml"), "--cilium-version", "1.16.5", "-o", "json").stdout
    )
    assert len(doc["not_checked"]) < len(fallback["not_checked"])


def test_no_cluster_and_snapshot_contradict(tmp_path: Path) -> None:
    snap = str(EXAMPLES / "calico-operator-multipool")
    r = _run(tmp_path, "--snapshot", snap, "lint", "--cilium-version", "1.16.5", "--no-cluster")
    assert r.exit_code == 2 and "contradict" in r.stderr
