"""The CLI's contract: exit codes 0 / 1 / 2, clear one-line errors, never a traceback for user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cni_migrate.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
runner = CliRunner()


def test_version() -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and "cni-migrate" in r.stdout


def test_discover_json_schema_is_stable() -> None:
    r = runner.invoke(app, ["--snapshot", str(EXAMPLES / "flannel-graceful"), "-o", "json", "discover"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    facts = doc["facts"]
    assert facts["schema_version"] == "cni-migrate.io/facts/v1"
    assert set(facts) >= {
        "source",
        "kubernetes_version",
        "nodes",
        "cni",
        "kube_proxy",
        "network",
        "pdbs",
        "workloads",
        "policies",
        "istio",
        "cilium_helm_releases",
    }
    assert facts["network"]["pod_cidrs"] == {
        "value": ["10.243.0.0/16"],
        "source": "Pod kube-system/kube-controller-manager-node-01.staging.vms.svc.fraction.cluster command --cluster-cidr",
        "unknown": None,
    }
    assert doc["problems"] == []


def test_discover_yaml_and_subcommand_output_option() -> None:
    r = runner.invoke(app, ["--snapshot", str(EXAMPLES / "calico-bgp-lossy"), "discover", "-o", "yaml"])
    assert r.exit_code == 0
    assert "schema_version: cni-migrate.io/facts/v1" in r.stdout


def test_discover_exit_1_on_problems(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kubeadm-config, namespace: kube-system}\n"
        "data:\n  ClusterConfiguration: |\n    networking:\n      podSubnet: 10.96.0.0/16\n      serviceSubnet: 10.96.0.0/12\n"
    )
    r = runner.invoke(app, ["--snapshot", str(tmp_path), "discover"])
    assert r.exit_code == 1
    assert "overlapping-cidrs" in r.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--snapshot", "/nonexistent/snap", "discover"], "no such file or directory"),
        (["--kubeconfig", "/nonexistent/kubeconfig", "discover"], "no kubeconfig found"),
    ],
)
def test_bad_input_exit_2_without_traceback(args: list[str], needle: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "cni_migrate", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_malformed_snapshot_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "nodes.yaml"
    bad.write_text("kind: Node\nmetadata: {name: [x\n")
    proc = subprocess.run(
        [sys.executable, "-m", "cni_migrate", "--snapshot", str(tmp_path), "discover"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert f"{bad}:" in proc.stderr and "Traceback" not in proc.stderr


def test_wrong_context_exit_2(tmp_path: Path) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "cni_migrate", "--kubeconfig", str(kc), "--context", "nope", "discover"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "context 'nope' not found" in proc.stderr


def test_unreachable_cluster_exit_2(tmp_path: Path) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "cni_migrate", "--kubeconfig", str(kc), "discover"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "cannot reach the API server" in proc.stderr and "Traceback" not in proc.stderr
