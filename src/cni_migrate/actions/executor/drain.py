"""Evict a node's pods as a careful SRE drains: through the Eviction API, all at once, never forced.

DaemonSet pods and mirror (static) pods stay; pods no controller would re-create are refused (they would be
lost), as are pods with emptyDir data unless the plan allows it. Each eviction refused by a PodDisruptionBudget is
asked again every ``retry_seconds`` until the per-node timeout; then the drain stops and names the budgets and
the pods (:class:`DrainBlocked`), and a resumed run asks again, e.g. after the budget was raised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cni_migrate.actions.executor.errors import GateClosed
from cni_migrate.kube import EvictionRefused, NotFound
from cni_migrate.kube.rest import Rest

Obj = dict[str, Any]


class DrainBlocked(GateClosed):
    """Evictions still refused at the timeout; resuming asks again (no approval needed)."""


@dataclass
class DrainResult:
    evicted: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # DaemonSet / mirror pods


def _owner_kind(pod: Obj) -> str | None:
    for o in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if o.get("controller"):
            return str(o.get("kind"))
    return None


def _name(pod: Obj) -> str:
    m = pod["metadata"]
    return f"{m.get('namespace')}/{m['name']}"


def classify(
    pods: list[Obj], *, ignore_daemonsets: bool, delete_emptydir_data: bool
) -> tuple[list[Obj], list[str], list[str]]:
    """(pods to evict, pods kept, reasons to refuse)."""
    evict: list[Obj] = []
    kept: list[str] = []
    refuse: list[str] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
            kept.append(_name(pod))
            continue
        owner = _owner_kind(pod)
        if owner == "DaemonSet":
            if ignore_daemonsets:
                kept.append(_name(pod))
                continue
            refuse.append(f"{_name(pod)} belongs to a DaemonSet (the plan does not ignore DaemonSets)")
            continue
        phase = (pod.get("status") or {}).get("phase")
        if owner is None and phase not in ("Succeeded", "Failed"):
            refuse.append(f"{_name(pod)} has no controller: evicting it would lose it for good")
            continue
        volumes = (pod.get("spec") or {}).get("volumes") or []
        if not delete_emptydir_data and any("emptyDir" in v for v in volumes):
            refuse.append(f"{_name(pod)} has emptyDir data and the plan does not allow deleting it")
            continue
        evict.append(pod)
    return evict, kept, refuse


def drain_nodes(
    rest: Rest,
    step: str,
    nodes: list[str],
    *,
    ignore_daemonsets: bool,
    delete_emptydir_data: bool,
    timeout_seconds: float,
    retry_seconds: float = 5.0,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DrainResult:
    result = DrainResult()
    pods: list[Obj] = []
    refuse: list[str] = []
    for node in nodes:
        on_node = rest.list("v1", "Pod", field_selector=f"spec.nodeName={node}")
        evict, kept, why = classify(
            on_node, ignore_daemonsets=ignore_daemonsets, delete_emptydir_data=delete_emptydir_data
        )
        pods.extend(evict)
        result.kept.extend(kept)
        refuse.extend(why)
    if refuse:
        raise DrainBlocked(step, f"cannot drain {', '.join(nodes)} safely", refuse)
    deadline = time.monotonic() + timeout_seconds
    refused: dict[str, list[str]] = {}
    lock = threading.Lock()
    done = [0]

    def one(pod: Obj) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        while True:
            try:
                rest.evict(name, ns, dry_run=dry_run)
                with lock:
                    result.evicted.append(f"{ns}/{name}")
                    refused.pop(f"{ns}/{name}", None)
                break
            except NotFound:
                with lock:
                    result.already_gone.append(f"{ns}/{name}")
                    refused.pop(f"{ns}/{name}", None)
                break
            except EvictionRefused as e:
                with lock:
                    refused[f"{ns}/{name}"] = e.budgets
                if time.monotonic() + retry_seconds > deadline or (stop is not None and stop.is_set()):
                    return
                time.sleep(retry_seconds)
        with lock:
            done[0] += 1
            if progress is not None:
                progress(done[0], len(pods))

    if pods:
        with ThreadPoolExecutor(max_workers=min(16, len(pods))) as pool:
            list(pool.map(one, pods))
    if refused:
        details = [f"pod {p}: {'; '.join(b)}" for p, b in sorted(refused.items())]
        raise DrainBlocked(
            step,
            f"PodDisruptionBudgets refuse {len(refused)} eviction(s) on {', '.join(nodes)} after "
            f"{timeout_seconds:.0f} s; raise or fix the budget, then resume",
            details,
        )
    if not dry_run:
        _wait_gone(rest, [p for p in pods if _name(p) in set(result.evicted)], deadline, step)
    return result


def _wait_gone(rest: Rest, pods: list[Obj], deadline: float, step: str) -> None:
    pending = {(p["metadata"]["namespace"], p["metadata"]["name"], p["metadata"].get("uid")) for p in pods}
    while pending:
        for key in list(pending):
            ns, name, uid = key
            cur = rest.get("v1", "Pod", name, ns)
            if cur is None or cur["metadata"].get("uid") != uid:
                pending.discard(key)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise DrainBlocked(
                step, "evicted pods are still terminating at the timeout", [f"{ns}/{n}" for ns, n, _ in sorted(pending)]
            )
        time.sleep(0.5)
