"""PodCIDRPool parsing (messages naming the field), selection (priority, then name) and the per-pool allocator."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from cni_migrate.analysis.ipam.cidrset import CIDRSetFull
from cni_migrate.analysis.ipam.pools import (
    API_VERSION,
    PoolAllocator,
    PoolSpecError,
    make_pool,
    matching_pools,
    parse_pool,
    parse_pools,
    pool_errors,
    select_pool,
)


def cr(name: str = "p", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "PodCIDRPool", "metadata": {"name": name}, "spec": spec}


def errors_of(obj: dict[str, Any]) -> list[str]:
    with pytest.raises(PoolSpecError) as e:
        parse_pool(obj)
    assert e.value.errors == pool_errors(obj)
    return e.value.errors


class TestParse:
    def test_defaults(self) -> None:
        p = parse_pool(cr(cidrs=["10.0.0.0/16"]))
        assert p.name == "p" and p.priority == 0 and not p.disabled
        assert p.families == ("ipv4",)
        assert p.block_prefix("ipv4") == 24 and p.block_prefix("ipv6") == 80
        assert p.spec.node_selector is None and p.selector_text == "<all>"
        assert p.matches({}) and p.matches({"any": "thing"})

    def test_full_dual_stack(self) -> None:
        obj = cr(
            "rack1",
            cidrs=["fd00:10::/48", "10.0.0.0/16", "10.1.0.0/16"],
            blockSize={"ipv4": 26, "ipv6": 64},
            nodeSelector={"matchLabels": {"rack": "r1"}},
            priority=5,
            disabled=True,
        )
        obj["metadata"]["generation"] = 3
        obj["status"] = {"ipv4": {"allocated": 2}}
        p = parse_pool(obj)
        assert p.families == ("ipv4", "ipv6")
        assert [str(n) for n in p.networks_of("ipv4")] == ["10.0.0.0/16", "10.1.0.0/16"]
        assert [str(n) for n in p.networks_of("ipv6")] == ["fd00:10::/48"]
        assert p.priority == 5 and p.disabled and p.generation == 3 and p.status["ipv4"]["allocated"] == 2
        assert p.matches({"rack": "r1"}) and not p.matches({"rack": "r2"})
        assert p.selector_text == "rack=r1"

    def test_manifest_round_trip(self) -> None:
        p = make_pool("x", ["10.0.0.0/16"], ipv4=26, node_selector={"matchLabels": {"a": "b"}}, priority=3)
        m = p.manifest()
        assert m["spec"]["blockSize"] == {"ipv4": 26}  # only the families the pool has
        assert parse_pool(m).spec == p.spec

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ({"cidrs": ["10.0.0.0/16", "10.0.0.0/33"]}, "spec.cidrs[1]: 10.0.0.0/33 is not a valid CIDR"),
            ({"cidrs": ["banana/8"]}, "spec.cidrs[0]: banana/8 is not a valid CIDR"),
            ({"cidrs": ["10.0.0.0"]}, "spec.cidrs[0]: 10.0.0.0 is not a valid CIDR (the prefix length"),
            ({"cidrs": ["10.0.0.1/16"]}, "spec.cidrs[0]: 10.0.0.1/16 has host bits set (did you mean 10.0.0.0/16?)"),
            ({"cidrs": []}, "spec.cidrs: at least one CIDR is required"),
            ({"cidrs": ["10.0.0.0/16"], "blockSize": {"ipv4": 31}}, "spec.blockSize.ipv4: 31 is out of range"),
            ({"cidrs": ["fd00::/48"], "blockSize": {"ipv6": 40}}, "spec.blockSize.ipv6: 40 is out of range"),
            (
                {"cidrs": ["10.0.0.0/16", "10.1.0.0/24"], "blockSize": {"ipv4": 24}},
                "spec.blockSize.ipv4: /24 is not longer than the /24 of spec.cidrs[1] (10.1.0.0/24)",
            ),
            (
                {"cidrs": ["10.0.0.0/16", "10.0.4.0/22"]},
                "spec.cidrs[1]: 10.0.4.0/22 overlaps spec.cidrs[0] (10.0.0.0/16)",
            ),
            ({"cidrs": ["10.0.0.0/16"], "bogus": 1}, "spec.bogus: unknown field"),
            ({"cidrs": ["10.0.0.0/16"], "blockSize": {"ipv5": 1}}, "spec.blockSize.ipv5: unknown field"),
            ({"cidrs": ["10.0.0.0/16"], "priority": "high"}, "spec.priority: input should be a valid integer"),
            ({"cidrs": ["10.0.0.0/16"], "priority": 2**40}, "spec.priority: 1099511627776 is out of range"),
            ({"cidrs": "10.0.0.0/16"}, "spec.cidrs: input should be a valid list"),
            ({}, "spec.cidrs: required"),
            (
                {"cidrs": ["10.0.0.0/16"], "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}},
                "spec.nodeSelector: matchExpressions[0].operator 'Is'",
            ),
            (
                {"cidrs": ["10.0.0.0/16"], "nodeSelector": {"rack": "r1"}},
                "spec.nodeSelector: unknown field(s) rack (expected matchLabels, matchExpressions)",
            ),
            ({"cidrs": [10]}, "spec.cidrs[0]: input should be a valid string"),
        ],
    )
    def test_messages_name_the_field(self, spec: dict[str, Any], message: str) -> None:
        errs = errors_of(cr(**spec))
        assert any(e.startswith(message) for e in errs), errs

    def test_all_errors_at_once(self) -> None:
        errs = errors_of(cr(cidrs=["10.0.0.0/33", "x/1"], blockSize={"ipv4": 12}))
        assert len(errs) == 3

    def test_envelope_errors(self) -> None:
        assert errors_of({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "a"}, "spec": {}})[:2] == [
            "kind: expected PodCIDRPool, got 'ConfigMap'",
            "apiVersion: expected ipam.cni-migrate.io/v1alpha1, got 'v1'",
        ]
        assert "metadata.name: required" in errors_of({"spec": {"cidrs": ["10.0.0.0/8"]}})
        assert errors_of({"metadata": {"name": "a"}})[-1].startswith("spec: required")
        with pytest.raises(PoolSpecError, match="expected a PodCIDRPool object"):
            parse_pool([])  # type: ignore[arg-type]

    def test_str_names_the_pool(self) -> None:
        with pytest.raises(PoolSpecError, match=r"^PodCIDRPool bad: spec.cidrs\[0\]"):
            parse_pool(cr("bad", cidrs=["nope"]))

    def test_unused_family_block_size_defaults_are_fine(self) -> None:
        # an IPv4-only pool keeps the (unused) IPv6 default
        assert parse_pool(cr(cidrs=["10.0.0.0/16"], blockSize={"ipv4": 26})).block_prefix("ipv6") == 80

    def test_parse_pools(self) -> None:
        pools, errs = parse_pools(
            [
                cr("b", cidrs=["10.1.0.0/16"]),
                cr("a", cidrs=["10.0.0.0/16"]),
                cr("c", cidrs=[]),
                cr("a", cidrs=["10.2.0.0/16"]),
            ]
        )
        assert [p.name for p in pools] == ["a", "b"]
        assert [e.pool for e in errs] == ["c", "a"]
        assert "appears twice" in str(errs[1])


class TestSelection:
    def test_priority_wins(self) -> None:
        low = make_pool("a-low", ["10.0.0.0/16"], priority=1)
        high = make_pool("z-high", ["10.1.0.0/16"], priority=10)
        assert select_pool([low, high], {}) is high

    def test_ties_by_name_ascending(self) -> None:
        b = make_pool("b", ["10.1.0.0/16"])
        a = make_pool("a", ["10.0.0.0/16"])
        assert select_pool([b, a], {}) is a
        assert [p.name for p in matching_pools([b, a], {})] == ["a", "b"]

    def test_selector_must_match(self) -> None:
        r1 = make_pool("r1", ["10.0.0.0/16"], node_selector={"matchLabels": {"rack": "r1"}}, priority=5)
        default = make_pool("default", ["10.9.0.0/16"])
        assert select_pool([r1, default], {"rack": "r1"}) is r1
        assert select_pool([r1, default], {"rack": "r2"}) is default
        assert select_pool([r1], {"rack": "r2"}) is None

    def test_disabled_pool_is_skipped(self) -> None:
        old = make_pool("old", ["10.0.0.0/16"], priority=9, disabled=True)
        new = make_pool("new", ["10.1.0.0/16"])
        assert select_pool([old, new], {}) is new
        assert select_pool([old], {}) is None
        assert matching_pools([old, new], {}, include_disabled=True) == [old, new]

    def test_match_expressions(self) -> None:
        p = make_pool(
            "gpu",
            ["10.0.0.0/16"],
            node_selector={
                "matchLabels": {"gpu": "true"},
                "matchExpressions": [
                    {"key": "rack", "operator": "In", "values": ["r1", "r2"]},
                    {"key": "edge", "operator": "DoesNotExist"},
                ],
            },
        )
        assert p.matches({"gpu": "true", "rack": "r2"})
        assert not p.matches({"gpu": "true", "rack": "r3"})
        assert not p.matches({"gpu": "true", "rack": "r1", "edge": ""})
        assert p.selector_text == "gpu=true,rack in (r1,r2),!edge"

    def test_empty_selector_matches_everything(self) -> None:
        p = parse_pool(cr(cidrs=["10.0.0.0/16"], nodeSelector={}))
        assert p.matches({"x": "y"})


class TestPoolAllocator:
    def test_cidrs_used_in_spec_order(self) -> None:
        p = make_pool("p", ["10.1.0.0/23", "10.0.0.0/23"])
        a = PoolAllocator(p)
        got = [str(a.allocate("ipv4")) for _ in range(4)]
        assert got == ["10.1.0.0/24", "10.1.1.0/24", "10.0.0.0/24", "10.0.1.0/24"]
        assert a.counts("ipv4").free == 0
        with pytest.raises(CIDRSetFull, match="PodCIDRPool p has no free ipv4 block"):
            a.allocate("ipv4")

    def test_earlier_cidr_reused_when_freed(self) -> None:
        a = PoolAllocator(make_pool("p", ["10.1.0.0/23", "10.0.0.0/23"]))
        first = [a.allocate("ipv4") for _ in range(3)]
        a.release(first[0])
        assert a.allocate("ipv4") == first[0]

    def test_per_family(self) -> None:
        a = PoolAllocator(make_pool("p", ["10.0.0.0/23", "fd00::/78"]))
        assert str(a.allocate("ipv6")) == "fd00::/80"
        assert a.counts("ipv6").capacity == 4 and a.counts("ipv4").capacity == 2
        assert a.counts("ipv6").allocated == 1 and a.counts("ipv4").allocated == 0
        with pytest.raises(CIDRSetFull):
            PoolAllocator(make_pool("q", ["10.0.0.0/23"])).allocate("ipv6")

    def test_occupy_contains_overlaps(self) -> None:
        a = PoolAllocator(make_pool("p", ["10.0.0.0/24", "10.0.1.0/24"], ipv4=25))
        span = ipaddress.ip_network("10.0.0.0/23")
        occ = a.occupy(span)
        assert len(occ) == 2 and all(o.kind == "partial" for o in occ)  # each CIDR holds half
        assert a.overlaps(span) and not a.contains(span)
        assert a.contains(ipaddress.ip_network("10.0.1.0/25"))
        assert a.is_allocated(ipaddress.ip_network("10.0.1.0/25"))
        assert a.allocated_count(span) == 4
        assert a.occupy(ipaddress.ip_network("192.168.0.0/24")) == []
        assert not a.is_allocated(ipaddress.ip_network("192.168.0.0/24"))
        assert a.release(span) == 4
        assert a.allocated_blocks() == []
