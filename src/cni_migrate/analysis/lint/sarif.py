"""SARIF 2.1.0 for a lint report: one result per finding, rules not checked as tool notifications."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cni_migrate.analysis.lint.model import LintReport
from cni_migrate.analysis.lint.rules import REGISTRY

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


class Origin:
    """Where a values path was set: a file (and line), or a command-line flag."""

    __slots__ = ("flag", "line", "uri")

    def __init__(self, uri: str | None = None, line: int | None = None, flag: str | None = None) -> None:
        self.uri = uri
        self.line = line
        self.flag = flag

    def __str__(self) -> str:
        if self.uri:
            return f"{self.uri}:{self.line}" if self.line else self.uri
        return self.flag or ""


def to_sarif(
    report: LintReport,
    *,
    tool_version: str,
    origins: Sequence[Origin | None] = (),
    minor: int | None = None,
) -> dict[str, Any]:
    """The SARIF log of ``report``; ``origins[i]`` locates ``report.findings[i]`` where known."""
    ids = sorted(REGISTRY)
    index = {rid: i for i, rid in enumerate(ids)}
    m = minor if minor is not None else 19
    rules = []
    for rid in ids:
        r = REGISTRY[rid]
        rules.append(
            {
                "id": rid,
                "name": _slug(r.title),
                "shortDescription": {"text": r.title},
                "help": {"text": r.fix},
                "helpUri": r.reference(m),
                "defaultConfiguration": {"level": _LEVEL[r.severity]},
                "properties": {"versions": str(r.versions), "section": r.section, "facts": list(r.facts)},
            }
        )
    results = []
    for i, f in enumerate(report.findings):
        origin = origins[i] if i < len(origins) else None
        location: dict[str, Any] = {}
        if f.path:
            location["logicalLocations"] = [{"fullyQualifiedName": f.path, "kind": "member"}]
        if origin is not None and origin.uri:
            physical: dict[str, Any] = {"artifactLocation": {"uri": origin.uri}}
            if origin.line:
                physical["region"] = {"startLine": origin.line}
            location["physicalLocation"] = physical
        result: dict[str, Any] = {
            "ruleId": f.id,
            "ruleIndex": index.get(f.id, -1),
            "level": _LEVEL[f.severity],
            "message": {"text": f"{f.message} Fix: {f.fix}"},
            "properties": {"severity": f.severity, "path": f.path, "fix": f.fix, "reference": f.reference},
        }
        if f.subjects:
            result["properties"]["subjects"] = list(f.subjects)
        if origin is not None and origin.flag:
            result["properties"]["setBy"] = origin.flag
        if location:
            result["locations"] = [location]
        results.append(result)
    notifications = [
        {
            "level": "note",
            "message": {
                "text": f"{n.id} not checked: the input lacks {', '.join(n.missing)}"
                + (f" ({n.detail})" if n.detail else "")
            },
            "associatedRule": {"id": n.id, "index": index.get(n.id, -1)},
            "properties": {"missing": list(n.missing)},
        }
        for n in report.not_checked
    ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "cni-migrate lint",
                        "version": tool_version,
                        "rules": rules,
                    }
                },
                "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notifications}],
                "results": results,
                "properties": {
                    "ciliumVersion": report.cilium_version,
                    "summary": report.summary(),
                    "derived": report.derived,
                },
            }
        ],
    }


def _slug(text: str) -> str:
    words = [w for w in "".join(ch if ch.isalnum() else " " for ch in text).split() if w]
    return "".join(w[:1].upper() + w[1:] for w in words[:8])
