"""Crash safety and single-writer guarantees of the IPAM operator, on the real control plane.

* SIGKILL, again and again, while nodes come and go (some re-created under the same name): afterwards no two
  nodes share or overlap a CIDR, none is outside its pool, no node's CIDR ever changed (every CIDR list seen per
  node UID is recorded from a watch), and every block of the pool can be handed out again.
* Two replicas at once: only the Lease holder writes; a leader paused past its lease (SIGSTOP) does not write
  after it resumes; the API server's managedFields name exactly one writer per node.
"""

from __future__ import annotations

import ipaddress
import random
import threading
import time

import pytest
from lightkube import ApiError, Client
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Node

from cni_migrate_testbed import TEST_LABEL, FakeNodes

from .ipam_helpers import (
    LEASE_NAME,
    CidrRecorder,
    IpamRelease,
    OperatorProcess,
    Operators,
    Pools,
    assert_disjoint,
    delete_nodes,
    node_cidrs,
    selector_for,
    wait_for,
)

pytestmark = pytest.mark.integration

V4, V6 = "100.93.0.0/19", "fd7a:93::/64"
CAPACITY = 32  # /24 blocks in the /19


def in_pool(cidrs: list[str]) -> bool:
    if len(cidrs) != 2:
        return False
    v4, v6 = (ipaddress.ip_network(c) for c in cidrs)
    return (
        v4.prefixlen == 24
        and v4.subnet_of(ipaddress.ip_network(V4))  # type: ignore[arg-type]
        and v6.prefixlen == 72
        and v6.subnet_of(ipaddress.ip_network(V6))  # type: ignore[arg-type]
    )


