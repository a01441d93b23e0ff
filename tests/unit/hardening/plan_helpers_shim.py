"""A plan of the bundled lossy example, for the runbook tests here."""

from __future__ import annotations

from pathlib import Path

from cni_migrate import __version__
from cni_migrate.analysis.plan import Plan, PlanOptions, build_plan
from cni_migrate.facts import facts_from_snapshot

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def lossy_plan(**kw: object) -> Plan:
    facts = facts_from_snapshot(str(EXAMPLES / "calico-bgp-lossy"))
    opts = PlanOptions(cilium_version="1.16.5", strategy="offline", **kw)  # type: ignore[arg-type]
    return build_plan(facts, opts, tool_version=__version__)
