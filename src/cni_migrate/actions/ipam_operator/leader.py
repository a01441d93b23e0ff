"""Leader election on a ``coordination.k8s.io/v1`` Lease, the way client-go's ``leaderelection`` does it, plus a
write fence.

* A candidate takes the Lease when it does not exist, is released (empty holder), or its holder has not renewed
  it for ``lease_duration`` *as measured on the candidate's own clock since it last saw the record change* (so
  clock skew between replicas does not matter). Every write to the Lease is an optimistic-concurrency PUT
  (``metadata.resourceVersion``): of two candidates only one can win.
* The leader renews every ``retry_period``. It considers itself leader only until ``renew_deadline`` after the
  *send time* of its last successful renewal; ``renew_deadline < lease_duration``, so it stops writing at least
  ``lease_duration - renew_deadline`` seconds before any other replica may take over (the fencing margin).
* :meth:`LeaderElector.fence` is what every write calls first: it raises :class:`LeadershipLost` unless the
  leadership is still valid for at least ``min_remaining`` seconds. On loss, the ``on_lost`` callback runs at once
  (timer-driven, even if a renewal request hangs), and the operator cancels every in-flight write.
* On a clean shutdown the leader releases the Lease (empty holder) so a standby takes over without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cni_migrate.kube import Conflict, KubeError, NotFound
from cni_migrate.kube.ipam import AsyncKube, micro_time

log = logging.getLogger("cni_migrate.ipam_operator.leader")


class LeadershipLost(Exception):
    """Raised by :meth:`LeaderElector.fence` when this replica may no longer write."""


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str = "cni-migrate-ipam"
    identity: str = ""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry-period < renew-deadline < lease-duration "
                f"(got {self.retry_period}, {self.renew_deadline}, {self.lease_duration})"
            )


class LeaderElector:
    def __init__(
        self,
        kube: AsyncKube,
        config: LeaseConfig,
        *,
        on_started: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.config = config
        self.on_started = on_started
        self.on_lost = on_lost
        self._clock = clock
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) of the record last seen
        self._observed_at = 0.0
        self._valid_until = 0.0  # monotonic: leadership holds strictly before this
        self._leader = False
        self._lease: dict[str, Any] | None = None
        self._expiry_timer: asyncio.TimerHandle | None = None
        self.became_leader = asyncio.Event()
        self.transitions = 0
        self.holder: str = ""

    # -------------------------------------------------------------------------------------------- queries

    @property
    def identity(self) -> str:
        return self.config.identity

    def is_leader(self) -> bool:
        return self._leader and self._clock() < self._valid_until

    def remaining(self) -> float:
        """Seconds of guaranteed leadership left (0 when not leader)."""
        return max(0.0, self._valid_until - self._clock()) if self._leader else 0.0

    def fence(self, min_remaining: float = 0.5) -> float:
        """Allow a write: return the seconds of leadership left, or raise :class:`LeadershipLost`."""
        left = self.remaining()
        if left < min_remaining:
            raise LeadershipLost(
                f"{self.identity}: not the leader of lease {self.config.namespace}/{self.config.name} "
                f"(or it expires in {left:.2f} s)"
            )
        return left

    # -------------------------------------------------------------------------------------------- loop

    async def run(self) -> None:
        """Acquire, then renew, forever (cancel to stop; then call :meth:`release`)."""
        cfg = self.config
        while True:
            started = self._clock()
            try:
                ok = await self._try_acquire_or_renew()
            except KubeError as e:
                log.warning("lease %s/%s: %s", cfg.namespace, cfg.name, e)
                ok = False
            if ok:
                if not self._leader:
                    self._leader = True
                    self.transitions += 1
                    log.info("%s: became leader (lease %s/%s)", cfg.identity, cfg.namespace, cfg.name)
                    self.became_leader.set()
                    if self.on_started is not None:
                        self.on_started()
                self._valid_until = started + cfg.renew_deadline
                self._arm_expiry_timer()
            elif self._leader and self._clock() >= self._valid_until:
                self._lose("renewal failed for longer than the renew deadline")
            period = cfg.retry_period if self._leader else cfg.retry_period * (1.0 + 0.2 * random.random())
            await asyncio.sleep(max(0.0, started + period - self._clock()))

    def _arm_expiry_timer(self) -> None:
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._valid_until - self._clock())
        self._expiry_timer = loop.call_later(delay, self._check_expiry)

    def _check_expiry(self) -> None:
        if self._leader and self._clock() >= self._valid_until:
            self._lose("the lease was not renewed in time")

    def _lose(self, why: str) -> None:
        if not self._leader:
            return
        self._leader = False
        self._valid_until = 0.0
        self.became_leader.clear()
        log.warning(
            "%s: lost leadership of lease %s/%s: %s", self.identity, self.config.namespace, self.config.name, why
        )
        if self.on_lost is not None:
            self.on_lost()

    def _record(self, now_wall: float, *, acquire: bool, transitions: int) -> dict[str, Any]:
        cfg = self.config
        spec: dict[str, Any] = {
            "holderIdentity": cfg.identity,
            "leaseDurationSeconds": max(1, round(cfg.lease_duration)),
            "renewTime": micro_time(now_wall),
            "leaseTransitions": transitions,
        }
        old = (self._lease or {}).get("spec") or {}
        spec["acquireTime"] = micro_time(now_wall) if acquire or not old.get("acquireTime") else old["acquireTime"]
        return spec

    async def _try_acquire_or_renew(self) -> bool:
        cfg = self.config
        timeout = max(1.0, min(5.0, cfg.renew_deadline / 2))
        now_wall = time.time()
        # Fast path: we hold it and know its resourceVersion; a PUT alone renews it.
        if self._leader and self._lease is not None:
            body = {**self._lease, "spec": {**self._lease["spec"], "renewTime": micro_time(now_wall)}}
            try:
                self._lease = await self.kube.replace_lease(cfg.namespace, body, timeout=timeout)
                self._observe(self._lease)
                return True
            except (Conflict, NotFound):
                pass  # someone touched it: fall back to the full read-check-write below
        lease = await self.kube.get_lease(cfg.namespace, cfg.name, timeout=timeout)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                "spec": self._record(now_wall, acquire=True, transitions=0),
            }
            try:
                self._lease = await self.kube.create_lease(cfg.namespace, body, timeout=timeout)
            except Conflict:
                return False
            self._observe(self._lease)
            return True
        self._observe(lease)
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        self.holder = holder
        duration = float(spec.get("leaseDurationSeconds") or cfg.lease_duration)
        if holder and holder != cfg.identity and self._clock() < self._observed_at + duration:
            if self._leader:
                self._lose(f"lease now held by {holder}")
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        mine = holder == cfg.identity
        self._lease = lease
        new_spec = self._record(now_wall, acquire=not mine, transitions=transitions if mine else transitions + 1)
        body = {**lease, "spec": new_spec}
        try:
            self._lease = await self.kube.replace_lease(cfg.namespace, body, timeout=timeout)
        except Conflict:
            return False
        self._observe(self._lease)
        return True

    def _observe(self, lease: dict[str, Any]) -> None:
        spec = lease.get("spec") or {}
        record = (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock()
        self.holder = record[0]

    async def release(self) -> None:
        """Give the Lease up (empty holder) if we hold it; the caller has stopped every write first."""
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        was_leader = self._leader
        self._leader = False
        self._valid_until = 0.0
        if not was_leader or self._lease is None:
            return
        spec = {
            **self._lease["spec"],
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "renewTime": micro_time(),
        }
        with contextlib.suppress(KubeError):
            await self.kube.replace_lease(self.config.namespace, {**self._lease, "spec": spec}, timeout=3.0)
            log.info("%s: released lease %s/%s", self.identity, self.config.namespace, self.config.name)
