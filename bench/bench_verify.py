#!/usr/bin/env python3
"""The connectivity matrix over 100 node namespaces, and the monitor's cost per request (needs root: it builds the
network namespaces of tests/netns_verify/topology.py and removes them afterwards).

* matrix: 100 nodes with one probe pod each (9,900 pod → pod pairs over veth pairs, a bridge and routes between
  nodes), each pod a separate prober process. Wall time of ``run_matrix`` and the CPU seconds the 100 probers spent
  (from /proc, user + system), per probe. Target: under 10 s.
* monitor: the same probers stream 1,000 requests/s in total (10/s from each pod to the pod of the next node, a new
  connection each, and one held connection with a heartbeat); CPU of the probers per request over a window.
* reference, measured in the same run: one asyncio process doing the same request (connect, one line each way,
  close) on loopback, sequentially: wall and CPU per request. Ratios are against it.

Prints one JSON line per measurement. ``--nodes`` to try other sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from _harness import ROOT

sys.path.insert(0, str(ROOT / "tests"))

from cni_migrate.actions.verify.matrix import run_matrix
from cni_migrate.actions.verify.monitor import DisruptionMonitor, MonitorSettings
from cni_migrate.actions.verify.prober import Identity, ProbeServer, tcp_identity
from netns_verify.topology import Topology

TICKS = os.sysconf("SC_CLK_TCK")
# Per probe. With 2 s, a few hundred of the 9,900 first connections time out on this 2-core machine shared with other
# jobs (a SYN retransmitted after 1 s and again after 3 s); with 5 s every cell answers. Reported as measured.
PROBE_TIMEOUT = 5.0


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def reference(requests: int) -> tuple[float, float]:
    """(wall, cpu) seconds per request of connect + one line each way + close, on loopback, one process."""

    async def main() -> float:
        server = ProbeServer(Identity("ref", "ref", "127.0.0.1"))
        port = await server.start("127.0.0.1", 0)
        t0 = time.perf_counter()
        for _ in range(requests):
            await tcp_identity("127.0.0.1", port, "r", 2.0)
        wall = time.perf_counter() - t0
        await server.close()
        return wall

    c0 = time.process_time()
    wall = asyncio.run(main())
    return wall / requests, (time.process_time() - c0) / requests


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--monitor-seconds", type=float, default=10.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print(json.dumps({"bench": "verify", "skipped": "needs root for network namespaces"}))
        return 0
    ref_wall, ref_cpu = reference(2000)
    with tempfile.TemporaryDirectory(prefix="bv") as tmp:
        t0 = time.perf_counter()
        topo = Topology(["flannel"] * args.nodes, 1, Path(tmp)).create()
        try:
            topo.start_all(timeout=300)
            setup_s = time.perf_counter() - t0
            pids = [p.process.pid for p in topo.probers.values()]
            agents = topo.agents()
            asyncio.run(run_matrix(agents[:2], timeout=2.0))  # warm-up of two probers' code paths
            cpu0, self0 = cpu_seconds(pids), resource.getrusage(resource.RUSAGE_SELF)
            run = asyncio.run(run_matrix(agents, timeout=PROBE_TIMEOUT, concurrency=16))
            cpu1, self1 = cpu_seconds(pids), resource.getrusage(resource.RUSAGE_SELF)
            cells = len(run.report.cells)
            prober_cpu = cpu1 - cpu0
            controller_cpu = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
            print(json.dumps({
                "bench": "verify_matrix",
                "nodes": args.nodes,
                "cells": cells,
                "failed_cells": sum(not c.ok for c in run.report.cells),
                "probe_timeout_s": PROBE_TIMEOUT,
                "latency_p50_ms": run.report.summary[0].p50_ms,
                "latency_p99_ms": run.report.summary[0].p99_ms,
                "wall_s": round(run.seconds, 3),
                "target_s": 10.0,
                "within_target": run.seconds < 10.0,
                "prober_cpu_s": round(prober_cpu, 3),
                "prober_cpu_per_probe_us": round(prober_cpu / cells * 1e6, 1),
                "controller_cpu_s": round(controller_cpu, 3),
                "slowest_prober_s": round(max(run.prober_seconds.values()), 3),
                "reference_request_wall_us": round(ref_wall * 1e6, 1),
                "reference_request_cpu_us": round(ref_cpu * 1e6, 1),
                "ratio_prober_cpu_per_probe_to_reference": round(prober_cpu / cells / ref_cpu, 2),
                "setup_s": round(setup_s, 1),
                "cpus": os.cpu_count(),
            }), flush=True)  # fmt: skip

            rate = 1000.0 / args.nodes  # one stream target per pod: 1,000 requests/s in total
            mon = DisruptionMonitor(agents, settings=MonitorSettings(rate=rate, peers=1, poll_interval=1.0))
            mon.start()
            time.sleep(1.0)
            mon.next_batch("measured")
            c0 = cpu_seconds(pids)
            time.sleep(args.monitor_seconds)
            stats = mon.next_batch("after")
            c1 = cpu_seconds(pids)
            mon.stop()
            per_request = (c1 - c0) / max(1, stats.requests)
            print(json.dumps({
                "bench": "verify_monitor",
                "nodes": args.nodes,
                "requests_per_s": round(stats.requests / stats.seconds, 1),
                "requests": stats.requests,
                "failed": stats.failed,
                "held_connections": stats.connections,
                "held_heartbeats_per_s": round(stats.connections / 0.2, 1),
                "prober_cpu_s": round(c1 - c0, 3),
                "prober_cpu_per_request_us": round(per_request * 1e6, 1),
                "prober_cpu_share_of_one_core": round((c1 - c0) / stats.seconds, 3),
                "reference_request_cpu_us": round(ref_cpu * 1e6, 1),
                "ratio_to_reference": round(per_request / ref_cpu, 2),
            }), flush=True)  # fmt: skip
        finally:
            topo.destroy()
            left = topo.leftovers()
    if left:
        print(json.dumps({"bench": "verify", "leftover_namespaces": left}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
