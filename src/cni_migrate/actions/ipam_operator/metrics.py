"""Prometheus metrics of the IPAM operator (served on ``/metrics``; names prefixed ``cni_migrate_ipam_``)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Allocation latency buckets (seconds): from a fast local write to a minute of backlog.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        p = "cni_migrate_ipam_"
        pf = ["pool", "family"]
        self.capacity = Gauge(p + "pool_capacity_blocks", "Blocks a pool can hand out, per family.", pf, registry=r)
        self.allocated = Gauge(
            p + "pool_allocated_blocks", "Blocks of a pool held by nodes, per family.", pf, registry=r
        )
        self.free = Gauge(p + "pool_free_blocks", "Blocks of a pool still free, per family.", pf, registry=r)
        self.latency = Histogram(
            p + "allocation_latency_seconds",
            "From the first sight of a node without a pod CIDR to the API server accepting its CIDR.",
            pf,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.allocations = Counter(p + "allocations_total", "Blocks written to nodes.", pf, registry=r)
        self.releases = Counter(p + "releases_total", "Blocks freed because their node was deleted.", pf, registry=r)
        self.errors = Counter(
            p + "errors_total",
            "Allocation errors by reason (no-pool-matches, pool-exhausted, write-failed, write-conflict, ...).",
            [*pf, "reason"],
            registry=r,
        )
        self.leader = Gauge(p + "leader", "1 while this replica holds the leader Lease.", registry=r)
        self.ready = Gauge(p + "ready", "1 once the first list of nodes and pools is loaded.", registry=r)
        self.nodes = Gauge(
            p + "nodes", "Nodes by state (allocated, pending, no-pool, foreign, mismatch).", ["state"], registry=r
        )
        self.foreign = Gauge(
            p + "foreign_cidrs", "CIDRs on nodes that lie in no pool (occupied, never reused).", registry=r
        )
        self.pending_writes = Gauge(p + "pending_writes", "Node CIDR writes queued or in flight.", registry=r)
        self.events_dropped = Counter(
            p + "events_dropped_total", "Events dropped because the queue was full.", registry=r
        )
        self.api_requests = Counter(
            p + "api_requests_total", "API requests by verb and status code or error.", ["verb", "code"], registry=r
        )
        self.admission = Counter(
            p + "admission_reviews_total",
            "Webhook admission reviews by operation and result.",
            ["operation", "allowed"],
            registry=r,
        )

    def set_pool(self, pool: str, family: str, capacity: int, allocated: int) -> None:
        self.capacity.labels(pool, family).set(capacity)
        self.allocated.labels(pool, family).set(allocated)
        self.free.labels(pool, family).set(capacity - allocated)

    def forget_pool(self, pool: str, family: str) -> None:
        for g in (self.capacity, self.allocated, self.free):
            with contextlib.suppress(KeyError):
                g.remove(pool, family)

    def render(self) -> bytes:
        return generate_latest(self.registry)
