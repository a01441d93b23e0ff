"""IPAMState: occupy before allocate, no duplicates, release only on real deletion, label drift, dual-stack."""

from __future__ import annotations

import ipaddress
import random
import time
from typing import Any

import pytest

from cni_migrate.analysis.ipam.allocation import (
    ANNOTATION_IPV4,
    ANNOTATION_IPV6,
    LEGACY_ANNOTATION_IPV4,
    LEGACY_ANNOTATION_IPV6,
    AlreadyHasCIDR,
    Assignment,
    IPAMState,
    LabelsNoLongerMatch,
    NodeInfo,
    NodeTerminating,
    NoPoolMatches,
    NotRestoredError,
    PoolExhausted,
    UnknownNodeError,
)
from cni_migrate.analysis.ipam.pools import make_pool
from cni_migrate.facts.model import NodeFacts


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


R1 = {"matchLabels": {"rack": "r1"}}
R2 = {"matchLabels": {"rack": "r2"}}


def racks() -> list[Any]:
    return [
        make_pool("rack1", ["10.1.0.0/22"], node_selector=R1),
        make_pool("rack2", ["10.2.0.0/22"], node_selector=R2),
    ]


def ready(pools: list[Any], nodes: list[NodeInfo]) -> IPAMState:
    s = IPAMState(pools, nodes)
    assert s.occupy_existing() == [] or True
    return s


def assigned(result: object) -> Assignment:
    assert isinstance(result, Assignment), result
    return result


class TestNodeInfo:
    def test_from_object(self) -> None:
        n = NodeInfo.from_object(
            {
                "metadata": {
                    "name": "w1",
                    "uid": "u-1",
                    "labels": {"rack": "r1"},
                    "annotations": {ANNOTATION_IPV4: "10.1.0.0/24", "other": "x", LEGACY_ANNOTATION_IPV6: "fd::/80"},
                    "deletionTimestamp": "2026-01-01T00:00:00Z",
                },
                "spec": {"podCIDR": "10.9.0.0/24", "podCIDRs": ["10.9.0.0/24", "fd09::/64"]},
            }
        )
        assert n.name == "w1" and n.uid == "u-1" and n.labels == {"rack": "r1"} and n.deleting
        assert n.spec_cidrs == ("10.9.0.0/24", "fd09::/64")
        assert n.annotations == {ANNOTATION_IPV4: "10.1.0.0/24", LEGACY_ANNOTATION_IPV6: "fd::/80"}
        assert [w for w, _ in n.cidr_sources()] == [
            "spec.podCIDRs[0]",
            "spec.podCIDRs[1]",
            f"annotation {ANNOTATION_IPV4}",
            f"annotation {LEGACY_ANNOTATION_IPV6}",
        ]
        assert n.effective_cidrs() == {"ipv4": net("10.9.0.0/24"), "ipv6": net("fd09::/64")}

    def test_pod_cidr_fallback_and_minimal(self) -> None:
        assert NodeInfo.from_object({"metadata": {"name": "a"}, "spec": {"podCIDR": "10.0.0.0/24"}}).spec_cidrs == (
            "10.0.0.0/24",
        )
        n = NodeInfo.from_object({"metadata": {"name": "b"}})
        assert n.cidrs() == () and not n.deleting and n.labels == {}

    def test_effective_precedence_primary_over_alias(self) -> None:
        n = NodeInfo("n", annotations={LEGACY_ANNOTATION_IPV4: "10.0.1.0/24", ANNOTATION_IPV4: "10.0.2.0/24"})
        assert n.effective_cidrs() == {"ipv4": net("10.0.2.0/24")}
        assert n.cidrs() == (net("10.0.2.0/24"), net("10.0.1.0/24"))

    def test_from_facts(self) -> None:
        f = NodeFacts(
            name="x", labels={"a": "b"}, pod_cidrs=["10.0.0.0/24"], cni_annotations={ANNOTATION_IPV6: "fd::/80"}
        )
        n = NodeInfo.from_facts(f)
        assert n.cidrs() == (net("10.0.0.0/24"), net("fd::/80"))


