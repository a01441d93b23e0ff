"""What apply refuses (exit 2, nothing written to the cluster) and where it stops (exit 1, at a gate), on the real
control plane through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from cni_migrate_testbed import ControlPlane

from .apply_helpers import Events, executor_for, make_plan, replan
from .support import CHART, NodeSandbox, load_example, seed_flannel_like

ROOT = Path(__file__).resolve().parents[3]
CLI = ROOT / ".venv" / "bin" / "cni-migrate"


def cli(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{cp.bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(
        [str(CLI), "--kubeconfig", str(cp.admin_kubeconfig), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )


FLANNEL_NODES = [f"node-0{i}.staging.vms.svc.fraction.cluster" for i in (1, 2, 3)]
# node commands would go to network namespaces that do not exist: they fail instead of touching this machine
NOWHERE = [a for n in FLANNEL_NODES for a in ("--node-netns", f"{n}=cni-migrate-test-absent")]
APPLY = [
    "apply",
    "--yes",
    "--skip-checks",
    "exec,nodeport,cni,node",
    "--chart",
    f"cilium/cilium={CHART}",
    "--node-transport",
    "local",
    *NOWHERE,
]


def nothing_written(cp: ControlPlane) -> None:
    crds = cp.kubectl("get", "crd", "-o", "name").stdout
    assert "migrationruns.cni-migrate.io" not in crds
    leases = cp.kubectl("get", "lease", "-n", "kube-system", "-o", "name").stdout
    assert "cni-migrate-" not in leases


def test_bad_plans_are_refused_before_anything_is_written(fresh_control_plane: ControlPlane, tmp_path: Path) -> None:
    cp = fresh_control_plane
    out = tmp_path / "plan"
    plan = make_plan("flannel-graceful", out, strategy="rolling")
    cluster = load_example(cp, "flannel-graceful", plan)
    plan = replan(cluster, out, strategy="rolling")

    # a plan made for another cluster
    other = tmp_path / "other"
    make_plan("calico-bgp-lossy", other, strategy="offline")
    r = cli(cp, *APPLY, str(other))
    assert r.returncode == 2, r.stderr
    assert "made for another cluster" in r.stderr and "Traceback" not in r.stderr

    # an unknown schema version
    doc = json.loads((out / "plan.json").read_text())
    bad = tmp_path / "bad-schema"
    bad.mkdir()
    (bad / "plan.json").write_text(json.dumps({**doc, "schema_version": "cni-migrate.io/plan/v9"}))
    r = cli(cp, *APPLY, str(bad))
    assert r.returncode == 2 and "schema_version" in r.stderr and "plan/v9" in r.stderr, r.stderr

    # a plan edited after review
    edited = tmp_path / "edited"
    edited.mkdir()
    doc2 = json.loads(json.dumps(doc))
    doc2["phases"][0]["steps"][0]["title"] = "something else"
    (edited / "plan.json").write_text(json.dumps(doc2))
    r = cli(cp, *APPLY, str(edited))
    assert r.returncode == 2 and "modified after it was made" in r.stderr, r.stderr

    # not a plan at all
    (tmp_path / "junk.json").write_text("[1, 2")
    r = cli(cp, *APPLY, str(tmp_path / "junk.json"))
    assert r.returncode == 2 and "not JSON" in r.stderr, r.stderr

    # node steps without a transport
    r = cli(cp, "apply", "--yes", "--chart", f"cilium/cilium={CHART}", str(out))
    assert r.returncode == 2 and "--node-transport" in r.stderr, r.stderr

    # a fact the plan relies on changed since planning: kubeadm now names a control-plane endpoint (a VIP)
    cm = json.loads(cp.kubectl("get", "configmap", "-n", "kube-system", "kubeadm-config", "-o", "json").stdout)
    conf = cm["data"]["ClusterConfiguration"] + "controlPlaneEndpoint: 192.168.10.99:6443\n"
    cp.kubectl(
        "patch",
        "configmap",
        "-n",
        "kube-system",
        "kubeadm-config",
        "--type=merge",
        "-p",
        json.dumps({"data": {"ClusterConfiguration": conf}}),
    )
    r = cli(cp, *APPLY, str(out))
    assert r.returncode == 2, r.stderr
    assert "network.api_endpoint changed since planning" in r.stderr and "192.168.10.99" in r.stderr, r.stderr
    nothing_written(cp)


def test_missing_backup_is_refused_on_resume(fresh_control_plane: ControlPlane, tmp_path: Path) -> None:
    cp = fresh_control_plane
    out = tmp_path / "plan"
    plan = make_plan("flannel-graceful", out, strategy="rolling")
    cluster = load_example(cp, "flannel-graceful", plan)
    plan = replan(cluster, out, strategy="rolling")
    r = cli(cp, *APPLY, "--until", "backup-old-cni", str(out))
    assert r.returncode == 0, r.stderr
    journal = json.loads(next(out.glob("journal-*.json")).read_text())
    assert journal["backups"], "the backup step recorded its files"
    victim = out / next(iter(journal["backups"]))
    victim.unlink()
    before = len(journal["records"])
    r = cli(cp, *APPLY, "--resume", str(out))
    assert r.returncode == 2 and "missing" in r.stderr and victim.name in r.stderr, r.stderr
    assert len(json.loads(next(out.glob("journal-*.json")).read_text())["records"]) == before


def test_a_pdb_that_allows_no_disruption_stops_at_a_gate_until_raised(
    fresh_control_plane: ControlPlane, tmp_path: Path
) -> None:
    cp = fresh_control_plane
    out = tmp_path / "plan"
    plan = make_plan("flannel-graceful", out, strategy="rolling")
    cluster = load_example(cp, "flannel-graceful", plan)
    plan = replan(cluster, out, strategy="rolling")
    first = next(s for s in plan.steps() if s.id.startswith("migrate-"))
    node = first.nodes[0]
    cp.kubectl("create", "namespace", "zk")
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "zk", "namespace": "zk"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "zk"}},
            "template": {
                "metadata": {"labels": {"app": "zk"}},
                "spec": {"nodeName": node, "containers": [{"name": "zk", "image": "zk"}]},
            },
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "zk", "namespace": "zk"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "zk"}}},
    }
    for o in (manifest, pdb):
        subprocess.run(
            [str(cp.bin_dir / "kubectl"), f"--kubeconfig={cp.admin_kubeconfig}", "apply", "-f", "-"],
            input=json.dumps(o),
            text=True,
            check=True,
            capture_output=True,
        )
    cp.kubectl("wait", "-n", "zk", "--for=condition=Available", "deploy/zk", "--timeout=60s")
    sandbox = NodeSandbox(tmp_path / "nodes", FLANNEL_NODES)
    for i, n in enumerate(FLANNEL_NODES):
        seed_flannel_like(sandbox, n, f"10.243.{i}.0/24", i)
    # the facts changed (a new PDB and pods): only warnings, the plan still fits
    try:
        s = executor_for(cp, out, sandbox, Events(), cluster, drain_timeout=3.0).apply()
        assert s.state == "waiting", s.message
        assert first.id in s.message and "zk/zk" in s.message and "disruption budget" in s.message.lower(), s.message
        cp.kubectl("patch", "pdb", "-n", "zk", "zk", "--type=merge", "-p", '{"spec":{"minAvailable":0}}')
        s2 = executor_for(cp, out, sandbox, Events(), cluster, drain_timeout=30.0, resume=True, until=first.id).apply()
        assert s2.ok and s2.as_requested, s2.message
    finally:
        sandbox.close()
