"""The admission ledger's Lease: records each admitted PodCIDRPool with an optimistic-concurrency write, so that two
overlapping pools admitted at the same moment (by two webhook replicas, or by one before its informer saw the first)
cannot both pass. The logic is ``cni_migrate.analysis.ipam.admission_ledger``; this module only reads and writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from cni_migrate.analysis.ipam import PodCIDRPool
from cni_migrate.analysis.ipam.admission_ledger import (
    DEFAULT_TTL,
    LEDGER_ANNOTATION,
    ledger_conflicts,
    parse_ledger,
    prune_ledger,
    record,
    render_ledger,
)
from cni_migrate.kube import Conflict, KubeError
from cni_migrate.kube.ipam import AsyncKube

log = logging.getLogger("cni_migrate.ipam_operator.admission")

ATTEMPTS = 8
REQUEST_TIMEOUT = 2.0


class AdmissionLedger:
    """``admit(pool)``: the reasons to refuse (empty: admitted and recorded). Call it after the pool passed the
    checks against this replica's informer view."""

    def __init__(
        self,
        kube: AsyncKube,
        namespace: str,
        name: str,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.ttl = ttl
        self.clock = clock

    def _lease(self, text: str, current: dict[str, Any] | None) -> dict[str, Any]:
        md: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if current is not None:
            md = dict(current.get("metadata") or {})
        md["annotations"] = {**(md.get("annotations") or {}), LEDGER_ANNOTATION: text}
        lease: dict[str, Any] = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": md}
        lease["spec"] = (current or {}).get("spec") or {}
        return lease

    async def admit(self, pool: PodCIDRPool) -> list[str]:
        for _attempt in range(ATTEMPTS):
            try:
                current = await self.kube.get_lease(self.namespace, self.name, timeout=REQUEST_TIMEOUT)
                now = self.clock()
                md = (current or {}).get("metadata") or {}
                ledger = prune_ledger(
                    parse_ledger((md.get("annotations") or {}).get(LEDGER_ANNOTATION)), now=now, ttl=self.ttl
                )
                errors = ledger_conflicts(pool, ledger, now=now, ttl=self.ttl)
                if errors:
                    return errors
                lease = self._lease(render_ledger(record(ledger, pool, now=now)), current)
                if current is None:
                    await self.kube.create_lease(self.namespace, lease, timeout=REQUEST_TIMEOUT)
                else:
                    await self.kube.replace_lease(self.namespace, lease, timeout=REQUEST_TIMEOUT)
                return []
            except Conflict:
                continue  # another admission was recorded in between: read it and check again
            except KubeError as e:
                log.warning("could not record the admission of PodCIDRPool %s: %s", pool.name, e)
                return [
                    f"could not record the admission of PodCIDRPool {pool.name} in Lease "
                    f"{self.namespace}/{self.name} (it keeps concurrent admissions from overlapping): {e}; retry"
                ]
        return [f"too many concurrent PodCIDRPool admissions (Lease {self.namespace}/{self.name} kept changing); retry"]
