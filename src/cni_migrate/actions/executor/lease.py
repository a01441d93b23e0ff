"""Mutual exclusion: a ``coordination.k8s.io`` Lease per plan, so two executors never run the same plan.

The holder renews it every ``renew_seconds`` from a background thread; a holder that stops renewing loses it
after ``duration_seconds``. A Lease held by a process of this machine that is no longer running (the executor
was killed) is taken over at once, saying so, instead of waiting for it to expire. Every write is guarded by the
Lease's resourceVersion; losing the Lease while running sets :attr:`lost`, and the run stops after the action
in flight.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import threading
import uuid
from typing import Any

from cni_migrate.actions.executor.errors import LeaseHeld
from cni_migrate.kube import AmbiguousWrite, Conflict, KubeError
from cni_migrate.kube.rest import Rest

LEASE_NAMESPACE = "kube-system"


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _micro(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> _dt.datetime | None:
    if not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def identity() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PlanLease:
    def __init__(
        self,
        rest: Rest,
        plan_id: str,
        *,
        duration_seconds: int = 30,
        renew_seconds: float = 8.0,
        namespace: str = LEASE_NAMESPACE,
    ) -> None:
        self.rest = rest
        self.name = f"cni-migrate-{plan_id}"
        self.namespace = namespace
        self.duration = duration_seconds
        self.renew_every = renew_seconds
        self.holder = identity()
        self.lost = threading.Event()
        self.took_over: str | None = None
        self._rv: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- acquire / release ---------------------------------------------------------------------------------

    def acquire(self) -> None:
        current = self.rest.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
        if current is None:
            try:
                out = self.rest.create(self._body(None, acquire=True))
            except (Conflict, AmbiguousWrite):
                current = self.rest.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
                if current is None or (current.get("spec") or {}).get("holderIdentity") != self.holder:
                    raise LeaseHeld(self._held_message(current)) from None
                out = current
            self._rv = out["metadata"]["resourceVersion"]
        else:
            spec = current.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            if holder and holder != self.holder and not self._expired(spec) and not self._dead_local(holder):
                raise LeaseHeld(self._held_message(current))
            if holder and holder != self.holder:
                self.took_over = holder
            body = self._body(current, acquire=True)
            try:
                out = self.rest.replace(body)
            except (Conflict, AmbiguousWrite):
                again = self.rest.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
                if again is None or (again.get("spec") or {}).get("holderIdentity") != self.holder:
                    raise LeaseHeld(self._held_message(again)) from None
                out = again
            self._rv = out["metadata"]["resourceVersion"]
        self._thread = threading.Thread(target=self._renew_loop, name="lease-renew", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.lost.is_set():
            return
        try:
            current = self.rest.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
            if current is not None and (current.get("spec") or {}).get("holderIdentity") == self.holder:
                self.rest.delete(
                    "coordination.k8s.io/v1", "Lease", self.name, self.namespace, uid=current["metadata"]["uid"]
                )
        except KubeError:
            pass  # it expires on its own

    # --- internals ---------------------------------------------------------------------------------------

    def _body(self, current: dict[str, Any] | None, *, acquire: bool) -> dict[str, Any]:
        t = _micro(_now())
        spec: dict[str, Any] = dict((current or {}).get("spec") or {})
        if acquire:
            spec["acquireTime"] = t
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if current else 0)
        spec.update({"holderIdentity": self.holder, "leaseDurationSeconds": self.duration, "renewTime": t})
        meta: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "cni-migrate"},
        }
        if current is not None:
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def _expired(self, spec: dict[str, Any]) -> bool:
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        if renewed is None:
            return True
        return (_now() - renewed).total_seconds() > float(spec.get("leaseDurationSeconds") or self.duration)

    @staticmethod
    def _dead_local(holder: str) -> bool:
        host, _, rest = holder.partition("/")
        pid_text = rest.partition("/")[0]
        if host != socket.gethostname() or not pid_text.isdigit():
            return False
        return int(pid_text) != os.getpid() and not _pid_alive(int(pid_text))

    def _held_message(self, current: dict[str, Any] | None) -> str:
        spec = (current or {}).get("spec") or {}
        holder = spec.get("holderIdentity") or "unknown"
        host, _, rest = holder.partition("/")
        renewed = _parse(spec.get("renewTime"))
        age = f", renewed {(_now() - renewed).total_seconds():.0f} s ago" if renewed else ""
        return (
            f"another executor runs this plan: Lease {self.namespace}/{self.name} is held by {holder} "
            f"(host {host}, pid {rest.partition('/')[0] or '?'}{age}); wait for it to finish, or stop it; "
            f"a killed executor's Lease expires {spec.get('leaseDurationSeconds', self.duration)} s after its "
            "last renewal"
        )

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_every):
            try:
                current = self.rest.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
                if current is None or (current.get("spec") or {}).get("holderIdentity") != self.holder:
                    self.lost.set()
                    return
                out = self.rest.replace(self._body(current, acquire=False))
                self._rv = out["metadata"]["resourceVersion"]
            except Conflict:
                self.lost.set()
                return
            except KubeError:
                continue  # a passing fault: try again at the next tick; the Lease outlives a few misses
