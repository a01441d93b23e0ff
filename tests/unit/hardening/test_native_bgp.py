"""Issue 16 item 5: a native-routing plan with Cilium's BGP control plane makes the in-cluster routes."""

from __future__ import annotations

from typing import Any

import yaml
from plan_helpers_shim import lossy_plan

from cni_migrate.analysis.lint import lint
from cni_migrate.analysis.plan import Plan


def _values(plan: Plan, path: str) -> dict[str, Any]:
    art = next(a for a in plan.artifacts if a.path == path)
    doc: dict[str, Any] = yaml.safe_load(art.content)
    return doc


def test_native_bgp_on_one_segment_sets_auto_direct_node_routes() -> None:
    plan = lossy_plan()
    v = _values(plan, "values/install.yaml")
    assert v["routingMode"] == "native" and v["bgpControlPlane"]["enabled"] is True
    assert v["autoDirectNodeRoutes"] is True
    d = next(d for d in plan.decisions if d.option == "auto-direct-node-routes")
    assert d.origin == "derived" and "10.31.90.0/24" in d.reason


def test_lint_warns_when_native_bgp_has_no_node_routes() -> None:
    values = {
        "routingMode": "native",
        "ipv4NativeRoutingCIDR": "10.0.0.0/8",
        "bgpControlPlane": {"enabled": True},
        "autoDirectNodeRoutes": False,
    }
    report = lint(values, "1.16.5", None)
    assert [f.id for f in report.findings if f.id == "CIL097"] == ["CIL097"]