class TestBarrier:
    def test_assign_before_occupy_existing_is_refused(self) -> None:
        s = IPAMState(racks(), [NodeInfo("a", {"rack": "r1"})])
        with pytest.raises(NotRestoredError):
            s.assign("a")
        assert not s.restored

    def test_existing_cidrs_occupied_before_allocating(self) -> None:
        nodes = [
            NodeInfo("old", {"rack": "r1"}, spec_cidrs=("10.1.0.0/24",)),
            NodeInfo("ann", {"rack": "r1"}, annotations={LEGACY_ANNOTATION_IPV4: "10.1.1.0/24"}),
            NodeInfo("new", {"rack": "r1"}),
        ]
        s = IPAMState(racks(), nodes)
        assert s.occupy_existing() == []
        assert assigned(s.assign("new")).cidrs == (net("10.1.2.0/24"),)

    def test_cidrs_of_nodes_matching_no_pool_are_occupied_too(self) -> None:
        # a node outside rack1's selector holds a rack1 block (e.g. relabelled): it must never be reissued
        nodes = [NodeInfo("stray", {"rack": "r9"}, spec_cidrs=("10.1.0.0/24",)), NodeInfo("new", {"rack": "r1"})]
        s = ready(racks(), nodes)
        assert assigned(s.assign("new")).cidrs == (net("10.1.1.0/24"),)
        r = s.assign("stray")
        assert isinstance(r, LabelsNoLongerMatch) and r.pool == "rack1" and r.selected is None

    def test_unknown_node(self) -> None:
        s = ready(racks(), [])
        with pytest.raises(UnknownNodeError):
            s.assign("ghost")


class TestReports:
    def test_foreign(self) -> None:
        s = IPAMState(racks(), [NodeInfo("kcm", {"rack": "r1"}, spec_cidrs=("10.244.3.0/24",))])
        (r,) = s.occupy_existing()
        assert (r.kind, r.node, r.cidr) == ("foreign", "kcm", "10.244.3.0/24")
        res = s.assign("kcm")
        assert isinstance(res, AlreadyHasCIDR) and res.pool is None and "foreign" in res.message

    def test_duplicate_and_overlap(self) -> None:
        nodes = [
            NodeInfo("a", spec_cidrs=("10.1.0.0/24",)),
            NodeInfo("b", annotations={ANNOTATION_IPV4: "10.1.0.0/24"}),
            NodeInfo("c", spec_cidrs=("10.1.1.0/25",)),
            NodeInfo("d", spec_cidrs=("10.1.1.0/24",)),
        ]
        s = IPAMState(racks(), nodes)
        reports = s.occupy_existing()
        kinds = sorted((r.kind, r.node, r.other_node) for r in reports)
        assert ("duplicate", "b", "a") in kinds
        assert any(k == "overlap" and {n, o} == {"c", "d"} for k, n, o in kinds)
        assert any(k == "misaligned" and n == "c" for k, n, _ in kinds)

    def test_foreign_duplicates_are_found_too(self) -> None:
        s = IPAMState([], [NodeInfo("a", spec_cidrs=("10.9.0.0/24",)), NodeInfo("b", spec_cidrs=("10.9.0.0/24",))])
        kinds = sorted(r.kind for r in s.occupy_existing())
        assert kinds == ["duplicate", "foreign", "foreign"]

    def test_invalid_and_inconsistent(self) -> None:
        n = NodeInfo(
            "a",
            spec_cidrs=("10.1.0.0/24",),
            annotations={ANNOTATION_IPV4: "10.1.1.0/24", LEGACY_ANNOTATION_IPV4: "garbage"},
        )
        s = IPAMState(racks(), [n])
        reports = s.occupy_existing()
        assert sorted(r.kind for r in reports) == ["inconsistent", "invalid"]
        inc = next(r for r in reports if r.kind == "inconsistent")
        assert "Cilium uses 10.1.0.0/24" in inc.message
        assert s.held("a") == (net("10.1.0.0/24"), net("10.1.1.0/24"))  # both occupied

    def test_misaligned_kinds(self) -> None:
        nodes = [
            NodeInfo("small", spec_cidrs=("10.1.0.64/26",)),
            NodeInfo("big", spec_cidrs=("10.1.2.0/23",)),
            NodeInfo("edge", spec_cidrs=("10.0.0.0/14",)),
        ]
        s = IPAMState([make_pool("p", ["10.1.0.0/22"])], nodes)
        reports = {r.node: r for r in s.occupy_existing() if r.kind == "misaligned"}
        assert "smaller than or not aligned" in reports["small"].message
        assert "spans more than one" in reports["big"].message
        assert "reaches outside" in reports["edge"].message
        assert s.counts("p", "ipv4").free == 0

    def test_occupy_existing_is_idempotent(self) -> None:
        s = IPAMState(racks(), [NodeInfo("a", spec_cidrs=("10.1.0.0/24",))])
        s.occupy_existing()
        s.occupy_existing()
        assert s.counts("rack1", "ipv4").allocated == 1


