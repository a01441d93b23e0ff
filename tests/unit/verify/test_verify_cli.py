"""verify/monitor: bad input is one clear line and exit code 2, before anything touches a cluster; the probe
manifests are least-privilege and node selection explains what it leaves out."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cni_migrate.actions.verify.deploy import ProbeConfig, VerifyInputError, manifests, namespace_manifest, select_nodes
from cni_migrate.cli.main import app

runner = CliRunner()


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    p = tmp_path / "kubeconfig"
    p.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{server}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: abc}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
"""
    )
    return p


@pytest.mark.parametrize("command", ["verify", "monitor"])
def test_unreachable_cluster(tmp_path: Path, command: str) -> None:
    kc = _kubeconfig(tmp_path, "https://127.0.0.1:1")
    result = runner.invoke(app, ["--kubeconfig", str(kc), command])
    assert result.exit_code == 2, result.output
    assert "cannot reach the API server" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "--node-selector", "role"], "--node-selector 'role': expected KEY=VALUE"),
        (["verify", "--cilium-cidr", "172.20.0.0/33"], "--cilium-cidr '172.20.0.0/33': expected a CIDR"),
        (["verify", "--namespace", "Bad_NS"], "--namespace 'Bad_NS': expected a DNS label"),
        (["verify", "--timeout", "0"], "--timeout 0.0: expected seconds"),
        (["monitor", "--rate", "0"], "--rate 0.0: expected requests per second"),
        (["monitor", "--max-failed-ratio", "2"], "--max-failed-ratio in [0, 1]"),
    ],
)
def test_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    kc = _kubeconfig(tmp_path, "https://127.0.0.1:1")  # never contacted: options are checked first
    result = runner.invoke(app, ["--kubeconfig", str(kc), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_snapshot_is_refused() -> None:
    result = runner.invoke(app, ["--snapshot", "examples/flannel-graceful", "verify"])
    assert result.exit_code == 2 and "needs a live cluster" in result.stderr


def test_pod_probes_are_restricted_and_host_probes_only_on_request() -> None:
    docs = manifests(ProbeConfig(namespace="ns"))
    assert [d["kind"] for d in docs] == ["DaemonSet", "Service"]
    spec = docs[0]["spec"]["template"]["spec"]
    sc = spec["containers"][0]["securityContext"]
    assert spec["automountServiceAccountToken"] is False and "hostNetwork" not in spec
    assert sc["runAsNonRoot"] and sc["capabilities"] == {"drop": ["ALL"]} and not sc["allowPrivilegeEscalation"]
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"} and spec["tolerations"] == []
    assert spec["containers"][0]["command"][:3] == ["python", "-m", "cni_migrate.actions.verify.prober"]
    assert namespace_manifest(ProbeConfig())["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    with_host = manifests(ProbeConfig(node_probes=True, tolerate=("*",), nodes=("n1",)))
    host = with_host[1]["spec"]["template"]["spec"]
    assert host["hostNetwork"] is True and host["tolerations"] == [{"operator": "Exists"}]
    assert host["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchFields"
    ][0]["values"] == ["n1"]
    labels = namespace_manifest(ProbeConfig(node_probes=True))["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


def _node(name: str, taints: list[dict[str, str]] | None = None, labels: dict[str, str] | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def test_node_selection() -> None:
    nodes = [
        _node("a", labels={"pool": "x"}),
        _node("b", [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}], {"pool": "x"}),
        _node("c", [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
        _node("d", [{"key": "soft", "effect": "PreferNoSchedule"}]),
    ]
    plan = select_nodes(nodes, ProbeConfig())
    assert [n["metadata"]["name"] for n in plan.probed] == ["a", "c", "d"]
    assert plan.skipped == {"b": "tainted dedicated=db:NoSchedule: no probe pod (pass --tolerate dedicated to probe "
                                 "it anyway)"}  # fmt: skip
    assert len(select_nodes(nodes, ProbeConfig(tolerate=("dedicated",))).probed) == 4
    assert [n["metadata"]["name"] for n in select_nodes(nodes, ProbeConfig(node_selector=(("pool", "x"),))).probed] == [
        "a"
    ]
    with pytest.raises(VerifyInputError, match="--nodes: no such node"):
        select_nodes(nodes, ProbeConfig(nodes=("zz",)))
    with pytest.raises(VerifyInputError, match="no node to probe"):
        select_nodes(nodes, ProbeConfig(nodes=("b",)))
