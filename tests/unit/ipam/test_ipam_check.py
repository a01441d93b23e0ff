"""``ipam check``: every problem type, and a clean cluster with none."""

from __future__ import annotations

from typing import Any

from cni_migrate.analysis.ipam.allocation import ANNOTATION_IPV4, NodeInfo
from cni_migrate.analysis.ipam.check import PROBLEM_IDS, check_ipam
from cni_migrate.analysis.ipam.pools import API_VERSION, make_pool, parse_pool, parse_pools
from cni_migrate.analysis.problems import Problem

R1 = {"matchLabels": {"rack": "r1"}}


def ids(problems: list[Problem]) -> list[str]:
    return sorted(p.id for p in problems)


def by_id(problems: list[Problem], pid: str) -> list[Problem]:
    return [p for p in problems if p.id == pid]


def test_clean() -> None:
    pools = [make_pool("r1", ["10.1.0.0/16"], node_selector=R1, priority=1), make_pool("default", ["10.9.0.0/16"])]
    nodes = [
        NodeInfo("a", {"rack": "r1"}, spec_cidrs=("10.1.0.0/24",)),
        NodeInfo("b", {}, annotations={ANNOTATION_IPV4: "10.9.0.0/24"}),
    ]
    assert check_ipam(pools, nodes) == []


def test_every_id_is_documented() -> None:
    assert all(PROBLEM_IDS[k] for k in PROBLEM_IDS)


def test_node_cidr_problems() -> None:
    pools = [make_pool("r1", ["10.1.0.0/16"], node_selector=R1)]
    nodes = [
        NodeInfo("dup-a", {"rack": "r1"}, spec_cidrs=("10.1.0.0/24",)),
        NodeInfo("dup-b", {"rack": "r1"}, spec_cidrs=("10.1.0.0/24",)),
        NodeInfo("wide", {"rack": "r1"}, spec_cidrs=("10.1.4.0/23",)),
        NodeInfo("inner", {"rack": "r1"}, spec_cidrs=("10.1.5.0/24",)),
        NodeInfo("foreign", {"rack": "r1"}, spec_cidrs=("10.244.0.0/24",)),
        NodeInfo("bad", {"rack": "r1"}, annotations={ANNOTATION_IPV4: "nope"}),
        NodeInfo("mixed", {"rack": "r1"}, spec_cidrs=("10.1.9.0/24",), annotations={ANNOTATION_IPV4: "10.1.10.0/24"}),
        NodeInfo("moved", {"rack": "r2"}, spec_cidrs=("10.1.20.0/24",)),
    ]
    problems = check_ipam(pools, nodes)
    found = set(ids(problems))
    assert {
        "duplicate-node-cidr",
        "overlapping-node-cidrs",
        "misaligned-node-cidr",
        "cidr-outside-pools",
        "invalid-node-cidr",
        "inconsistent-node-cidr",
        "labels-no-longer-match",
        "nodes-without-cidr",
    } <= found
    (dup,) = by_id(problems, "duplicate-node-cidr")
    assert dup.severity == "error" and set(dup.subjects) == {"dup-a", "dup-b"}
    (moved,) = by_id(problems, "labels-no-longer-match")
    assert moved.subjects == ["moved", "r1"] and moved.severity == "warning"
    (without,) = by_id(problems, "nodes-without-cidr")
    assert without.subjects == ["bad"]  # 'bad' has only an invalid annotation


def test_nodes_that_cannot_get_a_block() -> None:
    pools = [make_pool("tiny", ["10.1.0.0/23"], node_selector=R1)]
    nodes = [NodeInfo(f"r1-{i}", {"rack": "r1"}) for i in range(3)] + [NodeInfo("lost", {"rack": "r9"})]
    problems = check_ipam(pools, nodes)
    (unmatched,) = by_id(problems, "no-pool-for-node")
    assert unmatched.subjects == ["lost"] and unmatched.severity == "error"
    (full,) = by_id(problems, "pool-exhausted")
    assert full.severity == "error" and full.subjects == ["tiny", "r1-2"]
    assert "too few free blocks; 1 node(s) without a CIDR cannot get one: r1-2" in full.message
    (without,) = by_id(problems, "nodes-without-cidr")
    assert len(without.subjects) == 4


def test_full_pool_without_waiting_nodes_is_a_warning() -> None:
    pools = [make_pool("tiny", ["10.1.0.0/23"])]
    nodes = [NodeInfo("a", spec_cidrs=("10.1.0.0/24",)), NodeInfo("b", spec_cidrs=("10.1.1.0/24",))]
    (full,) = check_ipam(pools, nodes)
    assert (full.id, full.severity) == ("pool-exhausted", "warning")
    assert "has no free ipv4 block" in full.message


def test_conflicting_selectors() -> None:
    pools = [
        make_pool("b-gpu", ["10.2.0.0/16"], node_selector={"matchLabels": {"gpu": "true"}}),
        make_pool("a-rack", ["10.1.0.0/16"], node_selector=R1),
        make_pool("z-vip", ["10.3.0.0/16"], node_selector=R1, priority=5),  # different priority: no conflict
        make_pool("off", ["10.4.0.0/16"], node_selector=R1, disabled=True),  # disabled: no conflict
    ]
    nodes = [NodeInfo("g1", {"rack": "r1", "gpu": "true"}, spec_cidrs=("10.3.0.0/24",)), NodeInfo("x", {"rack": "r1"})]
    problems = check_ipam(pools, nodes)
    (conflict,) = by_id(problems, "conflicting-selectors")
    assert conflict.subjects == ["a-rack", "b-gpu"]
    assert "a-rack wins by name" in conflict.message and "(g1)" in conflict.message


def test_overlapping_and_invalid_pools() -> None:
    bad = {"apiVersion": API_VERSION, "kind": "PodCIDRPool", "metadata": {"name": "bad"}, "spec": {"cidrs": ["x"]}}
    good, errors = parse_pools(
        [
            bad,
            {
                "apiVersion": API_VERSION,
                "kind": "PodCIDRPool",
                "metadata": {"name": "a"},
                "spec": {"cidrs": ["10.0.0.0/16"]},
            },
            {
                "apiVersion": API_VERSION,
                "kind": "PodCIDRPool",
                "metadata": {"name": "b"},
                "spec": {"cidrs": ["10.0.128.0/17"]},
            },
        ]
    )
    problems = check_ipam(good, [], pool_errors=errors)
    assert ids(problems) == ["invalid-pool", "overlapping-pools"]
    assert by_id(problems, "invalid-pool")[0].subjects == ["bad"]
    assert (
        by_id(problems, "overlapping-pools")[0].message
        == "PodCIDRPool a 10.0.0.0/16 overlaps PodCIDRPool b 10.0.128.0/17"
    )


def test_stale_status_and_terminating_nodes() -> None:
    obj: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "PodCIDRPool",
        "metadata": {"name": "p"},
        "spec": {"cidrs": ["10.0.0.0/16"]},
        "status": {"ipv4": {"capacity": 256, "allocated": 5, "free": 251}},
    }
    pool = parse_pool(obj)
    nodes = [NodeInfo("going", spec_cidrs=("10.0.0.0/24",), deleting=True), NodeInfo("new")]
    problems = check_ipam([pool], nodes)
    (stale,) = by_id(problems, "stale-pool-status")
    assert "status says 5 ipv4 block(s) allocated but nodes hold 1" in stale.message
    (term,) = by_id(problems, "terminating-node-holds-cidr")
    assert term.severity == "info" and term.subjects == ["going"]
    # the plan's hypothetical block for 'new' must not hide the leak
    assert "nodes hold 1" in stale.message