class TestAssign:
    def test_no_pool_matches(self) -> None:
        pools = [*racks(), make_pool("old", ["10.9.0.0/16"], disabled=True)]
        s = ready(pools, [NodeInfo("x", {"rack": "r7"})])
        r = s.assign("x")
        assert isinstance(r, NoPoolMatches) and r.disabled == ("old",)
        assert "matching but disabled: old" in r.message

    def test_exhausted_does_not_fall_through(self) -> None:
        small = make_pool("small", ["10.1.0.0/23"], priority=5)
        big = make_pool("big", ["10.2.0.0/16"])
        s = ready([small, big], [NodeInfo(f"n{i}") for i in range(3)])
        assigned(s.assign("n0"))
        assigned(s.assign("n1"))
        r = s.assign("n2")
        assert isinstance(r, PoolExhausted) and r.pool == "small" and r.families == ("ipv4",)
        assert s.counts("big", "ipv4").allocated == 0
        assert "append a CIDR" in r.message

    def test_already_has_cidr_is_never_changed(self) -> None:
        s = ready(racks(), [NodeInfo("a", {"rack": "r1"}, spec_cidrs=("10.1.3.0/24",))])
        r = s.assign("a")
        assert isinstance(r, AlreadyHasCIDR) and r.pool == "rack1" and r.cidrs == (net("10.1.3.0/24"),)
        assert s.assign("a") == r  # asking again changes nothing

    def test_assign_twice_returns_the_holding(self) -> None:
        s = ready(racks(), [NodeInfo("a", {"rack": "r1"})])
        a = assigned(s.assign("a"))
        r = s.assign("a")
        assert isinstance(r, AlreadyHasCIDR) and r.cidrs == a.cidrs
        assert s.assignment("a") == a

    def test_labels_no_longer_match(self) -> None:
        s = ready(racks(), [NodeInfo("a", {"rack": "r1"})])
        a = assigned(s.assign("a"))
        s.upsert_node(NodeInfo("a", {"rack": "r2"}, spec_cidrs=tuple(str(c) for c in a.cidrs)))
        r = s.assign("a")
        assert isinstance(r, LabelsNoLongerMatch)
        assert (r.pool, r.selected, r.cidrs) == ("rack1", "rack2", a.cidrs)
        assert "never changed" in r.message
        assert s.held("a") == a.cidrs  # nothing released, nothing new

    def test_a_new_higher_priority_pool_does_not_move_a_node(self) -> None:
        s = ready(racks(), [NodeInfo("a", {"rack": "r1"})])
        a = assigned(s.assign("a"))
        s.set_pools([*racks(), make_pool("vip", ["10.5.0.0/16"], priority=100)])
        r = s.assign("a")
        assert isinstance(r, AlreadyHasCIDR) and r.pool == "rack1" and r.cidrs == a.cidrs

    def test_terminating_node_gets_nothing(self) -> None:
        s = ready(racks(), [NodeInfo("a", {"rack": "r1"}, deleting=True)])
        r = s.assign("a")
        assert isinstance(r, NodeTerminating) and "being deleted" in r.message
        assert s.counts("rack1", "ipv4").allocated == 0

    def test_plan_is_deterministic_and_in_name_order(self) -> None:
        nodes = [NodeInfo(n, {"rack": "r1"}) for n in ("c", "a", "b")]
        p1 = IPAMState(racks(), nodes).plan()
        p2 = IPAMState(racks(), list(reversed(nodes))).plan()
        assert p1 == p2
        assert [(n, str(assigned(r).cidrs[0])) for n, r in p1] == [
            ("a", "10.1.0.0/24"),
            ("b", "10.1.1.0/24"),
            ("c", "10.1.2.0/24"),
        ]


