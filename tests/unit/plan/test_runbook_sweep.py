"""The runbook's sweep by name never lists Nodes (the lossy seed's hosts are named k8s-calico-*), pods, Secrets
or Kubernetes' bookkeeping: the filter it renders, run through a real shell on kubectl's resource names."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from cni_migrate.analysis.plan import PlanOptions, build_plan, render_runbook
from cni_migrate.facts import facts_from_snapshot

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "calico-bgp-lossy"
RESOURCES = """nodes
pods
secrets
events
events.events.k8s.io
leases.coordination.k8s.io
csinodes.storage.k8s.io
endpointslices.discovery.k8s.io
configmaps
serviceaccounts
clusterroles.rbac.authorization.k8s.io
ippools.crd.projectcalico.org
deployments.apps
"""


def test_sweep_filter_keeps_only_sweepable_resources() -> None:
    plan = build_plan(
        facts_from_snapshot(str(EXAMPLE)), PlanOptions(cilium_version="1.16.5", strategy="offline"), tool_version="t"
    )
    runbook = render_runbook(plan)
    sweeps = [line for line in runbook.splitlines() if "api-resources --verbs=list -o name" in line]
    assert sweeps, "the offline plan sweeps by name"
    for line in sweeps:
        filters = re.search(r"-o name( \| grep -vE '[^']*')+", line)
        assert filters is not None, line
        script = "printf '%s' \"$1\"" + filters.group(0).removeprefix("-o name")
        kept = subprocess.run(["sh", "-c", script, "sh", RESOURCES], capture_output=True, text=True, check=True)
        assert kept.stdout.split() == [
            "configmaps", "serviceaccounts", "clusterroles.rbac.authorization.k8s.io",
            "ippools.crd.projectcalico.org", "deployments.apps",
        ]  # fmt: skip
