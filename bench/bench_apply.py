#!/usr/bin/env python3
"""Benchmark: a rolling migration of 100 kwok nodes (batch size 5, ~10 pods per node, PodDisruptionBudgets on
some) on the real test control plane: `apply` against the runbook's own kubectl commands run in sequence by a
shell script, on two identical control planes in the same run.

Both sides start from the same state (the plan's steps before the node batches, run by the executor, untimed) and
time the `migrate-nodes` phase: cordon, drain through the Eviction API, label, agent restart, rollout wait,
uncordon per batch. Left out of both sides, because neither can do them on kwok: node commands (ssh/root shell)
and the probe pods' outcomes (their containers do not run). Reported: wall time of each side and the ratio
(target apply <= 0.5x the script), the journal's share of apply's time (target <= 5 %), API requests per node.

    python bench/bench_apply.py [--nodes 100] [--pods 1000] [--batch 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import yaml  # noqa: E402
from tests.integration.apply.support import CHART, NodeSandbox, load_example, seed_flannel_like  # noqa: E402

from cni_migrate.actions.executor.planfile import load_plan  # noqa: E402
from cni_migrate.actions.executor.run import Executor, RunOptions  # noqa: E402
from cni_migrate.actions.executor.tools import Tools  # noqa: E402
from cni_migrate.analysis.plan import PlanOptions, build_plan, render_runbook  # noqa: E402
from cni_migrate.analysis.plan.model import NodeCommands, Verify, WaitFor  # noqa: E402
from cni_migrate.analysis.plan.runbook import action_lines  # noqa: E402
from cni_migrate.cli.plan import write_out  # noqa: E402
from cni_migrate.facts import extract_facts, facts_from_snapshot  # noqa: E402
from cni_migrate.facts.live import read_cluster  # noqa: E402
from cni_migrate.kube.client import Cluster  # noqa: E402
from cni_migrate_testbed import ControlPlane  # noqa: E402
from cni_migrate_testbed.binaries import find_binary  # noqa: E402


def _write_snapshot(directory: Path, nodes: int, pods: int) -> None:
    """The Flannel example cluster (seed 003) grown to ``nodes`` nodes (node-01 stays the control plane) with
    Deployments of 10 replicas making ~``pods`` pods, and a PodDisruptionBudget (maxUnavailable 1) on every
    fifth of them."""
    src = ROOT / "examples" / "flannel-graceful"
    directory.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.yaml"):
        if f.name not in ("nodes.yaml",):
            shutil.copy(f, directory / f.name)
    template = next(n for n in _items(src / "nodes.yaml") if "control-plane" not in str(n["metadata"]["labels"]))
    first = next(n for n in _items(src / "nodes.yaml") if "control-plane" in str(n["metadata"]["labels"]))
    out = [first]
    for i in range(2, nodes + 1):
        n = json.loads(json.dumps(template))
        name = f"node-{i:03d}.bench"
        n["metadata"]["name"] = name
        n["metadata"]["labels"]["kubernetes.io/hostname"] = name
        n["metadata"].pop("uid", None)
        n["spec"] = {"podCIDR": f"10.243.{i}.0/24", "podCIDRs": [f"10.243.{i}.0/24"]}
        n["status"]["addresses"] = [
            {"type": "InternalIP", "address": f"192.168.{10 + i // 250}.{i % 250 + 1}"},
            {"type": "Hostname", "address": name},
        ]
        out.append(n)
    apps = []
    for d in range(max(1, pods // 10)):
        labels = {"app": f"app-{d:03d}"}
        apps.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": f"app-{d:03d}", "namespace": "default"},
                "spec": {
                    "replicas": 10,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
                    },
                },
            }
        )
        if d % 5 == 0:
            apps.append(
                {
                    "apiVersion": "policy/v1",
                    "kind": "PodDisruptionBudget",
                    "metadata": {"name": f"app-{d:03d}", "namespace": "default"},
                    "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
                }
            )
    (directory / "nodes.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": out}))
    (directory / "apps.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": apps}))


def _items(path: Path) -> list[dict[str, object]]:
    doc = yaml.safe_load(path.read_text())
    return list(doc.get("items") or [])


def _executor(cp: ControlPlane, out: Path, sandbox: NodeSandbox | None, **extra: object) -> Executor:
    cluster = Cluster.connect(str(cp.admin_kubeconfig))
    opts = RunOptions(
        yes=True,
        skip_checks=frozenset({"exec", "nodeport", "cni", "node"}),
        chart_overrides={"cilium/cilium": str(CHART)},
        finalizer_grace=1.0,
        drain_timeout=120.0,
        eviction_retry=0.5,
        poll=0.2,
        check_facts=False,
        **extra,  # type: ignore[arg-type]
    )
    tools = Tools(
        str(cp.admin_kubeconfig),
        None,
        kubectl=str(find_binary("kubectl", cp.cache)),
        helm=str(find_binary("helm", cp.cache)),
    )
    return Executor(cluster.rest(), load_plan(out), tools, transport=sandbox, options=opts, emit=lambda *a, **k: None)


def _reference_script(plan: object, path: Path) -> None:
    lines = ["set -euo pipefail"]
    for s in plan.steps():  # type: ignore[attr-defined]
        if not s.id.startswith("migrate-"):
            continue
        for a in s.actions:
            if isinstance(a, NodeCommands | Verify) or (isinstance(a, WaitFor) and a.condition == "pod-phase"):
                continue
            lines += action_lines(a, plan)  # type: ignore[arg-type]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-apply-"))
    snap = work / "snapshot"
    _write_snapshot(snap, args.nodes, args.pods)
    facts = facts_from_snapshot(str(snap))
    popts = PlanOptions(cilium_version="1.16.5", strategy="rolling", batch_size=args.batch)
    plan = build_plan(facts, popts, tool_version="bench")
    migrate = [s for s in plan.steps() if s.id.startswith("migrate-")]
    before_first = plan.steps()[plan.steps().index(migrate[0]) - 1].id
    results: dict[str, float] = {}
    stats: dict[str, float] = {}
    for side in ("script", "apply"):
        out = work / f"plan-{side}"
        write_out(plan, render_runbook(plan), out, force=True)
        cp = ControlPlane(quiet=True).start(allocate_node_cidrs=False)
        sandbox = None
        try:
            cluster = load_example(cp, str(snap), plan)
            cp.kubectl("wait", "--for=condition=Available", "deploy", "--all", "-A", "--timeout=300s")
            # planned against this cluster, as an SRE does (the preflight proves kube-system's UID)
            plan = build_plan(extract_facts(read_cluster(cluster), kind="live"), popts, tool_version="bench")
            write_out(plan, render_runbook(plan), out, force=True)
            migrate = [s for s in plan.steps() if s.id.startswith("migrate-")]
            before_first = plan.steps()[plan.steps().index(migrate[0]) - 1].id
            nodes = sorted({n for s in plan.steps() for n in s.nodes})
            sandbox = NodeSandbox(work / f"nodes-{side}", nodes, prefix="ba")
            for i, n in enumerate(nodes):
                seed_flannel_like(sandbox, n, f"10.243.{i}.0/24", i)
            setup = _executor(cp, out, sandbox, until=before_first).apply()
            assert setup.as_requested, setup.message
            if side == "script":
                script = work / "runbook-migrate.sh"
                _reference_script(plan, script)
                env = {
                    **os.environ,
                    "KUBECONFIG": str(cp.admin_kubeconfig),
                    "PATH": f"{cp.bin_dir}:{os.environ['PATH']}",
                }
                t0 = time.perf_counter()
                # the runbook asks before each deletion (from /dev/tty): a pseudo-terminal answers yes, as an SRE would
                r = subprocess.run(
                    ["script", "-qefc", f"bash {script}", "/dev/null"], input="y\n" * 10000, env=env,
                    check=False, capture_output=True, cwd=out, text=True,
                )  # fmt: skip
                if r.returncode != 0:
                    raise SystemExit(f"the runbook script failed: {(r.stdout + r.stderr)[-3000:]}")
                results[side] = time.perf_counter() - t0
            else:
                ex = _executor(cp, out, sandbox, resume=True, until=migrate[-1].id)
                t0 = time.perf_counter()
                summary = ex.apply()
                results[side] = time.perf_counter() - t0
                assert summary.as_requested, summary.message
                stats = {
                    "journal_writes": summary.journal_writes,
                    "journal_seconds": summary.journal_seconds,
                    "api_requests": summary.api_requests,
                }
        finally:
            if sandbox is not None:
                sandbox.close()
            cp.stop()
    ratio = results["apply"] / results["script"]
    print(
        json.dumps(
            {
                "benchmark": "apply-rolling",
                "nodes": args.nodes,
                "pods": args.pods,
                "batch": args.batch,
                "batches": len(migrate),
                "script_s": round(results["script"], 2),
                "apply_s": round(results["apply"], 2),
                "ratio": round(ratio, 3),
                "target_ratio": 0.5,
                "journal_share": round(stats["journal_seconds"] / results["apply"], 4),
                "journal_writes": stats["journal_writes"],
                "api_requests_per_node": round(stats["api_requests"] / args.nodes, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