class TestDualStack:
    def pool(self, v6: str = "fd00:1::/78") -> Any:
        return make_pool("ds", ["10.1.0.0/23", v6], ipv4=24, ipv6=80)

    def test_one_block_per_family(self) -> None:
        s = ready([self.pool()], [NodeInfo("a")])
        a = assigned(s.assign("a"))
        assert a.ipv4 == net("10.1.0.0/24") and a.ipv6 == net("fd00:1::/80")
        assert a.spec_patch() == {"spec": {"podCIDR": "10.1.0.0/24", "podCIDRs": ["10.1.0.0/24", "fd00:1::/80"]}}
        assert a.patch("annotation") == {
            "metadata": {
                "annotations": {
                    ANNOTATION_IPV4: "10.1.0.0/24",
                    LEGACY_ANNOTATION_IPV4: "10.1.0.0/24",
                    ANNOTATION_IPV6: "fd00:1::/80",
                    LEGACY_ANNOTATION_IPV6: "fd00:1::/80",
                }
            }
        }
        assert a.patch("annotation", legacy=False) == {
            "metadata": {"annotations": {ANNOTATION_IPV4: "10.1.0.0/24", ANNOTATION_IPV6: "fd00:1::/80"}}
        }
        assert a.patch("spec") == a.spec_patch()

    def test_ipv6_only(self) -> None:
        s = ready([make_pool("v6", ["fd00::/48"], ipv6=64)], [NodeInfo("a")])
        a = assigned(s.assign("a"))
        assert a.ipv4 is None and a.cidrs == (net("fd00::/64"),)
        assert a.spec_patch()["spec"]["podCIDR"] == "fd00::/64"

    def test_one_family_full_means_nothing_is_taken(self) -> None:
        pool = make_pool("ds", ["10.1.0.0/22", "fd00:1::/79"], ipv4=24, ipv6=80)  # 4 v4 blocks, 2 v6
        s = ready([pool], [NodeInfo("a"), NodeInfo("b"), NodeInfo("c")])
        assigned(s.assign("a"))
        assigned(s.assign("b"))
        r = s.assign("c")
        assert isinstance(r, PoolExhausted) and r.families == ("ipv6",)
        assert s.counts("ds", "ipv4").allocated == 2  # no half allocation

    def test_node_with_one_family_is_not_extended(self) -> None:
        s = ready([self.pool()], [NodeInfo("a", spec_cidrs=("10.1.1.0/24",))])
        r = s.assign("a")
        assert isinstance(r, AlreadyHasCIDR) and r.missing_families == ("ipv6",)
        assert "no ipv6 block will be added" in r.message


