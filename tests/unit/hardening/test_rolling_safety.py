"""Issue 16 item 6: a rolling plan says what deleting Calico withdraws, gives migrated pods' egress a return
route, and names the Calico policies the CRD deletion takes with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hardening_helpers import EXAMPLES, copy_example, mutate

from cni_migrate import __version__
from cni_migrate.analysis.plan import Plan, PlanOptions, build_plan
from cni_migrate.facts import facts_from_snapshot


def _rolling(snap: Path) -> Plan:
    facts = facts_from_snapshot(str(snap))
    return build_plan(facts, PlanOptions(cilium_version="1.16.5", strategy="rolling"), tool_version=__version__)


def test_deleting_calico_while_bird_advertises_is_disruptive() -> None:
    plan = _rolling(EXAMPLES / "calico-operator-multipool")
    for step_id in ("uninstall-calico-operator-resources", "delete-old-cni", "delete-old-cni-crds"):
        d = plan.step(step_id).disruption
        assert d.disruptive and d.scope == "cluster", step_id
        assert "BIRD stops advertising" in d.what and "10.64.0.0/20" in d.what and "`bgp` step" in d.what


def test_calico_policies_deleted_with_the_crds_are_warned() -> None:
    plan = _rolling(EXAMPLES / "calico-operator-multipool")
    assert any("2 GlobalNetworkPolicies" in w and "not translated" in w for w in plan.warnings)


def test_migrated_pods_get_a_return_route(tmp_path: Path) -> None:
    snap = copy_example("calico-bgp-lossy", tmp_path)

    def no_nat(obj: dict[str, Any]) -> None:
        obj["spec"]["natOutgoing"] = False

    mutate(snap, "calico.yaml", "IPPool", None, no_nat)
    plan = _rolling(snap)
    d = next(d for d in plan.decisions if d.option == "masquerade")
    assert d.value is True and "return route" in d.reason
    assert any("masquerading is on for the rolling migration" in w for w in plan.warnings)
