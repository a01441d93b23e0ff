"""Helpers to read a plan in tests: its steps in order, the actions of a kind, its values files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cni_migrate.analysis.plan import PlanOptions, build_plan
from cni_migrate.analysis.plan.model import Action, NodeCommands, Plan, Step
from cni_migrate.facts import ClusterFacts, facts_from_snapshot

A = TypeVar("A")
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SEED = "c2VlZC1zZWVkLXNl"  # base64 of the 12 bytes "seed-seed-se", so plans are reproducible


def load(name: str) -> ClusterFacts:
    return facts_from_snapshot(str(EXAMPLES / name))


def make_plan(facts: ClusterFacts, strategy: str = "offline", version: str = "1.16.5", **kw: Any) -> Plan:
    if kw.get("maglev"):
        kw.setdefault("maglev_seed", SEED)
    return build_plan(facts, PlanOptions(cilium_version=version, strategy=strategy, **kw), tool_version="test")


def steps(plan: Plan) -> list[Step]:
    return plan.steps()


def index(plan: Plan, step_id: str) -> int:
    return [s.id for s in plan.steps()].index(step_id)


def actions(plan: Plan, kind: type[A]) -> Iterator[tuple[int, Step, A]]:
    for i, s in enumerate(plan.steps()):
        for a in s.actions:
            if isinstance(a, kind):
                yield i, s, a


def first(plan: Plan, pred: Callable[[Step, Action], bool]) -> int:
    for i, s in enumerate(plan.steps()):
        if any(pred(s, a) for a in s.actions):
            return i
    raise AssertionError("no step matches")


def values(plan: Plan, path: str) -> dict[str, Any]:
    data = yaml.safe_load(plan.artifact(path).content)
    assert isinstance(data, dict)
    return data


def manifest(plan: Plan, path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(plan.artifact(path).content) if d]


def node_runs(plan: Plan) -> list[tuple[int, str]]:
    """(step index, shell command) of every node command, in order."""
    return [(i, c.run) for i, _, a in actions(plan, NodeCommands) for c in a.commands]


def get(d: dict[str, Any], path: str) -> Any:
    cur: Any = d
    for p in path.split("."):
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur
