"""The run loop: verify the plan fits the cluster, take the Lease, then run each step (preconditions, actions,
success checks) with a journal record before and after every action; resume where a run stopped; roll back.

Ordering of the guarantees, before anything is written: the plan's schema and digest (planfile), the cluster's
identity (the plan's nodes), the facts the steps rely on, the recorded backups' checksums. Only then the Lease and
the journal. A step already done is skipped; an action with an intent but no outcome was in flight when the last
run died: its runner re-checks the cluster and either finds the work done (noop) or does it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from cni_migrate.actions.executor import backups
from cni_migrate.actions.executor import steps as runners
from cni_migrate.actions.executor.checks import CheckResult, CheckRunner
from cni_migrate.actions.executor.errors import (
    ExecutorError,
    GateClosed,
    Interrupted,
    PlanInputError,
    StepFailed,
)
from cni_migrate.actions.executor.journal import (
    CRD_FILE,
    GROUP_VERSION,
    ClusterStore,
    Journal,
    JournalDoc,
    LocalMirror,
)
from cni_migrate.actions.executor.lease import PlanLease
from cni_migrate.actions.executor.planfile import LoadedPlan
from cni_migrate.actions.executor.steps import Approvals, Context, Outcome
from cni_migrate.actions.executor.tools import Tools
from cni_migrate.actions.nodes.transport import NodeTransport
from cni_migrate.analysis.plan import model as m
from cni_migrate.analysis.plan.recheck import changed_facts, plan_nodes
from cni_migrate.facts.model import ClusterFacts
from cni_migrate.kube import KubeError
from cni_migrate.kube.rest import Rest

Emit = Callable[..., None]
READ_ONLY_ACTIONS = frozenset({"wait", "verify"})


@dataclass
class RunOptions:
    dry_run: Literal["none", "client", "server"] = "none"
    yes: bool = False
    approve: frozenset[str] = frozenset()
    until: str | None = None
    only_nodes: frozenset[str] = frozenset()
    skip_checks: frozenset[str] = frozenset()
    chart_overrides: dict[str, str] = field(default_factory=dict)
    finalizer_grace: float | None = None
    drain_timeout: float | None = None
    eviction_retry: float = 5.0
    check_settle: float = 60.0  # a step's effects converge asynchronously (controllers, kubelets)
    resume: bool = False
    check_facts: bool = True
    poll: float = 0.5


@dataclass
class RunSummary:
    state: str
    steps_done: int
    steps_total: int
    message: str = ""
    not_run_checks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    journal_writes: int = 0
    journal_seconds: float = 0.0
    api_requests: int = 0
    seconds: float = 0.0
    as_requested: bool = False  # stopped where the user asked (--until), not by a failure or an interruption

    @property
    def ok(self) -> bool:
        return self.state in ("succeeded", "dry-run", "rolled-back") or self.as_requested


def _journal_spec(loaded: LoadedPlan) -> dict[str, Any]:
    p = loaded.plan
    return {
        "planId": p.id,
        "planDigest": loaded.digest,
        "strategy": p.inputs.strategy,
        "oldCni": p.inputs.old_cni,
        "ciliumVersion": p.inputs.cilium_version,
        "factsDigest": p.inputs.facts_digest,
    }


class Executor:
    def __init__(
        self,
        rest: Rest,
        loaded: LoadedPlan,
        tools: Tools,
        *,
        transport: NodeTransport | None,
        options: RunOptions,
        emit: Emit,
        facts: Callable[[], ClusterFacts] | None = None,
        ask: Callable[[str, str, list[str]], bool] | None = None,
    ) -> None:
        self.rest = rest
        self.loaded = loaded
        self.plan = loaded.plan
        self.tools = tools
        self.transport = transport
        self.options = options
        self.emit = emit
        self.facts = facts
        self.ask = ask
        self.not_run: list[str] = []
        self.warnings: list[str] = []
        self.journal: Journal | None = None
        self.lease: PlanLease | None = None
        self.ctx: Context | None = None
        self.stop_flag = False
        self._t0 = time.monotonic()

    # --- entry points ----------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ctrl-C: finish the action in flight, journal it, stop."""
        self.stop_flag = True
        if self.ctx is not None:
            self.ctx.stop.set()

    def apply(self) -> RunSummary:
        self._check_cluster_identity()
        self._validate_static()
        existing = self._read_existing()
        if existing is not None and not self.options.resume and self.options.dry_run == "none":
            state = existing.state
            if state == "succeeded":
                return self._summary(existing, "succeeded", "this plan already ran to completion (nothing to do)")
            raise PlanInputError(
                f"plan {self.plan.id} already has a run in this cluster (state {state}, at step "
                f"{existing.current_step or '-'}): continue it with `apply --resume`, or `rollback`"
            )
        if existing is None and self.options.resume:
            raise PlanInputError(f"nothing to resume: the cluster has no journal of plan {self.plan.id}")
        first_run = existing is None or not existing.done_steps()
        if self.options.check_facts and self.facts is not None:
            self._check_facts(self.plan.steps(), environment_only=not first_run, before="the first step")
        if existing is not None:
            self._verify_all_backups(existing)
        if self.options.dry_run != "none":
            return self._run_dry(existing)
        self._start(existing)
        try:
            return self._loop()
        finally:
            self._finish()

    def rollback(self, *, nodes: frozenset[str] = frozenset(), to: str | None = None) -> RunSummary:
        self._validate_static(rollback=True)
        existing = self._read_existing()
        if existing is None:
            raise PlanInputError(f"nothing to roll back: the cluster has no journal of plan {self.plan.id}")
        if to is not None and to not in {s.id for s in self.plan.steps()}:
            raise PlanInputError(f"--to {to}: the plan has no such step")
        self._verify_all_backups(existing)
        self._start(existing)
        try:
            return self._rollback_loop(nodes, to)
        finally:
            self._finish()

    # --- validation (nothing written yet) ----------------------------------------------------------------

    def _validate_static(self, *, rollback: bool = False) -> None:
        ids = {s.id for s in self.plan.steps()}
        for s in (self.options.until, *self.options.approve):
            if s is not None and s not in ids:
                raise PlanInputError(f"step {s!r} (from --until/--approve) is not in the plan")
        kinds = {a.action for s in self.plan.steps() for a in (*s.actions, *(s.rollback.actions if rollback else ()))}
        node_steps = [
            s.id
            for s in self.plan.steps()
            if any(a.action == "node-commands" for a in (*s.actions, *(s.rollback.actions if rollback else ())))
            or any(getattr(c, "nodes", None) for c in (*s.preconditions, *s.success))
        ]
        if node_steps and self.transport is None and self.options.dry_run != "client":
            skip_node = "node" in self.options.skip_checks
            pure_checks = [
                s for s in node_steps if not any(a.action == "node-commands" for a in self.plan.step(s).actions)
            ]
            if not (skip_node and len(pure_checks) == len(node_steps)):
                raise PlanInputError(
                    f"the plan runs commands as root on nodes (steps {', '.join(node_steps[:6])}"
                    f"{' ...' if len(node_steps) > 6 else ''}): choose how with --node-transport pod|ssh|local "
                    "(pod starts a privileged pod on each node; ssh uses your ssh config)"
                )
        if ("helm" in kinds or "helm-uninstall" in kinds) and self.options.dry_run != "client":
            self.tools.require("helm")
        for chart, path in self.options.chart_overrides.items():
            if not any(getattr(a, "chart", None) == chart for s in self.plan.steps() for a in s.actions):
                raise PlanInputError(f"--chart {chart}={path}: the plan installs no chart named {chart}")

    def _check_cluster_identity(self) -> None:
        try:
            live = {n["metadata"]["name"] for n in self.rest.list("v1", "Node")}
        except KubeError as e:
            raise PlanInputError(f"cannot read the cluster's nodes: {e}") from e
        planned = plan_nodes(self.plan)
        missing = sorted(planned - live)
        if planned and len(missing) == len(planned):
            raise PlanInputError(
                f"this plan was made for another cluster: none of its {len(planned)} nodes "
                f"({', '.join(sorted(planned)[:3])} ...) is in this one ({len(live)} nodes, e.g. "
                f"{', '.join(sorted(live)[:3]) or 'none'}); check --context"
            )
        if missing:
            raise PlanInputError(
                f"nodes of the plan are no longer in the cluster: {', '.join(missing[:8])}; plan again"
            )
        extra = sorted(live - planned) if planned else []
        if planned and extra and len(live) != self.plan.inputs.cluster_nodes:
            raise PlanInputError(
                f"the cluster has {len(live)} nodes, the plan was made for {self.plan.inputs.cluster_nodes}: "
                f"new node(s) {', '.join(extra[:8])} would not be migrated; plan again"
            )

    def _check_facts(self, steps: list[m.Step], *, environment_only: bool, before: str) -> None:
        assert self.facts is not None
        try:
            live = self.facts()
        except KubeError as e:
            raise PlanInputError(f"cannot read the cluster's facts: {e}") from e
        changes = changed_facts(self.plan, live, steps, environment_only=environment_only)
        hard = [c for c in changes if not c.warning]
        for c in changes:
            if c.warning:
                self.warnings.append(c.text())
                self.emit("warning", message=c.text())
        if hard:
            raise PlanInputError(
                f"the cluster no longer matches the plan (checked before {before}): "
                + "; ".join(c.text() for c in hard)
                + "; plan again"
            )

    def _read_existing(self) -> JournalDoc | None:
        store = ClusterStore(self.rest, self.plan.id, spec=_journal_spec(self.loaded))
        try:
            self.rest.resource(GROUP_VERSION, "MigrationRun")
        except KubeError:
            remote = None
        else:
            remote = store.read()
        local = LocalMirror(self.loaded.journal_path).read()
        if remote is None and local is not None and local.records and local.plan_digest == self.loaded.digest:
            raise PlanInputError(
                f"{self.loaded.journal_path} records {len(local.records)} journal entries of this plan, but the "
                "cluster has no MigrationRun for it: it was deleted, or this is another cluster; restore it or "
                "move the file away if you are sure"
            )
        if remote is not None and remote.plan_digest != self.loaded.digest:
            raise PlanInputError("the cluster's journal belongs to another version of this plan")
        return remote

    def _verify_all_backups(self, doc: JournalDoc) -> None:
        problems = []
        for entry in doc.backups.values():
            p = self.loaded.resolve(entry.path)
            if not p.is_file():
                problems.append(f"{p} (backup of {entry.object}, taken by step {entry.step}) is missing")
            elif backups.sha256_of(p) != entry.sha256:
                problems.append(f"{p} (backup of {entry.object}) differs from the checksum in the journal")
        if problems:
            raise PlanInputError(
                f"{len(problems)} backup file(s) cannot be used: "
                + "; ".join(problems[:6])
                + (" ..." if len(problems) > 6 else "")
                + "; restore them from your copy of the backup directory before continuing"
            )

    # --- start / finish ----------------------------------------------------------------------------------

    def _start(self, existing: JournalDoc | None) -> None:
        self.lease = PlanLease(self.rest, self.plan.id)
        self.lease.acquire()
        if self.lease.took_over:
            self.emit("warning", message=f"took over the Lease of {self.lease.took_over} (that process is gone)")
        store = ClusterStore(self.rest, self.plan.id, spec=_journal_spec(self.loaded))
        store.ensure_crd(apply_crd=self._install_crd)
        if existing is None:
            existing = store.read()
        doc = existing or JournalDoc(
            plan_id=self.plan.id,
            plan_digest=self.loaded.digest,
            strategy=self.plan.inputs.strategy,
            steps_total=len(self.plan.steps()),
            options={
                "chart_overrides": self.options.chart_overrides,
                "skip_checks": sorted(self.options.skip_checks),
                "node_transport": self.transport.name if self.transport else None,
            },
        )
        self.journal = Journal(doc, store, LocalMirror(self.loaded.journal_path))
        self.ctx = self._context(self.journal)

    def _context(self, journal: Journal | None) -> Context:
        cleared = {
            (a.target.key(), f): float(a.after_seconds)
            for s in self.plan.steps()
            for a in s.actions
            if isinstance(a, m.RemoveFinalizers)
            for f in a.finalizers
        }
        return Context(
            rest=self.rest,
            loaded=self.loaded,
            journal=journal,
            tools=self.tools,
            transport=self.transport,
            checks=CheckRunner(
                self.rest, self.tools, self.transport, self.options.skip_checks, cwd=self.loaded.directory
            ),
            approvals=Approvals(self.options.yes, self.options.approve, self.ask),
            emit=self.emit,
            dry_run=self.options.dry_run,
            chart_overrides=dict(self.options.chart_overrides),
            finalizer_grace=self.options.finalizer_grace,
            drain_timeout=self.options.drain_timeout,
            eviction_retry=self.options.eviction_retry,
            poll=self.options.poll,
            cleared_later=cleared,
        )

    def _install_crd(self) -> None:
        crd = yaml.safe_load(CRD_FILE.read_text())
        self.rest.apply(crd)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cur = self.rest.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"])
            conds = {c.get("type"): c.get("status") for c in ((cur or {}).get("status") or {}).get("conditions") or []}
            if conds.get("Established") == "True":
                self.rest.forget()
                return
            time.sleep(0.2)
        raise ExecutorError("the MigrationRun CRD did not become established within 60 s")

    def _finish(self) -> None:
        if self.lease is not None:
            self.lease.release()

    # --- the forward loop --------------------------------------------------------------------------------

    def _loop(self) -> RunSummary:
        assert self.journal is not None and self.ctx is not None
        j = self.journal
        skipped_node_step = False
        for phase in self.plan.phases:
            pending = [s for s in phase.steps if j.doc.step_state(s.id) not in ("done", "noop")]
            if not pending:
                continue
            if self.options.check_facts and self.facts is not None and j.doc.done_steps():
                self._check_facts(pending, environment_only=True, before=f"phase {phase.id}")
            self.emit("phase", phase=phase.id, title=phase.title)
            for s in phase.steps:
                if j.doc.step_state(s.id) in ("done", "noop"):
                    self.emit("step-skip", step=s.id, reason="already done")
                    continue
                if self.options.only_nodes:
                    if s.scope == "node" and not (set(s.nodes) & self.options.only_nodes):
                        skipped_node_step = True
                        self.emit("step-skip", step=s.id, reason="--only-nodes")
                        continue
                    if s.scope == "node" and not set(s.nodes) <= self.options.only_nodes:
                        return self._stop_at(
                            s,
                            "waiting",
                            f"step {s.id} covers nodes outside --only-nodes "
                            f"({', '.join(sorted(set(s.nodes) - self.options.only_nodes))})",
                        )
                    if s.scope == "cluster" and skipped_node_step:
                        return self._stop_at(
                            s,
                            "stopped",
                            f"--only-nodes: stopped before cluster step {s.id}, which assumes every node is migrated",
                        )
                try:
                    self._run_step(phase, s)
                except GateClosed as e:
                    return self._stop_at(s, "waiting", f"{e}" + ("; " + "; ".join(e.details[:8]) if e.details else ""))
                except Interrupted as e:
                    return self._stop_at(s, "stopped", str(e))
                except PlanInputError:
                    j.set_state("failed", step=s.id, message="bad input")
                    raise
                except (StepFailed, KubeError, ExecutorError) as e:
                    msg = str(e) if isinstance(e, StepFailed) else f"step {s.id}: {e}"
                    j.record(s.id, "step", "failed", message=msg[:2000])
                    return self._stop_at(s, "failed", msg)
                if self.options.until == s.id:
                    return self._stop_at(s, "stopped", f"stopped after step {s.id} (--until)", done=True)
        j.set_state("succeeded", step=None, message="every step done")
        self.emit("run-end", state="succeeded")
        return self._summary(j.doc, "succeeded", "every step of the plan ran")

    def _stop_at(
        self, s: m.Step, state: Literal["waiting", "failed", "stopped"], message: str, *, done: bool = False
    ) -> RunSummary:
        assert self.journal is not None
        self.journal.set_state(state, step=s.id, message=message[:2000])
        self.emit("run-end", state=state, step=s.id, message=message)
        out = self._summary(self.journal.doc, state, message)
        out.as_requested = done
        return out

    def _run_step(self, phase: m.Phase, s: m.Step) -> None:
        assert self.journal is not None and self.ctx is not None
        j, ctx = self.journal, self.ctx
        last = j.doc.last(s.id, "step")
        in_flight = last is not None and last.state in ("intent", "failed", "waiting")
        if not s.rollback.possible and not j.doc.last(s.id, "gate", -2):
            prompt = f"step {s.id} cannot be rolled back: {s.rollback.description}"
            if not ctx.approvals.approved(s.id, prompt, []):
                raise GateClosed(s.id, prompt, [])
            j.record(s.id, "gate", "approved", index=-2, message=prompt)
        if last is None or last.state not in ("intent",):
            since = j.record(s.id, "step", "intent", message=s.title).seq
        else:
            since = last.seq
        j.set_state("running", step=s.id, message=s.title)
        self.emit("step-start", step=s.id, title=s.title, phase=phase.id, resumed=in_flight)
        if not in_flight:
            results = runners.run_checks(ctx, s, s.preconditions, "precondition")
            self._note_not_run(s, results)
            failed = [r for r in results if r.state == "fail"]
            if failed:
                raise StepFailed(
                    s.id, "precondition failed: " + "; ".join(f"{r.description}: {r.detail}" for r in failed)
                )
        for i, a in enumerate(s.actions):
            self._run_action(s, i, a, since, "action")
        results = self._success_checks(s)
        self._note_not_run(s, results)
        failed = [r for r in results if r.state == "fail"]
        if failed:
            raise StepFailed(s.id, "success check failed: " + "; ".join(f"{r.description}: {r.detail}" for r in failed))
        j.record(s.id, "step", "done", message=s.title)
        self.emit("step-done", step=s.id)

    def _success_checks(self, s: m.Step) -> list[CheckResult]:
        """Run the step's success checks; retry the failing ones until they pass or ``check_settle`` seconds pass,
        since what a step started (pods re-created, objects finalized) completes a moment later."""
        assert self.ctx is not None
        ctx = self.ctx
        deadline = time.monotonic() + self.options.check_settle
        pending, passed = list(s.success), []
        while True:
            retry, failing = [], []
            for c in pending:
                rs = runners.run_checks(ctx, s, [c], "success")
                if any(r.state == "fail" for r in rs):
                    retry.append(c)
                    failing += rs
                else:
                    passed += rs
            if not retry or time.monotonic() >= deadline or ctx.stop.wait(max(ctx.poll, 1.0)):
                return passed + failing
            pending = retry

    def _run_action(self, s: m.Step, i: int, a: Any, since: int, what: str) -> Outcome | None:
        assert self.journal is not None and self.ctx is not None
        j, ctx = self.journal, self.ctx
        if self.stop_flag or (self.lease is not None and self.lease.lost.is_set()):
            why = "interrupted" if self.stop_flag else "the Lease was lost to another executor"
            raise Interrupted(f"{why} before step {s.id} action {i + 1} ({runners.describe(a)})")
        records = [
            r
            for r in j.doc.records
            if r.seq >= since and r.step == s.id and r.what == what and r.index == i and r.node is None
        ]
        last = records[-1] if records else None
        if last is not None and last.state in ("done", "noop", "skipped", "approved"):
            return None
        if a.action == "gate" and last is not None and last.state == "approved":
            return None
        prepared = records[0].data if records else {}
        if not records:
            prep = runners.PREPARE.get(a.action)
            prepared = prep(ctx, a) if prep else {}
        resumed = last is not None
        # Actions that change nothing (waits, verifications) need no write-ahead: their intent goes out with the next
        # write; a crash before it re-runs them, which is harmless.
        j.record(
            s.id,
            what,
            "intent",
            index=i,
            message=runners.describe(a),
            data=prepared if not records else {},
            defer=a.action in READ_ONLY_ACTIONS,
        )
        self.emit("action-start", step=s.id, index=i, action=a.action, what=runners.describe(a), resumed=resumed)
        try:
            if a.action == "node-commands":
                out = runners.run_node_commands(
                    ctx, s, a, prepared, what=f"{what}" if what == "rollback-action" else "action", index=i
                )
            else:
                out = runners.RUNNERS[a.action](ctx, s, a, prepared)
        except GateClosed as e:
            j.record(s.id, what, "waiting", index=i, message=e.prompt[:1000], data={"details": e.details[:50]})
            raise
        except StepFailed as e:
            if not e.step:
                e = StepFailed(s.id, str(e).removeprefix("step : "))
            j.record(s.id, what, "failed", index=i, message=str(e)[:2000])
            raise e from None
        except KubeError as e:
            j.record(s.id, what, "failed", index=i, message=str(e)[:2000])
            raise StepFailed(s.id, f"{runners.describe(a)}: {e}") from e
        j.record(
            s.id,
            what,
            "done" if out.state == "done" else out.state,
            index=i,
            message=out.message[:2000],
            data=out.data,
            defer=True,
        )
        self.emit("action-done", step=s.id, index=i, action=a.action, state=out.state, message=out.message)
        if ctx.stop.is_set() and self.stop_flag:
            raise Interrupted(f"interrupted after step {s.id} action {i + 1}")
        return out

    def _note_not_run(self, s: m.Step, results: list[Any]) -> None:
        for r in results:
            if r.state == "skipped":
                self.not_run.append(f"{s.id}: {r.description} ({r.detail})")
        if self.ctx is not None and self.ctx.not_run:
            self.not_run.extend(self.ctx.not_run)
            self.ctx.not_run.clear()

    # --- dry run -------------------------------------------------------------------------------------------

    def _run_dry(self, existing: JournalDoc | None) -> RunSummary:
        ctx = self._context(None)
        self.ctx = ctx
        n = 0
        for phase in self.plan.phases:
            self.emit("phase", phase=phase.id, title=phase.title)
            for s in phase.steps:
                if existing is not None and existing.step_state(s.id) in ("done", "noop"):
                    self.emit("step-skip", step=s.id, reason="already done")
                    continue
                self.emit("step-start", step=s.id, title=s.title, phase=phase.id, resumed=False)
                for i, a in enumerate(s.actions):
                    try:
                        out = runners.RUNNERS[a.action](ctx, s, a, {})
                    except (StepFailed, KubeError) as e:
                        out = Outcome("skipped", f"dry run: would fail now: {e}")
                    self.emit("action-done", step=s.id, index=i, action=a.action, state=out.state, message=out.message)
                n += 1
                if self.options.until == s.id:
                    break
        self.emit("run-end", state="dry-run")
        return RunSummary(
            "dry-run",
            0,
            len(self.plan.steps()),
            f"dry run ({self.options.dry_run}): {n} step(s) shown, nothing changed",
        )

    # --- rollback --------------------------------------------------------------------------------------

    def _rollback_loop(self, nodes: frozenset[str], to: str | None) -> RunSummary:
        assert self.journal is not None and self.ctx is not None
        j = self.journal
        order = self.plan.steps()
        started = [s for s in order if j.doc.step_state(s.id) is not None]
        if to is not None:
            idx = [s.id for s in order].index(to)
            started = [s for s in started if order.index(s) > idx]
        if nodes:
            started = [s for s in started if s.scope == "node" and set(s.nodes) & nodes]
            if not started:
                raise PlanInputError(f"--node {', '.join(sorted(nodes))}: no node step of the run covers it")
        todo = [s for s in reversed(started) if j.doc.step_state(s.id) != "skipped"]  # skipped: rolled back
        impossible = [s for s in todo if not s.rollback.possible]
        if impossible:
            names = ", ".join(f"{s.id} ({s.rollback.description})" for s in impossible)
            if not (self.options.yes or any(s.id in self.options.approve for s in impossible)):
                j.set_state("waiting", step=impossible[0].id, message=f"cannot roll back: {names}")
                return self._summary(
                    j.doc,
                    "waiting",
                    f"these steps cannot be rolled back: {names}; roll back "
                    "--to a later step, or approve skipping them with --approve STEP",
                )
        j.set_state("rolling-back", step=todo[0].id if todo else None, message="rollback")
        for s in todo:
            if not s.rollback.possible:
                j.record(s.id, "rollback-step", "skipped", message="approved: cannot be rolled back")
                continue
            last = j.doc.last(s.id, "rollback-step")
            step_rec = j.doc.last(s.id, "step")
            if last is not None and step_rec is not None and last.seq < step_rec.seq:
                last = None  # a rollback of an earlier attempt of this step
            since = (
                last.seq
                if last is not None and last.state == "intent"
                else j.record(s.id, "rollback-step", "intent", message=s.rollback.description).seq
            )
            self.emit(
                "step-start", step=s.id, title=f"roll back: {s.rollback.description}", phase="rollback", resumed=False
            )
            try:
                for i, a in enumerate(s.rollback.actions):
                    if nodes and hasattr(a, "nodes") and a.action != "node-commands" and not set(a.nodes) & nodes:
                        continue
                    self._run_action(s, i, a, since, "rollback-action")
            except GateClosed as e:
                return self._stop_at(s, "waiting", str(e))
            except Interrupted as e:
                return self._stop_at(s, "stopped", str(e))
            except (StepFailed, KubeError, ExecutorError) as e:
                if isinstance(e, PlanInputError):
                    raise
                j.record(s.id, "rollback-step", "failed", message=str(e)[:2000])
                return self._stop_at(s, "failed", f"rollback of {s.id}: {e}")
            j.record(s.id, "rollback-step", "done", message=s.rollback.description)
            j.record(s.id, "step", "skipped", message="rolled back")
            self.emit("step-done", step=s.id)
        final: Literal["rolled-back", "stopped"] = "rolled-back" if not nodes and to is None else "stopped"
        msg = (
            "rolled back every step"
            if final == "rolled-back"
            else (f"rolled back the steps of {', '.join(sorted(nodes))}" if nodes else f"rolled back to step {to}")
        )
        j.set_state(final, step=to, message=msg)
        self.emit("run-end", state=final, message=msg)
        out = self._summary(j.doc, final, msg)
        out.as_requested = True
        return out

    # --- summary ---------------------------------------------------------------------------------------------

    def _summary(self, doc: JournalDoc, state: str, message: str) -> RunSummary:
        store = self.journal.cluster if self.journal else None
        return RunSummary(
            state=state,
            steps_done=len(doc.done_steps()),
            steps_total=len(self.plan.steps()),
            message=message,
            not_run_checks=list(self.not_run),
            warnings=list(self.warnings),
            journal_writes=store.writes if store else 0,
            journal_seconds=store.write_seconds if store else 0.0,
            api_requests=self.rest.stats.total,
            seconds=time.monotonic() - self._t0,
        )
