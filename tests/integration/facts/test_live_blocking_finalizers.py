"""On a real API server: discover finds old-CNI finalizers on ServiceAccounts and ClusterRoles (one already stuck
deleting), live and from the snapshot captured from it; other finalizers are not listed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cni_migrate_testbed.controlplane import ControlPlane

pytestmark = pytest.mark.integration


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cni_migrate", *args], capture_output=True, text=True, check=False, timeout=300
    )


def _blocking(proc: subprocess.CompletedProcess[str], prefix: str) -> list[dict[str, Any]]:
    assert proc.returncode in (0, 1), proc.stderr
    bf = json.loads(proc.stdout)["facts"]["cni"]["blocking_finalizers"]
    assert bf["unknown"] is None, bf
    return [f for f in bf["value"] if f["name"].startswith(prefix) or (f["namespace"] or "").startswith(prefix)]


@pytest.fixture
def finalized(control_plane: ControlPlane, test_namespace: str, tmp_path: Path) -> Iterator[str]:
    prefix = test_namespace
    objs = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "calico-node", "namespace": prefix, "finalizers": ["tigera.io/cni-protector"]},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "other", "namespace": prefix, "finalizers": ["example.com/keep"]},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"{prefix}-calico-node", "finalizers": ["tigera.io/cni-protector"]},
            "rules": [],
        },
    ]
    f = tmp_path / "objs.yaml"
    f.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objs}))
    control_plane.kubectl("apply", "-f", str(f))
    control_plane.kubectl("delete", "clusterrole", f"{prefix}-calico-node", "--wait=false")  # stuck deleting
    try:
        yield prefix
    finally:
        unset = ["--type=merge", "-p", '{"metadata":{"finalizers":null}}']
        control_plane.kubectl("patch", "clusterrole", f"{prefix}-calico-node", *unset, check=False)
        for sa in ("calico-node", "other"):
            control_plane.kubectl("-n", prefix, "patch", "serviceaccount", sa, *unset, check=False)


def test_live_and_captured_blocking_finalizers(control_plane: ControlPlane, finalized: str, tmp_path: Path) -> None:
    kc = str(control_plane.admin_kubeconfig)
    live = _blocking(_run("--kubeconfig", kc, "-o", "json", "discover"), finalized)
    assert live == [
        {
            "namespace": None,
            "kind": "ClusterRole",
            "api_version": "rbac.authorization.k8s.io/v1",
            "name": f"{finalized}-calico-node",
            "finalizers": ["tigera.io/cni-protector"],
            "deleting": True,
        },
        {
            "namespace": finalized,
            "kind": "ServiceAccount",
            "api_version": "v1",
            "name": "calico-node",
            "finalizers": ["tigera.io/cni-protector"],
            "deleting": False,
        },
    ]
    snap = tmp_path / "snap"
    captured = _run("--kubeconfig", kc, "-q", "snapshot", "--out-dir", str(snap))
    assert captured.returncode == 0, captured.stderr
    assert _blocking(_run("discover", "--snapshot", str(snap), "-o", "json"), finalized) == live
