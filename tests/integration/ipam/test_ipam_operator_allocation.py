"""The IPAM operator on the real control plane: 1,000 kwok nodes across 3 pools (dual-stack included), release
and reuse of blocks, exhaustion, label changes, CIDRs already on nodes, annotation mode."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import pytest
from lightkube import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Node
from lightkube.types import PatchType

from cni_migrate_testbed import TEST_LABEL, ControlPlane, FakeNodes

from .ipam_helpers import (
    IpamRelease,
    Operators,
    Pools,
    assert_disjoint,
    delete_nodes,
    node_cidrs,
    node_events,
    selector_for,
    wait_for,
)

pytestmark = pytest.mark.integration


def all_allocated(cp: ControlPlane, prefix: str, count: int) -> dict[str, list[str]] | None:
    nodes = node_cidrs(cp.client, prefix)
    if len(nodes) == count and all(cidrs for _uid, cidrs in nodes.values()):
        return {name: cidrs for name, (_uid, cidrs) in nodes.items()}
    return None


def within(cidr: str, parent: str, prefix: int) -> bool:
    net = ipaddress.ip_network(cidr)
    parent_net = ipaddress.ip_network(parent)
    return net.version == parent_net.version and net.prefixlen == prefix and net.subnet_of(parent_net)  # type: ignore[arg-type]


def test_1000_nodes_three_pools_dual_stack_release_and_reuse(
    ipam_release: IpamRelease, operators: Operators, pools: Pools, fake_nodes: FakeNodes, name_prefix: str
) -> None:
    cp = ipam_release.cp
    p = name_prefix
    op = operators.start(webhook=True)
    a, b, c = f"{p}-a", f"{p}-b", f"{p}-c"
    pools.apply(a, {"cidrs": ["100.64.0.0/14"], "blockSize": {"ipv4": 24}, "nodeSelector": selector_for(p, tier="a")})
    pools.apply(
        b,
        {
            "cidrs": ["100.68.0.0/16", "fd7a:b::/56"],
            "blockSize": {"ipv4": 26, "ipv6": 72},
            "nodeSelector": selector_for(p, tier="b"),
        },
    )
    pools.apply(
        c,
        {
            "cidrs": ["100.72.0.0/15"],
            "blockSize": {"ipv4": 25},
            "priority": 10,  # wins over pool a for nodes both select
            "nodeSelector": {
                "matchLabels": {TEST_LABEL: p},
                "matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1", "z2"]}],
            },
        },
    )
    groups: list[tuple[str, dict[str, str], int]] = [
        ("a", {"tier": "a"}, 350),
        ("b", {"tier": "b"}, 300),
        ("ac", {"tier": "a", "zone": "z1"}, 250),  # selected by a and c: c has the higher priority
        ("c", {"zone": "z2"}, 100),
    ]
    expected: dict[str, str] = {}
    specs = []
    for tag, labels, count in groups:
        for i in range(count):
            spec = fake_nodes.spec(f"{tag}{i}", labels)
            specs.append(spec)
            expected[spec.name] = {"a": a, "b": b, "ac": c, "c": c}[tag]
    t0 = time.monotonic()
    fake_nodes.create_specs(specs, wait_ready=False, workers=32)
    created = time.monotonic() - t0
    cidrs = wait_for("1000 nodes with a pod CIDR", lambda: all_allocated(cp, p, 1000), timeout=180, interval=0.5)
    took = time.monotonic() - t0
    print(f"1000 nodes: created in {created:.1f} s, all allocated after {took:.1f} s")

    rules = {
        a: [("100.64.0.0/14", 24)],
        b: [("100.68.0.0/16", 26), ("fd7a:b::/56", 72)],
        c: [("100.72.0.0/15", 25)],
    }
    for name, got in cidrs.items():
        want = rules[expected[name]]
        assert len(got) == len(want), f"{name}: {got} (pool {expected[name]})"
        for cidr, (parent, size) in zip(got, want, strict=True):
            assert within(cidr, parent, size), f"{name}: {cidr} is not a /{size} of {parent} (pool {expected[name]})"
    assert_disjoint(cidrs)
    node = cp.client.get(Node, specs[0].name)
    assert node.spec is not None and node.spec.podCIDR == cidrs[specs[0].name][0]

    def counts() -> dict[str, Any] | None:
        got = {n: pools.status(n) for n in (a, b, c)}
        ok = (
            got[a].get("ipv4", {}).get("allocated") == 350
            and got[b].get("ipv4", {}).get("allocated") == 300
            and got[b].get("ipv6", {}).get("allocated") == 300
            and got[c].get("ipv4", {}).get("allocated") == 350
        )
        return got if ok else None

    status = wait_for("pool status counts", counts, timeout=30)
    assert status[a]["ipv4"] == {"capacity": 1024, "allocated": 350, "free": 674}
    assert status[b]["ipv6"]["capacity"] == 65536
    assert status[b]["blockSizes"] == "/26 /72" and status[b]["allocatedBlocks"] == "300 / 300"
    ready = next(x for x in status[a]["conditions"] if x["type"] == "Ready")
    assert ready["status"] == "True"
    assert op.metric("cni_migrate_ipam_allocations_total", pool=c, family="ipv4") == 350
    assert op.metric("cni_migrate_ipam_allocation_latency_seconds_count", pool=b, family="ipv6") == 300
    assert op.metric("cni_migrate_ipam_pool_free_blocks", pool=a, family="ipv4") == 674
    # A burst makes one folded event per pool, not one per node.
    folded = wait_for("PodCIDRsAssigned on the pool", lambda: node_events(cp, a, "PodCIDRsAssigned"), timeout=30)
    assert "assigned blocks to" in folded[0]

    # Deleting nodes frees their blocks; new nodes get blocks again, still all distinct.
    gone = [s.name for s in specs if expected[s.name] == a][:150] + [s.name for s in specs if expected[s.name] == b][
        :100
    ]
    delete_nodes(cp.client, gone)
    wait_for(
        "blocks of deleted nodes released",
        lambda: pools.status(a)["ipv4"]["allocated"] == 200 and pools.status(b)["ipv6"]["allocated"] == 200,
        timeout=30,
    )
    assert op.metric("cni_migrate_ipam_releases_total", pool=b, family="ipv6") == 100
    more = [fake_nodes.spec(f"new{i}", {"tier": "a" if i % 2 else "b"}) for i in range(250)]
    fake_nodes.create_specs(more, wait_ready=False, workers=32)
    cidrs = wait_for("new nodes allocated", lambda: all_allocated(cp, p, 1000), timeout=120, interval=0.5)
    assert_disjoint(cidrs)
    assert op.proc is not None and op.proc.poll() is None, op.tail()
    cp.kubectl("delete", "nodes", "-l", f"{TEST_LABEL}={p}", "--wait=false")  # faster than one by one


def test_exhaustion_reuse_and_growth(
    ipam_release: IpamRelease, operators: Operators, pools: Pools, fake_nodes: FakeNodes, name_prefix: str
) -> None:
    cp = ipam_release.cp
    p = name_prefix
    op = operators.start(webhook=True)
    pool = f"{p}-tiny"
    spec = {"cidrs": ["100.90.0.0/28"], "blockSize": {"ipv4": 30}, "nodeSelector": selector_for(p)}
    pools.apply(pool, spec)
    all_blocks = {str(n) for n in ipaddress.ip_network("100.90.0.0/28").subnets(new_prefix=30)}
    fake_nodes.create_specs([fake_nodes.spec(f"n{i}") for i in range(5)], wait_ready=False)
    names = [f"{p}-n{i}" for i in range(5)]

    def four_allocated() -> dict[str, list[str]] | None:
        nodes = node_cidrs(cp.client, p)
        done = {n: c for n, (_u, c) in nodes.items() if c}
        return done if len(done) == 4 else None

    first = wait_for("4 of 5 nodes allocated", four_allocated, timeout=30)
    assert {c[0] for c in first.values()} == all_blocks
    some = sorted(first)[0]
    note = wait_for("PodCIDRAssigned on a node", lambda: node_events(cp, some, "PodCIDRAssigned"), timeout=30)
    assert first[some][0] in note[0] and pool in note[0]
    (starved,) = set(names) - set(first)
    wait_for("PoolExhausted event on the node", lambda: node_events(cp, starved, "PoolExhausted"), timeout=20)
    wait_for("PoolExhausted event on the pool", lambda: node_events(cp, pool, "PoolExhausted"), timeout=20)
    exhausted = wait_for(
        "Exhausted condition",
        lambda: (c := pools.condition(pool, "Exhausted")) and c["status"] == "True" and c,
        timeout=20,
    )
    assert "no free ipv4 block" in exhausted["message"]
    assert op.metric("cni_migrate_ipam_errors_total", pool=pool, family="ipv4", reason="pool-exhausted") >= 1

    # Free two blocks: the starved node and a new one get exactly those.
    freed = sorted(first)[:2]
    freed_blocks = {first[n][0] for n in freed}
    delete_nodes(cp.client, freed)
    fake_nodes.create("late")
    survivors = set(first) - set(freed)

    def reused() -> dict[str, list[str]] | None:
        nodes = node_cidrs(cp.client, p)
        if set(nodes) != survivors | {starved, f"{p}-late"} or not all(c for _u, c in nodes.values()):
            return None
        return {n: c for n, (_u, c) in nodes.items()}

    now = wait_for("freed blocks reused", reused, timeout=30)
    assert {now[starved][0], now[f"{p}-late"][0]} == freed_blocks
    assert {c[0] for c in now.values()} == all_blocks

    # Growing the pool (appending a CIDR) serves the next node from the new CIDR.
    pools.apply(pool, {**spec, "cidrs": ["100.90.0.0/28", "100.90.0.16/28"]})
    grown = fake_nodes.create("grown")
    assert grown.metadata is not None
    got = wait_for(
        "node from the appended CIDR",
        lambda: node_cidrs(cp.client, p).get(f"{p}-grown", ("", []))[1],
        timeout=30,
    )
    assert ipaddress.ip_network(got[0]).subnet_of(ipaddress.ip_network("100.90.0.16/28"))
    wait_for("Exhausted=False", lambda: (c := pools.condition(pool, "Exhausted")) and c["status"] == "False")


def test_existing_cidrs_occupied_label_change_never_moves_a_cidr(
    ipam_release: IpamRelease, operators: Operators, pools: Pools, fake_nodes: FakeNodes, name_prefix: str
) -> None:
    cp = ipam_release.cp
    p = name_prefix
    # Nodes that already have CIDRs before the operator starts: one inside the pool-to-be, one foreign.
    fake_nodes.create("old-in", {"tier": "x"}, pod_cidr="100.91.0.0/24", wait_ready=False)
    fake_nodes.create("old-foreign", {"tier": "x"}, pod_cidr="100.99.7.0/24", wait_ready=False)
    op = operators.start(webhook=True)
    pool = f"{p}-x"
    pools.apply(
        pool, {"cidrs": ["100.91.0.0/22"], "blockSize": {"ipv4": 24}, "nodeSelector": selector_for(p, tier="x")}
    )
    fake_nodes.create_specs([fake_nodes.spec(f"n{i}", {"tier": "x"}) for i in range(3)], wait_ready=False)
    cidrs = wait_for("all allocated", lambda: all_allocated(cp, p, 5), timeout=30)
    assert cidrs[f"{p}-old-in"] == ["100.91.0.0/24"] and cidrs[f"{p}-old-foreign"] == ["100.99.7.0/24"]
    assert "100.91.0.0/24" not in {c[0] for n, c in cidrs.items() if n != f"{p}-old-in"}  # occupied, not reused
    assert_disjoint(cidrs)
    assert node_events(cp, f"{p}-old-foreign", "ForeignPodCIDR")
    status = wait_for("status", lambda: (s := pools.status(pool)).get("ipv4", {}).get("allocated") == 4 and s)
    assert status["nodes"] == 4

    # A node whose labels stop matching keeps its CIDR; it is reported, by event and condition.
    moved = f"{p}-n0"
    before = cidrs[moved]
    cp.client.patch(Node, moved, {"metadata": {"labels": {"tier": "y"}}}, patch_type=PatchType.MERGE)
    cond = wait_for(
        "SelectorMismatch condition",
        lambda: (c := pools.condition(pool, "SelectorMismatch")) and c["status"] == "True" and c,
        timeout=20,
    )
    assert moved in cond["message"] and "never changed" in cond["message"]
    wait_for("PoolSelectorMismatch event", lambda: node_events(cp, moved, "PoolSelectorMismatch"), timeout=20)
    time.sleep(1.0)
    assert node_cidrs(cp.client, p)[moved][1] == before
    assert op.proc is not None and op.proc.poll() is None


def test_annotation_mode_and_cilium_config_check(
    ipam_release: IpamRelease, operators: Operators, pools: Pools, fake_nodes: FakeNodes, name_prefix: str
) -> None:
    cp = ipam_release.cp
    p = name_prefix
    created_cm = False
    try:
        cp.client.get(ConfigMap, "cilium-config", namespace="kube-system")
        original: dict[str, str] | None = dict(
            cp.client.get(ConfigMap, "cilium-config", namespace="kube-system").data or {}
        )
        cp.client.patch(
            ConfigMap, "cilium-config", {"data": {"annotate-k8s-node": "false"}}, namespace="kube-system",
            patch_type=PatchType.MERGE,
        )  # fmt: skip
    except ApiError:
        original = None
        cp.client.create(
            ConfigMap(metadata=ObjectMeta(name="cilium-config", namespace="kube-system"), data={"ipam": "kubernetes"})
        )
        created_cm = True
    try:
        operators.start("--cilium-check-interval=1", webhook=True, mode="annotation")
        pool = f"{p}-ann"
        pools.apply(
            pool,
            {"cidrs": ["100.92.0.0/22", "fd7a:92::/64"], "blockSize": {"ipv4": 24, "ipv6": 80},
             "nodeSelector": selector_for(p)},
        )  # fmt: skip
        fake_nodes.create_specs([fake_nodes.spec(f"n{i}") for i in range(3)], wait_ready=False)

        def annotated() -> list[Node] | None:
            nodes = [cp.client.get(Node, f"{p}-n{i}") for i in range(3)]
            ok = all(
                n.metadata and (n.metadata.annotations or {}).get("network.cilium.io/ipv6-pod-cidr") for n in nodes
            )
            return nodes if ok else None

        nodes = wait_for("annotations written", annotated, timeout=30)
        for n in nodes:
            assert n.metadata is not None and n.spec is not None
            ann = n.metadata.annotations or {}
            v4 = ann["network.cilium.io/ipv4-pod-cidr"]
            assert ipaddress.ip_network(v4).subnet_of(ipaddress.ip_network("100.92.0.0/22"))
            assert ann["io.cilium.network.ipv4-pod-cidr"] == v4  # the legacy alias, for Cilium <= 1.12
            assert ipaddress.ip_network(ann["network.cilium.io/ipv6-pod-cidr"]).prefixlen == 80
            assert not n.spec.podCIDR  # annotation mode leaves the spec alone
        cond = wait_for(
            "CiliumReadsAnnotations=False",
            lambda: (c := pools.condition(pool, "CiliumReadsAnnotations")) and c["status"] == "False" and c,
            timeout=20,
        )
        assert "annotate-k8s-node" in cond["message"]
        wait_for("warning event on the pool", lambda: node_events(cp, pool, "CiliumIgnoresAnnotations"), timeout=20)
        cp.client.patch(
            ConfigMap, "cilium-config", {"data": {"annotate-k8s-node": "true"}}, namespace="kube-system",
            patch_type=PatchType.MERGE,
        )  # fmt: skip
        wait_for(
            "CiliumReadsAnnotations=True",
            lambda: (c := pools.condition(pool, "CiliumReadsAnnotations")) and c["status"] == "True",
            timeout=20,
        )
    finally:
        if created_cm:
            cp.client.delete(ConfigMap, "cilium-config", namespace="kube-system")
        elif original is not None:
            cp.client.patch(
                ConfigMap, "cilium-config", {"data": original}, namespace="kube-system", patch_type=PatchType.MERGE
            )
