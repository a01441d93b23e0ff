"""``cni-migrate lint``: inputs as users give them, the output formats, and the exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cni_migrate.cli.main import app

from .test_helm_command import LOSSY

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
FLANNEL = str(EXAMPLES / "flannel-graceful")
runner = CliRunner()

FLANNEL_VALUES = """tunnel: vxlan

ipam:
  mode: cluster-pool
  operator:
    clusterPoolIPv4PodCIDRList:
    - "172.20.0.0/16"

hubble:
  enabled: false
"""


@pytest.fixture
def values_file(tmp_path: Path) -> Path:
    p = tmp_path / "values.yaml"
    p.write_text(FLANNEL_VALUES)
    return p


def lint(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    r = runner.invoke(app, ["lint", *args], input=stdin)
    return r.exit_code, r.stdout, r.stderr


class TestExitCodes:
    def test_clean_values_exit_0(self) -> None:
        code, out, _ = lint("--set", "tunnelProtocol=geneve", "--cilium-version", "1.16.5", "--no-cluster")
        assert code == 0, out
        assert "0 errors" in out

    def test_error_findings_exit_1(self, values_file: Path) -> None:
        code, out, _ = lint(str(values_file), "--cilium-version", "1.12.2", "--snapshot", FLANNEL)
        assert code == 1
        assert "CIL015" in out and "Address already in use" in out
        assert f"{values_file}:1" in out  # where the clashing value was set

    def test_geneve_instead_exits_0_in_a_rolling_migration(self, values_file: Path) -> None:
        code, out, _ = lint(
            str(values_file), "--set", "tunnel=geneve", "--cilium-version", "1.12.2", "--snapshot", FLANNEL, "--rolling"
        )
        assert code == 0, out

    def test_global_snapshot_option_works_too(self, values_file: Path) -> None:
        r = runner.invoke(app, ["--snapshot", FLANNEL, "lint", str(values_file), "--cilium-version", "1.12.2"])
        assert r.exit_code == 1 and "CIL015" in r.stdout

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--cilium-version", "1.x", "--no-cluster"], "not of the form X.Y"),
            (["--cilium-version", "1.9", "--no-cluster"], "covers Cilium 1.11"),
            (["--no-cluster"], "no Cilium version"),
            (["missing.yaml", "--cilium-version", "1.16", "--no-cluster"], "cannot read values file missing.yaml"),
            (["--set", "a.b", "--cilium-version", "1.16", "--no-cluster"], "--set 'a.b': key 'b' has no value"),
            (["--set-string", "a[x]=1", "--cilium-version", "1.16", "--no-cluster"], "--set-string"),
            (["--helm-command", "kubectl get pods", "--no-cluster"], "no helm command"),
            (["--helm-command", "helm install cilium cilium/cilium", "--no-cluster"], "the helm command has no"),
            (["--cilium-version", "1.16", "--snapshot", "/nonexistent"], "no such file or directory"),
            (["--cilium-version", "1.16", "--no-cluster", "--old-cni-removed", "--rolling"], "contradict"),
            (["--cilium-version", "1.16", "--no-cluster", "--snapshot", FLANNEL], "contradict"),
            (["--cilium-version", "1.16", "--kubeconfig-not-an-option"], "No such option"),
        ],
    )
    def test_bad_input_exits_2(self, args: list[str], message: str) -> None:
        code, _, err = lint(*args)
        assert code == 2
        assert message in " ".join(err.split()), err
        assert "Traceback" not in err

    def test_no_cluster_reachable_suggests_offline_modes(self, tmp_path: Path) -> None:
        r = runner.invoke(app, ["--kubeconfig", str(tmp_path / "none"), "lint", "--cilium-version", "1.16"])
        assert r.exit_code == 2 and "--no-cluster" in r.stderr

    def test_bad_yaml_and_non_mapping(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text("a: [1, 2\nb: c\n")
        code, _, err = lint(str(bad), "--cilium-version", "1.16", "--no-cluster")
        assert code == 2 and "not valid YAML" in err and "bad.yaml:" in err
        listy = tmp_path / "list.yaml"
        listy.write_text("- a\n- b\n")
        code, _, err = lint(str(listy), "--cilium-version", "1.16", "--no-cluster")
        assert code == 2 and "must be a YAML mapping" in err


class TestInputs:
    def test_pasted_helm_command_gives_the_version(self, tmp_path: Path) -> None:
        cmd = tmp_path / "cmd.sh"
        cmd.write_text(LOSSY)
        code, out, _ = lint("--helm-command", f"@{cmd}", "--no-cluster")
        assert code == 0, out
        assert "Cilium 1.12.6" in out
        code, out, _ = lint("--helm-command", LOSSY, "--cilium-version", "1.16.5", "--no-cluster", "-o", "json")
        assert code == 1
        doc = json.loads(out)
        assert sorted(f["id"] for f in doc["findings"] if f["severity"] == "error") == ["CIL012", "CIL017", "CIL031"]
        origins = {f["id"]: f["origin"] for f in doc["findings"]}
        assert origins["CIL017"] == "--set kubeProxyReplacement=strict"
        assert doc["inputs"]["helm_command"]["version"] == "1.12.6"

    def test_helm_command_from_stdin_with_its_values_file(
        self, values_file: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(values_file.parent)
        text = (
            "helm template --namespace kube-system cilium cilium/cilium --version 1.12.2 -f values.yaml | k apply -f -"
        )
        code, out, _ = lint("--helm-command", "-", "--snapshot", FLANNEL, stdin=text)
        assert code == 1 and "CIL015" in out

    def test_later_sources_win(self, values_file: Path, tmp_path: Path) -> None:
        override = tmp_path / "override.yaml"
        override.write_text("tunnel: geneve\n")
        _code, out, _ = lint(
            str(values_file), str(override), "--cilium-version", "1.12.2", "--snapshot", FLANNEL, "-o", "json"
        )
        assert "CIL015" not in {f["id"] for f in json.loads(out)["findings"]}
        _code, out, _ = lint(
            str(values_file),
            str(override),
            "--set",
            "tunnel=vxlan",
            "--cilium-version",
            "1.12.2",
            "--snapshot",
            FLANNEL,
            "-o",
            "json",
        )
        doc = json.loads(out)
        assert "CIL015" in {f["id"] for f in doc["findings"]}
        assert next(f["origin"] for f in doc["findings"] if f["id"] == "CIL015") == "--set tunnel=vxlan"

    def test_origin_of_a_multi_assignment_flag(self) -> None:
        flag = "hubble.enabled=false,tunnel=vxlan,ipam.operator.clusterPoolIPv4PodCIDRList={172.20.0.0/16}"
        _code, out, _ = lint("--set", flag, "--cilium-version", "1.12.2", "--snapshot", FLANNEL, "-o", "json")
        doc = json.loads(out)
        assert next(f["origin"] for f in doc["findings"] if f["id"] == "CIL015") == f"--set {flag}"

    def test_set_string_keeps_strings(self) -> None:
        _code, out, _ = lint(
            "--set-string", "kubeProxyReplacement=true", "--cilium-version", "1.16", "--no-cluster", "-o", "json"
        )
        assert json.loads(out)["derived"]["kpr"] == "true"

    def test_context_flags(self) -> None:
        _code, out, _ = lint(
            "--cilium-version", "1.16", "--snapshot", FLANNEL, "--old-cni-removed", "--kube-proxy-removed", "-o", "json"
        )
        doc = json.loads(out)
        ids = {f["id"] for f in doc["findings"]}
        assert "CIL077" not in ids and "CIL020" in ids  # no kube-proxy and no replacement
        assert doc["derived"]["old_cni"] == "none" and doc["derived"]["kube_proxy_present"] is False


class TestOutputs:
    def test_json_schema(self, values_file: Path) -> None:
        _code, out, _ = lint(str(values_file), "--cilium-version", "1.12.2", "--snapshot", FLANNEL, "-o", "json")
        doc = json.loads(out)
        assert doc["schema_version"] == "cni-migrate.io/lint/v1"
        assert set(doc) >= {"cilium_version", "findings", "not_checked", "derived", "derived_from", "summary", "inputs"}
        for f in doc["findings"]:
            assert set(f) >= {"id", "severity", "path", "message", "fix", "reference", "origin"}
            assert f["severity"] in ("error", "warning", "info")
        for n in doc["not_checked"]:
            assert set(n) >= {"id", "missing"} and n["missing"]
        assert doc["summary"]["errors"] == sum(1 for f in doc["findings"] if f["severity"] == "error")
        assert doc["derived"]["tunnel_port"] == 8472

    def test_yaml(self) -> None:
        code, out, _ = lint("--cilium-version", "1.16", "--no-cluster", "-o", "yaml")
        assert code == 0 and "schema_version: cni-migrate.io/lint/v1" in out

    def test_sarif(self, values_file: Path) -> None:
        code, out, _ = lint(str(values_file), "--cilium-version", "1.12.2", "--snapshot", FLANNEL, "-o", "sarif")
        assert code == 1
        doc = json.loads(out)
        assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
        run = doc["runs"][0]
        rules = run["tool"]["driver"]["rules"]
        assert {r["id"] for r in rules} >= {f"CIL{n:03d}" for n in range(1, 97)}
        clash = next(r for r in run["results"] if r["ruleId"] == "CIL015")
        assert clash["level"] == "error"
        assert rules[clash["ruleIndex"]]["id"] == "CIL015"
        loc = clash["locations"][0]
        assert loc["physicalLocation"]["artifactLocation"]["uri"] == str(values_file)
        assert loc["physicalLocation"]["region"]["startLine"] == 1
        assert loc["logicalLocations"][0]["fullyQualifiedName"] == "tunnel"
        notes = run["invocations"][0]["toolExecutionNotifications"]
        assert notes and all(n["associatedRule"]["id"] for n in notes)
        assert {r["level"] for r in run["results"]} <= {"error", "warning", "note"}

    def test_explain_shows_derived_settings(self) -> None:
        _code, out, _ = lint("--set", "tunnel=disabled", "--cilium-version", "1.16", "--no-cluster", "--explain")
        assert "Derived settings" in out
        assert "routing" in out and "ignored (removed in 1.15)" in " ".join(out.split())

    def test_table_lists_not_checked_rules(self) -> None:
        _code, out, _ = lint("--set", "kubeProxyReplacement=true", "--cilium-version", "1.16", "--no-cluster")
        assert "Not checked" in out and "node kernel versions" in out
