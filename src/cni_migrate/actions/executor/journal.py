"""The write-ahead journal of a run: an intent record before every action, its outcome after.

Two stores hold the same document: the cluster (``MigrationRun`` ``run-<plan id>``, the journal as JSON in
``status.journal``, written with a resourceVersion precondition, so a lost race is a conflict and never a silent
overwrite) and a local mirror next to the plan (``journal-<plan id>.json``, written atomically). The cluster copy
is authoritative; the mirror lets ``status`` work offline and survives a cluster that is down. Every write goes to
the cluster first.

A record's ``state`` is ``intent`` (about to act), then ``done``/``noop`` (it was already so)/``failed``/
``skipped``; gates add ``approved``/``waiting``. The state of an action is its last record, so a resumed run finds
the action that was in flight (an intent with no outcome) and re-verifies it before acting again.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cni_migrate.actions.executor.errors import ExecutorError, PlanInputError
from cni_migrate.kube import AmbiguousWrite, Conflict, KubeError, NotFound
from cni_migrate.kube.rest import Rest

JOURNAL_VERSION = "cni-migrate.io/journal/v1"
GROUP_VERSION = "cni-migrate.io/v1alpha1"
CRD_NAME = "migrationruns.cni-migrate.io"
CRD_FILE = Path(__file__).parent / "crds" / "migrationruns.cni-migrate.io.yaml"

RecordState = Literal["intent", "done", "noop", "failed", "skipped", "approved", "waiting"]
RunState = Literal["running", "waiting", "failed", "stopped", "succeeded", "rolling-back", "rolled-back"]


def now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int
    at: str
    step: str
    # "action" index within the step; -1 for the step itself. "rollback" records undo a step.
    what: Literal["step", "action", "check", "gate", "rollback-step", "rollback-action"]
    index: int = -1
    node: str | None = None
    state: RecordState
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class BackupEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str  # relative to the plan directory
    sha256: str
    object: str  # group/kind/namespace/name
    step: str


class JournalDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = JOURNAL_VERSION
    plan_id: str
    plan_digest: str
    strategy: str
    state: RunState = "running"
    current_step: str | None = None
    message: str = ""
    steps_total: int = 0
    records: list[Record] = Field(default_factory=list)
    backups: dict[str, BackupEntry] = Field(default_factory=dict)  # path -> entry
    options: dict[str, Any] = Field(default_factory=dict)  # what the run was started with (chart overrides ...)

    # --- queries -------------------------------------------------------------------------------------------

    def last(self, step: str, what: str, index: int = -1, node: str | None = None) -> Record | None:
        for r in reversed(self.records):
            if r.step == step and r.what == what and r.index == index and r.node == node:
                return r
        return None

    def step_state(self, step: str) -> RecordState | None:
        r = self.last(step, "step")
        return r.state if r else None

    def rollback_state(self, step: str) -> RecordState | None:
        r = self.last(step, "rollback-step")
        return r.state if r else None

    def done_steps(self) -> list[str]:
        seen: dict[str, RecordState] = {}
        for r in self.records:
            if r.what == "step":
                seen[r.step] = r.state
        return [s for s, st in seen.items() if st in ("done", "noop")]

    def data_of(self, step: str, what: str, index: int = -1, node: str | None = None) -> dict[str, Any]:
        """The data of the first record (the intent) of an action: what it saw before acting."""
        for r in self.records:
            if r.step == step and r.what == what and r.index == index and r.node == node:
                return r.data
        return {}


class LocalMirror:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> JournalDoc | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise PlanInputError(f"{self.path}: cannot read the journal ({e.strerror})") from e
        try:
            return JournalDoc.model_validate_json(text)
        except ValueError as e:
            raise PlanInputError(f"{self.path}: not a cni-migrate journal ({str(e).splitlines()[0]})") from e

    def write(self, doc: JournalDoc) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        data = doc.model_dump_json()
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


class ClusterStore:
    """The ``MigrationRun`` of a plan: created on first use, then its status updated with preconditions."""

    def __init__(self, rest: Rest, plan_id: str, *, spec: dict[str, Any]) -> None:
        self.rest = rest
        self.name = f"run-{plan_id}"
        self.spec = spec
        self._rv: str | None = None
        self.writes = 0
        self.write_seconds = 0.0

    def ensure_crd(self, *, apply_crd: Callable[[], None]) -> None:
        try:
            self.rest.resource(GROUP_VERSION, "MigrationRun")
        except NotFound:
            apply_crd()

    def read(self) -> JournalDoc | None:
        obj = self.rest.get(GROUP_VERSION, "MigrationRun", self.name)
        if obj is None:
            return None
        self._rv = obj["metadata"]["resourceVersion"]
        if obj.get("spec", {}).get("planDigest") != self.spec["planDigest"]:
            raise PlanInputError(
                f"MigrationRun {self.name} belongs to another version of plan {self.spec['planId']} "
                f"(planDigest {obj.get('spec', {}).get('planDigest', '?')[:16]}...): the cluster ran a different "
                "document under this id; delete the MigrationRun only if you are sure that run is abandoned"
            )
        text = (obj.get("status") or {}).get("journal")
        if not text:
            return None
        return JournalDoc.model_validate_json(text)

    def write(self, doc: JournalDoc, previous: tuple[int, int, str] | None) -> None:
        """``previous``: (record count, last seq) of the last document this executor wrote."""
        t0 = time.perf_counter()
        try:
            self._write(doc, previous)
        finally:
            self.writes += 1
            self.write_seconds += time.perf_counter() - t0

    def _write(self, doc: JournalDoc, previous: tuple[int, int, str] | None) -> None:
        for _ in range(8):
            if self._rv is None:
                self._create_or_read()
            body = {
                "apiVersion": GROUP_VERSION,
                "kind": "MigrationRun",
                "metadata": {"name": self.name, "resourceVersion": self._rv},
                "spec": self.spec,
                "status": status_of(doc),
            }
            try:
                out = self.rest.replace(body, subresource="status")
            except (Conflict, AmbiguousWrite):
                # Did our write land (an ambiguous write that did) or did someone else write?
                remote = self.read()
                if remote is not None and _mark(remote) == _mark(doc):
                    return
                if remote is not None and previous is not None and _mark(remote) != previous:
                    raise ExecutorError(
                        f"MigrationRun {self.name} was changed by someone else during the run (expected "
                        f"{previous[0]} records, found {len(remote.records)}): stopping; another "
                        "executor may hold this plan"
                    ) from None
                continue
            self._rv = out["metadata"]["resourceVersion"]
            return
        raise ExecutorError(f"MigrationRun {self.name}: the journal could not be written after 8 attempts")

    def _create_or_read(self) -> None:
        body = {"apiVersion": GROUP_VERSION, "kind": "MigrationRun", "metadata": {"name": self.name}, "spec": self.spec}
        try:
            out = self.rest.create(body)
            self._rv = out["metadata"]["resourceVersion"]
        except (Conflict, AmbiguousWrite):
            obj = self.rest.get(GROUP_VERSION, "MigrationRun", self.name)
            if obj is None:
                raise ExecutorError(f"MigrationRun {self.name}: cannot create it") from None
            self._rv = obj["metadata"]["resourceVersion"]

    def delete(self) -> None:
        self.rest.delete(GROUP_VERSION, "MigrationRun", self.name)


def _mark(doc: JournalDoc) -> tuple[int, int, str]:
    return (len(doc.records), doc.records[-1].seq if doc.records else 0, f"{doc.state}/{doc.current_step}")


def status_of(doc: JournalDoc) -> dict[str, Any]:
    done = len(doc.done_steps())
    conditions = [
        _condition("Running", doc.state in ("running", "rolling-back"), doc.state, doc.message),
        _condition("Succeeded", doc.state == "succeeded", doc.state, doc.message),
        _condition("Failed", doc.state == "failed", doc.state, doc.message),
        _condition("WaitingAtGate", doc.state == "waiting", doc.state, doc.message),
        _condition("RolledBack", doc.state == "rolled-back", doc.state, doc.message),
    ]
    return {
        "state": doc.state,
        "currentStep": doc.current_step or "",
        "progress": f"{done}/{doc.steps_total}",
        "message": doc.message[:1000],
        "conditions": conditions,
        "journal": doc.model_dump_json(),
    }


def _condition(kind: str, true: bool, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if true else "False",
        "reason": "".join(p.capitalize() for p in reason.split("-")) or "Unknown",
        "message": message[:500] if true else "",
        "lastTransitionTime": now()[:19] + "Z",
    }


class Journal:
    """The run's journal: append records, write both stores. Thread-safe (node commands run in parallel)."""

    def __init__(self, doc: JournalDoc, cluster: ClusterStore | None, mirror: LocalMirror | None) -> None:
        self.doc = doc
        self.cluster = cluster
        self.mirror = mirror
        self._lock = threading.RLock()
        self._written: tuple[int, int, str] | None = _mark(doc) if doc.records else None

    def record(
        self,
        step: str,
        what: str,
        state: RecordState,
        *,
        index: int = -1,
        node: str | None = None,
        message: str = "",
        data: dict[str, Any] | None = None,
        defer: bool = False,
    ) -> Record:
        """Append a record and write both stores. ``defer``: an outcome whose write may wait for the next record
        (the next action's intent goes out in the same write): nothing happens in between, and a crash before that
        write only makes the resumed run re-verify an action that is idempotent anyway. Halves the writes."""
        with self._lock:
            seq = self.doc.records[-1].seq + 1 if self.doc.records else 1
            rec = Record(
                seq=seq,
                at=now(),
                step=step,
                what=what,
                index=index,
                node=node,
                state=state,
                message=message,
                data=data or {},
            )
            self.doc.records.append(rec)
            if not defer:
                self.flush()
            return rec

    def add_backup(self, entry: BackupEntry) -> None:
        with self._lock:
            self.doc.backups.setdefault(entry.path, entry)

    def set_state(self, state: RunState, *, step: str | None = None, message: str = "") -> None:
        with self._lock:
            self.doc.state = state
            if step is not None:
                self.doc.current_step = step
            self.doc.message = message
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if self.cluster is not None:
                try:
                    self.cluster.write(self.doc, self._written)
                except KubeError as e:
                    raise ExecutorError(f"cannot write the journal to the cluster: {e}") from e
            self._written = _mark(self.doc)
            if self.mirror is not None:
                self.mirror.write(self.doc)


def dumps(doc: JournalDoc) -> str:
    return json.dumps(doc.model_dump(mode="json"), indent=1)
