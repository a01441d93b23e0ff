"""The plan's rendered manifests on the real test control plane, and its runbook commands against real kubectl/helm.

* Every manifest (rendered artifacts and inline objects such as the probe pods) is applied with a server-side
  dry run. Objects of built-in kinds are validated by the API server itself; Cilium and Calico custom resources
  by the published CRD schemas vendored in tests/data/crds (installed here); PodCIDRPools by the project's CRD.
* Every patch the plan makes is applied client-side (``kubectl patch --local``) to a representative object.
* Every kubectl and helm command of the runbook uses only subcommands and flags the real binaries know.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from cni_migrate.analysis.plan import Plan, PlanOptions, build_plan, render_runbook
from cni_migrate.analysis.plan.model import ApplyObjects, PatchObject
from cni_migrate.analysis.plan.runbook import commands_in
from cni_migrate.facts import ClusterFacts, facts_from_snapshot
from cni_migrate_testbed import ControlPlane
from cni_migrate_testbed.binaries import find_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CRDS = [
    *sorted((ROOT / "tests" / "data" / "crds").glob("*.yaml")),
    ROOT / "deploy" / "crds" / "ipam.cni-migrate.io_podcidrpools.yaml",
]
SEED = "c2VlZC1zZWVkLXNl"


def facts(name: str) -> ClusterFacts:
    return facts_from_snapshot(str(ROOT / "examples" / name))


def multipool_without_edge() -> ClusterFacts:
    """The multi-pool example without the node whose pool selector has no label-selector form."""
    f = facts("calico-operator-multipool")
    return f.model_copy(update={"nodes": [n for n in f.nodes if n.name != "edge-1"]})


VARIANTS: list[tuple[str, Any, str, str, dict[str, Any]]] = [
    (
        "lossy-kube-router",
        lambda: facts("calico-bgp-lossy"),
        "offline",
        "1.16.5",
        {"bgp": "kube-router", "maglev": True},
    ),
    ("lossy-cilium-bgp-v2alpha1", lambda: facts("calico-bgp-lossy"), "offline", "1.16.5", {}),
    ("lossy-cilium-bgp-v2", lambda: facts("calico-bgp-lossy"), "offline", "1.18.2", {}),
    ("lossy-rolling-kpr", lambda: facts("calico-bgp-lossy"), "rolling", "1.17.3", {"kube_proxy_replacement": "true"}),
    (
        "flannel-rolling-v2alpha1",
        lambda: facts("flannel-graceful"),
        "rolling",
        "1.15.7",
        {"kube_proxy_replacement": "true"},
    ),
    ("flannel-rolling", lambda: facts("flannel-graceful"), "rolling", "1.16.5", {}),
    ("multipool-rolling", lambda: facts("calico-operator-multipool"), "rolling", "1.16.5", {}),
    ("multipool-podcidrpools", multipool_without_edge, "offline", "1.16.5", {"ipam": "podcidrpools"}),
]


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    out = {}
    for name, get_facts, strategy, version, extra in VARIANTS:
        opts = PlanOptions(
            cilium_version=version, strategy=strategy, maglev_seed=SEED if extra.get("maglev") else None, **extra
        )
        out[name] = build_plan(get_facts(), opts, tool_version="test")
    return out


@pytest.fixture(scope="module")
def crds(control_plane: ControlPlane) -> ControlPlane:
    for crd in CRDS:
        control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    for crd in CRDS:
        name = yaml.safe_load(crd.read_text())["metadata"]["name"]
        control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
    return control_plane


def _relocate(objs: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Objects of the plan's own namespace (created earlier in the plan, not in this dry run) go to the test's
    namespace; kube-system exists on the test control plane as on a real one."""
    out = []
    for original in objs:
        o = json.loads(json.dumps(original))
        if o["kind"] == "Namespace":
            o["metadata"]["name"] = namespace
        elif o["metadata"].get("namespace") not in (None, "kube-system"):
            o["metadata"]["namespace"] = namespace
        out.append(o)
    return out


