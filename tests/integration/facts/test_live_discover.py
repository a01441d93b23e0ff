"""On a real API server holding the objects of example (c), discover on the live cluster equals discover on the
snapshot that ``cni-migrate snapshot`` captured from it, and both show the example's facts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from cni_migrate.facts import load_snapshot
from cni_migrate.facts.objects import CRD, NAMESPACE, NODE, POD, SECRET, Obj
from cni_migrate_testbed.controlplane import ControlPlane

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "calico-operator-multipool"


def _clean(obj: Obj) -> Obj:
    out = {k: v for k, v in obj.items() if k != "status"}
    md = dict(out.get("metadata") or {})
    for k in ("uid", "resourceVersion", "creationTimestamp", "ownerReferences", "finalizers"):
        md.pop(k, None)
    out["metadata"] = md
    return out


def _apply(cp: ControlPlane, objs: list[Obj], tmp: Path, name: str) -> None:
    f = tmp / f"{name}.yaml"
    f.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objs}))
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(f))


@pytest.fixture(scope="module")
def example_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A dedicated control plane (its whole content is compared), loaded with example (c)."""
    tmp = tmp_path_factory.mktemp("example-c")
    store = load_snapshot(EXAMPLE)
    with ControlPlane().start(allocate_node_cidrs=False) as cp:
        for n in store.of(NODE):
            md, spec, status = n["metadata"], n.get("spec") or {}, n["status"]
            info = status["nodeInfo"]
            cp.create_fake_node(
                md["name"],
                labels={k: v for k, v in md["labels"].items() if not k.startswith(("kubernetes.io/", "beta."))},
                annotations={k: v for k, v in md.get("annotations", {}).items() if k.startswith("projectcalico.org/")},
                taints=spec.get("taints", []),
                kernel_version=info["kernelVersion"],
                os_image=info["osImage"],
                container_runtime_version=info["containerRuntimeVersion"],
                kubelet_version=info["kubeletVersion"],
                internal_ip=status["addresses"][0]["address"],
            )
        namespaces = [
            _clean(o)
            for o in store.of(NAMESPACE)
            if o["metadata"]["name"] not in ("default", "kube-system", "kube-public", "kube-node-lease")
        ]
        _apply(cp, namespaces, tmp, "namespaces")
        _apply(cp, [_clean(o) for o in store.of(CRD)], tmp, "crds")
        cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        rest: list[Obj] = []
        for ref, _ in store.kinds():
            if ref in (NODE, NAMESPACE, CRD, SECRET):
                continue
            for o in store.of(ref):
                c = _clean(o)
                if ref == POD:  # static pods and CNI agents as the example lists them; kwok runs them
                    c["spec"].pop("priorityClassName", None)
                rest.append(c)
        _apply(cp, rest, tmp, "objects")
        # A Helm release Secret with a payload: only its name may ever be captured.
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "helm.sh/release.v1",
            "metadata": {
                "name": "sh.helm.release.v1.cilium.v1",
                "namespace": "kube-system",
                "labels": {"owner": "helm", "name": "cilium"},
            },
            "stringData": {"release": "do-not-capture-me"},
        }
        _apply(cp, [secret], tmp, "secret")
        yield cp


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cni_migrate", *args], capture_output=True, text=True, check=False, timeout=300
    )


def _facts(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode in (0, 1), proc.stderr
    facts: dict[str, Any] = json.loads(proc.stdout)["facts"]
    facts.pop("source")
    return facts


def test_live_discover_equals_captured_snapshot(example_cluster: ControlPlane, tmp_path: Path) -> None:
    kc = str(example_cluster.admin_kubeconfig)
    # Controllers (deployments, disruption budgets) settle asynchronously: compare until two reads agree.
    for attempt in range(8):
        snap = tmp_path / f"snap-{attempt}"
        captured = _run("--kubeconfig", kc, "-q", "snapshot", "--out-dir", str(snap))
        assert captured.returncode == 0, captured.stderr
        live = _facts(_run("--kubeconfig", kc, "-o", "json", "discover"))
        offline = _facts(_run("--snapshot", str(snap), "-o", "json", "discover"))
        if live == offline:
            break
        time.sleep(3)
    assert live == offline

    # The live path sees the example's facts, not an empty cluster.
    calico = live["cni"]["calico"]
    assert live["cni"]["detected"] == "calico"
    assert calico["install_method"] == "operator"
    assert {p["name"] for p in calico["ip_pools"]["value"]} == {
        "rack1-pool",
        "rack2-pool",
        "gpu-pool",
        "edge-pool",
        "legacy-pool",
    }
    assert [(r["node"], r["cluster_id"]) for r in calico["route_reflectors"]] == [
        ("cp-1", "244.0.0.1"),
        ("cp-3", "244.0.0.1"),
    ]
    assert calico["bgp"]["value"]["as_number"] == 64512
    assert live["istio"]["present"]["value"] is True
    assert live["kube_proxy"]["mode"]["value"] == "iptables"
    assert live["network"]["api_endpoint"]["value"] == {"host": "api.dc1.example.internal", "port": 6443}
    assert live["kubernetes_version"]["value"].startswith("v1.34")
    assert [(r["name"], r["revision"]) for r in live["cilium_helm_releases"]["value"]] == [("cilium", 1)]
    assert {n["name"] for n in live["nodes"]} >= {"cp-1", "gpu-r2-1", "edge-1"}
    assert next(n for n in live["nodes"] if n["name"] == "gpu-r2-1")["kernel_version"] == "5.4.0-150-generic"

    # Secrets: names only, never data.
    secrets = orjson.loads((snap / "secret.json").read_bytes())["items"]
    assert [s["metadata"]["name"] for s in secrets] == ["sh.helm.release.v1.cilium.v1"]
    assert "do-not-capture-me" not in "".join(p.read_text() for p in snap.iterdir())
    assert all("data" not in s for s in secrets)


def test_snapshot_refuses_non_empty_dir_and_works_with_context(example_cluster: ControlPlane, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    proc = _run("--kubeconfig", str(example_cluster.admin_kubeconfig), "snapshot", "--out-dir", str(tmp_path))
    assert proc.returncode == 2 and "not empty" in proc.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"
