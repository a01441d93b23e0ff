"""One runner per action kind of the plan schema. Every runner is idempotent: run again after it finished (or
after a crash half-way), it finds the work done and says so (``noop``) instead of doing it twice.

A runner gets the action, the step, and ``prepared``: what the action's first intent record saw before it acted
(e.g. which nodes were already cordoned, the restart timestamp), so a resumed action decides exactly as the
interrupted one did.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from cni_migrate.actions.executor import backups
from cni_migrate.actions.executor.checks import CheckResult, CheckRunner
from cni_migrate.actions.executor.drain import drain_nodes
from cni_migrate.actions.executor.errors import ExecutorError, GateClosed, PlanInputError, StepFailed
from cni_migrate.actions.executor.journal import BackupEntry, Journal, now
from cni_migrate.actions.executor.planfile import LoadedPlan
from cni_migrate.actions.executor.tools import Tools
from cni_migrate.actions.nodes.transport import NodeTransport, TransportError
from cni_migrate.analysis.plan import model as m
from cni_migrate.kube import AmbiguousWrite, Conflict, KubeError, NotFound
from cni_migrate.kube.rest import Rest
from cni_migrate.kube.types import ResourceType

Obj = dict[str, Any]
DryRun = Literal["none", "client", "server"]
MANAGED_BY = "app.kubernetes.io/managed-by"
# Never swept by name: Kubernetes' own bookkeeping, and objects named after nodes, whose names often contain the
# old CNI's (hosts called k8s-calico-worker-1: the lossy seed's cluster). Secrets are listed, never read or deleted.
SWEEP_SKIPPED_KINDS = frozenset(
    {
        "Event",
        "Lease",
        "Endpoints",
        "EndpointSlice",
        "ControllerRevision",
        "Node",
        "CSINode",
        "VolumeAttachment",
        "ComponentStatus",
        "CertificateSigningRequest",
    }
)


@dataclass
class Outcome:
    state: Literal["done", "noop", "skipped"]
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Approvals:
    yes: bool = False
    steps: frozenset[str] = frozenset()
    ask: Callable[[str, str, list[str]], bool] | None = None

    def approved(self, step: str, prompt: str, details: list[str]) -> bool:
        if self.yes or step in self.steps:
            return True
        return self.ask is not None and self.ask(step, prompt, details)


@dataclass
class Context:
    rest: Rest
    loaded: LoadedPlan
    journal: Journal | None
    tools: Tools
    transport: NodeTransport | None
    checks: CheckRunner
    approvals: Approvals
    emit: Callable[..., None]
    dry_run: DryRun = "none"
    chart_overrides: dict[str, str] = field(default_factory=dict)
    finalizer_grace: float | None = None
    drain_timeout: float | None = None
    eviction_retry: float = 5.0
    poll: float = 0.5
    stop: threading.Event = field(default_factory=threading.Event)
    # (object key, finalizer) a later remove-finalizers of the plan clears -> the grace time it gives the owner
    cleared_later: Mapping[tuple[str, str], float] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)  # checks and probes skipped by --skip-checks

    @property
    def server_dry(self) -> bool:
        return self.dry_run == "server"

    def backup_keys(self) -> set[str]:
        return {b.object for b in self.journal.doc.backups.values()} if self.journal else set()

    def applied_keys(self) -> set[str]:
        """Objects this run created itself (its own apply actions): deletable without a backup."""
        if self.journal is None:
            return set()
        out: set[str] = set()
        for r in self.journal.doc.records:
            out.update(r.data.get("applied", []))
        return out


Runner = Callable[[Context, m.Step, Any, dict[str, Any]], Outcome]


# --- helpers -----------------------------------------------------------------------------------------------


def ref_key(ref: m.ObjectRef) -> str:
    return ref.key()


def _get(ctx: Context, ref: m.ObjectRef) -> Obj | None:
    try:
        return ctx.rest.get(ref.api_version, ref.kind, ref.name, ref.namespace)
    except NotFound:  # the kind itself is not served (its CRD is gone): so is the object
        return None


def _group_versions(rest: Rest) -> dict[str, str]:
    """group -> preferred group version."""
    out: dict[str, str] = {}
    for gv in rest.groups():
        group = gv.rsplit("/", 1)[0] if "/" in gv else ""
        out.setdefault(group, gv)
    return out


def _selected(ctx: Context, sel: m.ObjectSelector) -> Iterator[Obj]:
    gv = _group_versions(ctx.rest).get(sel.group)
    if gv is None:
        return
    kinds = ctx.rest.served(gv)
    for kind, rt in sorted(kinds.items()):
        if sel.kind is not None and kind != sel.kind:
            continue
        if kind.endswith("List"):
            continue
        try:
            objs = list(ctx.rest.iter_list(rt, namespace=sel.namespace, label_selector=sel.label_selector))
        except KubeError:
            continue
        for o in objs:
            if sel.name is None or o["metadata"]["name"] == sel.name:
                yield o


def _name_matched(ctx: Context, nm: m.NameMatch) -> tuple[list[Obj], list[str]]:
    """(objects whose name matches, names left alone and why)."""
    pattern = re.compile(nm.pattern, re.IGNORECASE)
    found: list[Obj] = []
    left: list[str] = []
    for gv in _group_versions(ctx.rest).values():
        group = gv.rsplit("/", 1)[0] if "/" in gv else ""
        if group in nm.exclude_groups or group in ("events.k8s.io", "metrics.k8s.io", "authorization.k8s.io"):
            continue
        for kind, rt in sorted(ctx.rest.served(gv).items()):
            if kind in SWEEP_SKIPPED_KINDS or kind.endswith(("Review", "Request", "Options")):
                continue
            if group == "cni-migrate.io":
                continue
            try:
                objs = list(ctx.rest.iter_list(rt))
            except KubeError:
                continue
            for o in objs:
                meta = o.get("metadata") or {}
                if not pattern.search(str(meta.get("name", ""))):
                    continue
                if meta.get("namespace") in nm.exclude_namespaces:
                    continue
                if backups.is_controlled(o) or "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
                    continue  # goes with its owner (mirror pods: with the kubelet's static pod)
                if kind == "Secret":
                    left.append(f"Secret {meta.get('namespace')}/{meta['name']} (Secret contents are never read)")
                    continue
                found.append(o)
    return found, left


def _rt_of(obj: Obj, rest: Rest) -> ResourceType:
    return rest.resource(str(obj["apiVersion"]), str(obj["kind"]))


def _ref_of(obj: Obj) -> m.ObjectRef:
    meta = obj["metadata"]
    return m.ObjectRef(
        api_version=str(obj["apiVersion"]), kind=str(obj["kind"]), name=meta["name"], namespace=meta.get("namespace")
    )


def _wait(ctx: Context, what: str, timeout: float, probe: Callable[[], tuple[bool, str]]) -> str:
    deadline = time.monotonic() + timeout
    detail = ""
    while True:
        ok, detail = probe()
        if ok:
            return detail
        if time.monotonic() > deadline:
            raise StepFailed("", f"timed out after {timeout:.0f} s waiting for {what} ({detail})")
        if ctx.stop.wait(ctx.poll):
            raise StepFailed("", f"interrupted while waiting for {what}")


# --- backup / restore ---------------------------------------------------------------------------------------


def run_backup(ctx: Context, step: m.Step, a: m.Backup, prepared: dict[str, Any]) -> Outcome:
    directory = ctx.loaded.resolve(a.destination)
    objs: list[Obj] = []
    absent: list[str] = []
    for ref in a.objects:
        o = _get(ctx, ref)
        if o is None:
            absent.append(ref.text())
        else:
            objs.append(o)
    for sel in a.selectors:
        objs.extend(_selected(ctx, sel))
    left: list[str] = []
    if a.name_match is not None:
        matched, left = _name_matched(ctx, a.name_match)
        objs.extend(matched)
    unique = {backups.object_key(o): o for o in objs}
    if ctx.dry_run != "none":
        return Outcome("skipped", f"dry run: would save {len(unique)} object(s) into {a.destination}")
    created = kept = 0
    for o in unique.values():
        saved = backups.save(directory, o)
        rel = (
            str(saved.path.relative_to(ctx.loaded.directory))
            if saved.path.is_relative_to(ctx.loaded.directory)
            else str(saved.path)
        )
        if ctx.journal is not None:
            ctx.journal.add_backup(BackupEntry(path=rel, sha256=saved.sha256, object=saved.key, step=step.id))
        created += saved.created
        kept += not saved.created
    msg = f"saved {created} object(s) into {a.destination}"
    if kept:
        msg += f", kept {kept} saved earlier (a backup is never overwritten)"
    if absent:
        msg += f"; absent, nothing to save: {', '.join(absent[:10])}" + (" ..." if len(absent) > 10 else "")
    if left:
        msg += f"; not saved and left in place: {', '.join(left[:5])}"
    return Outcome("done" if created else "noop", msg, {"saved": created, "kept": kept, "left": left})


def backup_files(ctx: Context, source: str) -> list[Path]:
    directory = ctx.loaded.resolve(source)
    return sorted(directory.glob("*.yaml")) if directory.is_dir() else []


def verify_backups(ctx: Context, sources: list[str]) -> None:
    """Every backup the journal recorded under ``sources`` exists with its checksum: before any restore writes."""
    if ctx.journal is None:
        return
    problems = []
    for entry in ctx.journal.doc.backups.values():
        if not any(entry.path.startswith(s.rstrip("/") + "/") for s in sources):
            continue
        p = ctx.loaded.resolve(entry.path)
        if not p.is_file():
            problems.append(f"{entry.path} (backup of {entry.object}) is missing")
        elif backups.sha256_of(p) != entry.sha256:
            problems.append(f"{entry.path} (backup of {entry.object}) was changed: checksum differs from the journal")
    if problems:
        raise PlanInputError("backups cannot be trusted: " + "; ".join(problems[:10]))


def _wanted(obj: Obj, a: m.RestoreBackup) -> bool:
    if not a.objects and not a.selectors:
        return True
    ref = _ref_of(obj)
    return any(r.key() == ref.key() for r in a.objects) or any(s.covers(ref) for s in a.selectors)


def run_restore(ctx: Context, step: m.Step, a: m.RestoreBackup, prepared: dict[str, Any]) -> Outcome:
    verify_backups(ctx, [a.source])
    docs = []
    for p in backup_files(ctx, a.source):
        try:
            o = backups.load(p)
        except (OSError, ValueError, yaml.YAMLError) as e:
            raise PlanInputError(f"{p}: the backup cannot be read ({e})") from e
        if _wanted(o, a) and not backups.is_controlled(o):
            docs.append(o)
    missing = [r.text() for r in a.objects if not any(_ref_of(o).key() == r.key() for o in docs)]
    if ctx.dry_run == "client":
        return Outcome("skipped", f"dry run: would re-create {len(docs)} object(s) from {a.source}")
    created: list[str] = []
    present: list[str] = []
    finalizers: list[tuple[Obj, list[str]]] = []
    for o in backups.ordered(docs):
        body, fins = backups.for_restore(o)
        ref = _ref_of(body)
        _ensure_namespace(ctx, body)
        current = _get(ctx, ref)
        if current is not None and (current["metadata"].get("deletionTimestamp")):
            _wait(ctx, f"{ref.text()} to finish terminating", 120, functools.partial(_gone, ctx, ref))
            current = None
        if current is not None:
            present.append(ref.text())
        else:
            try:
                ctx.rest.create(body, dry_run=ctx.server_dry)
                created.append(ref.text())
            except (Conflict, AmbiguousWrite):
                if _get(ctx, ref) is None:
                    raise
                present.append(ref.text())
        if fins:
            finalizers.append((body, fins))
        if body["kind"] == "CustomResourceDefinition" and not ctx.server_dry:
            _wait_established(ctx, body["metadata"]["name"], 60)
    if not ctx.server_dry:
        for body, fins in finalizers:  # last: every object exists again
            ref = _ref_of(body)
            cur = _get(ctx, ref)
            if cur is None:
                continue
            have = list(cur["metadata"].get("finalizers") or [])
            want = have + [f for f in fins if f not in have]
            if want != have:
                ctx.rest.patch(ref.api_version, ref.kind, ref.name, ref.namespace, {"metadata": {"finalizers": want}})
    msg = f"re-created {len(created)} object(s) from {a.source}"
    if present:
        msg += f"; {len(present)} already present (left as they are)"
    if missing:
        msg += f"; no backup of {', '.join(missing[:5])} (it did not exist when the backup was taken)"
    return Outcome("done" if created else "noop", msg, {"created": created})


def _gone(ctx: Context, ref: m.ObjectRef) -> tuple[bool, str]:
    return _get(ctx, ref) is None, "terminating"


def _ensure_namespace(ctx: Context, obj: Obj) -> None:
    ns = (obj.get("metadata") or {}).get("namespace")
    if not ns or ctx.rest.get("v1", "Namespace", ns) is not None:
        return
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    with contextlib.suppress(Conflict, AmbiguousWrite):
        ctx.rest.create(body, dry_run=ctx.server_dry)


def _wait_established(ctx: Context, name: str, timeout: float) -> None:
    def probe() -> tuple[bool, str]:
        crd = ctx.rest.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
        conds = {c.get("type"): c.get("status") for c in ((crd or {}).get("status") or {}).get("conditions") or []}
        return conds.get("Established") == "True", "not established yet"

    _wait(ctx, f"CRD {name} to be established", timeout, probe)
    ctx.rest.forget()


# --- apply / patch / delete ---------------------------------------------------------------------------------


def run_apply(ctx: Context, step: m.Step, a: m.ApplyObjects, prepared: dict[str, Any]) -> Outcome:
    objs = a.objects
    if a.artifact:
        try:
            art = ctx.loaded.plan.artifact(a.artifact)
            objs = [d for d in yaml.safe_load_all(art.content) if d] or objs
        except KeyError:
            pass
    if ctx.dry_run == "client":
        return Outcome("skipped", f"dry run: would apply {len(objs)} object(s)")
    keys = []
    changed = 0
    for o in sorted(objs, key=backups.restore_rank):
        before = (
            ctx.rest.get(str(o["apiVersion"]), str(o["kind"]), o["metadata"]["name"], o["metadata"].get("namespace"))
            if _served(ctx, o)
            else None
        )
        out = ctx.rest.apply(o, dry_run=ctx.server_dry)
        keys.append(backups.object_key(o))
        if before is None or before["metadata"].get("resourceVersion") != out["metadata"].get("resourceVersion"):
            changed += 1
        if o["kind"] == "CustomResourceDefinition" and not ctx.server_dry:
            _wait_established(ctx, o["metadata"]["name"], 60)
    state: Literal["done", "noop"] = "done" if changed else "noop"
    msg = f"applied {len(objs)} object(s) (server-side, field manager cni-migrate)"
    if not changed:
        msg += "; all were already as applied"
    return Outcome(state, msg, {"applied": keys if not ctx.server_dry else []})


def _served(ctx: Context, o: Obj) -> bool:
    try:
        ctx.rest.resource(str(o["apiVersion"]), str(o["kind"]))
    except NotFound:
        return False
    return True


def run_patch(ctx: Context, step: m.Step, a: m.PatchObject, prepared: dict[str, Any]) -> Outcome:
    t = a.target
    cur = _get(ctx, t)
    if cur is None:
        raise StepFailed(step.id, f"cannot patch {t.text()}: it does not exist")
    if t.key() not in ctx.backup_keys() and ctx.dry_run == "none" and t.key() not in ctx.applied_keys():
        raise StepFailed(step.id, f"refusing to patch {t.text()}: no backup of it was taken by this run")
    if ctx.dry_run == "client":
        return Outcome("skipped", f"dry run: would {a.patch_type}-patch {t.text()}")
    # A patch that changes nothing any more (applied before a crash) is a no-op: ask the server first.
    preview = ctx.rest.patch(t.api_version, t.kind, t.name, t.namespace, a.patch, patch_type=a.patch_type, dry_run=True)
    if _content(preview) == _content(cur):
        return Outcome("noop", f"{t.text()} already carries the patch")
    if ctx.server_dry:
        return Outcome("skipped", f"server dry run: {t.text()} would change")
    ctx.rest.patch(t.api_version, t.kind, t.name, t.namespace, a.patch, patch_type=a.patch_type)
    return Outcome("done", f"patched {t.text()} ({a.patch_type})")


def _content(o: Obj) -> Any:
    meta = {
        k: v
        for k, v in (o.get("metadata") or {}).items()
        if k not in ("resourceVersion", "managedFields", "generation")
    }
    return {"metadata": meta, "spec": o.get("spec"), "data": o.get("data")}


def delete_targets(ctx: Context, a: m.DeleteObjects) -> tuple[list[Obj], list[str], list[str]]:
    """(objects that exist and will be deleted, refs already gone, objects left alone and why)."""
    objs: list[Obj] = []
    gone: list[str] = []
    for ref in a.objects:
        o = _get(ctx, ref)
        if o is None:
            gone.append(ref.text())
        else:
            objs.append(o)
    for sel in a.selectors:
        objs.extend(_selected(ctx, sel))
    left: list[str] = []
    if a.name_match is not None:
        matched, left = _name_matched(ctx, a.name_match)
        objs.extend(matched)
    unique = {backups.object_key(o): o for o in objs}
    return list(unique.values()), gone, left


def run_delete(ctx: Context, step: m.Step, a: m.DeleteObjects, prepared: dict[str, Any]) -> Outcome:
    objs, gone, left = delete_targets(ctx, a)
    if ctx.dry_run == "client":
        return Outcome("skipped", f"dry run: would delete {len(objs)} object(s)")
    backed = ctx.backup_keys()
    own = ctx.applied_keys()
    unsafe = [
        backups.object_key(o)
        for o in objs
        if backups.object_key(o) not in backed
        and backups.object_key(o) not in own
        and (o["metadata"].get("labels") or {}).get(MANAGED_BY) != "cni-migrate"
    ]
    if unsafe and not ctx.server_dry:
        raise StepFailed(
            step.id,
            f"refusing to delete {len(unsafe)} object(s) this run has no backup of: {', '.join(unsafe[:8])}",
        )
    propagation = a.cascade.capitalize()
    deleted = []
    for o in sorted(objs, key=backups.restore_rank, reverse=True):  # dependents first, CRDs last
        meta = o["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        if ctx.rest.delete(
            str(o["apiVersion"]),
            str(o["kind"]),
            meta["name"],
            meta.get("namespace"),
            propagation=propagation,
            dry_run=ctx.server_dry,
            uid=meta.get("uid"),
        ):
            deleted.append(backups.object_key(o))
    stuck: list[str] = []
    if a.wait and not ctx.server_dry:
        stuck = _wait_deleted(ctx, objs, a.timeout_seconds, step.id)
    msg = f"deleted {len(deleted)} object(s)"
    if gone:
        msg += f"; {len(gone)} already gone"
    if stuck:
        msg += f"; terminating until a later step clears their finalizers: {', '.join(stuck)}"
    if left:
        msg += f"; left in place: {', '.join(left[:5])}"
    return Outcome("done" if deleted else "noop", msg, {"deleted": deleted, "left": left})


def _wait_deleted(ctx: Context, objs: list[Obj], timeout: float, step: str) -> list[str]:
    pending = {backups.object_key(o): o for o in objs}
    stuck: list[str] = []
    held = {k.split("/")[2] for k, _ in ctx.cleared_later}  # namespaces holding objects cleared later

    def probe() -> tuple[bool, str]:
        for key, o in list(pending.items()):
            cur = _get(ctx, _ref_of(o))
            if cur is None or cur["metadata"].get("uid") != o["metadata"].get("uid"):
                pending.pop(key)
                continue
            fins = cur["metadata"].get("finalizers") or []
            if fins and all((key, f) in ctx.cleared_later for f in fins):
                # the finalizers' owner (e.g. a running operator) gets the grace time to process them; after it
                # they are reported as terminating, and the later step clears them
                grace = _finalizer_grace(ctx, min(ctx.cleared_later[(key, f)] for f in fins))
                if _age(str(cur["metadata"].get("deletionTimestamp") or now())) < grace:
                    continue
                stuck.append(f"{_ref_of(o).text()} ({', '.join(fins)})")
                pending.pop(key)
            elif o["kind"] == "Namespace" and cur["metadata"].get("deletionTimestamp") and key.split("/")[3] in held:
                # finalized by the namespace controller only after its content, whose finalizers a later step clears
                stuck.append(f"{_ref_of(o).text()} (until its content is gone)")
                pending.pop(key)
        return not pending, f"{len(pending)} left: {', '.join(list(pending)[:5])}"

    _wait(ctx, "the deleted objects to disappear", timeout, probe)
    return stuck


NAMESPACE_CONTENT_TIMEOUT = 120.0


def _finalizer_grace(ctx: Context, after_seconds: float) -> float:
    """The plan's grace time for a finalizer's owner; --finalizer-grace can shorten it, never lengthen it."""
    return after_seconds if ctx.finalizer_grace is None else min(after_seconds, ctx.finalizer_grace)


def run_remove_finalizers(ctx: Context, step: m.Step, a: m.RemoveFinalizers, prepared: dict[str, Any]) -> Outcome:
    t = a.target
    cur = _get(ctx, t)
    if cur is None:
        return Outcome("noop", f"{t.text()} is gone: no finalizer to clear")
    if not cur["metadata"].get("deletionTimestamp") and t.namespace:
        ns = ctx.rest.get("v1", "Namespace", t.namespace)
        if ns is not None and ns["metadata"].get("deletionTimestamp"):
            # the namespace controller deletes a terminating namespace's content a moment later: wait for it, or
            # this object turns terminating after the step and keeps its finalizers (and the namespace) forever
            def deleted_with_namespace() -> tuple[bool, str]:
                again = _get(ctx, t)
                return again is None or bool(again["metadata"].get("deletionTimestamp")), "not deleted yet"

            _wait(
                ctx, f"{t.text()} to be deleted with its namespace", NAMESPACE_CONTENT_TIMEOUT, deleted_with_namespace
            )
            cur = _get(ctx, t)
            if cur is None:
                return Outcome("noop", f"{t.text()} is gone: no finalizer to clear")
    if not cur["metadata"].get("deletionTimestamp"):
        return Outcome("noop", f"{t.text()} is not being deleted: its finalizers stay")
    grace = _finalizer_grace(ctx, a.after_seconds)
    since = _age(cur["metadata"]["deletionTimestamp"])

    def probe() -> tuple[bool, str]:
        return _get(ctx, t) is None, "still terminating"

    if since < grace:
        try:
            _wait(ctx, f"{t.text()} to finish terminating on its own", grace - since, probe)
            return Outcome("noop", f"{t.text()} finished terminating on its own")
        except StepFailed:
            if ctx.stop.is_set():
                raise
    cur = _get(ctx, t)
    if cur is None:
        return Outcome("noop", f"{t.text()} is gone")
    have = list(cur["metadata"].get("finalizers") or [])
    keep = [f for f in have if f not in a.finalizers]
    if keep == have:
        return Outcome("noop", f"{t.text()} no longer has {', '.join(a.finalizers)}")
    if t.key() not in ctx.backup_keys() and ctx.dry_run == "none":
        raise StepFailed(step.id, f"refusing to clear finalizers of {t.text()}: no backup of it was taken by this run")
    if ctx.dry_run == "client":
        return Outcome("skipped", f"dry run: would clear {', '.join(a.finalizers)} from {t.text()}")
    patch = {"metadata": {"finalizers": keep or None, "resourceVersion": cur["metadata"]["resourceVersion"]}}
    try:
        ctx.rest.patch(t.api_version, t.kind, t.name, t.namespace, patch, dry_run=ctx.server_dry, idempotent=False)
    except (Conflict, AmbiguousWrite):
        again = _get(ctx, t)
        if again is not None and any(f in (again["metadata"].get("finalizers") or []) for f in a.finalizers):
            raise StepFailed(
                step.id, f"{t.text()} changed while its finalizers were being cleared; resume to retry"
            ) from None
    return Outcome("done", f"cleared {', '.join(a.finalizers)} from {t.text()} (terminating for {since:.0f} s)")


def _age(timestamp: str) -> float:
    t = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (dt.datetime.now(dt.UTC) - t).total_seconds()


# --- helm ------------------------------------------------------------------------------------------------


def _helm_status(ctx: Context, release: str, namespace: str) -> Obj | None:
    r = ctx.tools.run(["helm", "status", release, "-n", namespace, "-o", "json"])
    if not r.ok:
        if "not found" in (r.stderr + r.stdout).lower():
            return None
        raise StepFailed("", f"helm status {release}: {r.brief()}")
    try:
        out: Obj = json.loads(r.stdout)
    except ValueError as e:
        raise StepFailed("", f"helm status {release}: unreadable answer") from e
    return out


def run_helm(ctx: Context, step: m.Step, a: m.HelmRelease, prepared: dict[str, Any]) -> Outcome:
    ctx.tools.require("helm")
    values_path = ctx.loaded.resolve(a.values_file) if a.values_file else None
    wanted: Any = {}
    if values_path is not None:
        if not values_path.is_file():
            try:  # plan.json alone: the values file is one of the plan's artifacts
                art = ctx.loaded.plan.artifact(a.values_file or "")
            except KeyError:
                raise PlanInputError(f"values file {values_path} is missing (it is part of the plan's --out)") from None
            values_path.parent.mkdir(parents=True, exist_ok=True)
            values_path.write_text(art.content)
        wanted = yaml.safe_load(values_path.read_text()) or {}
    override = ctx.chart_overrides.get(a.chart)
    status = _helm_status(ctx, a.release, a.namespace)
    if status is not None and (status.get("info") or {}).get("status") == "deployed":
        chart_meta = ((status.get("chart") or {}).get("metadata")) or {}
        r = ctx.tools.run(["helm", "get", "values", a.release, "-n", a.namespace, "-o", "json"])
        current = json.loads(r.stdout or "null") if r.ok else None
        version_ok = override is not None or chart_meta.get("version") == a.version
        if version_ok and (current or {}) == wanted:
            return Outcome(
                "noop",
                f"release {a.namespace}/{a.release} is already deployed with these values "
                f"(revision {status.get('version')})",
            )
    argv = ["helm", "upgrade", "--install", a.release]
    if override is not None:
        argv.append(override)
    elif a.repo_url:
        argv += [a.chart.split("/", 1)[-1], "--repo", a.repo_url, "--version", a.version]
    else:
        argv += [a.chart, "--version", a.version]
    argv += ["-n", a.namespace]
    if values_path is not None:
        argv += ["-f", str(values_path)]
    if a.create_namespace:
        argv.append("--create-namespace")
    if a.wait:
        argv += ["--wait", f"--timeout={a.timeout_seconds}s"]
    if ctx.dry_run == "client":
        return Outcome("skipped", "dry run: would run " + " ".join(argv))
    if ctx.server_dry:
        argv.append("--dry-run=server")
    r = ctx.tools.run(argv, timeout=a.timeout_seconds + 60)
    if not r.ok:
        raise StepFailed(step.id, f"helm upgrade --install {a.release} failed: {r.brief()}")
    return Outcome(
        "done",
        f"helm upgrade --install {a.release} ({override or a.chart} {'' if override else a.version}) succeeded".replace(
            "  ", " "
        ),
    )


def run_helm_uninstall(ctx: Context, step: m.Step, a: m.HelmUninstall, prepared: dict[str, Any]) -> Outcome:
    ctx.tools.require("helm")
    if _helm_status(ctx, a.release, a.namespace) is None:
        return Outcome("noop", f"release {a.namespace}/{a.release} is not installed")
    if ctx.dry_run != "none":
        return Outcome("skipped", f"dry run: would uninstall release {a.namespace}/{a.release}")
    r = ctx.tools.run(["helm", "uninstall", a.release, "-n", a.namespace, "--wait"], timeout=600)
    if not r.ok:
        raise StepFailed(step.id, f"helm uninstall {a.release} failed: {r.brief()}")
    return Outcome("done", f"uninstalled release {a.namespace}/{a.release}")


# --- wait ------------------------------------------------------------------------------------------------


def _ready(pod: Obj) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _rollout_done(o: Obj | None) -> tuple[bool, str]:
    if o is None:
        return False, "does not exist"
    st = o.get("status") or {}
    gen = (o.get("metadata") or {}).get("generation", 0)
    if st.get("observedGeneration", 0) < gen:
        return False, "the controller has not seen the latest spec yet"
    if o["kind"] == "DaemonSet":
        want = st.get("desiredNumberScheduled", 0)
        have = (st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0))
        return (have[0] >= want and have[1] >= want), f"{have[1]}/{want} available, {have[0]} updated"
    want = (o.get("spec") or {}).get("replicas", 1)
    have = (st.get("updatedReplicas", 0), st.get("availableReplicas", 0))
    return (have[0] >= want and have[1] >= want), f"{have[1]}/{want} available, {have[0]} updated"


def run_wait(ctx: Context, step: m.Step, a: m.WaitFor, prepared: dict[str, Any]) -> Outcome:
    if ctx.dry_run != "none":
        return Outcome("skipped", f"dry run: would wait for {a.condition}")
    t = a.target
    if a.condition == "pod-phase" and a.value in ("Succeeded", "Failed") and "exec" in ctx.checks.skip:
        # a probe pod's outcome is its container's: a check of the exec class
        why = f"{t.text() if t else 'pod'} reaching {a.value} (needs its container to run)"
        ctx.not_run.append(f"{step.id}: {why} (not run: --skip-checks exec)")
        return Outcome("skipped", f"not run: --skip-checks exec: {why}")
    what = f"{a.condition} {t.text() if t else a.selector or ''}".strip()

    def probe() -> tuple[bool, str]:
        if a.condition == "rollout" and t is not None:
            return _rollout_done(_get(ctx, t))
        if a.condition == "deleted":
            if t is not None:
                return _get(ctx, t) is None, "still present"
            pods = _pods(ctx, a.namespace, a.selector, a.nodes)
            return not pods, f"{len(pods)} pod(s) left"
        if a.condition == "condition" and t is not None:
            o = _get(ctx, t)
            conds = {c.get("type"): c.get("status") for c in ((o or {}).get("status") or {}).get("conditions") or []}
            return conds.get(a.value) == "True", f"{a.value}={conds.get(a.value, 'absent')}"
        if a.condition == "pods-ready":
            pods = _pods(ctx, a.namespace, a.selector, a.nodes)
            ready = [p for p in pods if _ready(p)]
            return bool(pods) and len(ready) == len(pods), f"{len(ready)}/{len(pods)} ready"
        if a.condition == "pod-phase" and t is not None:
            o = _get(ctx, t)
            phase = ((o or {}).get("status") or {}).get("phase")
            return phase == a.value, f"phase {phase}"
        if a.condition == "nodes-ready":
            nodes = ctx.rest.list("v1", "Node")
            if a.nodes:
                nodes = [n for n in nodes if n["metadata"]["name"] in a.nodes]
            ready = [n for n in nodes if _ready(n)]
            return len(ready) == len(nodes), f"{len(ready)}/{len(nodes)} Ready"
        raise StepFailed(step.id, f"wait {a.condition}: the plan gives no target")

    detail = _wait(ctx, what, a.timeout_seconds, probe)
    return Outcome("done", f"{what}: {detail or 'ok'}")


def _pods(ctx: Context, namespace: str | None, selector: str | None, nodes: list[str]) -> list[Obj]:
    pods = []
    if nodes:
        for n in nodes:
            pods += ctx.rest.list(
                "v1", "Pod", namespace=namespace, label_selector=selector, field_selector=f"spec.nodeName={n}"
            )
    else:
        pods = ctx.rest.list("v1", "Pod", namespace=namespace, label_selector=selector)
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


# --- gate, nodes -------------------------------------------------------------------------------------------


def gate_details(ctx: Context, step: m.Step, a: m.ManualGate) -> list[str]:
    """The gate's own details, plus what the step will delete by name (the "listed by the executor" part)."""
    details = list(a.details)
    for other in step.actions:
        if isinstance(other, m.DeleteObjects) and other.name_match is not None:
            objs, _, left = delete_targets(ctx, other)
            details.append(f"{len(objs)} object(s) match /{other.name_match.pattern}/ and will be deleted:")
            details += [f"  {_ref_of(o).text()}" for o in objs]
            details += [f"  left in place: {x}" for x in left]
    return details