def dry_run(cp: ControlPlane, objs: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    argv = [
        str(find_binary("kubectl", cp.cache)),
        f"--kubeconfig={cp.admin_kubeconfig}",
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=cni-migrate",
        "-f",
        "-",
    ]
    text = "".join("---\n" + yaml.safe_dump(o, sort_keys=False) for o in objs)
    return subprocess.run(argv, input=text, capture_output=True, text=True, check=False)


def test_every_manifest_passes_a_server_side_dry_run(
    crds: ControlPlane, plans: dict[str, Plan], test_namespace: str
) -> None:
    checked: dict[str, int] = {}
    for name, plan in plans.items():
        batches: list[tuple[str, list[dict[str, Any]]]] = [
            (a.path, [d for d in yaml.safe_load_all(a.content) if d]) for a in plan.artifacts if a.kind == "manifest"
        ]
        inline = [
            o
            for s in plan.steps()
            for a in s.actions
            if isinstance(a, ApplyObjects) and not a.artifact
            for o in a.objects
        ]
        if inline:
            batches.append(("inline objects", inline))
        for label, objs in batches:
            r = dry_run(crds, _relocate(objs, test_namespace))
            assert r.returncode == 0, f"{name} {label}: {r.stderr}"
            for o in objs:
                checked[o["kind"]] = checked.get(o["kind"], 0) + 1
    # the kinds the plans render, each validated at least once
    for kind in (
        "DaemonSet",
        "ClusterRole",
        "ServiceAccount",
        "Deployment",
        "Service",
        "Pod",
        "CiliumNodeConfig",
        "CiliumBGPClusterConfig",
        "CiliumBGPPeerConfig",
        "CiliumBGPAdvertisement",
        "GlobalNetworkPolicy",
        "PodCIDRPool",
    ):
        assert checked.get(kind), f"no {kind} was dry-run"


def test_schema_violations_are_caught(crds: ControlPlane, plans: dict[str, Plan]) -> None:
    """The vendored schemas do reject bad objects (so a passing dry run means something)."""
    adv = next(
        d
        for a in plans["lossy-cilium-bgp-v2"].artifacts
        if a.path == "manifests/cilium-bgp.yaml"
        for d in yaml.safe_load_all(a.content)
        if d and d["kind"] == "CiliumBGPAdvertisement"
    )
    bad = json.loads(json.dumps(adv))
    bad["spec"]["advertisements"][0]["selector"] = {"matchLabels": {"a": "b"}}  # not allowed for PodCIDR
    r = dry_run(crds, [bad])
    assert r.returncode != 0 and "selector field is not allowed" in r.stderr
    cnc = next(
        d
        for a in plans["flannel-rolling"].artifacts
        if a.path == "manifests/ciliumnodeconfig-cilium-default.yaml"
        for d in yaml.safe_load_all(a.content)
        if d
    )
    bad = json.loads(json.dumps(cnc))
    del bad["spec"]["nodeSelector"]
    r = dry_run(crds, [bad])
    assert r.returncode != 0 and "nodeSelector" in r.stderr


FIXTURES: dict[str, dict[str, Any]] = {
    "DaemonSet": {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "x", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "x"}},
            "template": {
                "metadata": {"labels": {"k8s-app": "x"}},
                "spec": {"containers": [{"name": "calico-node", "image": "i", "env": [{"name": "A", "value": "1"}]}]},
            },
        },
    },
    "Installation": {
        "apiVersion": "operator.tigera.io/v1",
        "kind": "Installation",
        "metadata": {"name": "default"},
        "spec": {"calicoNetwork": {"nodeAddressAutodetectionV4": {"firstFound": True}}},
    },
}


