"""The disruption monitor: traffic held open and streamed by the probers during a migration, counted per batch.

For the executor (synchronous code, one thread)::

    mon = DisruptionMonitor(agents, service=("10.96.0.10", 7310), progress=read_progress)
    mon.start()                      # probers open their connections and streams; figures go to batch "baseline"
    ...
    mon.next_batch("batch-1")        # closes "baseline" (returned) and counts from now on for "batch-1"
    ... migrate the nodes of batch 1 ...
    stats = mon.snapshot()           # "batch-1" so far; BatchStats
    reasons = mon.violations(stats, max_failed_ratio=0.01)   # [] when within the limits: the gate may open
    mon.next_batch("batch-2")
    ...
    report = mon.stop()              # every batch, the last one included; the probers stop their traffic

:class:`MonitorSession` is the same on an event loop (``await session.start()`` ...), for the CLI and tests.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from cni_migrate.actions.verify.agents import AgentInfo, AgentUnreachable
from cni_migrate.actions.verify.matrix import endpoint
from cni_migrate.analysis.verify import (
    BatchAccumulator,
    BatchStats,
    Progress,
    plan_monitor,
    threshold_violations,
)


class MonitorError(Exception):
    """The monitor could not start (no prober accepted it)."""


@dataclass(frozen=True)
class MonitorSettings:
    """What every prober does: ``rate`` requests per second to each stream target (a new connection each, with
    ``request_timeout``); held connections send a heartbeat every ``heartbeat_interval`` and count as broken when
    one goes unanswered for ``break_timeout``. ``peers``: how many other nodes each pod watches."""

    rate: float = 10.0
    request_timeout: float = 0.5
    heartbeat_interval: float = 0.2
    break_timeout: float = 2.0
    peers: int = 4
    poll_interval: float = 0.5
    progress_interval: float = 5.0

    def prober_config(self) -> dict[str, float]:
        return {
            "rate": self.rate,
            "request_timeout": self.request_timeout,
            "heartbeat_interval": self.heartbeat_interval,
            "break_timeout": self.break_timeout,
        }


@dataclass
class MonitorReport:
    batches: list[BatchStats]
    probers: int
    probers_failed_to_start: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "batches": [b.model_dump(mode="json") for b in self.batches],
            "probers": self.probers,
            "probers_failed_to_start": self.probers_failed_to_start,
        }


class MonitorSession:
    """The monitor on the caller's event loop."""

    def __init__(
        self,
        agents: Sequence[AgentInfo],
        *,
        service: tuple[str, int] | None = None,
        settings: MonitorSettings = MonitorSettings(),
        progress: Callable[[], Progress | None] | None = None,
        label: str = "baseline",
    ) -> None:
        self.agents = [a for a in agents if a.role == "pod"]
        self.settings = settings
        self.service = service
        self._progress_fn = progress
        self._progress: Progress | None = None
        self._progress_at = 0.0
        self._label = label
        self._acc = BatchAccumulator(label, time.monotonic())
        self.failed_to_start: dict[str, str] = {}
        self.unreachable: dict[str, str] = {}
        self._active: list[AgentInfo] = []

    async def start(self) -> None:
        plan = plan_monitor([endpoint(a) for a in self.agents], self.service, peers=self.settings.peers)
        config = self.settings.prober_config()

        async def one(agent: AgentInfo) -> None:
            entry = plan[agent.name]
            body = {
                "config": config,
                "streams": [p.wire() for p in entry.streams],
                "held": [p.wire() for p in entry.held],
            }
            try:
                await agent.channel.call("POST", "/monitor/start", body, timeout=15.0)
                self._active.append(agent)
            except AgentUnreachable as e:
                self.failed_to_start[agent.name] = str(e)

        await asyncio.gather(*(one(a) for a in self.agents))
        if not self._active:
            detail = "; ".join(f"{k}: {v}" for k, v in sorted(self.failed_to_start.items())[:3])
            raise MonitorError(f"no prober started monitoring ({detail or 'no probe pods'})")
        self._acc = BatchAccumulator(self._label, time.monotonic())  # counting starts once traffic flows
        await self._refresh_progress(force=True)

    async def _refresh_progress(self, *, force: bool = False) -> None:
        if self._progress_fn is None:
            return
        now = time.monotonic()
        if force or now - self._progress_at >= self.settings.progress_interval:
            self._progress_at = now
            try:
                self._progress = await asyncio.to_thread(self._progress_fn)
            except Exception:  # progress is informative; a failed read keeps the last figures
                self._progress_at = now

    async def poll(self, path: str = "/monitor/poll") -> None:
        async def one(agent: AgentInfo) -> None:
            try:
                report = await agent.channel.call("POST" if path.endswith("stop") else "GET", path, timeout=10.0)
            except AgentUnreachable as e:
                self.unreachable[agent.name] = str(e)
                return
            self.unreachable.pop(agent.name, None)
            self._acc.ingest(agent.name, report)

        await asyncio.gather(*(one(a) for a in self._active))
        await self._refresh_progress()

    def snapshot(self) -> BatchStats:
        stats = self._acc.snapshot(time.monotonic(), self._progress)
        return stats.model_copy(update={"probers_unreachable": sorted(self.unreachable)})

    async def next_batch(self, label: str) -> BatchStats:
        await self.poll()
        stats = self._acc.next_batch(label, time.monotonic(), self._progress)
        return stats.model_copy(update={"probers_unreachable": sorted(self.unreachable)})

    async def stop(self) -> MonitorReport:
        await self.poll("/monitor/stop")
        last = self._acc.next_batch("(stopped)", time.monotonic(), self._progress)
        last = last.model_copy(update={"probers_unreachable": sorted(self.unreachable)})
        batches = [*self._acc.done[:-1], last]
        return MonitorReport(batches=batches, probers=len(self._active), probers_failed_to_start=self.failed_to_start)