def run_gate(ctx: Context, step: m.Step, a: m.ManualGate, prepared: dict[str, Any]) -> Outcome:
    details = gate_details(ctx, step, a)
    if ctx.dry_run != "none":
        return Outcome("skipped", f"dry run: gate: {a.prompt}", {"details": details})
    if ctx.approvals.approved(step.id, a.prompt, details):
        return Outcome("done", f"approved: {a.prompt}", {"details": details})
    raise GateClosed(step.id, a.prompt, details)


def _node_patch(ctx: Context, node: str, patch: Obj) -> None:
    ctx.rest.patch("v1", "Node", node, None, patch, dry_run=ctx.server_dry)


def prepare_cordon(ctx: Context, a: m.CordonNodes) -> dict[str, Any]:
    before = {}
    for n in a.nodes:
        o = ctx.rest.get("v1", "Node", n)
        before[n] = bool(((o or {}).get("spec") or {}).get("unschedulable"))
    return {"unschedulable_before": before}


def run_cordon(ctx: Context, step: m.Step, a: m.CordonNodes, prepared: dict[str, Any]) -> Outcome:
    if ctx.dry_run == "client":
        return Outcome("skipped", f"dry run: would cordon {', '.join(a.nodes)}")
    changed = []
    for n in a.nodes:
        o = ctx.rest.get("v1", "Node", n)
        if o is None:
            raise StepFailed(step.id, f"node {n} does not exist")
        if not (o.get("spec") or {}).get("unschedulable"):
            _node_patch(ctx, n, {"spec": {"unschedulable": True}})
            changed.append(n)
    return Outcome("done" if changed else "noop", f"cordoned {', '.join(changed) or 'nothing new'}")