def test_every_patch_applies(crds: ControlPlane, plans: dict[str, Plan], tmp_path: Path) -> None:
    seen = 0
    for name, plan in plans.items():
        for s in plan.steps():
            for a in s.actions:
                if not isinstance(a, PatchObject):
                    continue
                fixture = tmp_path / f"{a.target.kind}.yaml"
                fixture.write_text(yaml.safe_dump(FIXTURES[a.target.kind]))
                r = crds.kubectl(
                    "patch",
                    "--local",
                    "-f",
                    str(fixture),
                    "--type",
                    a.patch_type,
                    "-p",
                    json.dumps(a.patch),
                    "-o",
                    "json",
                    check=False,
                )
                assert r.returncode == 0, f"{name} {s.id}: {r.stderr}"
                patched = json.loads(r.stdout)
                if a.target.kind == "Installation":
                    assert patched["spec"]["calicoNetwork"]["nodeAddressAutodetectionV4"] == {
                        "firstFound": False,
                        "kubernetes": "NodeInternalIP",
                    }
                seen += 1
    assert seen >= 3  # calico-node env, the Installation, kube-proxy's affinity


# --- runbook commands ------------------------------------------------------------------------------------------

_FLAG = re.compile(r"(?:^|\s)(?:-(\w), )?--([a-z0-9][a-z0-9-]*)")


@cache
def known_flags(program: str, *sub: str) -> frozenset[str]:
    binary = str(find_binary(program))
    out = subprocess.run([binary, *sub, "--help"], capture_output=True, text=True, check=True).stdout
    if program == "kubectl":
        out += subprocess.run([binary, "options"], capture_output=True, text=True, check=True).stdout
    flags = set()
    for short, long in _FLAG.findall(out):
        flags.add("--" + long)
        if short:
            flags.add("-" + short)
    return frozenset(flags)


def _subcommand(argv: list[str]) -> tuple[str, ...]:
    words = [w for w in argv[1:] if not w.startswith("-")]
    first = words[0]
    if argv[0] == "kubectl" and first == "rollout":
        return ("rollout", words[1])
    if argv[0] == "helm" and first == "repo":
        return ("repo", words[1])
    return (first,)


PINNING = ("--context", "--kube-context", "--kubeconfig")


def _unpinned(argv: list[str]) -> list[str]:
    """argv without the cluster pinning the runbook adds (`--context "${KUBE_CONTEXT:?...}"`): the flags are
    checked, their values are no subcommand, and the test control plane has no such context."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in PINNING:
            skip = True
            continue
        if a.split("=", 1)[0] in PINNING:
            continue
        out.append(a)
    return out


def test_runbook_commands_use_real_flags(plans: dict[str, Plan]) -> None:
    checked = 0
    for name, plan in plans.items():
        for pinned in commands_in(render_runbook(plan)):
            assert any(a.split("=", 1)[0] in PINNING for a in pinned), f"{name}: {' '.join(pinned)} is not pinned"
            argv = _unpinned(pinned)
            sub = _subcommand([a for i, a in enumerate(argv) if not (i and argv[i - 1] in ("-n", "--namespace"))])
            flags = known_flags(argv[0], *sub)
            for word in argv[1:]:
                if word == "--":  # what follows runs inside the pod
                    break
                if word.startswith("-") and word != "-":
                    flag = word.split("=", 1)[0]
                    assert flag in flags, f"{name}: {' '.join(argv)}: {flag} is not a flag of {argv[0]} {' '.join(sub)}"
            checked += 1
    assert checked > 100


def test_kubectl_commands_parse_client_side(crds: ControlPlane, plans: dict[str, Plan]) -> None:
    """Commands that accept --dry-run=client are run with it: kubectl parses every argument for real."""
    plan = plans["flannel-rolling"]
    runnable = 0
    for argv in map(_unpinned, commands_in(render_runbook(plan))):
        if argv[0] != "kubectl" or _subcommand(argv)[0] not in ("cordon", "uncordon", "drain", "label", "annotate"):
            continue
        r = crds.kubectl(*argv[1:], "--dry-run=client", check=False)
        # the nodes do not exist on the test control plane: anything but a usage error is a parse success
        assert "unknown flag" not in r.stderr and "Usage:" not in r.stderr, r.stderr
        runnable += 1
    assert runnable >= 4
