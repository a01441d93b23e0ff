"""Crash safety: the executor SIGKILLed at every step boundary and at 30 random points inside steps (seeded,
printed), each time resumed with `apply --resume`, reaches the same end state as an uninterrupted run; backups are
never overwritten and never missing for a deleted object. Two executors started at once: the second refuses."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cni_migrate.actions.executor import backups
from cni_migrate.actions.executor.errors import LeaseHeld
from cni_migrate.actions.executor.journal import ClusterStore
from cni_migrate.actions.executor.planfile import load_plan
from cni_migrate.actions.executor.run import _journal_spec
from cni_migrate_testbed import ControlPlane
from cni_migrate_testbed.binaries import find_binary

from .apply_helpers import Events, executor_for, make_plan, replan, run_options_for_tests
from .support import NodeSandbox, load_example, object_set, seed_flannel_like

HARNESS = Path(__file__).with_name("harness.py")
SEED = int(os.environ.get("CNI_MIGRATE_CRASH_SEED", "20261203"))


def _config(cp: ControlPlane, out: Path, sandbox: NodeSandbox, path: Path) -> Path:
    opts = run_options_for_tests()
    path.write_text(
        json.dumps(
            {
                "kubeconfig": str(cp.admin_kubeconfig),
                "plan": str(out),
                "kubectl": str(find_binary("kubectl", cp.cache)),
                "helm": str(find_binary("helm", cp.cache)),
                "netns": sandbox.netns,
                "roots": {k: str(v) for k, v in sandbox.roots.items()},
                "options": {
                    **{k: v for k, v in opts.__dict__.items() if k != "skip_checks"},
                    "skip_checks": sorted(opts.skip_checks),
                    "approve": [],
                    "only_nodes": [],
                },
            }
        )
    )
    return path


def _run_until(
    config: Path, mode: str, *, kill_after_event: int | None = None, kill_after_seconds: float | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Run the harness; SIGKILL it after its n-th step-done event or after a delay. ('killed'|'exited:N', events)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen(
        [sys.executable, str(HARNESS), str(config), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        assert p.stdout is not None
        for line in p.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    events: list[dict[str, Any]] = []
    t0 = time.monotonic()
    killed = False
    done_steps = 0
    while True:
        timeout = 0.05 if kill_after_seconds is not None else 1.0
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            line = ""
        if line is None:
            break
        if line.strip():
            ev = json.loads(line)
            events.append(ev)
            if ev["event"] == "step-done" and not killed:
                done_steps += 1
                if kill_after_event is not None and done_steps >= kill_after_event:
                    p.send_signal(signal.SIGKILL)
                    killed = True
        if kill_after_seconds is not None and not killed and time.monotonic() - t0 > kill_after_seconds:
            p.send_signal(signal.SIGKILL)
            killed = True
    p.wait()
    if killed and p.returncode == -signal.SIGKILL:
        return "killed", events
    err = p.stderr.read() if p.stderr else ""
    return f"exited:{p.returncode}:{err[-2000:]}", events


def _journal(cp: ControlPlane, out: Path, cluster: Any) -> Any:
    loaded = load_plan(out)
    return ClusterStore(cluster.rest(), loaded.plan.id, spec=_journal_spec(loaded)).read()


def _check_backup_invariants(out: Path, doc: Any) -> None:
    for entry in doc.backups.values():
        p = out / entry.path
        assert p.is_file(), f"backup {entry.path} missing"
        assert backups.sha256_of(p) == entry.sha256, f"backup {entry.path} was overwritten"
    saved = {e.object for e in doc.backups.values()}
    applied = {k for r in doc.records for k in r.data.get("applied", [])}
    for r in doc.records:
        for key in r.data.get("deleted", []):
            assert key in saved or key in applied, f"{key} was deleted without a backup"


def test_kill_at_every_step_boundary_and_random_points(fresh_control_plane: ControlPlane, tmp_path: Path) -> None:
    cp = fresh_control_plane
    out = tmp_path / "plan"
    plan = make_plan("flannel-graceful", out, strategy="rolling")
    cluster = load_example(cp, "flannel-graceful", plan)
    plan = replan(cluster, out, strategy="rolling")
    rest = cluster.rest()
    nodes = sorted({n for s in plan.steps() for n in s.nodes})
    sandbox = NodeSandbox(tmp_path / "nodes", nodes)
    for i, n in enumerate(nodes):
        seed_flannel_like(sandbox, n, f"10.243.{i}.0/24", i)
    try:
        # the reference: one uninterrupted run, then rolled back to the start
        ref = executor_for(cp, out, sandbox, Events(), cluster).apply()
        assert ref.state == "succeeded", ref.message
        expected = object_set(rest)
        rb = executor_for(cp, out, sandbox, Events(), cluster).rollback()
        assert rb.state == "rolled-back", rb.message

        config = _config(cp, out, sandbox, tmp_path / "harness.json")
        total = len(plan.steps())
        kills = 0
        # 1. killed right after every step boundary, resumed each time
        for _ in range(total + 5):
            result, _events = _run_until(config, "resume", kill_after_event=1)
            if result != "killed":
                assert result.startswith("exited:0"), result
                break
            kills += 1
        assert kills >= total - 1, f"only {kills} kills for {total} steps"
        assert _journal(cp, out, cluster).state == "succeeded"
        assert object_set(rest) == expected
        _check_backup_invariants(out, _journal(cp, out, cluster))

        # 2. rolled back, then killed at 30 random points inside steps (seeded)
        rb = executor_for(cp, out, sandbox, Events(), cluster).rollback()
        assert rb.state == "rolled-back", rb.message
        rng = random.Random(SEED)
        delays = [round(rng.uniform(1.0, 4.0), 2) for _ in range(30)]
        print(f"crash seed {SEED}: kill delays {delays}")
        random_kills = 0
        for delay in delays:
            result, _ = _run_until(config, "resume", kill_after_seconds=delay)
            if result == "killed":
                random_kills += 1
            else:
                assert result.startswith("exited:0"), result
                break
        result, _ = _run_until(config, "resume")
        assert result.startswith("exited:0"), result
        assert random_kills >= 10, f"only {random_kills} random kills landed inside the run"
        assert object_set(rest) == expected
        _check_backup_invariants(out, _journal(cp, out, cluster))
    finally:
        sandbox.close()


def test_a_second_executor_refuses_naming_the_holder(fresh_control_plane: ControlPlane, tmp_path: Path) -> None:
    cp = fresh_control_plane
    out = tmp_path / "plan"
    plan = make_plan("flannel-graceful", out, strategy="rolling")
    cluster = load_example(cp, "flannel-graceful", plan)
    plan = replan(cluster, out, strategy="rolling")
    first = executor_for(cp, out, None, Events(), cluster, skip_checks=frozenset({"exec", "nodeport", "cni", "node"}))
    first._start(None)  # holds the Lease as a live executor does
    try:
        second = executor_for(cp, out, None, Events(), cluster)
        with pytest.raises(LeaseHeld) as e:
            second._start(None)
        assert f"pid {os.getpid()}" in str(e.value) and "held by" in str(e.value)
    finally:
        first._finish()
