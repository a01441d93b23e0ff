"""verify/monitor: bad input is one clear line and exit code 2, before anything touches a cluster; the probe
manifests are least-privilege and node selection explains what it leaves out."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cni_migrate.actions.verify.deploy import ProbeConfig, VerifyInputError, manifests, namespace_manifest, select_nodes
from cni_migrate.analysis.verify import BatchAccumulator, Endpoint, analyze_matrix, cells_from_results, plan_probes
from cni_migrate.cli.main import app
from cni_migrate.cli.verify import _batch_table, _render_matrix

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


PODS = [
    Endpoint("a", "n1", "10.244.1.5", 7310, cni="flannel"),
    Endpoint("b", "n2", "10.244.2.5", 7310, cni="flannel"),
    Endpoint("c", "n3", "172.20.3.5", 7310, cni="cilium"),
]


def _ok(pid: str, seen: str) -> dict:
    return {"id": pid, "ok": True, "latency_ms": 1.5, "seen_source": seen, "server": {"pod": "x"}}


def _stream(sid: str, ok: int, failed: int, gaps: list[float]) -> dict:
    return {"id": sid, "sent": ok + failed, "ok": ok, "failed": failed, "gaps": gaps, "outage_for": None}


def test_table_rendering_shows_summary_cni_pairs_grid_and_failures() -> None:
    plan = plan_probes(PODS)
    cells = cells_from_results(PODS[0], plan["a"], [_ok("pp:b", "10.244.1.5"), _ok("pp:c", "192.168.0.1")])
    cells += cells_from_results(PODS[1], plan["b"], [_ok("pp:a", "10.244.2.5"), {"id": "pp:c", "ok": False,
                                                                                  "error": "timeout"}])  # fmt: skip
    report = analyze_matrix(cells)
    console = Console(record=True, width=200)
    _render_matrix(console, report, all_cells=False)
    text = console.export_text()
    assert "pod → pod" in text and "3/4" in text and "flannel" in text and "cilium" in text
    assert "pod → pod by node" in text and "Failed cells" in text and "timeout" in text
    assert "required paths failed" in text and "source-NATed" in text
    acc = BatchAccumulator("batch-1", now=0.0)
    acc.ingest("a", {"streams": [_stream("s", 99, 1, [])], "held": []})
    console = Console(record=True, width=200)
    console.print(_batch_table(acc.snapshot(now=5.0), ["x"]))
    text = console.export_text()
    assert "batch batch-1" in text and "1.00%" in text