def cordoned_by_run(ctx: Context, node: str) -> bool | None:
    """True when this run cordoned the node, False when it was cordoned before, None when no cordon is journaled."""
    if ctx.journal is None:
        return None
    for r in ctx.journal.doc.records:
        before = r.data.get("unschedulable_before")
        if isinstance(before, dict) and node in before:
            return not before[node]
    return None


def run_uncordon(ctx: Context, step: m.Step, a: m.UncordonNodes, prepared: dict[str, Any]) -> Outcome:
    if ctx.dry_run == "client":
        return Outcome("skipped", f"dry run: would uncordon {', '.join(a.nodes)}")
    changed, kept = [], []
    for n in a.nodes:
        if cordoned_by_run(ctx, n) is False:
            kept.append(n)  # it was cordoned before the migration: an SRE's choice we do not undo
            continue
        o = ctx.rest.get("v1", "Node", n)
        if o is not None and (o.get("spec") or {}).get("unschedulable"):
            _node_patch(ctx, n, {"spec": {"unschedulable": None}})
            changed.append(n)
    msg = f"uncordoned {', '.join(changed) or 'nothing'}"
    if kept:
        msg += f"; left cordoned as before the migration: {', '.join(kept)}"
    return Outcome("done" if changed else "noop", msg)


def run_evict(ctx: Context, step: m.Step, a: m.EvictPods, prepared: dict[str, Any]) -> Outcome:
    if ctx.dry_run == "client":
        return Outcome("skipped", f"dry run: would evict the pods of {', '.join(a.nodes)}")
    timeout = a.timeout_seconds if ctx.drain_timeout is None else min(a.timeout_seconds, ctx.drain_timeout)
    res = drain_nodes(
        ctx.rest,
        step.id,
        a.nodes,
        ignore_daemonsets=a.ignore_daemonsets,
        delete_emptydir_data=a.delete_emptydir_data,
        timeout_seconds=timeout,
        retry_seconds=ctx.eviction_retry,
        dry_run=ctx.server_dry,
        stop=ctx.stop,
        progress=lambda done, total: ctx.emit("progress", step=step.id, what="evicted", done=done, total=total),
    )
    state: Literal["done", "noop"] = "done" if res.evicted else "noop"
    return Outcome(
        state,
        f"evicted {len(res.evicted)} pod(s) from {', '.join(a.nodes)}; kept {len(res.kept)} DaemonSet/mirror pod(s)",
        {"evicted": len(res.evicted)},
    )


