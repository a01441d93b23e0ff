"""Pure analysis of verify/monitor: probe plans, cells, findings, per-batch accounting and limits."""

from __future__ import annotations

import pytest

from cni_migrate.analysis.verify import (
    BatchAccumulator,
    Endpoint,
    MatrixTargets,
    NodeAddress,
    analyze_matrix,
    cells_from_results,
    classify_cni,
    plan_monitor,
    plan_probes,
    threshold_violations,
)

PODS = [
    Endpoint("a", "n1", "10.244.1.5", 7310, cni="flannel"),
    Endpoint("b", "n2", "10.244.2.5", 7310, cni="flannel"),
    Endpoint("c", "n3", "172.20.3.5", 7310, cni="cilium"),
]
HOST = Endpoint("host-n1", "n1", "192.168.0.1", 7312, role="node")
TARGETS = MatrixTargets(
    service=("10.96.0.10", 7310),
    node_port=30100,
    nodes=(NodeAddress("n1", "192.168.0.1"), NodeAddress("n2", "192.168.0.2"), NodeAddress("n3", "192.168.0.3")),
    apiserver=("10.96.0.1", 443),
    dns_names=("kubernetes.default.svc",),
)


def test_plan_covers_every_pair_and_every_extra_path() -> None:
    plan = plan_probes([*PODS, HOST], TARGETS)
    a = plan["a"]
    assert [p.target for p in a if p.kind == "pod-pod"] == ["b", "c"]
    assert {p.kind for p in a} == {"pod-pod", "pod-service", "pod-nodeport", "pod-apiserver", "pod-dns"}
    assert [p.host for p in a if p.kind == "pod-nodeport"] == ["192.168.0.1", "192.168.0.2", "192.168.0.3"]
    assert next(p for p in a if p.kind == "pod-apiserver").probe == "tls"
    assert [p.target for p in plan["host-n1"]] == ["a", "b", "c"] and all(p.kind == "node-pod" for p in plan["host-n1"])
    assert len({p.id for p in a}) == len(a)  # ids unique per prober
    wire = next(p for p in a if p.kind == "pod-dns").wire()
    assert wire == {"id": "dns:kubernetes.default.svc", "kind": "dns", "host": "kubernetes.default.svc"}


def _ok(pid: str, seen: str, pod: str = "x") -> dict:
    return {"id": pid, "ok": True, "latency_ms": 1.5, "seen_source": seen, "server": {"pod": pod}}


def test_snat_is_a_warning_and_failures_are_errors() -> None:
    plan = plan_probes(PODS)
    cells = []
    # a -> b same CNI, no NAT; a -> c cross CNI, server saw a's node.
    cells += cells_from_results(PODS[0], plan["a"], [_ok("pp:b", "10.244.1.5", "b"), _ok("pp:c", "192.168.0.1", "c")])
    cells += cells_from_results(PODS[1], plan["b"], [_ok("pp:a", "10.244.2.5"), {"id": "pp:c", "ok": False,
                                                                                  "error": "timeout"}])  # fmt: skip
    cells += cells_from_results(PODS[2], plan["c"], "HTTP 503: no endpoints")
    report = analyze_matrix(cells, unprobed_nodes={"n4": "tainted x:NoSchedule"})
    assert not report.ok
    by = {(c.source, c.target): c for c in report.cells}
    assert by[("a", "b")].snat is False and by[("a", "c")].snat is True
    assert by[("b", "c")].error == "timeout"
    assert by[("c", "a")].error == "prober unreachable: HTTP 503: no endpoints"
    codes = sorted((f.severity, f.code) for f in report.findings)
    assert codes == [("error", "path-failed"), ("error", "prober-unreachable"), ("warning", "node-not-probed"),
                     ("warning", "snat-between-pods")]  # fmt: skip
    path = next(f for f in report.findings if f.code == "path-failed")
    assert "n2 → n3: 1 (timeout)" in path.message and path.cells == 1
    snat = next(f for f in report.findings if f.code == "snat-between-pods")
    assert "from flannel pods to cilium pods" in snat.message and "192.168.0.1" in snat.message
    pair = next(p for p in report.pairs if (p.source_cni, p.target_cni) == ("flannel", "cilium"))
    assert (pair.total, pair.ok, pair.snat) == (2, 1, 1)
    assert report.broken() == {("pod-pod", "b", "c"), ("pod-pod", "c", "a"), ("pod-pod", "c", "b")}


