"""The executor under its documented least-privilege RBAC (deploy/rbac/cni-migrate-executor.yaml, enforced by the
real API server), talking to it through a fault-injecting proxy (connection resets before and after the request
reached the server, 429 with Retry-After, 500, slow answers): it retries what is safe, re-reads after an
ambiguous write, and ends in the same state as a run without faults; rollback too."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from cni_migrate.kube.client import Cluster
from cni_migrate_testbed import ControlPlane

from .apply_helpers import Events, executor_for, make_plan, replan
from .faultproxy import FaultProxy
from .support import NodeSandbox, load_example, object_set, seed_flannel_like

ROOT = Path(__file__).resolve().parents[3]
RBAC = ROOT / "deploy" / "rbac" / "cni-migrate-executor.yaml"
SEED = int(os.environ.get("CNI_MIGRATE_FAULT_SEED", "4242"))


def _as_executor(cp: ControlPlane) -> Path:
    cp.kubectl("apply", "-f", str(RBAC))
    cp.kubectl("create", "namespace", "cni-migrate-system")
    cp.kubectl("create", "serviceaccount", "-n", "cni-migrate-system", "executor")
    cp.kubectl(
        "create",
        "clusterrolebinding",
        "cni-migrate-executor",
        "--clusterrole=cni-migrate-executor",
        "--serviceaccount=cni-migrate-system:executor",
    )
    cp.kubectl(
        "create",
        "rolebinding",
        "-n",
        "kube-system",
        "cni-migrate-executor-helm",
        "--role=cni-migrate-executor-helm",
        "--serviceaccount=cni-migrate-system:executor",
    )
    return cp.kubeconfig_for_service_account("cni-migrate-system", "executor")


def _via(kubeconfig: Path, server: str, path: Path) -> Path:
    cfg = yaml.safe_load(kubeconfig.read_text())
    for c in cfg["clusters"]:
        c["cluster"]["server"] = server
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path


def test_rolling_plan_under_least_privilege_through_api_faults(
    fresh_control_plane: ControlPlane, tmp_path: Path
) -> None:
    cp = fresh_control_plane
    out = tmp_path / "plan"
    plan = make_plan("flannel-graceful", out, strategy="rolling")
    admin = load_example(cp, "flannel-graceful", plan)
    plan = replan(admin, out, strategy="rolling")
    sa_kubeconfig = _as_executor(cp)
    before = object_set(admin.rest())
    # the SA must not read Secrets outside the helm release namespace
    assert (
        cp.kubectl(
            "auth",
            "can-i",
            "get",
            "secrets",
            "-n",
            "default",
            "--as=system:serviceaccount:cni-migrate-system:executor",
            check=False,
        ).stdout.strip()
        == "no"
    )
    proxy = FaultProxy(cp.server, cp.pki.ca_cert, cp.pki.serving_cert, cp.pki.serving_key, seed=SEED, rate=0.12).start()
    nodes = sorted({n for s in plan.steps() for n in s.nodes})
    sandbox = NodeSandbox(tmp_path / "nodes", nodes)
    for i, n in enumerate(nodes):
        seed_flannel_like(sandbox, n, f"10.243.{i}.0/24", i)
    try:
        faulty = Cluster.connect(str(_via(sa_kubeconfig, proxy.url, tmp_path / "faulty.kubeconfig")))
        print(f"fault seed {SEED}")
        events = Events()
        ex = executor_for(cp, out, sandbox, events, faulty)
        ex.tools.kubeconfig = str(sa_kubeconfig)  # kubectl and helm as the same ServiceAccount, without faults
        summary = ex.apply()
        assert summary.state == "succeeded", summary.message
        writes = [f for f in proxy.log if f[0] != "GET"]
        assert len(proxy.log) >= 20 and {f for _, _, f in writes} & {"reset-after", "reset-before", "500"}, proxy.log
        rest = admin.rest()
        assert rest.get("apps/v1", "DaemonSet", "kube-flannel-ds", "kube-flannel") is None
        assert rest.get("apps/v1", "DaemonSet", "cilium", "kube-system") is not None
        for n in nodes:
            node = rest.get("v1", "Node", n)
            assert node is not None and not node["spec"].get("unschedulable")
        rb = executor_for(cp, out, sandbox, Events(), faulty)
        rb.tools.kubeconfig = str(sa_kubeconfig)
        assert rb.rollback().state == "rolled-back"
        assert object_set(rest) == before
        print(f"faults injected: {len(proxy.log)} ({len(writes)} on writes)")
    finally:
        proxy.stop()
        sandbox.close()
