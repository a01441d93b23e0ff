"""The connectivity matrix over real namespaces: real reachability, real latency, real source NAT."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni_migrate.actions.verify.matrix import MatrixRun, run_matrix
from cni_migrate.analysis.verify import MatrixTargets, NodeAddress

from .topology import NODE_PORT, SERVICE_IP, SERVICE_PORT, Topology


def matrix(topo: Topology, targets: MatrixTargets | None = None, timeout: float = 0.6) -> MatrixRun:
    return asyncio.run(run_matrix(topo.agents(), targets, timeout=timeout, concurrency=16))


@pytest.fixture
def flannel3(workdir: Path) -> Iterator[Topology]:
    topo = Topology(["flannel", "flannel", "flannel"], 2, workdir).create()
    try:
        topo.start_all(node_probers=True)
        yield topo
    finally:
        topo.destroy()
        assert topo.leftovers() == []


def test_route_removed_mid_test_breaks_exactly_the_cells_that_need_it(flannel3: Topology) -> None:
    topo = flannel3
    pods = {p.name: p for p in topo.pods}
    before = matrix(topo)
    assert before.report.ok, [f.message for f in before.report.findings]
    cells = before.report.cells
    # 6 pods: 30 ordered pod pairs; 3 host probers x 6 pods.
    assert sum(c.kind == "pod-pod" for c in cells) == 30
    assert sum(c.kind == "node-pod" for c in cells) == 18
    for c in cells:
        assert c.ok and c.latency_ms is not None and 0 < c.latency_ms < 600
        if c.kind == "pod-pod":
            assert c.seen_source == c.source_ip and c.snat is False  # one CNI: no NAT between pods
            assert c.answered_by == c.target

    # node0 "switches CNI": its route to node1's pods goes away.
    topo.cut_route("node0", "node1")
    during = matrix(topo)
    expected: set[tuple[str, str, str]] = set()
    for c in cells:
        src_node, dst_node = c.source_node, c.target_node
        if c.kind == "pod-pod":
            # node0 cannot send to node1's pods, nor answer them (the replies need the same route).
            if {src_node, dst_node} == {"node0", "node1"}:
                expected.add((c.kind, c.source, c.target))
        elif c.kind == "node-pod" and src_node == "node0" and dst_node == "node1":
            # node1's host reaching node0's pods still works: the replies go to its underlay address.
            expected.add((c.kind, c.source, c.target))
    assert len(expected) == 4 + 4 + 2
    assert during.report.broken() == expected
    assert not during.report.ok
    errors = [f for f in during.report.findings if f.severity == "error"]
    assert {f.code for f in errors} == {"path-failed"}
    assert any("node0 → node1: 4" in f.message and "node1 → node0: 4" in f.message for f in errors)
    broken_pod = next(c for c in during.report.cells if c.kind == "pod-pod" and not c.ok)
    assert broken_pod.error  # the real errno or "timeout"
    assert pods[broken_pod.source].node in ("node0", "node1")

    topo.restore_route("node0", "node1")
    after = matrix(topo)
    assert after.report.ok and after.report.broken() == set()


def test_mixed_cni_rolling_migration_reports_snat_as_a_warning(workdir: Path) -> None:
    """The graceful seed's mixed state: Flannel pods (10.244/16) on two nodes, Cilium pods (172.20/16) on two, the
    node as gateway, each side masquerading what leaves its own range. Cross-CNI traffic works, but the server
    sees the client node's address."""
    topo = Topology(["flannel", "flannel", "cilium", "cilium"], 2, workdir, service=True).create()
    try:
        topo.start_all(node_probers=True)
        targets = MatrixTargets(
            service=(SERVICE_IP, SERVICE_PORT),
            node_port=NODE_PORT,
            nodes=tuple(NodeAddress(n.name, n.underlay_ip) for n in topo.nodes),
            ping=True,
        )
        run = matrix(topo, targets, timeout=1.0)
        report = run.report
        assert report.ok, [f.message for f in report.findings if f.severity == "error"]
        assert all(c.ok for c in report.cells)
        underlay = {n.name: n.underlay_ip for n in topo.nodes}
        for c in report.cells:
            if c.kind != "pod-pod":
                continue
            if c.source_cni == c.target_cni:
                assert c.snat is False and c.seen_source == c.source_ip
            else:
                assert c.snat is True and c.seen_source == underlay[c.source_node], c
        pairs = {(p.source_cni, p.target_cni): p for p in report.pairs}
        assert set(pairs) == {
            ("flannel", "flannel"),
            ("flannel", "cilium"),
            ("cilium", "flannel"),
            ("cilium", "cilium"),
        }
        assert pairs[("flannel", "cilium")].snat == pairs[("flannel", "cilium")].total == 16
        assert pairs[("cilium", "flannel")].snat == 16
        assert pairs[("flannel", "flannel")].snat == pairs[("cilium", "cilium")].snat == 0
        warnings = [f for f in report.findings if f.code == "snat-between-pods"]
        assert len(warnings) == 2 and all(f.severity == "warning" for f in warnings)
        assert "192.168.100.10" in next(w.message for w in warnings if "from flannel pods" in w.message)
        kinds = {s.kind: s for s in report.summary}
        # The seed's own proof: ICMP echo between Flannel and Cilium pods, both ways, answered.
        assert kinds["pod-ping"].ok == kinds["pod-ping"].total == 56
        cross_pings = [c for c in report.cells if c.kind == "pod-ping" and c.source_cni != c.target_cni]
        assert len(cross_pings) == 32 and all(c.ok and c.latency_ms for c in cross_pings)
        assert kinds["pod-service"].ok == 8 and kinds["pod-nodeport"].ok == 32 and kinds["node-pod"].ok == 32
        # The Service really balanced: answers came from more than one backend.
        assert len({c.answered_by for c in report.cells if c.kind in ("pod-service", "pod-nodeport")}) > 1
    finally:
        topo.destroy()
        assert topo.leftovers() == []
