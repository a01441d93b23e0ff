"""Kubernetes events (``events.k8s.io/v1``) about nodes and pools, sent without ever slowing allocations.

Events go through a bounded queue to a couple of sender tasks that use only *low-priority* tokens of the shared
client rate limiter (an allocation write is never delayed by more than one event) and their own cap
(``event_qps``). Normal events (e.g. ``PodCIDRAssigned``) wait while allocations are in progress (``busy``), so
that a burst of new nodes is served first and the API server is not loaded with events meanwhile. When the queue
is full, the oldest Normal event is dropped (counted in ``cni_migrate_ipam_events_dropped_total``); warnings are
kept in preference. Allocation events are folded: when more than ``fold_threshold`` nodes of one pool got blocks
since the last send, one ``PodCIDRsAssigned`` event on the pool lists them instead of one event per node (a burst
of 5,000 new nodes makes one event, not 5,000 writes). The same event about the same object
is not repeated within ``dedupe_seconds``. Events of cluster-scoped objects (nodes, pools) live in the
``default`` namespace, where ``kubectl describe`` finds them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from cni_migrate.actions.ipam_operator.metrics import Metrics
from cni_migrate.kube import KubeError
from cni_migrate.kube.ipam import AsyncKube, RateLimiter, micro_time

log = logging.getLogger("cni_migrate.ipam_operator.events")

REPORTING_CONTROLLER = "ipam.cni-migrate.io/operator"


@dataclass(frozen=True)
class Regarding:
    api_version: str
    kind: str
    name: str
    uid: str


@dataclass(frozen=True)
class PendingEvent:
    regarding: Regarding
    type: str  # Normal | Warning
    reason: str
    action: str
    note: str


class EventRecorder:
    def __init__(
        self,
        kube: AsyncKube,
        metrics: Metrics,
        *,
        instance: str,
        namespace: str = "default",
        event_qps: float = 50.0,
        queue_size: int = 5000,
        dedupe_seconds: float = 600.0,
        senders: int = 2,
        busy: Callable[[], bool] | None = None,
        fold_threshold: int = 20,
    ) -> None:
        self.kube = kube
        self.metrics = metrics
        self.instance = instance[:128]
        self.namespace = namespace
        self._limiter = RateLimiter(event_qps, max(1, int(event_qps)))
        self._queue: collections.deque[PendingEvent] = collections.deque()
        self._queue_size = queue_size
        self._dedupe_seconds = dedupe_seconds
        self._recent: dict[tuple[str, str, str], float] = {}
        self._assigned: dict[Regarding, list[tuple[Regarding, str]]] = {}
        self.fold_threshold = fold_threshold
        self.folded = 0
        self._wakeup = asyncio.Event()
        self._senders = senders
        self.enabled = False  # only the leader reports
        self.sent = 0
        #: While it returns True (allocations in progress), Normal events wait; warnings go out at once.
        self.busy = busy

    def emit(self, regarding: Regarding, type_: str, reason: str, action: str, note: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        key = (regarding.uid or regarding.name, reason, note)
        last = self._recent.get(key)
        if last is not None and now - last < self._dedupe_seconds:
            return
        self._recent[key] = now
        if len(self._recent) > 4 * self._queue_size:
            cutoff = now - self._dedupe_seconds
            self._recent = {k: t for k, t in self._recent.items() if t >= cutoff}
        if len(self._queue) >= self._queue_size:
            self._drop_one()
        self._queue.append(PendingEvent(regarding, type_, reason, action, note[:1024]))
        self._wakeup.set()

    def emit_assigned(self, node: Regarding, pool: Regarding, note: str) -> None:
        """A Normal ``PodCIDRAssigned`` event on the node, or folded into one event on the pool (see module doc)."""
        if not self.enabled:
            return
        pending = self._assigned.setdefault(pool, [])
        if len(pending) < self._queue_size:
            pending.append((node, note))
        else:
            self.metrics.events_dropped.inc()
        self._wakeup.set()

    def _flush_assigned(self) -> None:
        for pool, items in self._assigned.items():
            if len(items) > self.fold_threshold:
                shown = "; ".join(f"{n.name}: {note}" for n, note in items[:5])
                self.folded += len(items)
                self._queue.append(
                    PendingEvent(
                        pool,
                        "Normal",
                        "PodCIDRsAssigned",
                        "Allocate",
                        f"assigned blocks to {len(items)} nodes (one event instead of one per node): {shown}"
                        + (" ..." if len(items) > 5 else ""),
                    )
                )
            else:
                for n, note in items:
                    self._queue.append(PendingEvent(n, "Normal", "PodCIDRAssigned", "Allocate", note))
        self._assigned.clear()

    def _drop_one(self) -> None:
        for i, ev in enumerate(self._queue):
            if ev.type == "Normal":
                del self._queue[i]
                break
        else:
            self._queue.popleft()
        self.metrics.events_dropped.inc()

    def clear(self) -> None:
        self._queue.clear()
        self._assigned.clear()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for _ in range(self._senders):
                tg.create_task(self._sender())

    def _next(self) -> PendingEvent | None:
        """The next event to send: the oldest warning, or the oldest event when allocations are idle."""
        if self.busy is None or not self.busy():
            if self._assigned:
                self._flush_assigned()
            return self._queue.popleft() if self._queue else None
        for i, ev in enumerate(self._queue):
            if ev.type != "Normal":
                del self._queue[i]
                return ev
        return None

    async def _sender(self) -> None:
        while True:
            while not self._queue and not self._assigned:
                self._wakeup.clear()
                await self._wakeup.wait()
            ev = self._next()
            if ev is None:
                await asyncio.sleep(0.25)
                continue
            if not self.enabled:
                continue
            await self._limiter.acquire()
            with contextlib.suppress(asyncio.TimeoutError):
                await self._send(ev)

    async def _send(self, ev: PendingEvent) -> None:
        r = ev.regarding
        body = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": f"{r.name}.{secrets.token_hex(8)}", "namespace": self.namespace},
            "eventTime": micro_time(),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self.instance,
            "action": ev.action,
            "reason": ev.reason,
            "type": ev.type,
            "note": ev.note,
            "regarding": {"apiVersion": r.api_version, "kind": r.kind, "name": r.name, "uid": r.uid},
        }
        try:
            await self.kube.create_event(self.namespace, body)
            self.sent += 1
        except KubeError as e:
            log.debug("event %s on %s %s not recorded: %s", ev.reason, r.kind, r.name, e)
