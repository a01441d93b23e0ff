"""The PodCIDRPool CRD (deploy/crds/) on a real API server: schema, defaults, CEL rules, status, printer columns."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cni_migrate.analysis.ipam import parse_pool
from cni_migrate_testbed import ControlPlane
from cni_migrate_testbed.binaries import find_binary

pytestmark = pytest.mark.integration

CRD = Path(__file__).resolve().parents[2] / "deploy" / "crds" / "ipam.cni-migrate.io_podcidrpools.yaml"


@pytest.fixture(scope="module")
def crd(control_plane: ControlPlane) -> ControlPlane:
    control_plane.kubectl("apply", "-f", str(CRD))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/podcidrpools.ipam.cni-migrate.io"
    )
    return control_plane


@pytest.fixture
def cleanup(crd: ControlPlane) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for n in names:
        crd.kubectl("delete", "podcidrpool", n, "--ignore-not-found", check=False)


def apply(cp: ControlPlane, name: str, spec: dict[str, Any], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    doc = {
        "apiVersion": "ipam.cni-migrate.io/v1alpha1",
        "kind": "PodCIDRPool",
        "metadata": {"name": name},
        "spec": spec,
    }
    argv = [str(find_binary("kubectl", cp.cache)), f"--kubeconfig={cp.admin_kubeconfig}", "apply", "-f", "-"]
    return subprocess.run(argv, input=yaml.safe_dump(doc), capture_output=True, text=True, check=check)


def get(cp: ControlPlane, name: str) -> dict[str, Any]:
    return json.loads(cp.kubectl("get", "podcidrpool", name, "-o", "json").stdout)  # type: ignore[no-any-return]


def test_defaults_and_round_trip(crd: ControlPlane, name_prefix: str, cleanup: list[str]) -> None:
    name = f"{name_prefix}-a"
    cleanup.append(name)
    apply(crd, name, {"cidrs": ["10.200.0.0/16", "fd00:200::/48"], "nodeSelector": {"matchLabels": {"rack": "r1"}}})
    obj = get(crd, name)
    assert obj["spec"]["blockSize"] == {"ipv4": 24, "ipv6": 80}
    assert obj["spec"]["priority"] == 0 and obj["spec"]["disabled"] is False
    pool = parse_pool(obj)  # what the API server stores, the analysis accepts
    assert pool.families == ("ipv4", "ipv6")
    out = crd.kubectl("get", "pcp", name).stdout
    for col in ("CIDRS", "BLOCK", "ALLOCATED", "FREE", "AGE"):
        assert col in out


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"cidrs": []}, "spec.cidrs"),
        ({"cidrs": ["banana"]}, "spec.cidrs[0]"),
        ({"cidrs": ["10.0.0.0/16"], "blockSize": {"ipv4": 31}}, "spec.blockSize.ipv4"),
        ({"cidrs": ["fd00::/48"], "blockSize": {"ipv6": 40}}, "spec.blockSize.ipv6"),
        ({"cidrs": ["10.0.0.0/16", "10.0.0.0/16"]}, "spec.cidrs[1]"),
        (
            {"cidrs": ["10.0.0.0/16"], "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
            "In and NotIn need values",
        ),
        (
            {"cidrs": ["10.0.0.0/16"], "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}},
            "operator",
        ),
    ],
)
def test_schema_rejects(
    crd: ControlPlane, name_prefix: str, cleanup: list[str], spec: dict[str, Any], fragment: str
) -> None:
    name = f"{name_prefix}-bad"
    cleanup.append(name)
    r = apply(crd, name, spec, check=False)
    assert r.returncode != 0, r.stdout
    assert fragment in r.stderr, r.stderr


def test_block_size_immutable_while_allocated(crd: ControlPlane, name_prefix: str, cleanup: list[str]) -> None:
    name = f"{name_prefix}-imm"
    cleanup.append(name)
    apply(crd, name, {"cidrs": ["10.201.0.0/16"]})
    # nothing allocated yet: the block size may change
    apply(crd, name, {"cidrs": ["10.201.0.0/16"], "blockSize": {"ipv4": 25}})
    status = {"status": {"ipv4": {"capacity": 512, "allocated": 3, "free": 509}, "nodes": 3}}
    crd.kubectl("patch", "podcidrpool", name, "--subresource=status", "--type=merge", "-p", json.dumps(status))
    assert get(crd, name)["status"]["ipv4"]["allocated"] == 3
    r = apply(crd, name, {"cidrs": ["10.201.0.0/16"], "blockSize": {"ipv4": 26}}, check=False)
    assert r.returncode != 0 and "cannot change while IPv4 blocks are allocated" in r.stderr
    # other fields still change freely
    apply(crd, name, {"cidrs": ["10.201.0.0/16", "10.202.0.0/16"], "blockSize": {"ipv4": 25}, "priority": 3})