class Churn(threading.Thread):
    """Creates and deletes this test's nodes continuously (re-using names, so some come back with a new UID)."""

    def __init__(self, fake_nodes: FakeNodes, client: Client, live_max: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.fake_nodes = fake_nodes
        self.client = client
        self.live: set[str] = set()
        self.live_max = live_max
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.created = 0
        self.deleted = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if len(self.live) < self.live_max and (len(self.live) < 6 or self.rng.random() < 0.55):
                    suffix = f"c{self.rng.randrange(60)}"
                    name = f"{self.fake_nodes.prefix}-{suffix}"
                    if name not in self.live:
                        self.fake_nodes.create(suffix, wait_ready=False)
                        self.live.add(name)
                        self.created += 1
                elif self.live:
                    name = self.rng.choice(sorted(self.live))
                    self.client.delete(Node, name)
                    self.live.discard(name)
                    self.deleted += 1
            except ApiError as e:  # e.g. re-creating a name whose deletion is still in progress
                self.errors.append(str(e))
            time.sleep(self.rng.uniform(0.02, 0.15))


def test_sigkill_chaos_no_duplicates_no_changes_every_block_reusable(
    ipam_release: IpamRelease, operators: Operators, pools: Pools, fake_nodes: FakeNodes, name_prefix: str
) -> None:
    cp = ipam_release.cp
    p = name_prefix
    pool = f"{p}-chaos"
    recorder = CidrRecorder(cp, p).start()
    fast_lease = ("--lease-duration=2", "--renew-deadline=1.5", "--retry-period=0.25")
    first = operators.start(*fast_lease, webhook=True)
    pools.apply(pool, {"cidrs": [V4, V6], "blockSize": {"ipv4": 24, "ipv6": 72}, "nodeSelector": selector_for(p)})
    first.kill()
    churn_client = cp.new_client()
    churn = Churn(fake_nodes, churn_client, live_max=CAPACITY - 6, seed=len(p))
    churn.start()
    rng = random.Random(7)
    kills = 0
    holder = ""
    try:
        for i in range(12):
            # Mostly the same identity (a container restarting in its pod takes its Lease back at once); every
            # third round a new replica, which must first wait for the dead holder's Lease to expire, and now and
            # then a second replica contending at the same time.
            identity = "chaos-same" if i % 3 != 2 else f"chaos-new{i}"
            op = operators.start(*fast_lease, identity=identity, ready=False)
            extra: OperatorProcess | None = operators.start(*fast_lease, ready=False) if i % 4 == 1 else None
            # Let it write for a while: after the dead holder's Lease expired (2 s) if it is not the same identity.
            time.sleep(rng.uniform(1.0, 3.0) + (0.0 if identity == holder else 3.5))
            holder = lease_holder(ipam_release) or holder
            op.kill()
            if extra is not None:
                extra.kill()
            kills += 1
            time.sleep(rng.uniform(0.0, 1.0))  # nodes keep changing while no operator runs
    finally:
        churn.stop.set()
        churn.join(10)
        churn_client.close()
    assert churn.created > 40 and churn.deleted > 15, (churn.created, churn.deleted, churn.errors[:3])

    final = operators.start(identity="chaos-final")
    live = set(churn.live)

    def settled() -> dict[str, list[str]] | None:
        nodes = node_cidrs(cp.client, p)
        if set(nodes) != live or not all(c for _u, c in nodes.values()):
            return None
        return {n: c for n, (_u, c) in nodes.items()}

    cidrs = wait_for("every live node allocated after the chaos", settled, timeout=60)
    assert_disjoint(cidrs)
    outside = {n: c for n, c in cidrs.items() if not in_pool(c)}
    assert not outside, f"CIDRs outside the pool: {outside}"
    time.sleep(1.0)
    assert not recorder.violations, recorder.violations
    audits = {op.audit_path: op for op in operators.started}  # restarts with one identity share a file
    writes = [e for op in audits.values() for e in op.audit() if e["event"] == "written"]
    leaders = {e["identity"] for e in writes}
    assert len(writes) > 60 and len(leaders) >= 3, (len(writes), leaders)
    written_uids = {e["uid"] for e in writes}
    assert written_uids <= set(recorder.seen) | set(recorder.names), "a write the watch never showed"
    print(f"recorder saw {len(recorder.seen)} nodes with CIDRs; {len(written_uids)} written by the operators")

    # Every freed block is reusable: with all nodes gone, the pool's full capacity is handed out again.
    delete_nodes(cp.client, sorted(live))
    wait_for("all blocks free", lambda: pools.status(pool).get("ipv4", {}).get("allocated") == 0, timeout=30)
    specs = [fake_nodes.spec(f"full{i}") for i in range(CAPACITY)]
    fake_nodes.create_specs(specs, wait_ready=False, workers=16)

    def full() -> dict[str, list[str]] | None:
        nodes = {n: c for n, (_u, c) in node_cidrs(cp.client, p).items() if n.startswith(f"{p}-full")}
        return nodes if len(nodes) == CAPACITY and all(nodes.values()) else None

    cidrs = wait_for("the whole pool allocated", full, timeout=60)
    all_v4 = {str(n) for n in ipaddress.ip_network(V4).subnets(new_prefix=24)}
    assert {c[0] for c in cidrs.values()} == all_v4
    assert_disjoint(cidrs)
    recorder.stop()
    assert not recorder.violations, recorder.violations
    assert final.proc is not None and final.proc.poll() is None, final.tail()
    print(f"chaos: {kills} kill rounds, {churn.created} nodes created, {churn.deleted} deleted, {len(writes)} writes")


def writer_of(node: Node) -> set[str]:
    """Field managers that own spec.podCIDR of a node (from managedFields)."""
    out = set()
    md = node.metadata
    for entry in (md.managedFields if md is not None else None) or []:
        fields = entry.fieldsV1 or {}
        if "f:podCIDR" in (fields.get("f:spec") or {}):
            out.add(entry.manager or "")
    return out


def lease_holder(ipam_release: IpamRelease) -> str:
    try:
        lease = ipam_release.cp.client.get(Lease, LEASE_NAME, namespace=ipam_release.namespace)
    except ApiError:
        return ""
    return (lease.spec.holderIdentity if lease.spec is not None else None) or ""


def test_two_replicas_only_the_leader_writes_and_a_paused_leader_is_fenced(
    ipam_release: IpamRelease, operators: Operators, pools: Pools, fake_nodes: FakeNodes, name_prefix: str
) -> None:
    cp = ipam_release.cp
    p = name_prefix
    a = operators.start(identity="replica-a", webhook=True)
    wait_for("replica-a leads", lambda: lease_holder(ipam_release) == "replica-a", timeout=20)
    b = operators.start(identity="replica-b")
    assert b.metric("cni_migrate_ipam_leader") == 0 and b.metric("cni_migrate_ipam_ready") == 1
    pool = f"{p}-two"
    pools.apply(pool, {"cidrs": ["100.94.0.0/16"], "blockSize": {"ipv4": 26}, "nodeSelector": selector_for(p)})

    def allocated(count: int) -> dict[str, list[str]] | None:
        nodes = node_cidrs(cp.client, p)
        return (
            {n: c for n, (_u, c) in nodes.items()}
            if len(nodes) == count and all(c for _u, c in nodes.values())
            else None
        )

    # Phase 1: both run, A leads: every write is A's.
    fake_nodes.create_specs([fake_nodes.spec(f"one{i}") for i in range(120)], wait_ready=False, workers=16)
    wait_for("phase 1 allocated", lambda: allocated(120), timeout=60)
    assert not [e for e in b.audit() if e["event"] == "write"], "the standby wrote"

    # Phase 2: pause A in the middle of a burst, long enough for its Lease to expire; B takes over.
    burst = threading.Thread(
        target=lambda: fake_nodes.create_specs([fake_nodes.spec(f"two{i}") for i in range(150)], wait_ready=False),
        daemon=True,
    )
    burst.start()
    time.sleep(0.3)
    a.signal(19)  # SIGSTOP
    paused_at = time.time()
    wait_for("replica-b leads", lambda: lease_holder(ipam_release) == "replica-b", timeout=20)
    burst.join(120)
    wait_for("phase 2 allocated", lambda: allocated(270), timeout=60)
    a.signal(18)  # SIGCONT: A wakes up believing nothing happened
    resumed_at = time.time()
    wait_for("replica-a knows it lost", lambda: a.metric("cni_migrate_ipam_leader") == 0, timeout=10)
    fake_nodes.create_specs([fake_nodes.spec(f"three{i}") for i in range(50)], wait_ready=False)
    wait_for("phase 3 allocated", lambda: allocated(320), timeout=60)
    late = [e for e in a.audit() if e["event"] == "write" and e["t"] > paused_at]
    assert not late, f"replica-a wrote after it was paused: {late[:3]}"

    # Phase 3: B dies (SIGKILL); A takes the Lease once it expires and serves new nodes.
    b.kill()
    wait_for("replica-a leads again", lambda: lease_holder(ipam_release) == "replica-a", timeout=20)
    fake_nodes.create_specs([fake_nodes.spec(f"four{i}") for i in range(30)], wait_ready=False)
    cidrs = wait_for("phase 4 allocated", lambda: allocated(350), timeout=60)
    assert_disjoint(cidrs)

    # The API server's record: one writer per node, and the right one per phase.
    managers: dict[str, set[str]] = {}
    for node in cp.client.list(Node, labels={TEST_LABEL: p}):
        assert node.metadata is not None and node.metadata.name is not None
        managers[node.metadata.name] = writer_of(node)
    assert all(len(m) == 1 for m in managers.values()), {n: m for n, m in managers.items() if len(m) != 1}
    by_phase = {
        ph: {next(iter(m)) for n, m in managers.items() if n.startswith(f"{p}-{ph}")} for ph in ("one", "three", "four")
    }
    assert by_phase == {"one": {a.field_manager}, "three": {b.field_manager}, "four": {a.field_manager}}
    assert {next(iter(m)) for n, m in managers.items() if n.startswith(f"{p}-two")} <= {
        a.field_manager,
        b.field_manager,
    }

    # The operators' own audit: every node written once, and never by two replicas at overlapping times.
    # (A's writes in flight when it was paused landed, but it never saw their answers: its audit lacks them. Those
    # are writes A sent before the pause, at most its writes in flight: --qps 200 gives 100.)
    written = [e for op in (a, b) for e in op.audit() if e["event"] == "written"]
    nodes_written = [e["node"] for e in written]
    assert len(nodes_written) == len(set(nodes_written))
    unanswered = set(managers) - set(nodes_written)
    sent_before_pause = {e["node"] for e in a.audit() if e["event"] == "write" and e["t"] < paused_at}
    assert unanswered <= sent_before_pause, unanswered - sent_before_pause
    assert len(unanswered) <= 100 and all(managers[n] == {a.field_manager} for n in unanswered)
    for e in written:
        writer = a if e["identity"] == a.identity else b
        assert managers[e["node"]] == {writer.field_manager}, (e, managers[e["node"]])
    b_times = [e["t"] for e in b.audit() if e["event"] == "write"]
    a_times = [e["t"] for e in a.audit() if e["event"] == "write"]
    assert b_times and a_times
    assert max(t for t in a_times if t < resumed_at) < min(b_times)  # A's phase-1/2 writes all before B's first
    assert max(b_times) < min(t for t in a_times if t > resumed_at)  # and B's all before A's comeback
