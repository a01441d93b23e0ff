"""Admission of PodCIDRPools through the chart's ValidatingWebhookConfiguration, served by the operator: bad pools
are refused with clear messages; a pool in use cannot shrink, change its block size, or disappear."""

from __future__ import annotations

import time

import pytest
from lightkube import ApiError

from cni_migrate_testbed import FakeNodes

from .ipam_helpers import (
    FINALIZER,
    IpamRelease,
    Operators,
    PodCIDRPool,
    Pools,
    delete_nodes,
    node_cidrs,
    node_events,
    selector_for,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_bad_pools_are_refused_with_clear_messages(
    ipam_release: IpamRelease, operators: Operators, pools: Pools, name_prefix: str
) -> None:
    operators.start(webhook=True)
    p = name_prefix
    pools.apply(f"{p}-good", {"cidrs": ["100.95.0.0/16", "fd7a:95::/48"], "nodeSelector": selector_for(p)})
    cases: list[tuple[str, dict[str, object], list[str]]] = [
        ("overlap", {"cidrs": ["100.95.128.0/17"]}, ["spec.cidrs[0]", "overlaps", f"PodCIDRPool {p}-good"]),
        ("overlap6", {"cidrs": ["fd7a:95:0:1::/64"]}, ["overlaps fd7a:95::/48"]),
        ("badcidr", {"cidrs": ["100.96.0.0/33"]}, ["spec.cidrs[0]", "not a valid CIDR"]),
        ("hostbits", {"cidrs": ["100.96.1.1/16"]}, ["host bits set", "did you mean 100.96.0.0/16"]),
        ("blocksize", {"cidrs": ["100.97.0.0/24"], "blockSize": {"ipv4": 24}}, ["spec.blockSize.ipv4", "not longer"]),
        ("v6size", {"cidrs": ["fd7a:97::/64"], "blockSize": {"ipv6": 40}}, ["spec.blockSize.ipv6"]),
        ("dup", {"cidrs": ["100.98.0.0/16", "100.98.4.0/24"]}, ["spec.cidrs[1]", "overlaps spec.cidrs[0]"]),
    ]
    for suffix, spec, needles in cases:
        result = pools.apply(f"{p}-{suffix}", spec, check=False)
        assert result.returncode != 0, f"{suffix}: admitted: {result.stdout}"
        for needle in needles:
            assert needle in result.stderr, f"{suffix}: {needle!r} not in {result.stderr!r}"
        with pytest.raises(ApiError):
            ipam_release.cp.client.get(PodCIDRPool, f"{p}-{suffix}")


def test_pool_in_use_cannot_shrink_change_block_size_or_vanish(
    ipam_release: IpamRelease, operators: Operators, pools: Pools, fake_nodes: FakeNodes, name_prefix: str
) -> None:
    cp = ipam_release.cp
    p = name_prefix
    op = operators.start(webhook=True)
    pool = f"{p}-s"
    spec = {"cidrs": ["100.99.0.0/24", "100.99.1.0/24"], "blockSize": {"ipv4": 26}, "nodeSelector": selector_for(p)}
    pools.apply(pool, spec)
    fake_nodes.create_specs([fake_nodes.spec(f"n{i}") for i in range(2)], wait_ready=False)
    cidrs = wait_for(
        "2 nodes allocated",
        lambda: (n := node_cidrs(cp.client, p)) and len(n) == 2 and all(c for _u, c in n.values()) and n,
    )
    holders = sorted(cidrs)
    wait_for("status shows the allocations", lambda: pools.status(pool).get("ipv4", {}).get("allocated") == 2)

    shrink = pools.apply(pool, {**spec, "cidrs": ["100.99.1.0/24"]}, check=False)
    assert shrink.returncode != 0
    assert "held by node" in shrink.stderr and holders[0] in shrink.stderr, shrink.stderr
    assert "cannot be removed or shrunk" in shrink.stderr
    resize = pools.apply(pool, {**spec, "blockSize": {"ipv4": 27}}, check=False)
    assert resize.returncode != 0
    assert "spec.blockSize.ipv4" in resize.stderr and "allocated" in resize.stderr, resize.stderr
    # Removing an unused CIDR, or widening one that holds blocks, is fine.
    pools.apply(pool, {**spec, "cidrs": ["100.99.0.0/24"]})
    pools.apply(pool, {**spec, "cidrs": ["100.99.0.0/23"]})

    # Deletion waits for the nodes, and says so.
    assert FINALIZER in (pools.get(pool)["metadata"].get("finalizers") or [])
    cp.kubectl("delete", "podcidrpool", pool, "--wait=false")
    blocked = wait_for(
        "DeletionBlocked condition",
        lambda: (c := pools.condition(pool, "DeletionBlocked")) and c["status"] == "True" and c,
        timeout=20,
    )
    assert "deletion waits" in blocked["message"] and holders[0] in blocked["message"], blocked
    assert FINALIZER in blocked["message"]
    wait_for("DeletionBlocked event", lambda: node_events(cp, pool, "DeletionBlocked"), timeout=20)
    ready = pools.condition(pool, "Ready")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "Deleting"
    # A pool being deleted hands out nothing new.
    fake_nodes.create("late", wait_ready=False)
    wait_for("NoPoolMatches for a node of a pool being deleted", lambda: node_events(cp, f"{p}-late", "NoPoolMatches"))
    assert not node_cidrs(cp.client, p)[f"{p}-late"][1]
    time.sleep(0.5)
    assert pools.get(pool)["metadata"].get("deletionTimestamp")
    delete_nodes(cp.client, holders)

    def gone() -> bool:
        try:
            cp.client.get(PodCIDRPool, pool)
        except ApiError as e:
            return e.status.code == 404
        return False

    wait_for("pool deleted once its nodes are gone", gone, timeout=20)
    assert op.proc is not None and op.proc.poll() is None
