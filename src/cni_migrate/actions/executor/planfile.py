"""Load a plan from ``plan.json`` or a ``plan --out`` directory, verify it, and resolve its files.

Refused with :class:`PlanInputError` (exit 2, nothing written): an unknown schema version, a document that is not
a plan, and a plan whose content digest does not match (edited by hand after review). Relative paths in a plan
(``backup_dir``, backup destinations, values files) are relative to the directory holding ``plan.json``, so the
executor behaves the same whatever the working directory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import orjson
from pydantic import ValidationError

from cni_migrate.actions.executor.errors import PlanInputError
from cni_migrate.analysis.plan.model import SCHEMA_VERSION, Plan, plan_content_digest


@dataclass(frozen=True)
class LoadedPlan:
    plan: Plan
    path: Path  # plan.json
    digest: str  # sha256 of the canonical document

    @property
    def directory(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.directory / p

    @property
    def journal_path(self) -> Path:
        return self.directory / f"journal-{self.plan.id}.json"


def load_plan(location: str | Path) -> LoadedPlan:
    path = Path(location)
    if path.is_dir():
        path = path / "plan.json"
    if not path.is_file():
        raise PlanInputError(f"{path}: no such plan file (give plan.json or the directory `plan --out` wrote)")
    try:
        raw = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise PlanInputError(f"{path}: not JSON ({e})") from e
    except OSError as e:
        raise PlanInputError(f"{path}: cannot read ({e.strerror})") from e
    if not isinstance(raw, dict):
        raise PlanInputError(f"{path}: expected a plan document (a JSON object), got {type(raw).__name__}")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise PlanInputError(
            f"{path}: field schema_version: {version!r} is not a plan schema this executor knows "
            f"(it runs {SCHEMA_VERSION}); re-create the plan with this version of cni-migrate"
        )
    try:
        plan = Plan.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PlanInputError(f"{path}: field {where}: {first['msg']} ({e.error_count()} error(s))") from e
    digest = plan_content_digest(plan)
    if not plan.digest:
        raise PlanInputError(
            f"{path}: field digest is missing: the plan was made by an older cni-migrate; plan again so the "
            "executor can prove it runs the document that was reviewed"
        )
    if plan.digest != digest:
        raise PlanInputError(
            f"{path}: the plan was modified after it was made (field digest {plan.digest[:16]}..., content "
            f"{digest[:16]}...); plan again instead of editing plan.json"
        )
    return LoadedPlan(plan=plan, path=path, digest=digest)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