class TestRelease:
    def test_release_only_frees_what_the_node_held(self) -> None:
        s = ready(racks(), [NodeInfo("a", {"rack": "r1"}), NodeInfo("b", {"rack": "r1"})])
        a = assigned(s.assign("a"))
        assigned(s.assign("b"))
        assert s.release("a") == list(a.cidrs)
        assert s.counts("rack1", "ipv4").allocated == 1
        assert s.release("a") == []  # twice is harmless
        assert s.node("a") is None

    def test_deleting_is_not_gone(self) -> None:
        s = ready(racks(), [NodeInfo("a", {"rack": "r1"})])
        a = assigned(s.assign("a"))
        s.upsert_node(NodeInfo("a", {"rack": "r1"}, spec_cidrs=(str(a.cidrs[0]),), deleting=True))
        s.upsert_node(NodeInfo("b", {"rack": "r1"}))
        b = assigned(s.assign("b"))
        assert b.cidrs != a.cidrs  # a's block is still held while the Node object exists
        assert isinstance(s.assign("a"), AlreadyHasCIDR)

    def test_released_block_is_reused_only_after_the_others(self) -> None:
        s = ready([make_pool("p", ["10.0.0.0/22"])], [NodeInfo(n) for n in "abc"])
        blocks = {n: assigned(s.assign(n)).cidrs[0] for n in "abc"}
        s.release("a")
        s.upsert_node(NodeInfo("d"))
        assert assigned(s.assign("d")).cidrs[0] == net("10.0.3.0/24")
        s.upsert_node(NodeInfo("e"))
        assert assigned(s.assign("e")).cidrs[0] == blocks["a"]

    def test_release_keeps_a_block_another_node_still_holds(self) -> None:
        nodes = [NodeInfo("a", spec_cidrs=("10.1.0.0/24",)), NodeInfo("b", spec_cidrs=("10.1.0.0/24",))]
        s = ready(racks(), nodes)
        s.release("a")
        assert s.counts("rack1", "ipv4").allocated == 1

    @pytest.mark.parametrize("gone", ["odd", "exact"])
    def test_release_keeps_blocks_shared_with_an_odd_cidr(self, gone: str) -> None:
        nodes = [NodeInfo("odd", spec_cidrs=("10.1.0.64/26",)), NodeInfo("exact", spec_cidrs=("10.1.0.0/24",))]
        s = ready(racks(), nodes)
        s.release(gone)
        assert s.counts("rack1", "ipv4").allocated == 1

    def test_release_of_a_spanning_cidr_keeps_blocks_of_others(self) -> None:
        nodes = [NodeInfo("wide", spec_cidrs=("10.1.0.0/23",)), NodeInfo("x", spec_cidrs=("10.1.1.0/24",))]
        s = ready(racks(), nodes)
        s.release("wide")
        assert s.counts("rack1", "ipv4").allocated == 1
        assert s.held_in_pool("rack1") == {"x": [net("10.1.1.0/24")]}

    def test_cancel_gives_the_blocks_back(self) -> None:
        s = ready(racks(), [NodeInfo("a", {"rack": "r1"})])
        a = assigned(s.assign("a"))
        s.cancel(a)
        assert s.held("a") == () and s.assignment("a") is None
        assert s.counts("rack1", "ipv4").allocated == 0
        s.cancel(a)  # unknown now: ignored

    def test_cancel_keeps_what_the_node_shows(self) -> None:
        s = ready(racks(), [NodeInfo("a", {"rack": "r1"})])
        a = assigned(s.assign("a"))
        s.upsert_node(NodeInfo("a", {"rack": "r1"}, spec_cidrs=(str(a.cidrs[0]),)))  # the write landed after all
        s.cancel(a)
        assert s.held("a") == a.cidrs and s.counts("rack1", "ipv4").allocated == 1


class TestEvents:
    def test_upsert_occupies_new_cidrs_and_reports_conflicts(self) -> None:
        s = ready(racks(), [NodeInfo("a", {"rack": "r1"})])
        a = assigned(s.assign("a"))
        reports = s.upsert_node(NodeInfo("b", spec_cidrs=(str(a.cidrs[0]),)))  # someone else wrote the same CIDR
        assert [(r.kind, r.other_node) for r in reports] == [("duplicate", "a")]
        reports = s.upsert_node(NodeInfo("c", spec_cidrs=("10.1.0.128/25",)))
        assert sorted(r.kind for r in reports) == ["misaligned", "overlap", "overlap"]
        assert s.upsert_node(NodeInfo("d", spec_cidrs=("10.1.3.0/24",))) == []
        assert s.upsert_node(NodeInfo("d", spec_cidrs=("10.1.3.0/24",))) == []  # nothing new

    def test_upsert_foreign_overlap(self) -> None:
        s = ready([], [NodeInfo("a", spec_cidrs=("10.9.0.0/24",))])
        kinds = sorted(r.kind for r in s.upsert_node(NodeInfo("b", spec_cidrs=("10.9.0.0/23",))))
        assert kinds == ["foreign", "overlap"]

    def test_annotation_removal_does_not_free_the_block(self) -> None:
        s = ready(racks(), [NodeInfo("a", {"rack": "r1"}, annotations={ANNOTATION_IPV4: "10.1.0.0/24"})])
        s.upsert_node(NodeInfo("a", {"rack": "r1"}))
        assert s.held("a") == (net("10.1.0.0/24"),) and s.counts("rack1", "ipv4").allocated == 1

    def test_set_pools_occupies_formerly_foreign_cidrs(self) -> None:
        s = ready([], [NodeInfo("kcm", spec_cidrs=("10.5.0.0/24",)), NodeInfo("new")])
        s.set_pools([make_pool("p", ["10.5.0.0/22"])])
        assert assigned(s.assign("new")).cidrs == (net("10.5.1.0/24"),)

    def test_overlapping_pools_never_hand_out_the_same_block(self) -> None:
        a = make_pool("a", ["10.0.0.0/22"], node_selector=R1)
        b = make_pool("b", ["10.0.0.0/23"], ipv4=25, node_selector=R2)
        nodes = [NodeInfo(f"r1-{i}", {"rack": "r1"}) for i in range(2)] + [
            NodeInfo(f"r2-{i}", {"rack": "r2"}) for i in range(4)
        ]
        s = ready([a, b], nodes)
        plan = dict(s.plan())
        got = [r.cidrs[0] for r in plan.values() if isinstance(r, Assignment)]
        assert got == [net("10.0.0.0/24"), net("10.0.1.0/24")]
        # a's two blocks cover all of b's /25s, occupied there too: b is full, not double-booked
        assert all(isinstance(plan[f"r2-{i}"], PoolExhausted) for i in range(4))

    def test_duplicate_pool_names_rejected(self) -> None:
        with pytest.raises(ValueError, match="duplicate"):
            IPAMState([make_pool("a", ["10.0.0.0/16"]), make_pool("a", ["10.1.0.0/16"])])


