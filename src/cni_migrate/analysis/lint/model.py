"""What lint takes besides values (the install context) and what it returns (findings, rules not checked)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}
REPORT_SCHEMA = "cni-migrate.io/lint/v1"


@dataclass(frozen=True)
class LintContext:
    """How the values will be installed. ``None`` fields are taken from the cluster facts."""

    #: None: from facts (cni.detected); False: the old CNI will be gone when Cilium is installed (offline migration)
    old_cni_present: bool | None = None
    #: None: from facts; False: kube-proxy removed before install
    kube_proxy_present: bool | None = None
    helm_action: Literal["install", "upgrade"] | None = None
    release_name: str = "cilium"
    namespace: str = "kube-system"
    #: "rolling": the values are for a cluster running both CNIs (per-node migration); the four side-by-side
    #: conditions apply and CIL077 is satisfied by following the migration procedure
    migration: Literal["none", "rolling"] = "none"
    #: helm upgrade --reuse-values: the release's previous values are merged in and are not visible to lint
    reuse_values: bool = False
    #: helm upgrade --install: an upgrade that installs when the release does not exist
    upgrade_install: bool = False
    #: the values are rendered with ``helm template`` (no cluster access at render time)
    rendered_offline: bool = False


class Finding(BaseModel):
    id: str = Field(description="Rule id: CILnnn from the Cilium rule catalog, CNMnnn for cni-migrate's own rules")
    severity: Severity
    path: str | None = Field(description="The Helm values path the finding concerns (dotted), if any")
    message: str
    fix: str
    reference: str = Field(description="A link to the source, documentation or issue the rule is based on")
    title: str = ""
    subjects: list[str] = Field(default_factory=list, description="Nodes, CIDRs or objects the finding names")


class NotChecked(BaseModel):
    id: str
    missing: list[str] = Field(description="Names of the facts or values the rule needed and the input lacks")
    title: str = ""
    detail: str | None = Field(default=None, description="Why those facts are unknown, where known")


class LintReport(BaseModel):
    schema_version: str = REPORT_SCHEMA
    cilium_version: str
    findings: list[Finding]
    not_checked: list[NotChecked]
    derived: dict[str, Any] = Field(description="Effective settings computed once from values, version and facts")
    derived_from: dict[str, str] = Field(default_factory=dict, description="How each derived setting was computed")
    rules_evaluated: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    def ids(self, severity: Severity | None = None) -> list[str]:
        return [f.id for f in self.findings if severity is None or f.severity == severity]

    def summary(self) -> dict[str, int]:
        return {
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "info": sum(1 for f in self.findings if f.severity == "info"),
            "not_checked": len(self.not_checked),
            "rules_evaluated": self.rules_evaluated,
        }

    def summary_line(self) -> str:
        s = self.summary()

        def n(count: int, word: str) -> str:
            return f"{count} {word}{'' if count == 1 else 's'}"

        return (
            f"Cilium {self.cilium_version}: {n(s['errors'], 'error')}, {n(s['warnings'], 'warning')}, "
            f"{s['info']} info; {n(s['not_checked'], 'rule')} not checked (facts missing); "
            f"{s['rules_evaluated']} rules evaluated"
        )
