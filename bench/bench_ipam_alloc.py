"""Allocation throughput of the pure IPAM allocator (cni_migrate.analysis.ipam) vs naive references, as JSON.

For 5,000 and 50,000 nodes (a 10.0.0.0/8 pool cut into /24 blocks: 65,536 blocks), in one process and one run:

* ``cidrset``: ``CIDRSet.allocate_next()`` N times (the bare block allocator);
* ``state``: ``IPAMState(pools, nodes).plan()`` -- selection, occupy-before-allocate, bookkeeping -- with one pool,
  and with 20 selector pools (one per rack);
* ``restore``: ``occupy_existing()`` for N nodes that already have a CIDR (operator start-up);
* ``churn``: after N allocations, delete 10 % of the nodes at random and allocate for as many new ones;
* ``ipv6``: ``CIDRSet`` over fd00::/32 with /64 blocks (2**32 blocks; a bitmap would need 512 MiB);
* references: ``subnets``: enumerate ``ip_network.subnets(new_prefix=24)`` and hand them out in order (the obvious
  Python allocator; it cannot release), ``list-scan``: a list of flags scanned with ``list.index(False)`` from the
  start for every allocation (first fit).

Usage: ``python bench/bench_ipam_alloc.py [--nodes 5000 50000] [--repeat 3]``. Times are medians of the process's
CPU time (``time.process_time``), in seconds, so that other load on the machine does not skew the comparison.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import platform
import random
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable

from cni_migrate.analysis.ipam import CIDRSet, IPAMState, NodeInfo, make_pool

POOL = "10.0.0.0/8"
BLOCK = 24


def timed(fn: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        runs.append(time.process_time() - t0)
    return statistics.median(runs)


def ours_cidrset(n: int) -> None:
    s = CIDRSet(POOL, BLOCK)
    for _ in range(n):
        s.allocate_next()


def ours_ipv6(n: int) -> None:
    s = CIDRSet("fd00::/32", 64)
    for _ in range(n):
        s.allocate_next()


def ours_state(n: int, racks: int) -> None:
    if racks == 1:
        pools = [make_pool("all", [POOL])]
    else:
        pools = [
            make_pool(f"rack{r}", [f"10.{r}.0.0/16"], node_selector={"matchLabels": {"rack": str(r)}})
            for r in range(racks)
        ]
    nodes = [NodeInfo(f"node-{i:06d}", {"rack": str(i % racks)}) for i in range(n)]
    plan = IPAMState(pools, nodes).plan()
    assert len(plan) == n


def restore_input(n: int) -> tuple[list[object], list[NodeInfo]]:
    base = int(ipaddress.ip_address("10.0.0.0"))
    nodes = [NodeInfo(f"node-{i:06d}", spec_cidrs=(f"{ipaddress.ip_address(base + (i << 8))}/24",)) for i in range(n)]
    return [make_pool("all", [POOL])], nodes


def ours_restore(pools: list[object], nodes: list[NodeInfo]) -> None:
    state = IPAMState(pools, nodes)  # type: ignore[arg-type]
    assert state.occupy_existing() == []


def ours_churn(n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    state = IPAMState([make_pool("all", [POOL])], [NodeInfo(f"node-{i:06d}") for i in range(n)])
    state.plan()
    gone = rng.sample(state.node_names, n // 10)
    for name in gone:
        state.release(name)
    for i in range(n // 10):
        state.upsert_node(NodeInfo(f"new-{i:06d}"))
        state.assign(f"new-{i:06d}")


def ref_subnets(n: int) -> None:
    free = deque(ipaddress.ip_network(POOL).subnets(new_prefix=BLOCK))
    for _ in range(n):
        free.popleft()


def ref_list_scan(n: int) -> None:
    net = ipaddress.ip_network(POOL)
    taken = [False] * (1 << (BLOCK - net.prefixlen))
    base = int(net.network_address)
    for _ in range(n):
        i = taken.index(False)
        taken[i] = True
        ipaddress.IPv4Network((base + (i << (32 - BLOCK)), BLOCK))


def measure(n: int, repeat: int) -> dict[str, object]:
    pools, nodes = restore_input(n)
    seconds = {
        "cidrset": timed(lambda: ours_cidrset(n), repeat),
        "state_1_pool": timed(lambda: ours_state(n, 1), repeat),
        "state_20_selector_pools": timed(lambda: ours_state(n, 20), repeat),
        "restore": timed(lambda: ours_restore(pools, nodes), repeat),
        "churn_10pct": timed(lambda: ours_churn(n), repeat),
        "ipv6_slash32_slash64": timed(lambda: ours_ipv6(n), repeat),
        "ref_subnets": timed(lambda: ref_subnets(n), repeat),
        "ref_list_scan": timed(lambda: ref_list_scan(n), max(1, repeat if n <= 10_000 else 1)),
    }
    per_node_us = {k: round(v / n * 1e6, 2) for k, v in seconds.items()}
    return {
        "nodes": n,
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "per_node_us": per_node_us,
        "allocations_per_s": {k: round(n / v) for k, v in seconds.items() if v > 0},
        "speedup_cidrset_vs": {
            "ref_subnets": round(seconds["ref_subnets"] / seconds["cidrset"], 2),
            "ref_list_scan": round(seconds["ref_list_scan"] / seconds["cidrset"], 2),
        },
        "speedup_state_vs_ref_list_scan": round(seconds["ref_list_scan"] / seconds["state_1_pool"], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--nodes", type=int, nargs="+", default=[5000, 50000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if any(n > 65536 for n in args.nodes):
        ap.error("at most 65536 nodes fit a /8 pool with /24 blocks")
    out = {
        "benchmark": "ipam_alloc",
        "pool": f"{POOL} in /{BLOCK} blocks",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "repeat": args.repeat,
        "clock": "process_time (CPU seconds)",
        "results": [measure(n, args.repeat) for n in args.nodes],
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
