"""Lint on what upstream ships: the 1.19 charts' l2podAnnouncements.interface default (CIL087 is patch-aware), and
`helm upgrade --reuse-values` commands, whose unset values keep the release's earlier ones."""

from __future__ import annotations

import pytest

from cni_migrate.analysis.lint import lint
from cni_migrate.analysis.lint.helm_command import parse_helm_command
from cni_migrate.analysis.lint.model import LintContext
from cni_migrate.analysis.lint.values import apply_set, merge_values

# The l2podAnnouncements block of the chart's values.yaml: 1.19.0-1.19.4 still ship `interface`.
L2POD_DEFAULTS = {"l2podAnnouncements": {"enabled": False, "interface": "eth0"}}


def cil087(version: str, values: dict[str, object]) -> list[tuple[str, str]]:
    return [(f.severity, f.message) for f in lint(values, version).findings if f.id == "CIL087"]


@pytest.mark.parametrize("version", ["1.19.0", "1.19.1", "1.19.4"])
def test_chart_defaults_before_1_19_5_are_not_flagged(version: str) -> None:
    assert cil087(version, L2POD_DEFAULTS) == []


@pytest.mark.parametrize("version", ["1.19.5", "1.19.7"])
def test_from_1_19_5_the_value_is_ignored_a_warning(version: str) -> None:
    ((severity, message),) = cil087(version, L2POD_DEFAULTS)
    assert severity == "warning"
    assert "ignored" in message and "interfacePattern" in message


def test_unknown_patch_is_a_warning_not_an_error() -> None:
    ((severity, message),) = cil087("1.19", L2POD_DEFAULTS)
    assert severity == "warning" and "from v1.19.5" in message


@pytest.mark.parametrize("version", ["1.18.0", "1.18.6"])
def test_1_18_does_not_point_to_an_interface_pattern_it_lacks(version: str) -> None:
    assert cil087(version, L2POD_DEFAULTS) == []


def test_other_removed_values_stay_errors() -> None:
    ((severity, _),) = cil087("1.19.5", {"encryption": {"keyFile": "keys"}})
    assert severity == "error"


@pytest.mark.parametrize("version", [f"1.{m}.0" for m in range(12, 20)] + ["1.19.5"])
def test_an_empty_values_file_lints_without_error_on_each_release(version: str) -> None:
    # what `helm install cilium cilium/cilium --version X` with the chart's own defaults amounts to
    assert [f.id for f in lint({}, version).errors] == []
    assert [s for s, _ in cil087(version, L2POD_DEFAULTS) if s == "error"] == []


REUSE = (
    "helm upgrade cilium cilium/cilium --version {v} -n kube-system --reuse-values "
    "--set autoDirectNodeRoutes=true --set loadBalancer.acceleration=native"
)


def _lint_command(text: str) -> tuple[list[str], list[str]]:
    cmd = parse_helm_command(text)
    assert cmd.version is not None
    values = merge_values({})
    for expr in cmd.sets:
        apply_set(values, expr)
    report = lint(values, cmd.version, context=LintContext(helm_action="upgrade", reuse_values=cmd.reuse_values))
    return [f.id for f in report.errors], [n.id for n in report.not_checked]


@pytest.mark.parametrize("version", ["1.12.6", "1.16.5"])
def test_reuse_values_rules_on_unset_values_are_not_checked(version: str) -> None:
    errors, not_checked = _lint_command(REUSE.format(v=version))
    assert "CIL005" not in errors and "CIL042" not in errors
    assert "CIL005" in not_checked
    if version.startswith("1.12"):
        assert "CIL042" in not_checked  # tunnel + XDP acceleration only conflicts up to 1.12


def test_without_reuse_values_the_same_command_gets_the_errors() -> None:
    errors, _ = _lint_command(REUSE.format(v="1.12.6").replace(" --reuse-values", ""))
    assert {"CIL005", "CIL042"} <= set(errors)


def test_reuse_values_with_the_value_set_still_judges_it() -> None:
    text = REUSE.format(v="1.16.5") + " --set routingMode=tunnel"
    errors, _ = _lint_command(text)
    assert "CIL005" in errors  # routingMode is set by the command: the rule is checked and fires
