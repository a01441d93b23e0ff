"""Evaluate every registered rule that applies to the target version, and collect the report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cni_migrate.analysis.lint.derived import Derived, ReusedDerived, derive, reuse_unknowns
from cni_migrate.analysis.lint.factview import FactView, Unknown
from cni_migrate.analysis.lint.model import SEVERITY_ORDER, Finding, LintContext, LintReport, NotChecked
from cni_migrate.analysis.lint.rules import REGISTRY
from cni_migrate.analysis.lint.rules.base import RULE_PATH, Ctx
from cni_migrate.analysis.lint.values import ValuesView
from cni_migrate.analysis.lint.version import CiliumVersion

if TYPE_CHECKING:
    from cni_migrate.facts.model import ClusterFacts


def run(
    values: Mapping[str, Any],
    version: CiliumVersion,
    facts: ClusterFacts | None,
    context: LintContext,
) -> LintReport:
    view = ValuesView(values)
    fv = FactView(facts, context)
    derived = derive(view, version, fv)
    seen: Derived = derived
    if context.reuse_values:  # values the command leaves unset keep the release's: rules on them are not checked
        unknown = reuse_unknowns(view, derived)
        seen = ReusedDerived.of(derived, unknown)
        for name, why in unknown.items():
            if name in derived.explain:
                derived.explain[name] += f"; unknown to lint: {why}"
    ctx = Ctx(v=view, version=version, d=seen, f=fv, context=context)
    minor = version.catalog_minor
    findings: list[Finding] = []
    not_checked: list[NotChecked] = []
    evaluated = 0
    for rule_id in sorted(REGISTRY):
        r = REGISTRY[rule_id]
        if not r.versions.contains(minor):
            continue
        evaluated += 1
        ctx.take_missing()
        missing: list[tuple[str, str | None]] = []
        try:
            for hit in r.check(ctx):
                findings.append(
                    Finding(
                        id=r.id,
                        severity=hit.severity or r.severity,
                        path=r.path if hit.path is RULE_PATH else hit.path,
                        message=hit.message,
                        fix=hit.fix or r.fix,
                        reference=r.reference(minor),
                        title=r.title,
                        subjects=list(hit.subjects),
                    )
                )
        except Unknown as e:
            missing.extend((m, e.detail) for m in e.missing)
        missing = ctx.take_missing() + missing
        if missing:
            names = list(dict.fromkeys(n for n, _ in missing))
            details = list(dict.fromkeys(d for _, d in missing if d))
            not_checked.append(
                NotChecked(id=r.id, missing=names, title=r.title, detail="; ".join(details) if details else None)
            )
    findings.sort(key=lambda f: (SEVERITY_ORDER[f.severity], f.id))
    return LintReport(
        cilium_version=str(version),
        findings=findings,
        not_checked=not_checked,
        derived=derived.as_dict(),
        derived_from=dict(derived.explain),
        rules_evaluated=evaluated,
    )