class DisruptionMonitor:
    """:class:`MonitorSession` on its own event loop in a background thread, polling every ``poll_interval``;
    every method is synchronous and safe to call from the executor's thread. ``on_update`` (optional) gets the
    current batch's :class:`BatchStats` after every poll, on the monitor's thread."""

    def __init__(
        self,
        agents: Sequence[AgentInfo],
        *,
        service: tuple[str, int] | None = None,
        settings: MonitorSettings = MonitorSettings(),
        progress: Callable[[], Progress | None] | None = None,
        on_update: Callable[[BatchStats], None] | None = None,
        label: str = "baseline",
    ) -> None:
        self.session = MonitorSession(agents, service=service, settings=settings, progress=progress, label=label)
        self._on_update = on_update
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="disruption-monitor", daemon=True)
        self._poller: Future[None] | None = None
        self._lock: asyncio.Lock | None = None

    def _run(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _poll_forever(self) -> None:
        assert self._lock is not None
        while True:
            await asyncio.sleep(self.session.settings.poll_interval)
            async with self._lock:
                await self.session.poll()
                stats = self.session.snapshot()
            if self._on_update is not None:
                self._on_update(stats)

    async def _locked(self, fn: Callable[[], Any]) -> Any:
        assert self._lock is not None
        async with self._lock:
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result

    def start(self) -> None:
        self._thread.start()

        async def begin() -> None:
            self._lock = asyncio.Lock()
            await self.session.start()

        try:
            self._run(begin())
        except BaseException:
            self._shutdown()
            raise
        self._poller = asyncio.run_coroutine_threadsafe(self._poll_forever(), self._loop)

    def snapshot(self) -> BatchStats:
        """The current batch so far (as of the last poll, at most ``poll_interval`` old)."""
        result: BatchStats = self._run(self._locked(self.session.snapshot))
        return result

    def next_batch(self, label: str) -> BatchStats:
        """Poll now, close the current batch (returned) and count from now on for ``label``."""
        result: BatchStats = self._run(self._locked(lambda: self.session.next_batch(label)))
        return result

    @staticmethod
    def violations(
        stats: BatchStats,
        *,
        max_failed_ratio: float | None = 0.01,
        max_broken: int | None = None,
        max_gap_s: float | None = None,
    ) -> list[str]:
        """Why ``stats`` crosses the limits; empty when it does not (see analysis.verify.threshold_violations)."""
        return threshold_violations(
            stats, max_failed_ratio=max_failed_ratio, max_broken=max_broken, max_gap_s=max_gap_s
        )

    def stop(self) -> MonitorReport:
        if self._poller is not None:
            self._poller.cancel()
        try:
            report: MonitorReport = self._run(self._locked(self.session.stop))
        finally:
            self._shutdown()
        return report

    def _shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