class TestStatus:
    def test_counts_nodes_and_document(self) -> None:
        pools = [make_pool("ds", ["10.1.0.0/23", "fd00::/32"], ipv6=126, node_selector=R1)]
        s = ready(pools, [NodeInfo("a", {"rack": "r1"}), NodeInfo("b", {"rack": "r1"})])
        s.plan()
        st = s.status("ds")
        assert st.nodes == ("a", "b") and st.exhausted == ("ipv4",)
        v4 = st.family("ipv4")
        assert v4 is not None and (v4.capacity, v4.allocated, v4.free) == (2, 2, 0)
        assert st.family("ipv6") is not None and st.family("ipv6").capacity == 2**94  # type: ignore[union-attr]
        doc = st.status_document(observed_generation=4, now="2026-01-01T00:00:00Z")
        assert doc["observedGeneration"] == 4
        assert doc["ipv4"] == {"capacity": 2, "allocated": 2, "free": 0}
        assert doc["ipv6"]["capacity"] == 2**63 - 1  # saturated int64
        assert doc["nodes"] == 2
        assert doc["blockSizes"] == "/24 /126"
        assert doc["allocatedBlocks"] == "2 / 2" and doc["freeBlocks"] == "0 / ~2^93"
        conds = {c["type"]: c for c in doc["conditions"]}
        assert conds["Ready"]["status"] == "True" and conds["Exhausted"]["status"] == "True"
        assert conds["Exhausted"]["reason"] == "NoFreeBlocks" and conds["Exhausted"]["observedGeneration"] == 4
        later = st.status_document(
            observed_generation=5, now="2026-02-02T00:00:00Z", previous_conditions=doc["conditions"]
        )
        assert {c["lastTransitionTime"] for c in later["conditions"]} == {"2026-01-01T00:00:00Z"}
        s.release("a")
        again = s.status("ds").status_document(observed_generation=5, now="t2", previous_conditions=later["conditions"])
        ex = next(c for c in again["conditions"] if c["type"] == "Exhausted")
        assert (ex["status"], ex["lastTransitionTime"]) == ("False", "t2")

    def test_disabled_and_dict(self) -> None:
        s = ready([make_pool("off", ["10.0.0.0/16"], disabled=True)], [])
        st = s.statuses()[0]
        d = st.to_dict()
        assert d["disabled"] and d["families"]["ipv4"] == {
            "blockSize": 24,
            "capacity": 256,
            "allocated": 0,
            "free": 256,
        }
        ready_cond = st.status_document(observed_generation=None, now="t")["conditions"][0]
        assert (ready_cond["status"], ready_cond["reason"]) == ("False", "Disabled")
        assert "observedGeneration" not in ready_cond

    def test_pool_helpers(self) -> None:
        s = ready(racks(), [NodeInfo("a", {"rack": "r2"})])
        assert [p.name for p in s.pools] == ["rack1", "rack2"]
        assert s.pool("rack2").name == "rack2"
        assert s.select({"rack": "r2"}) is s.pool("rack2")
        assert s.node_names == ["a"]
        s.plan()
        assert s.nodes_in_pool("rack2") == ["a"] and s.nodes_in_pool("rack1") == []


