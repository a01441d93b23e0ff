"""The IPAM operator's controller: node and pool informers feeding the pure ``IPAMState``, conditional node
writes, pool status, finalizers and events.

Every replica lists and watches nodes and pools into its own ``IPAMState`` (so any replica can answer the
admission webhook); only the leader writes. The rules, in the order they protect the cluster:

1. **Restore before allocate.** Allocation starts only after a fresh, consistent LIST of every node and pool has
   been occupied (``IPAMState.occupy_existing``): at start, after every leadership acquisition, and after every
   watch gap (410 Gone). Before such a re-list, the writes in flight are drained, so none can land unseen.
2. **Only watch events change the state.** Responses of writes and GETs are used to decide what to do next, never
   fed into the state: the watch delivers each node's changes in order, a GET could be older or newer than what
   the state has seen and re-order a delete and a re-create.
3. **A write is fenced and conditional.** Right before a node write leaves, the leadership must be valid for a
   while yet (``LeaderElector.fence``), and the JSON patch tests that the node is the same object (UID) with no
   CIDR where we write; the API server additionally forbids changing ``spec.podCIDR`` once set.
4. **A reservation lives as long as the node.** Blocks are reserved in the state when assigned; a write whose
   outcome is unknown is verified (GET) and re-sent with the *same* blocks; a reservation is given back only when
   the write was definitely refused or the node is gone. Blocks are released only on a DELETED event (or the node's
   absence from a fresh list), never on ``deletionTimestamp``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cni_migrate.actions.ipam_operator.events import EventRecorder, Regarding
from cni_migrate.actions.ipam_operator.leader import LeaderElector, LeadershipLost
from cni_migrate.actions.ipam_operator.metrics import Metrics
from cni_migrate.analysis.ipam import (
    POD_CIDR_ANNOTATIONS,
    AlreadyHasCIDR,
    Assignment,
    IPAMState,
    LabelsNoLongerMatch,
    Network,
    NodeInfo,
    NodeTerminating,
    NoPoolMatches,
    OccupyReport,
    PodCIDRPool,
    PoolExhausted,
    PoolSpecError,
    WriteMode,
    parse_pool,
)
from cni_migrate.analysis.ipam.pools import family_of
from cni_migrate.kube import ApiStatusError, ClusterUnreachable, Forbidden, KubeError, NotFound
from cni_migrate.kube.ipam import AsyncKube, Gone, Invalid, RequestUncertain, WatchEvent, micro_time, node_cidr_patch

log = logging.getLogger("cni_migrate.ipam_operator")

FINALIZER = "ipam.cni-migrate.io/pool-in-use"
POOL_API_VERSION = "ipam.cni-migrate.io/v1alpha1"


@dataclass(frozen=True)
class ControllerConfig:
    identity: str
    mode: WriteMode = "spec"
    legacy_annotation: bool = True
    workers: int = 32
    field_manager: str = "cni-migrate-ipam"
    write_timeout: float = 10.0
    status_interval: float = 1.0
    retry_backoff: float = 5.0
    cilium_config: tuple[str, str] | None = ("kube-system", "cilium-config")
    cilium_check_interval: float = 60.0
    allocation_events: bool = True
    audit_log: Path | None = None
    watch_timeout: int = 300


class Resync(Exception):
    """Stop watching, drain writes, list everything again."""


def _strip_times(status: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(status)
    conds = out.get("conditions")
    if isinstance(conds, list):
        out["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conds]
    return out


def _node_regarding(name: str, uid: str) -> Regarding:
    return Regarding("v1", "Node", name, uid)


def _nets(cidrs: Iterable[Network]) -> str:
    return ", ".join(str(c) for c in cidrs)


class Controller:
    def __init__(
        self,
        kube: AsyncKube,
        config: ControllerConfig,
        metrics: Metrics,
        events: EventRecorder,
        elector: LeaderElector | None,
    ) -> None:
        self.kube = kube
        self.config = config
        self.metrics = metrics
        self.events = events
        self.elector = elector
        self.state: IPAMState | None = None
        self.pool_objs: dict[str, dict[str, Any]] = {}
        self.pool_errors: dict[str, list[str]] = {}
        self._pool_key: list[tuple[str, Any, bool]] = []
        self.synced = asyncio.Event()
        self.leading = elector is None  # no election: always leader (single replica, tests)
        self.allocating = False
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._writers: list[asyncio.Task[None]] = []
        self._first_seen: dict[str, tuple[str, float]] = {}
        self._waiting: dict[str, str] = {}  # node -> why it has no CIDR yet (outcome)
        self._retry_at: dict[str, float] = {}
        self._mismatch: dict[str, str] = {}  # node -> pool its CIDRs are from, whose selector it left
        self._foreign: dict[str, set[str]] = {}  # node -> CIDRs in no pool
        self._no_annotations: set[str] = set()
        self._status_sent: dict[str, dict[str, Any]] = {}
        self._resync = asyncio.Event()
        self._cilium_problem: str | None = None
        self._audit: IO[str] | None = None
        self._metric_pools: set[tuple[str, str]] = set()
        self._api_counted: dict[tuple[str, str], int] = {}
        self.last_sync = 0.0
        self.last_write = 0.0
        self.writes_ok = 0
        self.started = time.monotonic()

    # ================================================================================================ lifecycle

    async def run(self) -> None:
        if self.config.audit_log is not None:
            self._audit = self.config.audit_log.open("a", buffering=1)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._informer())
                tg.create_task(self._status_loop())
                tg.create_task(self._housekeeping())
                tg.create_task(self.events.run())
        finally:
            if self._audit is not None:
                self._audit.close()

    def on_started_leading(self) -> None:
        """Leader election callback: re-list everything before the first write."""
        self.leading = True
        self.metrics.leader.set(1)
        self.events.enabled = True
        self._resync.set()

    def on_stopped_leading(self) -> None:
        """Leader election callback: stop every write now (in-flight requests are cancelled)."""
        self.leading = False
        self.allocating = False
        self.metrics.leader.set(0)
        self.events.enabled = False
        self.events.clear()
        for t in [*self._writers, *self._inflight.values()]:
            t.cancel()
        self._writers.clear()
        self._resync.set()  # forget reservations never written

    async def shutdown(self) -> None:
        """Stop writing and wait (briefly) for writes in flight, before the Lease is released."""
        self.allocating = False
        await self._stop_writers(drain=True, timeout=5.0)

    # ================================================================================================ informer

    async def _informer(self) -> None:
        backoff = 0.5
        while True:
            self._resync.clear()
            try:
                await self._stop_writers(drain=True, timeout=self.config.write_timeout + 5.0)
                nodes, nodes_rv = await self.kube.list_nodes()
                pools, pools_rv = await self.kube.list_pools()
            except KubeError as e:
                log.warning("listing nodes and pools failed (retrying in %.1f s): %s", backoff, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            self._rebuild(nodes, pools)
            if self.leading and (self.elector is None or self.elector.is_leader()):
                self._start_writers()
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._watch("nodes", nodes_rv, self.kube.watch_nodes, self._on_node_event))
                    tg.create_task(self._watch("pools", pools_rv, self.kube.watch_pools, self._on_pool_event))
                    tg.create_task(self._wait_resync())
            except* Resync:
                pass

    async def _wait_resync(self) -> None:
        await self._resync.wait()
        raise Resync

    async def _watch(
        self,
        what: str,
        rv: str,
        watch: Callable[..., Any],
        handle: Callable[[str, dict[str, Any]], None],
    ) -> None:
        backoff = 0.5
        while True:
            try:
                stream = watch(rv, timeout_seconds=self.config.watch_timeout)
                async for ev in stream:
                    assert isinstance(ev, WatchEvent)
                    new_rv = (ev.object.get("metadata") or {}).get("resourceVersion")
                    if new_rv:
                        rv = str(new_rv)
                    if ev.type != "BOOKMARK":
                        handle(ev.type, ev.object)
                backoff = 0.5
            except Gone:
                log.info("watch of %s expired (410 Gone): listing again", what)
                raise Resync from None
            except (ClusterUnreachable, ApiStatusError, Forbidden, NotFound) as e:
                log.warning("watch of %s failed (retrying in %.1f s): %s", what, backoff, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    def _rebuild(self, nodes: list[dict[str, Any]], pools: list[dict[str, Any]]) -> None:
        """A fresh state from a fresh list: occupy everything on every node, then (leader) decide for each."""
        t0 = time.monotonic()
        self.pool_objs = {str(p["metadata"]["name"]): p for p in pools}
        parsed = self._parse_pools()
        state = IPAMState(parsed, [NodeInfo.from_object(n) for n in nodes])
        reports = state.occupy_existing()
        self.state = state
        self._pool_key = self._key_of(parsed)
        self._no_annotations = {n["metadata"]["name"] for n in nodes if not (n["metadata"].get("annotations"))}
        present = {n["metadata"]["name"]: n["metadata"].get("uid", "") for n in nodes}
        now = time.monotonic()
        self._first_seen = {name: seen for name, seen in self._first_seen.items() if present.get(name) == seen[0]}
        for name, uid in present.items():
            info = state.node(name)
            if info is not None and not info.cidrs() and name not in self._first_seen:
                self._first_seen[name] = (uid, now)
        self._waiting.clear()
        self._retry_at.clear()
        self._mismatch.clear()
        self._foreign.clear()
        self._queue = asyncio.Queue()
        self._queued.clear()
        self._status_sent.clear()
        self._handle_reports(reports, startup=True)
        self.last_sync = time.monotonic()
        self.synced.set()
        self.metrics.ready.set(1)
        log.info(
            "loaded %d node(s) and %d pool(s) (%d valid) in %.2f s; %d report(s)",
            len(nodes),
            len(pools),
            len(parsed),
            time.monotonic() - t0,
            len(reports),
        )

    # ================================================================================================ pools

    def _parse_pools(self) -> list[PodCIDRPool]:
        parsed: list[PodCIDRPool] = []
        self.pool_errors = {}
        for name, obj in sorted(self.pool_objs.items()):
            try:
                pool = parse_pool(obj)
            except PoolSpecError as e:
                self.pool_errors[name] = e.errors
                continue
            if (obj.get("metadata") or {}).get("deletionTimestamp") and not pool.disabled:
                # A pool being deleted gives out nothing new; its blocks stay occupied until their nodes go.
                pool = pool.model_copy(update={"spec": pool.spec.model_copy(update={"disabled": True})})
            parsed.append(pool)
        return parsed

    @staticmethod
    def _key_of(pools: list[PodCIDRPool]) -> list[tuple[str, Any, bool]]:
        return [(p.name, p.spec.model_dump(), p.disabled) for p in pools]

    def _on_pool_event(self, type_: str, obj: dict[str, Any]) -> None:
        name = str(obj["metadata"]["name"])
        if type_ == "DELETED":
            self.pool_objs.pop(name, None)
            self._status_sent.pop(name, None)
        else:
            self.pool_objs[name] = obj
        state = self.state
        if state is None:
            return
        parsed = self._parse_pools()
        key = self._key_of(parsed)
        if key == self._pool_key:
            return
        self._pool_key = key
        reports = state.set_pools(parsed)
        self._foreign.clear()
        self._handle_reports(reports, startup=False, quiet_kinds={"foreign", "misaligned"})
        log.info("pools changed (%s %s): %d valid pool(s)", type_.lower(), name, len(parsed))
        if self.allocating:
            for node in list(self._waiting):
                self._decide(node)

    # ================================================================================================ nodes

    def _on_node_event(self, type_: str, obj: dict[str, Any]) -> None:
        state = self.state
        if state is None:
            return
        md = obj.get("metadata") or {}
        name = str(md.get("name", ""))
        if type_ == "DELETED":
            known = state.node(name)
            if known is None or not known.uid or known.uid == md.get("uid"):
                self._node_gone(name)
            return
        if md.get("annotations"):
            self._no_annotations.discard(name)
        else:
            self._no_annotations.add(name)
        if self._upsert(NodeInfo.from_object(obj)) and self.allocating:
            self._decide(name)

    def _upsert(self, info: NodeInfo) -> bool:
        """Feed a watched node into the state; True when the allocator must decide (again) for it.

        No new decision is needed when the node keeps its labels and termination state and holds the same CIDRs
        as before: the echo of our own write (it shows the block assigned to it), status updates, other fields.
        """
        state = self.state
        assert state is not None
        old = state.node(info.name)
        if old is not None and old.uid and info.uid and old.uid != info.uid:
            self._node_gone(info.name)  # deleted and re-created while we were not looking
            old = None
        if old == info:
            return False
        held = state.held(info.name)
        reports = state.upsert_node(info)
        if reports:
            self._handle_reports(reports, startup=False)
        if not info.cidrs() and info.name not in self._first_seen:
            self._first_seen[info.name] = (info.uid, time.monotonic())
        return (
            old is None
            or not held
            or old.labels != info.labels
            or old.deleting != info.deleting
            or state.held(info.name) != held
        )

    def _node_gone(self, name: str) -> None:
        state = self.state
        assert state is not None
        held = state.held(name)
        pools = {str(n): [p.name for p in state.pools_touching(n)] for n in held}
        released = state.release(name)
        for net in released:
            for pool in pools.get(str(net), []):
                self.metrics.releases.labels(pool, family_of(net)).inc()
        self._first_seen.pop(name, None)
        self._waiting.pop(name, None)
        self._retry_at.pop(name, None)
        self._mismatch.pop(name, None)
        self._foreign.pop(name, None)
        self._no_annotations.discard(name)
        if released and self.allocating:
            log.debug("node %s gone: released %s", name, _nets(released))
            for node, why in list(self._waiting.items()):
                if why == PoolExhausted.outcome:
                    self._decide(node)

    # ================================================================================================ decisions

    def _decide(self, name: str) -> None:
        state = self.state
        if state is None or not self.allocating or name in self._queued or name in self._inflight:
            return
        if self._retry_at.get(name, 0.0) > time.monotonic():
            return
        info = state.node(name)
        if info is None:
            return
        result = state.assign(name)
        if isinstance(result, Assignment):
            self._waiting.pop(name, None)
            self._queued.add(name)
            self._queue.put_nowait(name)
            return
        previous = self._waiting.get(name)
        if isinstance(result, AlreadyHasCIDR | NodeTerminating):
            self._waiting.pop(name, None)
            self._mismatch.pop(name, None)
            self._retry_at.pop(name, None)
            return
        regarding = _node_regarding(name, info.uid)
        if isinstance(result, LabelsNoLongerMatch):
            self._waiting.pop(name, None)
            if self._mismatch.get(name) != result.pool:
                self._mismatch[name] = result.pool
                self.events.emit(regarding, "Warning", "PoolSelectorMismatch", "Check", result.message)
                log.warning("%s", result.message)
            return
        self._mismatch.pop(name, None)
        self._waiting[name] = result.outcome
        if previous == result.outcome:
            return
        if isinstance(result, NoPoolMatches):
            self.metrics.errors.labels("", "", result.outcome).inc()
            self.events.emit(regarding, "Warning", "NoPoolMatches", "Allocate", result.message)
            log.info("%s", result.message)
        elif isinstance(result, PoolExhausted):
            for fam in result.families:
                self.metrics.errors.labels(result.pool, fam, result.outcome).inc()
            self.events.emit(regarding, "Warning", "PoolExhausted", "Allocate", result.message)
            pool_uid = str((self.pool_objs.get(result.pool, {}).get("metadata") or {}).get("uid", ""))
            self.events.emit(
                Regarding(POOL_API_VERSION, "PodCIDRPool", result.pool, pool_uid),
                "Warning",
                "PoolExhausted",
                "Allocate",
                f"no free {' or '.join(result.families)} block for node {name} (and possibly others); "
                "append a CIDR to spec.cidrs to grow the pool",
            )
            log.warning("%s", result.message)

    def _decide_all(self) -> None:
        state = self.state
        if state is None:
            return
        for name in state.node_names:
            self._decide(name)

    def _handle_reports(
        self, reports: list[OccupyReport], *, startup: bool, quiet_kinds: frozenset[str] | set[str] = frozenset()
    ) -> None:
        shown = 0
        for r in reports:
            if r.kind == "foreign":
                self._foreign.setdefault(r.node, set()).add(r.cidr)
            if r.kind in quiet_kinds:
                continue
            level = logging.WARNING if r.kind in ("duplicate", "overlap", "invalid") else logging.INFO
            if shown < 50:
                log.log(level, "%s: %s", r.kind, r.message)
                shown += 1
            state = self.state
            info = state.node(r.node) if state is not None else None
            reason = {
                "foreign": "ForeignPodCIDR",
                "misaligned": "MisalignedPodCIDR",
                "duplicate": "DuplicatePodCIDR",
                "overlap": "OverlappingPodCIDR",
                "invalid": "InvalidPodCIDR",
                "inconsistent": "InconsistentPodCIDR",
            }[r.kind]
            kind = "Normal" if r.kind == "foreign" else "Warning"
            self.events.emit(_node_regarding(r.node, info.uid if info else ""), kind, reason, "Occupy", r.message)
            if r.kind in ("duplicate", "overlap"):
                self.metrics.errors.labels(r.pool or "", "", r.kind).inc()
        if len(reports) > shown >= 50:
            log.info("... and %d more report(s)", len(reports) - shown)
        if startup and self._foreign:
            log.info("%d node(s) have CIDRs in no pool (occupied, never reused)", len(self._foreign))

    # ================================================================================================ writes

    def _start_writers(self) -> None:
        self.allocating = True
        self._writers = [asyncio.create_task(self._writer()) for _ in range(self.config.workers)]
        self._decide_all()
        log.info("%s: allocating (mode %s, %d writer(s))", self.config.identity, self.config.mode, len(self._writers))

    async def _stop_writers(self, *, drain: bool, timeout: float) -> None:
        self.allocating = False
        writers, self._writers = self._writers, []
        for t in writers:
            t.cancel()
        inflight = list(self._inflight.values())
        if drain and inflight:
            _done, pending = await asyncio.wait(inflight, timeout=timeout)
            for t in pending:
                t.cancel()
        for t in writers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._queue = asyncio.Queue()
        self._queued.clear()

    def _fence(self) -> float:
        if not self.allocating:
            raise LeadershipLost("not allocating")
        if self.elector is None:
            return self.config.write_timeout
        return self.elector.fence(min_remaining=1.0) - 0.5

    async def _writer(self) -> None:
        while True:
            name = await self._queue.get()
            self._queued.discard(name)
            if name in self._inflight:
                continue
            task = asyncio.create_task(self._write(name))
            self._inflight[name] = task
            self.metrics.pending_writes.set(len(self._inflight) + len(self._queued))
            try:
                await asyncio.shield(task)
            finally:
                if task.done():
                    self._inflight.pop(name, None)
                else:
                    task.add_done_callback(self._forget_inflight(name))
            # The node may have been deleted and re-created under the same name while its write was in flight:
            # the new one was skipped then, decide for it now (a no-op for a node that got its blocks).
            self._decide(name)

    def _forget_inflight(self, name: str) -> Callable[[asyncio.Task[None]], None]:
        def done(_task: asyncio.Task[None]) -> None:
            self._inflight.pop(name, None)

        return done

    def _audit_line(self, **fields: Any) -> None:
        if self._audit is not None:
            fields = {"t": time.time(), "identity": self.config.identity, **fields}
            self._audit.write(json.dumps(fields, sort_keys=True) + "\n")

    def _patch_for(self, a: Assignment, info: NodeInfo) -> list[dict[str, Any]]:
        cidrs = [str(c) for c in a.cidrs]
        if self.config.mode == "spec":
            return node_cidr_patch(info.uid, cidrs, mode="spec")
        annotations: dict[str, str] = {}
        for c in a.cidrs:
            primary, alias = POD_CIDR_ANNOTATIONS[family_of(c)]
            annotations[primary] = str(c)
            if self.config.legacy_annotation:
                annotations[alias] = str(c)
        return node_cidr_patch(
            info.uid,
            cidrs,
            mode="annotation",
            annotations=annotations,
            has_annotations=info.name not in self._no_annotations,
        )

    async def _write(self, name: str) -> None:
        state = self.state
        if state is None:
            return
        a = state.assignment(name)
        info = state.node(name)
        if a is None or info is None or info.cidrs():
            return
        ops = self._patch_for(a, info)
        try:
            fence_left = self._fence()
        except LeadershipLost:
            return
        self._audit_line(event="write", node=name, uid=info.uid, cidrs=[str(c) for c in a.cidrs], fence=fence_left)
        try:
            await self.kube.patch_node(
                name,
                ops,
                field_manager=self.config.field_manager,
                timeout=self.config.write_timeout,
                guard=self._fence,
            )
        except LeadershipLost:
            self._audit_line(event="fenced", node=name)
            return
        except (Invalid, ApiStatusError) as e:
            if isinstance(e, ApiStatusError) and not isinstance(e, Invalid) and e.code >= 500:
                await self._verify(a, info.uid, uncertain=str(e))
            else:
                await self._verify(a, info.uid, refused=str(e))
            return
        except NotFound:
            self._audit_line(event="gone", node=name)
            state.cancel(a)
            return
        except Forbidden as e:
            self._failed(a, info, f"forbidden: {e}", reason="forbidden")
            return
        except RequestUncertain as e:
            await self._verify(a, info.uid, uncertain=str(e))
            return
        except ClusterUnreachable as e:  # connection refused: the request never left
            self._failed(a, info, str(e), reason="unreachable")
            return
        self._succeeded(a, info)

    def busy(self) -> bool:
        """Allocations in progress: writes queued or in flight, or one finished less than a second ago."""
        return bool(self._queued or self._inflight) or time.monotonic() - self.last_write < 1.0

    def _succeeded(self, a: Assignment, info: NodeInfo) -> None:
        self.writes_ok += 1
        self.last_write = time.monotonic()
        self._audit_line(event="written", node=a.node, uid=info.uid, cidrs=[str(c) for c in a.cidrs])
        seen = self._first_seen.pop(a.node, None)
        latency = time.monotonic() - seen[1] if seen is not None and seen[0] == info.uid else None
        for c in a.cidrs:
            fam = family_of(c)
            self.metrics.allocations.labels(a.pool, fam).inc()
            if latency is not None:
                self.metrics.latency.labels(a.pool, fam).observe(latency)
        self._retry_at.pop(a.node, None)
        if self.config.allocation_events:
            where = "spec.podCIDRs" if self.config.mode == "spec" else "annotations"
            pool_uid = str((self.pool_objs.get(a.pool, {}).get("metadata") or {}).get("uid", ""))
            self.events.emit_assigned(
                _node_regarding(a.node, info.uid),
                Regarding(POOL_API_VERSION, "PodCIDRPool", a.pool, pool_uid),
                f"assigned {_nets(a.cidrs)} from PodCIDRPool {a.pool} ({where})",
            )

    def _failed(self, a: Assignment, info: NodeInfo, message: str, *, reason: str) -> None:
        """A definite failure: give the blocks back, retry after a backoff."""
        state = self.state
        assert state is not None
        state.cancel(a)
        self._audit_line(event="failed", node=a.node, reason=reason, message=message)
        for c in a.cidrs:
            self.metrics.errors.labels(a.pool, family_of(c), f"write-{reason}").inc()
        self._waiting[a.node] = f"write-{reason}"
        self._retry_at[a.node] = time.monotonic() + self.config.retry_backoff
        self.events.emit(
            _node_regarding(a.node, info.uid),
            "Warning",
            "PodCIDRWriteFailed",
            "Allocate",
            f"could not write {_nets(a.cidrs)} from PodCIDRPool {a.pool}: {message}",
        )
        log.warning("node %s: writing %s failed: %s", a.node, _nets(a.cidrs), message)

    async def _verify(
        self, a: Assignment, uid: str, *, refused: str | None = None, uncertain: str | None = None
    ) -> None:
        """After a refused or unanswered write: read the node and decide (never feeding the state; see rule 2)."""
        delay = 0.2 if refused else 1.0
        for _attempt in range(8):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            try:
                obj = await self.kube.get_node(a.node)
            except NotFound:
                self._audit_line(event="gone", node=a.node)
                self._cancel_if_current(a, hold_off=True)
                return
            except KubeError as e:
                log.debug("node %s: verify read failed: %s", a.node, e)
                continue
            actual = NodeInfo.from_object(obj)
            if actual.uid != uid:  # the node we wrote to is gone; the write could not land on the new one
                self._cancel_if_current(a, hold_off=True)
                return
            on_node = set(actual.cidrs())
            if on_node:
                if set(a.cidrs) <= on_node:
                    self._succeeded(a, actual)  # an unanswered write did land
                else:
                    log.warning("node %s got %s from elsewhere; giving back %s", a.node, _nets(on_node), _nets(a.cidrs))
                    self._audit_line(event="raced", node=a.node, found=sorted(str(c) for c in on_node))
                    self._cancel_if_current(a, hold_off=True)
                return
            if refused is not None:
                self._failed(a, actual, refused, reason="refused")
                return
            # Unanswered and not applied: send the same blocks again.
            state = self.state
            if state is not None and self.allocating and state.assignment(a.node) == a:
                self._queued.add(a.node)
                self._queue.put_nowait(a.node)
            return
        log.warning(
            "node %s: outcome of writing %s unknown (%s); keeping the reservation",
            a.node,
            _nets(a.cidrs),
            uncertain or refused,
        )

    def _cancel_if_current(self, a: Assignment, *, hold_off: bool = False) -> None:
        """Give the blocks back. ``hold_off``: the watch is behind what a GET showed (the node has a CIDR, or is gone
        or replaced); decide for it again only when the watch catches up (or in 2 s), not in a tight loop."""
        state = self.state
        if state is not None and state.assignment(a.node) == a:
            state.cancel(a)
        if hold_off:
            self._retry_at[a.node] = time.monotonic() + 2.0

    # ================================================================================================ periodic

    async def _housekeeping(self) -> None:
        last_full = time.monotonic()
        last_cilium = 0.0
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            if self.allocating:
                due = [n for n, t in self._retry_at.items() if t <= now]
                for name in due:
                    self._retry_at.pop(name, None)
                    self._decide(name)
                if now - last_full > 30.0 and not self.busy():
                    last_full = now
                    self._decide_all()  # safety net: every node without a block gets a decision
            if (
                self.config.mode == "annotation"
                and self.config.cilium_config is not None
                and self.leading
                and now - last_cilium > self.config.cilium_check_interval
            ):
                last_cilium = now
                await self._check_cilium_config()
            self.metrics.pending_writes.set(len(self._inflight) + len(self._queued))

    async def _check_cilium_config(self) -> None:
        assert self.config.cilium_config is not None
        ns, name = self.config.cilium_config
        problem: str | None
        try:
            cm = await self.kube.get_configmap(ns, name)
        except KubeError as e:
            problem = f"cannot read ConfigMap {ns}/{name} to check annotate-k8s-node: {e}"
        else:
            value = str(((cm or {}).get("data") or {}).get("annotate-k8s-node", "")).strip().lower()
            if cm is None:
                problem = (
                    f"ConfigMap {ns}/{name} not found: Cilium >= 1.13 ignores the pod-CIDR annotations unless "
                    "annotate-k8s-node=true (or use --mode=spec)"
                )
            elif value != "true":
                problem = (
                    f"{ns}/{name} has annotate-k8s-node={value or '<unset>'}: Cilium >= 1.13 ignores the pod-CIDR "
                    'annotations this operator writes; set annotate-k8s-node: "true" (Helm annotateK8sNode=true) '
                    "or use --mode=spec"
                )
            else:
                problem = None
        if problem != self._cilium_problem:
            self._cilium_problem = problem
            if problem:
                log.warning("%s", problem)
                for pool, obj in self.pool_objs.items():
                    uid = str((obj.get("metadata") or {}).get("uid", ""))
                    self.events.emit(
                        Regarding(POOL_API_VERSION, "PodCIDRPool", pool, uid),
                        "Warning",
                        "CiliumIgnoresAnnotations",
                        "Check",
                        problem,
                    )

    async def _status_loop(self) -> None:
        last = 0.0
        while True:
            await asyncio.sleep(self.config.status_interval)
            if self.busy() and time.monotonic() - last < 5.0:
                continue  # counts are O(nodes) to compute: not every second during a burst
            last = time.monotonic()
            try:
                self._update_metrics()
                if self.allocating:
                    await self._sync_pools()
            except LeadershipLost:
                continue
            except KubeError as e:
                log.warning("pool status update failed: %s", e)

    def _update_metrics(self) -> None:
        state = self.state
        if state is None:
            return
        known: set[tuple[str, str]] = set()
        for pool in state.pools:
            for fam in pool.families:
                c = state.counts(pool.name, fam)
                self.metrics.set_pool(pool.name, fam, c.capacity, c.allocated)
                known.add((pool.name, fam))
        for key in self._metric_pools - known:
            self.metrics.forget_pool(*key)
        self._metric_pools = known
        held = sum(1 for n in state.node_names if state.held(n))
        counts = {
            "allocated": held,
            "pending": len(self._inflight) + len(self._queued),
            "no-pool": sum(1 for w in self._waiting.values() if w == NoPoolMatches.outcome),
            "exhausted": sum(1 for w in self._waiting.values() if w == PoolExhausted.outcome),
            "mismatch": len(self._mismatch),
            "foreign": len(self._foreign),
        }
        for k, v in counts.items():
            self.metrics.nodes.labels(k).set(v)
        self.metrics.foreign.set(sum(len(v) for v in self._foreign.values()))
        self.sync_request_metrics()

    def sync_request_metrics(self) -> None:
        """Copy the client's request counts into ``api_requests_total`` (cheap: also done on every scrape)."""
        for key, n in self.kube.stats.by_key.items():
            delta = n - self._api_counted.get(key, 0)
            if delta > 0:
                self.metrics.api_requests.labels(*key).inc(delta)
                self._api_counted[key] = n

    def status_document(self, name: str) -> dict[str, Any] | None:
        """The status this replica would write for a pool (None if unknown)."""
        state = self.state
        obj = self.pool_objs.get(name)
        if state is None or obj is None:
            return None
        md = obj.get("metadata") or {}
        generation = md.get("generation")
        gen = int(generation) if isinstance(generation, int) else None
        previous = list(((obj.get("status") or {}).get("conditions")) or [])
        now = micro_time().split(".")[0] + "Z"
        prev_by_type = {str(c.get("type")): c for c in previous}

        def cond(type_: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
            s = "True" if ok else "False"
            old = prev_by_type.get(type_)
            since = old.get("lastTransitionTime") if old and old.get("status") == s else None
            out: dict[str, Any] = {"type": type_, "status": s, "reason": reason, "message": message[:32000]}
            out["lastTransitionTime"] = since or now
            if gen is not None:
                out["observedGeneration"] = gen
            return out

        if name in self.pool_errors:
            doc: dict[str, Any] = {
                "conditions": [cond("Ready", False, "InvalidSpec", "; ".join(self.pool_errors[name]))],
            }
            if gen is not None:
                doc["observedGeneration"] = gen
            return doc
        try:
            st = state.status(name)
        except KeyError:
            return None
        # counts (saturated at int64) and the printer-column strings come from the shared status document
        doc = st.status_document(observed_generation=gen, now=now, previous_conditions=previous)
        conditions: list[dict[str, Any]] = list(doc.get("conditions") or [])
        deleting = bool(md.get("deletionTimestamp"))
        if deleting:
            for c in conditions:
                if c.get("type") == "Ready":
                    c.update(status="False", reason="Deleting", message="the pool is being deleted: no new allocations")
        mismatched = sorted(n for n, p in self._mismatch.items() if p == name)
        conditions.append(
            cond(
                "SelectorMismatch",
                bool(mismatched),
                "NodesNoLongerSelected" if mismatched else "AllNodesSelected",
                (
                    f"{len(mismatched)} node(s) hold blocks of this pool but no longer match spec.nodeSelector "
                    f"({', '.join(mismatched[:10])}{' ...' if len(mismatched) > 10 else ''}); "
                    "their CIDRs are kept: a live node's CIDR is never changed"
                )
                if mismatched
                else "every node holding a block of this pool matches spec.nodeSelector",
            )
        )
        if deleting:
            holders = st.nodes
            conditions.append(
                cond(
                    "DeletionBlocked",
                    bool(holders),
                    "InUse" if holders else "NotInUse",
                    (
                        f"deletion waits: {len(holders)} node(s) still hold blocks of this pool "
                        f"({', '.join(holders[:10])}{' ...' if len(holders) > 10 else ''}); the finalizer "
                        f"{FINALIZER} is removed when the last of them is deleted"
                    )
                    if holders
                    else "no node holds a block of this pool; the finalizer is being removed",
                )
            )
        if self.config.mode == "annotation" and self.config.cilium_config is not None:
            problem = self._cilium_problem
            conditions.append(
                cond(
                    "CiliumReadsAnnotations",
                    problem is None,
                    "AnnotateK8sNodeMissing" if problem else "AnnotateK8sNodeTrue",
                    problem or "cilium-config has annotate-k8s-node=true",
                )
            )
        doc["conditions"] = conditions
        return doc

    async def _sync_pools(self) -> None:
        state = self.state
        if state is None:
            return
        for name, obj in list(self.pool_objs.items()):
            if not self.allocating:
                return
            md = obj.get("metadata") or {}
            finalizers = list(md.get("finalizers") or [])
            deleting = bool(md.get("deletionTimestamp"))
            doc = self.status_document(name)
            if doc is not None:
                stripped = _strip_times(doc)
                current = _strip_times(obj.get("status") or {})
                if stripped != current and stripped != self._status_sent.get(name):
                    try:
                        await self.kube.patch_pool_status(
                            name, doc, field_manager=self.config.field_manager, low_priority=True, guard=self._fence
                        )
                        self._status_sent[name] = stripped
                    except NotFound:
                        continue
            if not deleting and FINALIZER not in finalizers:
                if finalizers:
                    ops: list[dict[str, Any]] = [
                        {"op": "test", "path": "/metadata/resourceVersion", "value": md.get("resourceVersion")},
                        {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
                    ]
                else:
                    ops = [
                        {"op": "test", "path": "/metadata/finalizers", "value": None},
                        {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
                    ]
                with contextlib.suppress(Invalid, NotFound):
                    await self.kube.patch_pool(name, ops, field_manager=self.config.field_manager, guard=self._fence)
            elif deleting and FINALIZER in finalizers:
                holders = state.nodes_in_pool(name) if name not in self.pool_errors else []
                if not holders:
                    i = finalizers.index(FINALIZER)
                    ops2: list[dict[str, Any]] = [
                        {"op": "test", "path": f"/metadata/finalizers/{i}", "value": FINALIZER},
                        {"op": "remove", "path": f"/metadata/finalizers/{i}"},
                    ]
                    with contextlib.suppress(Invalid, NotFound):
                        await self.kube.patch_pool(
                            name, ops2, field_manager=self.config.field_manager, guard=self._fence
                        )
                        log.info("pool %s: no node holds a block any more; finalizer removed", name)
                else:
                    self.events.emit(
                        Regarding(POOL_API_VERSION, "PodCIDRPool", name, str(md.get("uid", ""))),
                        "Warning",
                        "DeletionBlocked",
                        "Delete",
                        f"PodCIDRPool {name} is in use by {len(holders)} node(s) "
                        f"({', '.join(holders[:10])}{' ...' if len(holders) > 10 else ''}); it is deleted when "
                        "the last of them is gone (delete or drain and remove those nodes first)",
                    )

    # ================================================================================================ views

    def held_in_pool(self, name: str) -> dict[str, list[Network]]:
        state = self.state
        if state is None:
            return {}
        try:
            return state.held_in_pool(name)
        except KeyError:
            return {}

    @property
    def ready(self) -> bool:
        return self.synced.is_set()
