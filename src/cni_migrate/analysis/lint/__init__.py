"""Lint a Cilium configuration against its version and the cluster before installing it.

Pure analysis: values, a version and (optionally) cluster facts in, a :class:`LintReport` out. Reading files,
the cluster and printing belong to ``cni_migrate.cli.lint``. See docs/lint.md for the report schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cni_migrate.analysis.lint.errors import LintInputError
from cni_migrate.analysis.lint.model import Finding, LintContext, LintReport, NotChecked, Severity
from cni_migrate.analysis.lint.values import apply_set, apply_set_json, merge_values
from cni_migrate.analysis.lint.version import CiliumVersion, parse_cilium_version

if TYPE_CHECKING:
    from cni_migrate.analysis.lint.helm_command import HelmCommand, parse_helm_command
    from cni_migrate.facts.model import ClusterFacts

__all__ = [
    "CiliumVersion",
    "Finding",
    "HelmCommand",
    "LintContext",
    "LintInputError",
    "LintReport",
    "NotChecked",
    "Severity",
    "apply_set",
    "apply_set_json",
    "lint",
    "merge_values",
    "parse_cilium_version",
    "parse_helm_command",
]


def __getattr__(name: str) -> Any:
    """``HelmCommand`` and ``parse_helm_command`` load on first use (start-up time of the CLI)."""
    if name in ("HelmCommand", "parse_helm_command"):
        from cni_migrate.analysis.lint import helm_command  # noqa: PLC0415

        return getattr(helm_command, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def lint(
    values: Mapping[str, Any],
    cilium_version: str,
    facts: ClusterFacts | None = None,
    *,
    context: LintContext | None = None,
) -> LintReport:
    """Lint merged Helm ``values`` for Cilium ``cilium_version`` (``X.Y`` or ``X.Y.Z``) against ``facts``.

    Raises :class:`LintInputError` for a malformed version. Rules needing facts that ``facts`` (or ``None``)
    lacks are listed in ``report.not_checked`` with the names of the missing facts.
    """
    from cni_migrate.analysis.lint.engine import run  # noqa: PLC0415 - the rules load on first use

    version = parse_cilium_version(cilium_version)
    return run(values, version, facts, context or LintContext())
