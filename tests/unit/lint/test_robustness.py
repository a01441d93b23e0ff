"""Values of unexpected types never crash a rule: every values path the rules read, set to odd values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cni_migrate.analysis.lint import lint
from cni_migrate.analysis.lint.values import apply_set_value

from .helpers import make_facts

RULES_DIR = Path(__file__).resolve().parents[3] / "src" / "cni_migrate" / "analysis" / "lint"
_PATH_RE = re.compile(r"""\.(?:get|has|flag|text|lower|strings|opaque)\(\s*f?["']([A-Za-z0-9_.\-]+)["']""")
PATHS = sorted({m for f in RULES_DIR.rglob("*.py") for m in _PATH_RE.findall(f.read_text())})
ODD: list[Any] = [None, True, False, 0, -1, "x", "", [], {}, {"a": 1}, ["a", 1], 1.5, "$VAR", "10.0.0.0/8"]


def test_paths_were_found() -> None:
    assert len(PATHS) > 100 and "kubeProxyReplacement" in PATHS and "ipam.mode" in PATHS


def _values_with(value: Any, paths: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for p in paths:
        try:
            apply_set_value(values, p, value)
        except Exception:
            continue  # a path that is a prefix of another one
    return values


@pytest.mark.parametrize("version", ["1.11", "1.13", "1.14", "1.16", "1.18", "1.19"])
@pytest.mark.parametrize("value", ODD, ids=repr)
def test_every_path_at_once(version: str, value: Any) -> None:
    report = lint(_values_with(value, PATHS), version, make_facts(cni="flannel"))
    assert report.rules_evaluated > 80


@pytest.mark.parametrize("path", PATHS)
def test_each_path_alone(path: str) -> None:
    facts = make_facts(cni="calico")
    for value in (True, "x", {"a": 1}, ["a"], -1):
        lint(_values_with(value, [path]), "1.16", facts)
