"""Admission of PodCIDRPools through the chart's ValidatingWebhookConfiguration, served by the operator: bad pools
are refused with clear messages; a pool in use cannot shrink, change its block size, or disappear."""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from lightkube import ApiError
from lightkube.resources.coordination_v1 import Lease

from cni_migrate_testbed import FakeNodes

from .ipam_helpers import (
    ADMISSION_LEASE_NAME,
    FINALIZER,
    IpamRelease,
    Operators,
    PodCIDRPool,
    Pools,
    delete_nodes,
    free_port,
    node_cidrs,
    node_events,
    pool_doc,
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


# ------------------------------------------------------------------------------------- concurrent admissions


def _create_at_once(ipam_release: IpamRelease, docs: list[dict[str, Any]]) -> list[str | None]:
    """Create the pools in parallel, released by one barrier; per pool None (created) or the refusal."""
    barrier = threading.Barrier(len(docs))

    def one(doc: dict[str, Any]) -> str | None:
        obj = PodCIDRPool.from_dict(doc)
        barrier.wait()
        try:
            ipam_release.cp.client.create(obj)
        except ApiError as e:
            return str(e.status.message)
        return None

    with ThreadPoolExecutor(len(docs)) as ex:
        return list(ex.map(one, docs))


def test_overlapping_pools_created_at_the_same_instant_are_not_both_admitted(
    ipam_release: IpamRelease, operators: Operators, pools: Pools, name_prefix: str
) -> None:
    """Through the API server: the second pool reaches the webhook before the first reaches its informer, so only
    the admission ledger can refuse it."""
    operators.start(webhook=True)
    p = name_prefix
    for i in range(12):
        names = [f"{p}-race{i}-a", f"{p}-race{i}-b"]
        pools.names.extend(names)
        docs = [
            pool_doc(names[0], {"cidrs": [f"100.80.{16 * i}.0/20"]}),
            pool_doc(names[1], {"cidrs": [f"100.80.{16 * i + 8}.0/21"]}),
        ]
        outcomes = _create_at_once(ipam_release, docs)
        assert sorted(o is None for o in outcomes) == [False, True], f"round {i}: {outcomes}"
        refused = next(o for o in outcomes if o is not None)
        assert "overlaps" in refused and "PodCIDRPool" in refused, refused
        created = [n for n, o in zip(names, outcomes, strict=True) if o is None]
        assert [pools.get(n)["metadata"]["name"] for n in created] == created
    # Pools that do not overlap are all admitted, however many arrive at once.
    docs = [pool_doc(f"{p}-apart{j}", {"cidrs": [f"100.81.{16 * j}.0/20"]}) for j in range(6)]
    pools.names.extend(d["metadata"]["name"] for d in docs)
    assert _create_at_once(ipam_release, docs) == [None] * 6


def _review(port: int, ca: Path, doc: dict[str, Any], uid: str) -> dict[str, Any]:
    request = {"uid": uid, "operation": "CREATE", "name": doc["metadata"]["name"], "object": doc}
    body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}).encode()
    ctx = ssl.create_default_context(cafile=str(ca))
    req = urllib.request.Request(
        f"https://127.0.0.1:{port}/validate-podcidrpool", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=15, context=ctx) as resp:
        answer: dict[str, Any] = json.loads(resp.read())["response"]
        return answer


def test_two_webhook_replicas_never_both_admit_overlapping_pools(
    ipam_release: IpamRelease, operators: Operators, name_prefix: str
) -> None:
    """The API server may send two admissions to two replicas at the same instant; each replica's informer has seen
    neither pool. The ledger Lease lets exactly one through."""
    ports = [free_port(), free_port()]
    for port in ports:
        operators.start(webhook=True, webhook_port=port)
    ca = ipam_release.workdir / "ca.crt"
    p = name_prefix
    for i in range(10):
        docs = [
            pool_doc(f"{p}-twin{i}-a", {"cidrs": [f"100.82.{16 * i}.0/20"]}),
            pool_doc(f"{p}-twin{i}-b", {"cidrs": [f"100.82.{16 * i}.0/21", f"fd7a:82:{i}::/48"]}),
        ]
        for doc, uid in zip(docs, ("a", "b"), strict=True):
            doc["metadata"]["uid"] = f"{uid}-{i}-{os.urandom(3).hex()}"
        barrier = threading.Barrier(2)

        def send(k: int, docs: list[dict[str, Any]] = docs, barrier: threading.Barrier = barrier) -> dict[str, Any]:
            barrier.wait()
            return _review(ports[k], ca, docs[k], f"review-{k}")

        with ThreadPoolExecutor(2) as ex:
            answers = list(ex.map(send, [0, 1]))
        assert sorted(a["allowed"] for a in answers) == [False, True], f"round {i}: {answers}"
        refused = next(a for a in answers if not a["allowed"])["status"]["message"]
        assert "overlaps" in refused and "maybe not yet seen by this replica" in refused, refused
    ledger = ipam_release.cp.client.get(Lease, ADMISSION_LEASE_NAME, namespace=ipam_release.namespace)
    recorded = json.loads((ledger.metadata.annotations or {})["ipam.cni-migrate.io/admitted-pools"])
    assert len([n for n in recorded if "-twin" in n]) == 10  # one admitted per round, none of the refused