def run_label(ctx: Context, step: m.Step, a: m.LabelNodes, prepared: dict[str, Any]) -> Outcome:
    if ctx.dry_run == "client":
        return Outcome("skipped", f"dry run: would label {', '.join(a.nodes)}")
    changed = []
    for n in a.nodes:
        o = ctx.rest.get("v1", "Node", n)
        if o is None:
            raise StepFailed(step.id, f"node {n} does not exist")
        labels = o["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in a.labels.items()):
            _node_patch(ctx, n, {"metadata": {"labels": a.labels}})
            changed.append(n)
    text = ", ".join(f"{k}={v}" if v is not None else f"{k}-" for k, v in a.labels.items())
    return Outcome("done" if changed else "noop", f"{text} on {', '.join(changed) or 'no node needing it'}")


def run_annotate(ctx: Context, step: m.Step, a: m.AnnotateNodes, prepared: dict[str, Any]) -> Outcome:
    if ctx.dry_run == "client":
        return Outcome("skipped", f"dry run: would annotate {', '.join(a.annotations)}")
    changed = []
    for n, ann in a.annotations.items():
        o = ctx.rest.get("v1", "Node", n)
        if o is None:
            raise StepFailed(step.id, f"node {n} does not exist")
        have = o["metadata"].get("annotations") or {}
        if any(have.get(k) != v for k, v in ann.items()):
            _node_patch(ctx, n, {"metadata": {"annotations": ann}})
            changed.append(n)
    return Outcome("done" if changed else "noop", f"annotated {', '.join(changed) or 'no node needing it'}")


def prepare_restart(ctx: Context, a: Any) -> dict[str, Any]:
    return {"before": now()}


def _created_before(pod: Obj, t: str) -> bool:
    return str(pod["metadata"].get("creationTimestamp", "")) < t[:19] + "Z"


def run_restart_pods(ctx: Context, step: m.Step, a: m.RestartPods, prepared: dict[str, Any]) -> Outcome:
    before = str(prepared.get("before") or now())
    pods = _pods(ctx, a.namespace, a.selector, a.nodes)
    managed: set[tuple[str, str]] = set()
    if a.unmanaged_only:
        try:
            managed = {
                (e["metadata"]["namespace"], e["metadata"]["name"])
                for e in ctx.rest.list("cilium.io/v2", "CiliumEndpoint")
            }
        except NotFound:
            managed = set()
    todo, bare = [], []
    for p in pods:
        meta = p["metadata"]
        if a.unmanaged_only and (
            (p.get("spec") or {}).get("hostNetwork") or (meta["namespace"], meta["name"]) in managed
        ):
            continue
        if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
            continue
        if not _created_before(p, before):
            continue  # already restarted (by this action before a crash, or by its controller)
        if not backups.is_controlled(p):
            bare.append(f"{meta['namespace']}/{meta['name']}")
            continue
        todo.append(p)
    if ctx.dry_run == "client":
        return Outcome("skipped", f"dry run: would restart {len(todo)} pod(s)")
    for p in todo:
        meta = p["metadata"]
        ctx.rest.delete("v1", "Pod", meta["name"], meta["namespace"], dry_run=ctx.server_dry, uid=meta.get("uid"))
    if todo and not ctx.server_dry:
        _wait_replacements_started(ctx, a, before, {p["metadata"]["namespace"] for p in todo})
    msg = f"restarted {len(todo)} pod(s)"
    if bare:
        msg += f"; not restarted, no controller would re-create them: {', '.join(bare[:8])}"
    return Outcome("done" if todo else "noop", msg, {"restarted": len(todo), "bare": bare})


REPLACEMENT_START_TIMEOUT = 300.0


def _wait_replacements_started(ctx: Context, a: m.RestartPods, before: str, namespaces: set[str]) -> None:
    """Wait until the pods created since the restart began (the replacements) have left Pending: a pod is Pending
    while the new CNI sets up its sandbox, so checking right after the deletes would fail on a healthy cluster."""

    def probe() -> tuple[bool, str]:
        listed = ctx.rest.list(
            "v1", "Pod", namespace=a.namespace, label_selector=a.selector, field_selector="status.phase=Pending"
        )
        pending = [
            f"{p['metadata']['namespace']}/{p['metadata']['name']}"
            for p in listed
            if p["metadata"]["namespace"] in namespaces and not _created_before(p, before)
        ]
        return not pending, f"{len(pending)} still Pending: {', '.join(pending[:5])}"

    _wait(ctx, "the restarted pods' replacements to start", REPLACEMENT_START_TIMEOUT, probe)


def run_rollout_restart(ctx: Context, step: m.Step, a: m.RolloutRestart, prepared: dict[str, Any]) -> Outcome:
    t = a.target
    stamp = str(prepared.get("before") or now())
    cur = _get(ctx, t)
    if cur is None:
        raise StepFailed(step.id, f"{t.text()} does not exist")
    ann = (((cur.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations") or {}
    if ann.get("kubectl.kubernetes.io/restartedAt") == stamp:
        return Outcome("noop", f"{t.text()} was already restarted by this action")
    if ctx.dry_run == "client":
        return Outcome("skipped", f"dry run: would restart {t.text()}")
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}
    ctx.rest.patch(t.api_version, t.kind, t.name, t.namespace, patch, dry_run=ctx.server_dry)
    return Outcome("done", f"rollout restart of {t.text()}")


def run_verify(ctx: Context, step: m.Step, a: m.Verify, prepared: dict[str, Any]) -> Outcome:
    results = run_checks(ctx, step, a.checks, "verify")
    failed = [r for r in results if r.state == "fail"]
    if failed:
        raise StepFailed(step.id, "; ".join(f"{r.description}: {r.detail}" for r in failed[:5]))
    skipped = sum(r.state == "skipped" for r in results)
    return Outcome("done", f"{len(results) - skipped} check(s) passed" + (f", {skipped} not run" if skipped else ""))


def run_checks(ctx: Context, step: m.Step, checks: list[Any], kind: str) -> list[CheckResult]:
    out: list[CheckResult] = []
    for c in checks:
        if ctx.dry_run == "client":
            out.append(CheckResult(c.description, "skipped", "dry run"))
            continue
        for r in ctx.checks.run(c):
            out.append(r)
            ctx.emit("check", step=step.id, kind=kind, description=r.description, result=r.state, detail=r.detail)
    return out


# --- node commands -------------------------------------------------------------------------------------------


def run_node_commands(
    ctx: Context, step: m.Step, a: m.NodeCommands, prepared: dict[str, Any], *, what: str = "action", index: int = -1
) -> Outcome:
    if ctx.dry_run != "none":
        return Outcome("skipped", f"dry run: would run {len(a.commands)} command(s) as root on {len(a.nodes)} node(s)")
    transport = ctx.transport
    if transport is None:
        raise PlanInputError(f"step {step.id} runs commands on nodes: pass --node-transport pod|ssh|local")
    journal = ctx.journal
    failures: list[str] = []
    lock = threading.Lock()

    def on_node(node: str) -> None:
        if journal is not None:
            last = journal.doc.last(step.id, what, index, node)
            if last is not None and last.state in ("done", "noop"):
                return
            journal.record(step.id, what, "intent", index=index, node=node)
        outputs = []
        for c in a.commands:
            try:
                r = transport.run(node, c.run, timeout=600)
            except TransportError as e:
                with lock:
                    failures.append(f"{node}: {c.description}: {e}")
                if journal is not None:
                    journal.record(step.id, what, "failed", index=index, node=node, message=str(e))
                return
            if r.exit_code != 0 and not c.ignore_errors:
                msg = f"{c.description}: exit code {r.exit_code}: {(r.stderr.strip() or r.stdout.strip())[-300:]}"
                with lock:
                    failures.append(f"{node}: {msg}")
                if journal is not None:
                    journal.record(step.id, what, "failed", index=index, node=node, message=msg)
                return
            outputs.append(f"{c.description}: exit {r.exit_code}")
        if journal is not None:
            journal.record(step.id, what, "done", index=index, node=node, message="; ".join(outputs)[:500])

    with ThreadPoolExecutor(max_workers=max(1, a.parallel)) as pool:
        list(pool.map(on_node, a.nodes))
    if failures:
        raise StepFailed(step.id, f"{len(failures)} node(s) failed: " + " | ".join(failures[:5]))
    return Outcome(
        "done", f"{len(a.commands)} command(s) ran on {len(a.nodes)} node(s) through the {transport.name} transport"
    )


RUNNERS: dict[str, Runner] = {
    "backup": run_backup,
    "restore": run_restore,
    "apply": run_apply,
    "patch": run_patch,
    "delete": run_delete,
    "remove-finalizers": run_remove_finalizers,
    "node-commands": run_node_commands,
    "helm": run_helm,
    "helm-uninstall": run_helm_uninstall,
    "wait": run_wait,
    "gate": run_gate,
    "cordon": run_cordon,
    "uncordon": run_uncordon,
    "evict": run_evict,
    "label-nodes": run_label,
    "annotate-nodes": run_annotate,
    "restart-pods": run_restart_pods,
    "rollout-restart": run_rollout_restart,
    "verify": run_verify,
}

PREPARE: dict[str, Callable[[Context, Any], dict[str, Any]]] = {
    "cordon": prepare_cordon,
    "restart-pods": prepare_restart,
    "rollout-restart": prepare_restart,
}


def describe(a: Any) -> str:
    kind = str(a.action)
    if kind in ("delete", "backup"):
        n = len(getattr(a, "objects", [])) + len(getattr(a, "selectors", []))
        return f"{kind} {n} object(s)/selector(s)" + (" + by name" if getattr(a, "name_match", None) else "")
    if kind in ("cordon", "uncordon", "evict", "label-nodes"):
        return f"{kind} {', '.join(a.nodes)}"
    if kind == "helm":
        return f"helm upgrade --install {a.release}"
    if kind == "wait":
        return f"wait {a.condition}" + (f" {a.target.text()}" if a.target else "")
    if kind in ("patch", "remove-finalizers", "rollout-restart"):
        return f"{kind} {a.target.text()}"
    return kind


__all__ = ["PREPARE", "RUNNERS", "Approvals", "Context", "ExecutorError", "Outcome", "describe"]
