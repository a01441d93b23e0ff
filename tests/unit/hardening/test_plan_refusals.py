"""Issue 16 item 4: facts and options that make a plan unsafe are refused (exit 2), each naming the fact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hardening_helpers import copy_example, error_output, mutate, no_traceback, plan_args, run

from cni_migrate.facts import facts_from_snapshot

LOSSY_W1 = "k8s-calico-worker-10-31-90-4.tinychen.io"


def _refused(args: list[str], *needles: str) -> None:
    r = run(*args)
    no_traceback(r)
    assert r.exit_code == 2, r.output
    text = error_output(r)
    for n in needles:
        assert n in text, text


def test_two_nodes_with_the_same_podcidr(tmp_path: Path) -> None:
    snap = copy_example("calico-bgp-lossy", tmp_path)

    def same(obj: dict[str, Any]) -> None:
        obj["spec"]["podCIDR"] = "10.33.0.0/24"
        obj["spec"]["podCIDRs"] = ["10.33.0.0/24"]

    mutate(snap, "nodes.yaml", "Node", LOSSY_W1, same)
    _refused(plan_args(snap), "--ipam kubernetes", "overlaps", f"nodes[{LOSSY_W1}].pod_cidrs")


def test_dual_stack_is_refused(tmp_path: Path) -> None:
    snap = copy_example("calico-bgp-lossy", tmp_path)

    def dual(obj: dict[str, Any]) -> None:
        obj["spec"]["podCIDRs"] = [obj["spec"]["podCIDR"], "fd00:33::/64"]

    mutate(snap, "nodes.yaml", "Node", LOSSY_W1, dual)
    _refused(plan_args(snap), "IPv4-only", "fd00:33::/64")


def test_cidr_option_of_the_wrong_family(tmp_path: Path) -> None:
    snap = copy_example("flannel-graceful", tmp_path)
    _refused(plan_args(snap, "--cluster-pool-cidr", "fd00:99::/48", strategy="rolling"), "--cluster-pool-cidr", "IPv6")


def test_api_port_out_of_range(tmp_path: Path) -> None:
    snap = copy_example("flannel-graceful", tmp_path)
    _refused(plan_args(snap, "--k8s-service-port", "70000"), "--k8s-service-port 70000")


def test_bgp_peer_that_is_a_node(tmp_path: Path) -> None:
    snap = copy_example("calico-bgp-lossy", tmp_path)

    def peer(obj: dict[str, Any]) -> None:
        obj["spec"]["peerIP"] = "10.31.90.4"

    mutate(snap, "calico.yaml", "BGPPeer", "tor-10-31-100-100", peer)
    _refused(plan_args(snap), "tor-10-31-100-100", "10.31.90.4", LOSSY_W1)


def test_ready_nodes_without_a_cni_daemonset_are_cni_unknown(tmp_path: Path) -> None:
    snap = copy_example("flannel-graceful", tmp_path)
    path = snap / "daemonsets.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["items"] = [d for d in doc["items"] if "flannel" not in d["metadata"]["name"]]
    path.write_text(yaml.safe_dump(doc))
    facts = facts_from_snapshot(str(snap))
    assert facts.cni.detected == "unknown"
    assert any("Ready" in e for e in facts.cni.evidence)
    _refused(plan_args(snap), "cni.detected=unknown", "Ready")
