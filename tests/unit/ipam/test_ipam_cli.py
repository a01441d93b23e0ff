"""``cni-migrate ipam plan|status|check|import-calico`` on snapshots: output formats and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cni_migrate.cli.main import app

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "calico-operator-multipool"
runner = CliRunner()


def run(*args: str) -> Any:
    return runner.invoke(app, ["--snapshot", str(EXAMPLE), *args])


@pytest.fixture(scope="module")
def pools_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = run("ipam", "import-calico", "-o", "yaml")
    assert r.exit_code == 1, r.output  # edge-pool's selector cannot be translated
    path = tmp_path_factory.mktemp("pools") / "pools.yaml"
    path.write_text(r.stdout)
    return path


def test_registered() -> None:
    r = runner.invoke(app, ["ipam", "--help"])
    assert r.exit_code == 0
    for cmd in ("plan", "status", "check", "import-calico"):
        assert cmd in r.stdout


class TestImportCalico:
    def test_yaml_is_appliable_and_explains_itself(self, pools_file: Path) -> None:
        text = pools_file.read_text()
        assert "# note: blockSize: each node gets one /24 (IPv4)" in text
        assert "# NOT IMPORTED: IPPool edge-pool: nodeSelector 'zone starts with \"edge-\"'" in text
        docs = [d for d in yaml.safe_load_all(text) if d]
        assert [d["metadata"]["name"] for d in docs] == ["gpu-pool", "legacy-pool", "rack1-pool", "rack2-pool"]
        assert all(d["apiVersion"] == "ipam.cni-migrate.io/v1alpha1" and d["kind"] == "PodCIDRPool" for d in docs)

    def test_json(self) -> None:
        r = run("ipam", "import-calico", "-o", "json", "--block-size", "25")
        assert r.exit_code == 1
        doc = json.loads(r.stdout)
        assert {m["spec"]["blockSize"]["ipv4"] for m in doc["manifests"]} == {25}
        assert doc["issues"][0]["pool"] == "edge-pool"

    def test_keep_calico_block_size(self) -> None:
        r = run("ipam", "import-calico", "-o", "json", "--keep-calico-block-size")
        blocks = {m["metadata"]["name"]: m["spec"]["blockSize"]["ipv4"] for m in json.loads(r.stdout)["manifests"]}
        assert blocks == {"gpu-pool": 28, "legacy-pool": 26, "rack1-pool": 26, "rack2-pool": 26}

    def test_table(self) -> None:
        r = run("ipam", "import-calico")
        assert r.exit_code == 1 and "rack1-pool" in r.stdout and "not imported" in r.stdout

    def test_bad_block_size(self) -> None:
        r = run("ipam", "import-calico", "--block-size", "8")
        assert r.exit_code == 2 and "--block-size 8" in r.output

    def test_no_calico(self) -> None:
        r = runner.invoke(app, ["--snapshot", str(EXAMPLE.parent / "flannel-graceful"), "ipam", "import-calico"])
        assert r.exit_code == 2 and "no Calico IPPools" in r.output


class TestPlan:
    def test_json(self, pools_file: Path) -> None:
        r = run("ipam", "plan", "--pools", str(pools_file), "-o", "json")
        assert r.exit_code == 1, r.output  # edge-1 gets nothing
        doc = json.loads(r.stdout)
        rows = {n["node"]: n for n in doc["nodes"]}
        assert rows["gpu-r2-1"]["outcome"] == "assigned" and rows["gpu-r2-1"]["pool"] == "gpu-pool"
        assert rows["cp-1"]["cidrs"] == ["10.60.0.0/24"]
        assert rows["edge-1"]["outcome"] == "no-pool-matches"
        assert rows["edge-1"]["disabledMatches"] == ["legacy-pool"]
        assert {p["name"] for p in doc["pools"]} == {"gpu-pool", "legacy-pool", "rack1-pool", "rack2-pool"}
        assert doc["invalidPools"] == [] and doc["existing"] == []

    def test_table(self, pools_file: Path) -> None:
        r = run("ipam", "plan", "--pools", str(pools_file))
        assert "dry run" in r.stdout and "no-pool-matches" in r.stdout and "10.61.0.0/24" in r.stdout

    def test_all_nodes_served_exits_0(self, tmp_path: Path) -> None:
        pools = tmp_path / "p.yaml"
        pools.write_text(
            "apiVersion: ipam.cni-migrate.io/v1alpha1\nkind: PodCIDRPool\nmetadata: {name: all}\n"
            "spec: {cidrs: [10.50.0.0/16, 'fd50::/48']}\n"
        )
        r = run("ipam", "plan", "--pools", str(pools), "-o", "yaml")
        assert r.exit_code == 0, r.output
        doc = yaml.safe_load(r.stdout)
        assert all(len(n["cidrs"]) == 2 for n in doc["nodes"])

    def test_no_pools_is_bad_input(self) -> None:
        r = run("ipam", "plan")
        assert r.exit_code == 2 and "no PodCIDRPool objects" in r.output

    def test_invalid_pool_is_shown_and_exits_1(self, tmp_path: Path) -> None:
        pools = tmp_path / "p.yaml"
        pools.write_text(
            "apiVersion: ipam.cni-migrate.io/v1alpha1\nkind: PodCIDRPool\nmetadata: {name: bad}\n"
            "spec: {cidrs: [10.0.0.0/33]}\n---\n"
            "apiVersion: ipam.cni-migrate.io/v1alpha1\nkind: PodCIDRPool\nmetadata: {name: ok}\n"
            "spec: {cidrs: [10.50.0.0/16]}\n"
        )
        r = run("ipam", "plan", "--pools", str(pools), "-o", "json")
        assert r.exit_code == 1
        assert json.loads(r.stdout)["invalidPools"] == [
            {"pool": "bad", "errors": ["spec.cidrs[0]: 10.0.0.0/33 is not a valid CIDR"]}
        ]
        r = run("ipam", "plan", "--pools", str(pools))
        assert "spec.cidrs[0]: 10.0.0.0/33 is not a valid CIDR" in r.stdout

    def test_pools_file_without_pools(self, tmp_path: Path) -> None:
        f = tmp_path / "x.yaml"
        f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
        r = run("ipam", "plan", "--pools", str(f))
        assert r.exit_code == 2 and "holds no PodCIDRPool objects" in r.output

    def test_missing_pools_file(self, tmp_path: Path) -> None:
        r = run("ipam", "plan", "--pools", str(tmp_path / "nope.yaml"))
        assert r.exit_code == 2 and "no such file" in r.output

    def test_pools_in_the_snapshot(self, tmp_path: Path, pools_file: Path) -> None:
        snap = tmp_path / "snap"
        snap.mkdir()
        (snap / "nodes.yaml").write_text((EXAMPLE / "nodes.yaml").read_text())
        (snap / "pools.yaml").write_text(pools_file.read_text())
        r = runner.invoke(app, ["--snapshot", str(snap), "ipam", "plan", "-o", "json"])
        assert r.exit_code == 1 and json.loads(r.stdout)["nodes"]


class TestStatusAndCheck:
    def test_status(self, pools_file: Path) -> None:
        r = run("ipam", "status", "--pools", str(pools_file), "-o", "json")
        assert r.exit_code == 0
        pools = {p["name"]: p for p in json.loads(r.stdout)["pools"]}
        assert pools["rack1-pool"]["families"]["ipv4"] == {"blockSize": 24, "capacity": 64, "allocated": 0, "free": 64}
        r = run("ipam", "status", "--pools", str(pools_file))
        assert r.exit_code == 0 and "rack1-pool" in r.stdout and "10.60.0.0/18" in r.stdout

    def test_check_finds_nodes_without_cidr(self, pools_file: Path) -> None:
        r = run("ipam", "check", "--pools", str(pools_file), "-o", "json")
        assert r.exit_code == 1
        found = {p["id"] for p in json.loads(r.stdout)["problems"]}
        assert {"nodes-without-cidr", "no-pool-for-node"} <= found
        r = run("ipam", "check", "--pools", str(pools_file))
        assert "no-pool-for-node" in r.stdout

    def test_check_clean_exits_0(self, tmp_path: Path) -> None:
        snap = tmp_path / "snap.yaml"
        snap.write_text(
            "apiVersion: v1\nkind: Node\nmetadata: {name: a}\nspec: {podCIDR: 10.50.0.0/24, podCIDRs: [10.50.0.0/24]}\n"
            "---\napiVersion: ipam.cni-migrate.io/v1alpha1\nkind: PodCIDRPool\nmetadata: {name: all}\n"
            "spec: {cidrs: [10.50.0.0/16]}\n"
        )
        r = runner.invoke(app, ["--snapshot", str(snap), "ipam", "check"])
        assert r.exit_code == 0, r.output
        assert "No IPAM problems" in r.stdout

    def test_no_nodes_is_bad_input(self, tmp_path: Path) -> None:
        snap = tmp_path / "snap.yaml"
        snap.write_text(
            "apiVersion: ipam.cni-migrate.io/v1alpha1\nkind: PodCIDRPool\nmetadata: {name: all}\nspec: {cidrs: [10.50.0.0/16]}\n"
        )
        r = runner.invoke(app, ["--snapshot", str(snap), "ipam", "status"])
        assert r.exit_code == 2 and "no Node objects" in r.output