def test_a_missing_answer_is_a_failed_cell_not_a_missing_one() -> None:
    plan = plan_probes(PODS[:2])
    cells = cells_from_results(PODS[0], plan["a"], [])
    assert len(cells) == 1 and not cells[0].ok and cells[0].error == "no answer for this probe"


def test_all_good_matrix_is_ok_with_latency_percentiles() -> None:
    plan = plan_probes(PODS[:2])
    cells = cells_from_results(PODS[0], plan["a"], [_ok("pp:b", "10.244.1.5")])
    cells += cells_from_results(PODS[1], plan["b"], [{**_ok("pp:a", "::ffff:10.244.2.5"), "latency_ms": 3.0}])
    report = analyze_matrix(cells)
    assert report.ok and report.findings == []
    assert all(c.snat is False for c in cells)  # an IPv4-mapped address is the same address
    s = report.summary[0]
    assert (s.total, s.ok, s.max_ms) == (2, 2, 3.0) and s.p50_ms is not None and 1.5 <= s.p50_ms <= 3.0


@pytest.mark.parametrize(
    ("ip", "expected"),
    [("172.20.3.5", "cilium"), ("10.244.1.5", "flannel"), ("", ""), ("nonsense", ""), ("fd00::1", "flannel")],
)
def test_classify_cni(ip: str, expected: str) -> None:
    assert classify_cni(ip, ["172.20.0.0/16"], "flannel") == expected


def test_monitor_plan_watches_the_next_nodes_and_the_service() -> None:
    plan = plan_monitor(PODS, ("10.96.0.10", 7310), peers=1)
    assert [p.target for p in plan["a"].streams] == ["b", "service"]
    assert [p.target for p in plan["c"].held] == ["a", "service"]  # wraps around
    assert plan_monitor(PODS[:1], None)["a"].streams == ()


def _stream(sid: str, ok: int, failed: int, gaps: list[float], outage: float | None = None) -> dict:
    return {"id": sid, "sent": ok + failed, "ok": ok, "failed": failed, "gaps": gaps, "outage_for": outage}


def test_batches_count_deltas_gaps_and_ongoing_outages() -> None:
    acc = BatchAccumulator("baseline", now=0.0)
    acc.ingest("a", {"streams": [_stream("pod:b", 100, 0, [])], "held": [{"id": "pod:b", "broken": 0}]})
    base = acc.next_batch("batch-1", now=10.0)
    assert (base.requests, base.failed, base.connections, base.gaps) == (100, 0, 1, [])
    acc.ingest("a", {"streams": [_stream("pod:b", 150, 20, [], outage=0.4)], "held": [{"id": "pod:b", "broken": 1}]})
    snap = acc.snapshot(now=12.0)
    assert (snap.requests, snap.failed, snap.connections_broken) == (70, 20, 1)
    assert snap.longest_gap_s == 0.4 and snap.gaps[0].ongoing
    acc.ingest("a", {"streams": [_stream("pod:b", 200, 30, [0.9])], "held": [{"id": "pod:b", "broken": 1}]})
    b1 = acc.next_batch("batch-2", now=20.0)
    assert (b1.requests, b1.failed, b1.connections_broken) == (130, 30, 1)
    assert [(g.seconds, g.ongoing) for g in b1.gaps] == [(0.9, False)]
    assert b1.failed_ratio == pytest.approx(30 / 130, abs=1e-6) and b1.seconds == 10.0
    acc.ingest("a", {"streams": [_stream("pod:b", 300, 30, [0.9])], "held": [{"id": "pod:b", "broken": 1}]})
    b2 = acc.next_batch("end", now=30.0)
    assert (b2.requests, b2.failed, b2.connections_broken, b2.gaps) == (100, 0, 0, [])
    assert [b.label for b in acc.done] == ["baseline", "batch-1", "batch-2"]


def test_threshold_violations() -> None:
    acc = BatchAccumulator("b", now=0.0)
    acc.ingest("a", {"streams": [_stream("s", 98, 2, [1.5])], "held": [{"id": "s", "broken": 3}]})
    stats = acc.snapshot(now=1.0)
    assert threshold_violations(stats, max_failed_ratio=0.05) == []
    reasons = threshold_violations(stats, max_failed_ratio=0.01, max_broken=2, max_gap_s=1.0)
    assert len(reasons) == 3
    assert "2 of 100 requests failed (2.00% > 1.00%)" in reasons[0]
    assert "3 long-lived connections broke" in reasons[1] and "a → s got no answer for 1.50 s" in reasons[2]
    assert threshold_violations(stats, max_failed_ratio=None) == []
