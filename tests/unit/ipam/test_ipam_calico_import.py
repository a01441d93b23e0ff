"""Calico IPPools -> PodCIDRPool manifests: selector translation, merging, block size, the bundled example."""

from __future__ import annotations

from pathlib import Path

import pytest

from cni_migrate.analysis.ipam.allocation import Assignment, IPAMState, NodeInfo, NoPoolMatches
from cni_migrate.analysis.ipam.calico_import import (
    CALICO_BLOCK_SIZE_ANNOTATION,
    IMPORTED_FROM_ANNOTATION,
    import_calico_pools,
)
from cni_migrate.analysis.ipam.pools import parse_pool, parse_pools
from cni_migrate.facts import facts_from_snapshot
from cni_migrate.facts.model import IPPoolFacts
from cni_migrate.facts.objects import NODE
from cni_migrate.facts.snapshot import load_snapshot

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "calico-operator-multipool"


def ippool(name: str, cidr: str, selector: str = "all()", block: int = 26, disabled: bool = False) -> IPPoolFacts:
    return IPPoolFacts(name=name, cidr=cidr, block_size=block, node_selector=selector, disabled=disabled, source="t")


def by_name(manifests: list[dict]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {m["metadata"]["name"]: m for m in manifests}


class TestTranslation:
    def test_translatable_selectors(self) -> None:
        res = import_calico_pools(
            [
                ippool("r1", "10.1.0.0/16", 'rack == "r1"'),
                ippool("gpu", "10.2.0.0/16", 'gpu == "true" && rack in {"r1", "r2"} && !has(edge)'),
                ippool("all", "10.3.0.0/16"),
            ]
        )
        assert res.issues == []
        m = by_name(res.manifests)
        assert m["r1"]["spec"]["nodeSelector"] == {"matchLabels": {"rack": "r1"}}
        assert m["r1"]["spec"]["priority"] == 1
        assert m["gpu"]["spec"]["nodeSelector"] == {
            "matchLabels": {"gpu": "true"},
            "matchExpressions": [
                {"key": "rack", "operator": "In", "values": ["r1", "r2"]},
                {"key": "edge", "operator": "DoesNotExist"},
            ],
        }
        assert m["gpu"]["spec"]["priority"] == 3
        assert "nodeSelector" not in m["all"]["spec"] and m["all"]["spec"]["priority"] == 0
        for manifest in res.manifests:
            assert parse_pool(manifest).name == manifest["metadata"]["name"]  # valid PodCIDRPools

    @pytest.mark.parametrize(
        ("selector", "expression_text"),
        [
            ('zone starts with "edge-"', "'zone starts with ...'"),
            ('a == "1" || b == "2"', "an '||' over different keys or operators"),
            ('!(a == "1" && b == "2")', "a negated sub-expression"),
        ],
    )
    def test_untranslatable_is_reported_with_pool_and_expression(self, selector: str, expression_text: str) -> None:
        res = import_calico_pools([ippool("edge", "10.1.0.0/16", selector), ippool("ok", "10.2.0.0/16")])
        (issue,) = res.issues
        assert issue.pool == "edge" and issue.expression == selector
        assert issue.message.startswith(f"IPPool edge: nodeSelector {selector!r}: ")
        assert expression_text in issue.message
        assert [m["metadata"]["name"] for m in res.manifests] == ["ok"]

    def test_syntax_error_reported(self) -> None:
        res = import_calico_pools([ippool("bad", "10.1.0.0/16", 'rack === "x"')])
        assert res.issues[0].pool == "bad" and res.manifests == []

    def test_bad_cidr_reported(self) -> None:
        res = import_calico_pools([ippool("bad", "10.1.0.1/16")])
        assert "IPPool bad cidr" in res.issues[0].message

    def test_select_nothing_is_skipped_with_a_note(self) -> None:
        res = import_calico_pools([ippool("manual", "10.1.0.0/16", "!all()")])
        assert res.manifests == [] and res.issues == []
        assert "selects no node" in res.notes[0]


class TestShape:
    def test_same_selector_merges_into_a_dual_stack_pool(self) -> None:
        res = import_calico_pools(
            [
                ippool("default-ipv4-ippool", "10.244.0.0/16"),
                ippool("default-ipv6-ippool", "fd00:244::/48", block=122),
            ]
        )
        (m,) = res.manifests
        assert m["metadata"]["name"] == "default-ipv4-ippool"
        assert m["spec"]["cidrs"] == ["10.244.0.0/16", "fd00:244::/48"]
        assert m["spec"]["blockSize"] == {"ipv4": 24, "ipv6": 80}
        assert (
            m["metadata"]["annotations"][IMPORTED_FROM_ANNOTATION]
            == "IPPool default-ipv4-ippool, IPPool default-ipv6-ippool"
        )
        assert (
            m["metadata"]["annotations"][CALICO_BLOCK_SIZE_ANNOTATION]
            == "default-ipv4-ippool=/26, default-ipv6-ippool=/122"
        )
        assert any("merged into PodCIDRPool default-ipv4-ippool" in n for n in res.notes)
        s = IPAMState(parse_pools(res.manifests)[0], [NodeInfo("n")])
        r = s.plan()[0][1]
        assert isinstance(r, Assignment) and [str(c) for c in r.cidrs] == ["10.244.0.0/24", "fd00:244::/80"]

    def test_disabled_is_kept_apart(self) -> None:
        res = import_calico_pools([ippool("old", "10.1.0.0/16", disabled=True), ippool("new", "10.2.0.0/16")])
        m = by_name(res.manifests)
        assert m["old"]["spec"]["disabled"] is True and m["new"]["spec"]["disabled"] is False

    def test_block_size_default_and_notes(self) -> None:
        res = import_calico_pools([ippool("p", "10.1.0.0/16", block=26)], ipv4_block_size=23)
        assert res.manifests[0]["spec"]["blockSize"] == {"ipv4": 23}
        assert res.notes[0].startswith("blockSize: each node gets one /23 (IPv4)")
        assert "not the same" not in res.notes[0] and "affinity blocks" in res.notes[0]
        assert any("in /23 blocks holds 128 node(s)" in n for n in res.notes)

    def test_keep_calico_block_size(self) -> None:
        res = import_calico_pools(
            [ippool("a", "10.1.0.0/16", block=26), ippool("b", "10.2.0.0/16", block=28)], keep_calico_block_size=True
        )
        (m,) = res.manifests
        assert m["spec"]["blockSize"] == {"ipv4": 28}
        assert res.notes[0].startswith("blockSize: kept Calico's blockSize")
        assert any("different ipv4 blockSizes (26, 28); using the smallest blocks, /28" in n for n in res.notes)

    def test_keep_calico_block_size_out_of_range(self) -> None:
        res = import_calico_pools([ippool("a", "10.1.0.0/16", block=32)], keep_calico_block_size=True)
        assert res.manifests == [] and "outside /16../30" in res.issues[0].message

    def test_pool_smaller_than_a_block(self) -> None:
        res = import_calico_pools([ippool("small", "10.1.0.0/24"), ippool("v6", "fd00::/80")])
        assert res.manifests == []
        assert [i.pool for i in res.issues] == ["small", "v6"]
        assert "--block-size)" in res.issues[0].message and "--block-size-v6)" in res.issues[1].message

    def test_to_dict(self) -> None:
        res = import_calico_pools([ippool("edge", "10.1.0.0/16", 'zone starts with "e"')])
        d = res.to_dict()
        assert d["manifests"] == [] and d["issues"][0]["expression"] == 'zone starts with "e"'


@pytest.fixture(scope="module")
def pools() -> list[IPPoolFacts]:
    facts = facts_from_snapshot(str(EXAMPLE))
    assert facts.cni.calico is not None
    return facts.cni.calico.ip_pools.value or []


class TestBundledExample:
    def test_import(self, pools: list[IPPoolFacts]) -> None:
        res = import_calico_pools(pools)
        m = by_name(res.manifests)
        assert set(m) == {"gpu-pool", "legacy-pool", "rack1-pool", "rack2-pool"}
        assert m["rack1-pool"]["spec"]["nodeSelector"] == {"matchLabels": {"rack": "r1"}}
        assert m["legacy-pool"]["spec"]["disabled"] is True
        assert m["gpu-pool"]["spec"]["priority"] > m["rack2-pool"]["spec"]["priority"]
        (issue,) = res.issues
        assert issue.pool == "edge-pool" and issue.expression == 'zone starts with "edge-"'

    def test_plan_on_the_example(self, pools: list[IPPoolFacts]) -> None:
        imported, errors = parse_pools(import_calico_pools(pools).manifests)
        assert errors == []
        nodes = [NodeInfo.from_object(o) for o in load_snapshot(str(EXAMPLE)).of(NODE)]
        plan = dict(IPAMState(imported, nodes).plan())
        got = {n: (r.pool, str(r.cidrs[0])) for n, r in plan.items() if isinstance(r, Assignment)}
        assert got["gpu-r2-1"][0] == "gpu-pool"  # more specific than rack2-pool
        assert got["worker-r2-1"][0] == "rack2-pool"
        assert {got[n][0] for n in ("cp-1", "cp-2", "worker-r1-1", "worker-r1-2")} == {"rack1-pool"}
        assert len({c for _, c in got.values()}) == len(got)
        edge = plan["edge-1"]
        assert isinstance(edge, NoPoolMatches) and edge.disabled == ("legacy-pool",)
