"""discover's tigera-operator and blocking-finalizers facts, field by field, on the operator example and edge cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cni_migrate.cli.discover import render_summary
from cni_migrate.cli.main import app
from cni_migrate.facts import extract_facts, facts_from_snapshot
from cni_migrate.facts.model import SCHEMA_VERSION, ClusterFacts
from cni_migrate.facts.objects import (
    CLUSTER_ROLE,
    CLUSTER_ROLE_BINDING,
    DEPLOYMENT,
    SERVICE_ACCOUNT,
    TIGERA_INSTALLATION,
    ObjectStore,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
OPERATOR = EXAMPLES / "calico-operator-multipool"
CNI_PROTECTOR = ["tigera.io/cni-protector"]


@pytest.fixture(scope="module")
def operator_facts() -> ClusterFacts:
    return facts_from_snapshot(str(OPERATOR))


def test_operator_example_names_the_tigera_operator(operator_facts: ClusterFacts) -> None:
    calico = operator_facts.cni.calico
    assert calico is not None and calico.install_method == "operator"
    assert calico.operator is not None
    op = calico.operator
    assert op.known and op.source == "Deployment tigera-operator/tigera-operator"
    o = op.value
    assert o is not None
    assert o.namespace == "tigera-operator"
    assert o.deployment == "tigera-operator"
    assert o.image == "quay.io/tigera/operator:v1.30.9"
    assert o.version.value == "v1.30.9"
    assert o.version.source == "image of Deployment tigera-operator/tigera-operator"
    assert o.replicas == 1
    assert o.ready_replicas is None  # the example's Deployment has no status
    assert o.source == "Deployment tigera-operator/tigera-operator"


def test_operator_example_blocking_finalizers(operator_facts: ClusterFacts) -> None:
    bf = operator_facts.cni.blocking_finalizers
    assert bf.known and bf.unknown is None
    assert (
        bf.source
        == "metadata.finalizers of the input's objects (tigera.io, operator.tigera.io, projectcalico.org, calico)"
    )
    rows = [(f.namespace, f.kind, f.api_version, f.name, f.finalizers, f.deleting) for f in bf.value or []]
    rbac = "rbac.authorization.k8s.io/v1"
    assert rows == [
        (None, "ClusterRole", rbac, "calico-cni-plugin", CNI_PROTECTOR, False),
        (None, "ClusterRole", rbac, "calico-node", CNI_PROTECTOR, False),
        (None, "ClusterRoleBinding", rbac, "calico-cni-plugin", CNI_PROTECTOR, False),
        (None, "ClusterRoleBinding", rbac, "calico-node", CNI_PROTECTOR, False),
        (None, "Installation", "operator.tigera.io/v1", "default", ["tigera.io/operator-cleanup"], False),
        ("calico-system", "ServiceAccount", "v1", "calico-cni-plugin", CNI_PROTECTOR, False),
        ("calico-system", "ServiceAccount", "v1", "calico-node", CNI_PROTECTOR, False),
    ]


def test_discover_json_schema_carries_the_new_facts() -> None:
    r = CliRunner().invoke(app, ["--snapshot", str(OPERATOR), "-o", "json", "discover"])
    assert r.exit_code in (0, 1), r.output
    facts = json.loads(r.stdout)["facts"]
    assert facts["schema_version"] == SCHEMA_VERSION == "cni-migrate.io/facts/v1"  # only added: unchanged
    op = facts["cni"]["calico"]["operator"]
    assert op["unknown"] is None
    assert op["value"] == {
        "namespace": "tigera-operator",
        "deployment": "tigera-operator",
        "image": "quay.io/tigera/operator:v1.30.9",
        "version": {
            "value": "v1.30.9",
            "source": "image of Deployment tigera-operator/tigera-operator",
            "unknown": None,
        },
        "replicas": 1,
        "ready_replicas": None,
        "source": "Deployment tigera-operator/tigera-operator",
    }
    bf = facts["cni"]["blocking_finalizers"]
    assert bf["unknown"] is None and len(bf["value"]) == 7
    assert bf["value"][-1] == {
        "namespace": "calico-system",
        "kind": "ServiceAccount",
        "api_version": "v1",
        "name": "calico-node",
        "finalizers": ["tigera.io/cni-protector"],
        "deleting": False,
    }


def test_discover_summary_shows_operator_and_finalizers() -> None:
    r = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["--snapshot", str(OPERATOR), "discover"])
    assert r.exit_code in (0, 1), r.output
    lines = [" ".join(line.split()) for line in r.stdout.splitlines()]
    assert (
        "tigera-operator Deployment tigera-operator/tigera-operator, image quay.io/tigera/operator:v1.30.9, "
        "version v1.30.9, 1 replica"
    ) in lines
    assert "blocking finalizers 7 objects" in lines
    assert "calico-system/ServiceAccount/calico-node: tigera.io/cni-protector" in lines
    assert "Installation/default: tigera.io/operator-cleanup" in lines


def test_manifest_calico_has_no_operator_and_says_what_was_not_looked_at() -> None:
    lossy = facts_from_snapshot(str(EXAMPLES / "calico-bgp-lossy"))
    assert lossy.cni.calico is not None and lossy.cni.calico.install_method == "manifest"
    assert lossy.cni.calico.operator is None
    bf = lossy.cni.blocking_finalizers
    assert not bf.known and bf.value is None
    assert bf.unknown == (
        "the input has no ServiceAccount, ClusterRole.rbac.authorization.k8s.io, "
        "ClusterRoleBinding.rbac.authorization.k8s.io objects, where tigera-operator puts tigera.io/cni-protector"
    )


def test_flannel_has_none() -> None:
    flannel = facts_from_snapshot(str(EXAMPLES / "flannel-graceful"))
    assert flannel.cni.calico is None
    assert flannel.cni.blocking_finalizers.known and flannel.cni.blocking_finalizers.value == []


# --- edge cases on synthetic inputs --------------------------------------------------------------------------


def _store(*objs: dict[str, Any], listed: tuple[Any, ...] = ()) -> ObjectStore:
    s = ObjectStore(location="test")
    s.add_all(list(objs))
    for ref in listed:
        s.mark_listed(ref)
    return s


INSTALLATION: dict[str, Any] = {
    "apiVersion": "operator.tigera.io/v1",
    "kind": "Installation",
    "metadata": {"name": "default", "finalizers": ["tigera.io/operator-cleanup"]},
}


def _operator(image: str, **status: int) -> dict[str, Any]:
    d: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "tigera-operator", "namespace": "ops"},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "tigera-operator", "image": image}]}}},
    }
    if status:
        d["status"] = status
    return d


def test_operator_gone_is_unknown_with_the_reason() -> None:
    f = extract_facts(_store(INSTALLATION, listed=(DEPLOYMENT,)))
    assert f.cni.calico is not None and f.cni.calico.operator is not None
    assert f.cni.calico.operator.unknown == (
        "no tigera-operator Deployment in the input (removed, or installed under another name)"
    )
    f = extract_facts(_store(INSTALLATION))
    assert f.cni.calico is not None and f.cni.calico.operator is not None
    assert f.cni.calico.operator.unknown == "the input has no Deployment objects"


def test_operator_in_another_namespace_digest_image_and_ready_count() -> None:
    f = extract_facts(_store(INSTALLATION, _operator("quay.io/tigera/operator@sha256:abc", readyReplicas=1)))
    assert f.cni.calico is not None and f.cni.calico.operator is not None
    o = f.cni.calico.operator.value
    assert o is not None and (o.namespace, o.replicas, o.ready_replicas) == ("ops", 2, 1)
    assert o.version.unknown == "Deployment ops/tigera-operator image 'quay.io/tigera/operator@sha256:abc' has no tag"
    f = extract_facts(_store(INSTALLATION, _operator("quay.io/tigera/operator:v1.34.0", observedGeneration=1)))
    assert f.cni.calico is not None and f.cni.calico.operator is not None
    o = f.cni.calico.operator.value
    assert o is not None and o.version.value == "v1.34.0" and o.ready_replicas == 0  # status without readyReplicas


def test_partial_input_keeps_what_it_found_and_names_what_it_did_not_check() -> None:
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": "calico-node",
            "namespace": "calico-system",
            "finalizers": ["tigera.io/cni-protector", "example.com/other"],
            "deletionTimestamp": "2026-11-01T00:00:00Z",
        },
    }
    f = extract_facts(_store(INSTALLATION, sa, listed=(TIGERA_INSTALLATION, SERVICE_ACCOUNT)))
    bf = f.cni.blocking_finalizers
    assert bf.value is not None and [(x.kind, x.finalizers, x.deleting) for x in bf.value] == [
        ("Installation", ["tigera.io/operator-cleanup"], False),
        ("ServiceAccount", ["tigera.io/cni-protector"], True),  # only the old CNI's finalizer; already deleting
    ]
    assert bf.source is not None and bf.source.endswith(
        "not in the input, so not checked: ClusterRole.rbac.authorization.k8s.io, "
        "ClusterRoleBinding.rbac.authorization.k8s.io"
    )
    f = extract_facts(
        _store(INSTALLATION, sa, listed=(TIGERA_INSTALLATION, SERVICE_ACCOUNT, CLUSTER_ROLE, CLUSTER_ROLE_BINDING))
    )
    assert f.cni.blocking_finalizers.source is not None and "not checked" not in f.cni.blocking_finalizers.source


def test_summary_marks_objects_already_stuck() -> None:
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": "calico-node",
            "namespace": "calico-system",
            "finalizers": ["tigera.io/cni-protector"],
            "deletionTimestamp": "2026-11-01T00:00:00Z",
        },
    }
    facts = extract_facts(_store(INSTALLATION, sa))
    console = Console(width=200, record=True)
    render_summary(console, facts, [])
    text = console.export_text()
    assert "calico-system/ServiceAccount/calico-node: tigera.io/cni-protector (deleting: stuck)" in text
    assert "tigera-operator     unknown (the input has no Deployment objects)" in text
