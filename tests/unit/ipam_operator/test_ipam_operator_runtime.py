"""The IPAM operator's runtime without a cluster: rate limiter, conditional patches, leader election and fencing,
the write pipeline's decisions on refused and unanswered writes, the webhook and the HTTP server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cni_migrate.actions.ipam_operator.admission import AdmissionLedger
from cni_migrate.actions.ipam_operator.app import loop_factory, workers_for
from cni_migrate.actions.ipam_operator.controller import Controller, ControllerConfig
from cni_migrate.actions.ipam_operator.events import EventRecorder
from cni_migrate.actions.ipam_operator.httpserver import HttpServer, Request
from cni_migrate.actions.ipam_operator.leader import LeaderElector, LeadershipLost, LeaseConfig
from cni_migrate.actions.ipam_operator.metrics import Metrics
from cni_migrate.actions.ipam_operator.webhook import NOT_READY, make_routes, review_pool
from cni_migrate.analysis.ipam import PodCIDRPool, parse_pool
from cni_migrate.analysis.ipam.admission_ledger import LEDGER_ANNOTATION, parse_ledger
from cni_migrate.kube import ClusterUnreachable, Conflict, NotFound
from cni_migrate.kube.ipam import Invalid, RateLimiter, RequestStats, RequestUncertain, WatchEvent, node_cidr_patch

POOL_API = "ipam.cni-migrate.io/v1alpha1"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ------------------------------------------------------------------------------------------------- rate limiter


def test_rate_limiter_burst_then_rate_and_low_priority_takes_only_spare_tokens() -> None:
    async def go() -> tuple[float, float, float]:
        rl = RateLimiter(qps=50, burst=5)
        t0 = time.monotonic()
        for _ in range(5):
            await rl.acquire()
        burst = time.monotonic() - t0
        t1 = time.monotonic()
        for _ in range(5):
            await rl.acquire()
        paced = time.monotonic() - t1
        # A high-priority caller has reserved the next token: a low-priority one must wait behind it.
        high = asyncio.create_task(rl.acquire())
        await asyncio.sleep(0)
        t2 = time.monotonic()
        await rl.acquire(low_priority=True)
        await high
        return burst, paced, time.monotonic() - t2

    burst, paced, low = run(go())
    assert burst < 0.05
    assert 0.07 < paced < 0.3  # 5 tokens at 50/s
    assert low >= 0.02


def test_rate_limiter_disabled() -> None:
    async def go() -> float:
        rl = RateLimiter(qps=0, burst=1)
        t0 = time.monotonic()
        for _ in range(1000):
            await rl.acquire()
        return time.monotonic() - t0

    assert run(go()) < 0.5


# ------------------------------------------------------------------------------------------------- patches


def test_spec_patch_is_conditional_on_uid_and_absence() -> None:
    ops = node_cidr_patch("u1", ["10.0.0.0/24", "fd00::/80"], mode="spec")
    assert ops[0] == {"op": "test", "path": "/metadata/uid", "value": "u1"}
    assert {"op": "test", "path": "/spec/podCIDR", "value": None} in ops
    assert {"op": "test", "path": "/spec/podCIDRs", "value": None} in ops
    assert {"op": "add", "path": "/spec/podCIDR", "value": "10.0.0.0/24"} in ops
    assert {"op": "add", "path": "/spec/podCIDRs", "value": ["10.0.0.0/24", "fd00::/80"]} in ops
    # every test comes before the first change
    kinds = [o["op"] for o in ops]
    assert kinds.index("add") > max(i for i, k in enumerate(kinds) if k == "test")


def test_annotation_patch_escapes_keys_and_handles_missing_annotations() -> None:
    ann = {"network.cilium.io/ipv4-pod-cidr": "10.0.0.0/24"}
    ops = node_cidr_patch("u", ["10.0.0.0/24"], mode="annotation", annotations=ann)
    assert {"op": "test", "path": "/metadata/annotations/network.cilium.io~1ipv4-pod-cidr", "value": None} in ops
    assert {
        "op": "add",
        "path": "/metadata/annotations/network.cilium.io~1ipv4-pod-cidr",
        "value": "10.0.0.0/24",
    } in ops
    bare = node_cidr_patch("u", ["10.0.0.0/24"], mode="annotation", annotations=ann, has_annotations=False)
    assert bare[-1] == {"op": "add", "path": "/metadata/annotations", "value": ann}


# ------------------------------------------------------------------------------------------------- leader election


class FakeLeases:
    """A Lease store with resourceVersion semantics, shared by several electors."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.rv = 0
        self.stats = RequestStats({})

    async def get_lease(self, namespace: str, name: str, *, timeout: float | None = None) -> dict[str, Any] | None:
        return json.loads(json.dumps(self.lease)) if self.lease else None

    async def create_lease(self, namespace: str, lease: dict[str, Any], *, timeout: float | None = None) -> Any:
        if self.lease is not None:
            raise Conflict("exists")
        return self._store(lease)

    async def replace_lease(self, namespace: str, lease: dict[str, Any], *, timeout: float | None = None) -> Any:
        if self.lease is None:
            raise NotFound("gone")
        if lease["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise Conflict("moved")
        return self._store(lease)

    def _store(self, lease: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        stored = json.loads(json.dumps(lease))
        stored["metadata"]["resourceVersion"] = str(self.rv)
        self.lease = stored
        copy: dict[str, Any] = json.loads(json.dumps(stored))
        return copy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_leader_election_one_winner_expiry_takeover_fence_and_release() -> None:
    async def go() -> None:
        store = FakeLeases()
        clock = Clock()
        cfg = {"namespace": "ns", "lease_duration": 15.0, "renew_deadline": 10.0, "retry_period": 2.0}
        a = LeaderElector(store, LeaseConfig(identity="a", **cfg), clock=clock)  # type: ignore[arg-type]
        b = LeaderElector(store, LeaseConfig(identity="b", **cfg), clock=clock)  # type: ignore[arg-type]
        assert await a._try_acquire_or_renew()
        a._leader, a._valid_until = True, clock.now + 10.0
        assert not await b._try_acquire_or_renew()  # held and fresh
        assert a.fence() > 9.0
        clock.now += 9.8
        with pytest.raises(LeadershipLost):
            a.fence()  # less than the safety margin left: no more writes
        clock.now += 5.0  # a never renewed; b has watched the same record for 14.8 s: not yet
        assert not await b._try_acquire_or_renew()
        clock.now += 0.5
        assert await b._try_acquire_or_renew()
        assert store.lease is not None and store.lease["spec"]["holderIdentity"] == "b"
        assert store.lease["spec"]["leaseTransitions"] == 1
        # a comes back: its fast-path renewal conflicts, it reads the Lease and loses.
        lost: list[bool] = []
        a.on_lost = lambda: lost.append(True)
        assert not await a._try_acquire_or_renew()
        assert lost == [True] and not a.is_leader()
        # b releases on shutdown: a can take over at once.
        b._leader, b._valid_until = True, clock.now + 10.0
        await b.release()
        assert store.lease["spec"]["holderIdentity"] == ""
        assert await a._try_acquire_or_renew()

    run(go())


def test_lease_config_timings_are_checked() -> None:
    with pytest.raises(ValueError, match="retry-period < renew-deadline < lease-duration"):
        LeaseConfig(namespace="ns", lease_duration=10, renew_deadline=10, retry_period=2)


# ------------------------------------------------------------------------------------------------- controller


def node(name: str, uid: str, labels: dict[str, str] | None = None, cidrs: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if cidrs:
        spec = {"podCIDR": cidrs[0], "podCIDRs": cidrs}
    return {"metadata": {"name": name, "uid": uid, "labels": labels or {}, "resourceVersion": "1"}, "spec": spec}


def pool(name: str, cidrs: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": POOL_API,
        "kind": "PodCIDRPool",
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1, "resourceVersion": "1"},
        "spec": {"cidrs": cidrs, **spec},
    }


class FakeKube:
    """Just enough of AsyncKube for the controller: scripted node patches and reads."""

    def __init__(self, nodes: list[dict[str, Any]], pools: list[dict[str, Any]]) -> None:
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.pools = pools
        self.patches: list[tuple[str, list[dict[str, Any]]]] = []
        self.patch_results: dict[str, list[Exception]] = {}
        self.events: list[dict[str, Any]] = []
        self.stats = RequestStats({})
        self.node_events: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self.reads: dict[str, dict[str, Any]] = {}  # what a GET shows, when it differs from the list

    async def list_nodes(self) -> tuple[list[dict[str, Any]], str]:
        return [json.loads(json.dumps(n)) for n in self.nodes.values()], "10"

    async def list_pools(self) -> tuple[list[dict[str, Any]], str]:
        return list(self.pools), "10"

    async def watch_nodes(self, rv: str, *, timeout_seconds: int = 300) -> AsyncIterator[WatchEvent]:
        while True:
            yield await self.node_events.get()

    async def watch_pools(self, rv: str, *, timeout_seconds: int = 300) -> AsyncIterator[WatchEvent]:
        await asyncio.sleep(3600)
        if False:  # pragma: no cover - an async generator that yields nothing
            yield WatchEvent("BOOKMARK", {})

    async def patch_node(self, name: str, ops: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        guard = _.get("guard")
        if guard is not None:
            guard()
        self.patches.append((name, ops))
        scripted = self.patch_results.get(name)
        if scripted:
            raise scripted.pop(0)
        return self.nodes[name]

    async def get_node(self, name: str) -> dict[str, Any]:
        if name not in self.nodes:
            raise NotFound(name)
        copy: dict[str, Any] = json.loads(json.dumps(self.reads.get(name, self.nodes[name])))
        return copy

    async def patch_pool(self, name: str, ops: Any, **_: Any) -> dict[str, Any]:
        return {}

    async def patch_pool_status(self, name: str, status: Any, **_: Any) -> dict[str, Any]:
        return {}

    async def create_event(self, namespace: str, event: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.events.append(event)
        return event

    async def get_configmap(self, namespace: str, name: str) -> None:
        return None


def written_cidrs(ops: list[dict[str, Any]]) -> list[str]:
    return next(o["value"] for o in ops if o["op"] == "add" and o["path"] == "/spec/podCIDRs")


def make_controller(kube: FakeKube) -> Controller:
    metrics = Metrics()
    events = EventRecorder(kube, metrics, instance="t")  # type: ignore[arg-type]
    config = ControllerConfig(identity="t", workers=2, status_interval=0.05)
    ctl = Controller(kube, config, metrics, events, elector=None)  # type: ignore[arg-type]
    ctl.on_started_leading()
    return ctl


async def settle(ctl: Controller, kube: FakeKube, predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; patches: {kube.patches}")
        await asyncio.sleep(0.02)


def test_controller_occupies_first_then_writes_each_node_once_with_preconditions() -> None:
    async def go() -> None:
        kube = FakeKube(
            [
                node("old", "u0", {"r": "a"}, ["10.0.0.0/24"]),
                node("n1", "u1", {"r": "a"}),
                node("n2", "u2", {"r": "a"}),
            ],
            [pool("a", ["10.0.0.0/22"], blockSize={"ipv4": 24}, nodeSelector={"matchLabels": {"r": "a"}})],
        )
        ctl = make_controller(kube)
        task = asyncio.create_task(ctl.run())
        await settle(ctl, kube, lambda: len(kube.patches) == 2)
        got = {name: written_cidrs(ops) for name, ops in kube.patches}
        assert "10.0.0.0/24" not in {c[0] for c in got.values()}  # occupied by "old" before any allocation
        assert len({c[0] for c in got.values()}) == 2
        for name, ops in kube.patches:
            assert {"op": "test", "path": "/metadata/uid", "value": kube.nodes[name]["metadata"]["uid"]} in ops
        assert ctl.metrics.allocations.labels("a", "ipv4")._value.get() == 2
        task.cancel()

    run(go())


def test_refused_write_gives_the_blocks_back_and_unanswered_write_resends_the_same_blocks() -> None:
    async def go() -> None:
        kube = FakeKube(
            [node("n1", "u1"), node("n2", "u2")],
            [pool("a", ["10.1.0.0/22"], blockSize={"ipv4": 24})],
        )
        # n1's first write: no answer (it did not land); n2's: refused because someone else set a CIDR meanwhile.
        kube.patch_results = {"n1": [RequestUncertain("timeout")], "n2": [Invalid("test operation failed")]}
        kube.reads["n2"] = node("n2", "u2", cidrs=["10.1.3.0/24"])  # what a GET will show
        ctl = make_controller(kube)
        ctl.config = ControllerConfig(identity="t", workers=1, status_interval=0.05)
        task = asyncio.create_task(ctl.run())
        await settle(
            ctl,
            kube,
            lambda: len(kube.patches) >= 3 and ctl.state is not None and ctl.state.assignment("n2") is None,
            timeout=10,
        )
        first_n1 = [written_cidrs(ops) for name, ops in kube.patches if name == "n1"]
        assert len(first_n1) == 2 and first_n1[0] == first_n1[1]  # re-sent with the same block
        state = ctl.state
        assert state is not None
        n2_block = next(written_cidrs(ops) for name, ops in kube.patches if name == "n2")
        assert state.assignment("n2") is None  # given back
        assert state.assignment("n1") is not None
        assert n2_block != first_n1[0]
        task.cancel()

    run(go())


# ------------------------------------------------------------------------------------------------- webhook, http


def test_webhook_review_refuses_overlap_and_answers_not_ready() -> None:
    async def go() -> None:
        kube = FakeKube([], [pool("a", ["10.2.0.0/16"])])
        ctl = make_controller(kube)
        req = {"uid": "x", "operation": "CREATE", "object": pool("b", ["10.2.128.0/17"])}
        assert await review_pool(ctl, req, None) == [NOT_READY]
        task = asyncio.create_task(ctl.run())
        await settle(ctl, kube, lambda: ctl.ready)
        errors = await review_pool(ctl, req, None)
        assert errors and "overlaps 10.2.0.0/16 of PodCIDRPool a" in errors[0]
        ok = {"uid": "y", "operation": "CREATE", "object": pool("c", ["10.3.0.0/16"])}
        assert await review_pool(ctl, ok, None) == []

        routes = make_routes(ctl, ctl.metrics)
        server = HttpServer(routes, name="t")
        port = await server.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}).encode()
        writer.write(
            b"POST /validate-podcidrpool HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
            + b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        raw = await reader.read()
        writer.close()
        first, _, rest = raw.partition(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 200")
        length = int(next(h for h in first.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
        review = json.loads(rest[:length])
        assert review["response"]["uid"] == "x" and review["response"]["allowed"] is False
        assert "overlaps" in review["response"]["status"]["message"]
        assert rest[length:].startswith(b"HTTP/1.1 200")  # keep-alive: the second request on the same connection
        await server.close()
        task.cancel()

    run(go())


# ------------------------------------------------------------------------------------------------- admission ledger


class InterleavingLeases(FakeLeases):
    """Yields to the event loop between a read and the write that follows, so concurrent admissions interleave."""

    async def get_lease(self, namespace: str, name: str, *, timeout: float | None = None) -> dict[str, Any] | None:
        lease = await super().get_lease(namespace, name, timeout=timeout)
        await asyncio.sleep(0.005)
        return lease


class BrokenLeases(FakeLeases):
    async def get_lease(self, namespace: str, name: str, *, timeout: float | None = None) -> dict[str, Any] | None:
        raise ClusterUnreachable("connection refused")


def parsed_pool(name: str, *cidrs: str) -> PodCIDRPool:
    return parse_pool(pool(name, list(cidrs)))


def test_admission_ledger_admits_one_of_two_concurrent_overlapping_pools() -> None:
    async def go() -> None:
        leases = InterleavingLeases()
        clock = Clock()
        replicas = [AdmissionLedger(leases, "ns", "adm", ttl=30.0, clock=clock) for _ in range(2)]  # type: ignore[arg-type]
        x, y = parsed_pool("x", "10.0.0.0/16"), parsed_pool("y", "10.0.128.0/17")
        results = await asyncio.gather(replicas[0].admit(x), replicas[1].admit(y))
        assert sorted(bool(r) for r in results) == [False, True]
        assert leases.rv == 1  # one write: the refused admission was never recorded
        refused = next(r for r in results if r)[0]
        assert "overlaps" in refused and "not yet seen by this replica" in refused
        winner = x if not results[0] else y
        # Disjoint pools are all admitted at once, by either replica.
        many = await asyncio.gather(
            *(replicas[i % 2].admit(parsed_pool(f"d{i}", f"10.{i + 1}.0.0/16")) for i in range(4))
        )
        assert many == [[]] * 4
        recorded = parse_ledger((leases.lease or {})["metadata"]["annotations"][LEDGER_ANNOTATION])
        assert set(recorded) == {winner.name, "d0", "d1", "d2", "d3"}
        # The other replica, whose informer may lag, is still refused; the refusal lifts after the TTL (for a pool
        # that was admitted but never created; a created one is then refused by every replica's informer check).
        loser = y if winner is x else x
        assert "retry in 30 s" in (await replicas[1].admit(loser))[0]
        clock.now += 31.0
        assert await replicas[1].admit(loser) == []

    run(go())


def test_admission_ledger_refuses_when_the_lease_cannot_be_written() -> None:
    async def go() -> list[str]:
        ledger = AdmissionLedger(BrokenLeases(), "ns", "adm")  # type: ignore[arg-type]
        return await ledger.admit(parsed_pool("x", "10.0.0.0/16"))

    (message,) = run(go())
    assert "Lease ns/adm" in message and "connection refused" in message and message.endswith("retry")


def test_metrics_scrape_shows_every_api_request_so_far() -> None:
    """api_requests_total is current at each scrape, not only after the (slow, during bursts) status loop ran."""

    async def go() -> str:
        kube = FakeKube([], [])
        ctl = make_controller(kube)
        routes = make_routes(ctl, ctl.metrics)
        scrape = Request("GET", "/metrics", "", {}, b"")
        kube.stats.add("patch", "200")
        kube.stats.add("patch", "200")
        first = (await routes["/metrics"](scrape)).body.decode()
        kube.stats.add("patch", "422")
        second = (await routes["/metrics"](scrape)).body.decode()
        return first + "\n----\n" + second

    first, second = run(go()).split("\n----\n")
    assert 'cni_migrate_ipam_api_requests_total{code="200",verb="patch"} 2.0' in first
    assert 'code="422"' not in first
    assert 'cni_migrate_ipam_api_requests_total{code="422",verb="patch"} 1.0' in second
    assert 'cni_migrate_ipam_api_requests_total{code="200",verb="patch"} 2.0' in second


# ------------------------------------------------------------------------------------------------- process options


@pytest.mark.parametrize(
    ("qps", "workers", "expected"),
    [(200, 0, 100), (100, 0, 50), (5, 0, 8), (10_000, 0, 256), (0, 0, 128), (200, 7, 7)],
)
def test_writes_in_flight_spend_the_qps_budget_unless_given(qps: float, workers: int, expected: int) -> None:
    assert workers_for(qps, workers) == expected


def test_event_loop_choice() -> None:
    assert loop_factory("asyncio") is None
    factory = loop_factory("auto")
    assert factory is not None  # uvloop is a dependency on Linux
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
