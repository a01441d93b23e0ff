"""The disruption monitor over real namespaces: a route cut for a known time must show up as that gap (within
100 ms), as broken long-lived connections and failed requests, in the batch in which it happened, and nowhere else."""

from __future__ import annotations

import time
from pathlib import Path

from cni_migrate.actions.verify.monitor import DisruptionMonitor, MonitorSettings
from cni_migrate.analysis.verify import Progress

from .topology import Topology

OUTAGE_S = 1.2


def test_monitor_measures_the_outage_of_a_cut_route(workdir: Path) -> None:
    topo = Topology(["flannel", "flannel", "flannel"], 1, workdir).create()
    try:
        topo.start_all()
        settings = MonitorSettings(
            rate=100.0, request_timeout=0.25, heartbeat_interval=0.05, break_timeout=0.4, peers=2, poll_interval=0.1
        )
        progress_calls: list[float] = []

        def progress() -> Progress:
            progress_calls.append(time.monotonic())
            return Progress(pods_on_cilium=0, pods_total=3, nodes_done=0, nodes_total=3)

        updates = []
        mon = DisruptionMonitor(topo.agents(), settings=settings, progress=progress, on_update=updates.append)
        mon.start()
        try:
            time.sleep(1.0)
            baseline = mon.next_batch("node1")
            c0, c1 = topo.cut_route("node0", "node1")
            time.sleep(OUTAGE_S)
            r0, r1 = topo.restore_route("node0", "node1")
            time.sleep(1.0)
            during = mon.next_batch("quiet")
            time.sleep(0.8)
        finally:
            report = mon.stop()
        truth = (r0 + r1) / 2 - (c0 + c1) / 2
        slack = (r1 - r0) / 2 + (c1 - c0) / 2

        assert baseline.label == "baseline" and baseline.requests > 200
        assert baseline.failed == 0 and baseline.connections_broken == 0 and baseline.gaps == []
        assert baseline.connections == 6  # 3 pods x 2 peers, one held connection each

        assert during.label == "node1"
        affected = {("pod0-0", "pod:pod1-0"), ("pod1-0", "pod:pod0-0")}
        gaps = {(g.source, g.target): g for g in during.gaps}
        assert set(gaps) == affected, during.gaps
        print(f"outage {truth:.3f} s (+-{slack:.3f}); measured", {k: round(g.seconds, 3) for k, g in gaps.items()})
        for g in gaps.values():
            assert not g.ongoing
            assert abs(g.seconds - truth) <= 0.1 + slack, (g, truth)
        assert abs(during.longest_gap_s - truth) <= 0.1 + slack
        # The two affected streams' requests for the outage's length failed, give or take; at the rate the streams
        # achieved (100/s nominal; a loaded machine sends fewer), measured over the batch's 6 streams.
        rate = min(100.0, during.requests / (6 * during.seconds))
        assert 2 * rate * (truth - 0.15) <= during.failed <= 2 * 100 * (truth + 0.1), (rate, during.failed)
        assert during.failed_ratio > 0.01
        assert during.connections_broken == 2  # one per direction; reconnecting attempts that fail do not count
        assert DisruptionMonitor.violations(during, max_failed_ratio=0.01)
        assert DisruptionMonitor.violations(during, max_failed_ratio=None, max_gap_s=truth + 0.2) == []

        quiet = report.batches[-1]
        assert quiet.label == "quiet" and quiet.failed == 0 and quiet.gaps == [] and quiet.connections_broken == 0
        assert [b.label for b in report.batches] == ["baseline", "node1", "quiet"]
        assert during.progress == Progress(pods_on_cilium=0, pods_total=3, nodes_done=0, nodes_total=3)
        assert progress_calls and updates  # progress read and live updates delivered
    finally:
        topo.destroy()
        assert topo.leftovers() == []