def _overlapping_pairs(s: IPAMState, live: set[str]) -> list[tuple[str, str]]:
    """Pairs of distinct live nodes holding overlapping CIDRs (a sweep keeping the furthest-reaching one)."""
    items = sorted(
        (n.version, int(n.network_address), int(n.broadcast_address), name) for name in live for n in s.held(name)
    )
    bad = []
    reach: tuple[int, int, str] | None = None
    for version, lo, hi, name in items:
        if reach is not None and reach[0] == version and lo <= reach[1] and reach[2] != name:
            bad.append((reach[2], name))
        if reach is None or reach[0] != version or hi > reach[1]:
            reach = (version, hi, name)
    return bad


@pytest.mark.parametrize("seed", range(12))
def test_random_create_delete_never_overlaps(seed: int) -> None:
    """Property: random node creations, label changes, failed writes and deletions never yield overlapping blocks,
    and the block counts always equal what live nodes hold."""
    rng = random.Random(seed)
    pools = [
        make_pool("r1", ["10.1.0.0/22", "fd01::/78"], node_selector=R1, priority=rng.choice([0, 5])),
        make_pool("r2", ["10.2.0.0/23", "10.3.0.0/23"], ipv4=rng.choice([24, 26]), node_selector=R2),
        make_pool("any", ["10.9.0.0/21"], ipv4=rng.choice([23, 24])),
    ]
    # a few pre-existing nodes, some foreign, some odd
    existing = [
        NodeInfo("pre-0", {"rack": "r1"}, spec_cidrs=("10.1.1.0/24", "fd01::/80")),
        NodeInfo("pre-1", {"rack": "r2"}, spec_cidrs=("10.244.0.0/24",)),
        NodeInfo("pre-2", {}, annotations={ANNOTATION_IPV4: "10.9.0.128/25"}),
    ]
    s = IPAMState(pools, existing)
    s.occupy_existing()
    live = {n.name for n in existing}
    counter = 0
    for _ in range(300):
        op = rng.random()
        if op < 0.5 or not live:
            counter += 1
            name = f"n{counter}"
            labels = rng.choice([{"rack": "r1"}, {"rack": "r2"}, {}, {"rack": "r3"}])
            s.upsert_node(NodeInfo(name, labels))
            live.add(name)
            r = s.assign(name)
            if isinstance(r, Assignment):
                if rng.random() < 0.1:
                    s.cancel(r)  # the write failed
                else:
                    s.upsert_node(NodeInfo(name, labels, spec_cidrs=tuple(str(c) for c in r.cidrs)))
        elif op < 0.6:
            name = rng.choice(sorted(live))
            node = s.node(name)
            assert node is not None
            s.upsert_node(NodeInfo(name, {"rack": rng.choice(["r1", "r2"])}, node.spec_cidrs, node.annotations))
            assert not isinstance(s.assign(name), Assignment) or not node.cidrs()
        elif op < 0.7:
            name = rng.choice(sorted(live))
            node = s.node(name)
            assert node is not None
            s.upsert_node(NodeInfo(name, node.labels, node.spec_cidrs, node.annotations, deleting=True))
        else:
            name = rng.choice(sorted(live))
            s.release(name)
            live.discard(name)
        assert _overlapping_pairs(s, live - {"pre-2"}) == []
        # bookkeeping: what is allocated equals what live nodes hold
        fresh = IPAMState(pools, [NodeInfo(n, {}, tuple(str(c) for c in s.held(n))) for n in live])
        fresh.occupy_existing()
        for p in pools:
            for fam in p.families:
                assert s.counts(p.name, fam) == fresh.counts(p.name, fam), (p.name, fam)


def test_five_thousand_nodes_plan_quickly() -> None:
    pools = [
        make_pool(f"rack{i}", [f"10.{i}.0.0/16"], node_selector={"matchLabels": {"rack": str(i)}}) for i in range(20)
    ]
    nodes = [NodeInfo(f"node-{i:05d}", {"rack": str(i % 20)}) for i in range(5000)]
    t0 = time.perf_counter()
    plan = IPAMState(pools, nodes).plan()
    assert time.perf_counter() - t0 < 5
    got = [r.cidrs[0] for _, r in plan if isinstance(r, Assignment)]
    assert len(got) == 5000 and len(set(got)) == 5000
