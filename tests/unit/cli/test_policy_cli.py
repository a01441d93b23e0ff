"""``cni-migrate policy translate|check`` and the policies in ``cni-migrate plan``: output formats, --out, exit codes
(0 exact, 1 untranslatable or a differing flow, 2 bad input naming file, policy and field), no traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from calico_policy_samples import ALLOW_DNS
from cni_migrate.cli.main import app

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "tests" / "data" / "policy" / "calico-docs"
runner = CliRunner()
V1 = "crd.projectcalico.org/v1"
NAMESPACES = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "shop"}}},
]
PODS = [
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"podIP": "10.244.1.5"},
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "frontend-1", "namespace": "shop", "labels": {"app": "frontend"}},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"podIP": "10.244.1.6"},
    },
]
WEB = {
    "apiVersion": "projectcalico.org/v3",
    "kind": "NetworkPolicy",
    "metadata": {"name": "web-ingress", "namespace": "shop"},
    "spec": {
        "order": 100,
        "selector": "app == 'web'",
        "types": ["Ingress"],
        "ingress": [
            {
                "action": "Allow",
                "protocol": "TCP",
                "source": {"selector": "app == 'frontend'"},
                "destination": {"ports": ["http"]},
            }
        ],
    },
}
BY_PREFIX = {
    "apiVersion": V1,
    "kind": "NetworkPolicy",
    "metadata": {"name": "default.by-prefix", "namespace": "shop"},
    "spec": {
        "selector": "app == 'db'",
        "ingress": [{"action": "Allow", "source": {"selector": "app starts with 'web'"}}],
    },
}


def snapshot(tmp_path: Path, *policies: dict[str, Any], name: str = "snap") -> Path:
    d = tmp_path / name
    d.mkdir()
    for i, obj in enumerate([*NAMESPACES, *PODS, *policies]):
        (d / f"{i:02d}.yaml").write_text(yaml.safe_dump(obj))
    return d


def run(*args: str) -> Result:
    r = runner.invoke(app, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r


def test_translate_yaml_prints_manifests_that_apply_as_they_are(tmp_path: Path) -> None:
    snap = snapshot(tmp_path, ALLOW_DNS, WEB)
    r = run("policy", "translate", "--snapshot", str(snap), "--cilium-version", "1.16.5", "-o", "yaml")
    assert r.exit_code == 0, r.output
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert sorted((d["kind"], d["metadata"].get("namespace")) for d in docs) == [
        ("CiliumClusterwideNetworkPolicy", None),
        ("CiliumNetworkPolicy", "shop"),
    ]
    assert all(d["apiVersion"] == "cilium.io/v2" for d in docs)
    web = next(d for d in docs if d["kind"] == "CiliumNetworkPolicy")
    assert web["metadata"]["annotations"]["cni-migrate.io/calico-api-version"] == "projectcalico.org/v3"
    assert "untranslatable" not in r.stderr


def test_translate_json_and_out_agree(tmp_path: Path) -> None:
    snap = snapshot(tmp_path, ALLOW_DNS, WEB)
    out = tmp_path / "out"
    r = run(
        "policy", "translate", "--snapshot", str(snap), "--cilium-version", "1.16.5", "-o", "json", "--out", str(out)
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["untranslatable"] == []
    assert sorted(doc["exact"]) == ["GlobalNetworkPolicy default.allow-dns", "NetworkPolicy shop/web-ingress"]
    assert [d for d in yaml.safe_load_all((out / "cilium-policies.yaml").read_text()) if d] == doc["objects"]
    report = json.loads((out / "translation.json").read_text())
    assert report["exact"] == doc["exact"] and "objects" not in report


def test_untranslatable_policies_are_listed_and_exit_1(tmp_path: Path) -> None:
    snap = snapshot(tmp_path, ALLOW_DNS, BY_PREFIX)
    r = run("policy", "translate", "--snapshot", str(snap), "--cilium-version", "1.16.5", "-o", "json")
    assert r.exit_code == 1, r.output
    (u,) = json.loads(r.stdout)["untranslatable"]
    assert u["policy"] == "NetworkPolicy shop/default.by-prefix"
    assert u["field"].startswith("spec.ingress[0].source.selector")
    assert set(u) == {"policy", "api_version", "field", "reason", "other_policy", "example_flow"}
    # the table names it too, and -o yaml lists it on stderr next to the manifests of the rest
    t = run("policy", "translate", "--snapshot", str(snap), "--cilium-version", "1.16.5")
    assert t.exit_code == 1 and "default.by-prefix" in t.stdout and "1 without a translation" in t.stdout
    y = run("policy", "translate", "--snapshot", str(snap), "--cilium-version", "1.16.5", "-o", "yaml")
    assert y.exit_code == 1
    assert "untranslatable: NetworkPolicy shop/default.by-prefix: spec.ingress[0].source.selector" in y.stderr
    kept = [d["metadata"]["annotations"]["cni-migrate.io/calico-name"] for d in yaml.safe_load_all(y.stdout) if d]
    assert kept == ["default.allow-dns"]


def test_order_conflicts_name_the_other_policy_and_an_example_flow() -> None:
    """The bundled multi-pool example: allow DNS everywhere (order 10), deny the metadata address (order 100)."""
    r = run(
        "policy",
        "translate",
        "--snapshot",
        str(EXAMPLES / "calico-operator-multipool"),
        "--cilium-version",
        "1.16.5",
        "-o",
        "json",
    )
    assert r.exit_code == 1
    found = json.loads(r.stdout)["untranslatable"]
    assert any(u["other_policy"] and u["example_flow"] and "169.254.169.254" in u["example_flow"] for u in found), found


def test_check_exact_translation_exit_0(tmp_path: Path) -> None:
    snap = snapshot(tmp_path, ALLOW_DNS, WEB)
    r = run("policy", "check", "--snapshot", str(snap), "--cilium-version", "1.16.5", "-o", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["differences"] == [] and doc["flow_classes"] > 100


def test_check_against_lists_every_differing_flow(tmp_path: Path) -> None:
    snap = snapshot(tmp_path, ALLOW_DNS, WEB)
    r = run("policy", "translate", "--snapshot", str(snap), "--cilium-version", "1.16.5", "-o", "yaml")
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    only_dns = tmp_path / "dns-only.yaml"  # the web ingress policy forgotten
    only_dns.write_text(yaml.safe_dump_all([d for d in docs if d["kind"] == "CiliumClusterwideNetworkPolicy"]))
    c = run(
        "policy",
        "check",
        "--snapshot",
        str(snap),
        "--cilium-version",
        "1.16.5",
        "--against",
        str(only_dns),
        "-o",
        "json",
    )
    assert c.exit_code == 1, c.output
    diffs = json.loads(c.stdout)["differences"]
    assert diffs
    for d in diffs:  # Calico's web policy denies what the Cilium set now lets in
        assert d["direction"] == "ingress" and "-> pod shop/" in d["flow"]
        assert d["calico"]["allowed"] is False and d["cilium"]["allowed"] is True
    assert any("-> pod shop/web-1 " in d["flow"] for d in diffs)  # the real pod is among the flows
    table = run("policy", "check", "--snapshot", str(snap), "--cilium-version", "1.16.5", "--against", str(only_dns))
    words = " ".join(table.stdout.split())
    assert table.exit_code == 1 and "with a different verdict" in words and "web-ingress" in words


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"selector": "app == "}, "spec.selector: malformed selector"),
        ({"bogus": 1}, "spec.bogus: unknown field"),
        ({"tier": "nowhere"}, "spec.tier: tier 'nowhere' does not exist"),
        ({"ingress": [{"action": "Allow", "source": {"nets": ["10.0.0.0/33"]}}]}, "spec.ingress[0].source.nets[0]"),
    ],
)
def test_bad_policies_exit_2_naming_file_policy_and_field(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    bad = json.loads(json.dumps(WEB))
    bad["spec"].update(change)
    snap = snapshot(tmp_path, ALLOW_DNS, bad)
    for cmd in (["policy", "translate"], ["policy", "check"]):
        r = run(*cmd, "--snapshot", str(snap), "--cilium-version", "1.16.5")
        assert r.exit_code == 2, r.output
        line = " ".join(r.stderr.split())
        assert "NetworkPolicy shop/web-ingress" in line and expected in line
        assert str(snap / "04.yaml") in line  # the file of the bad object
        assert "Traceback" not in r.output


def test_the_cilium_version_is_required_without_a_cilium_in_the_input(tmp_path: Path) -> None:
    snap = snapshot(tmp_path, ALLOW_DNS)
    r = run("policy", "translate", "--snapshot", str(snap))
    assert r.exit_code == 2 and "--cilium-version" in r.stderr
    r = run("policy", "translate", "--snapshot", str(snap), "--cilium-version", "banana")
    assert r.exit_code == 2 and "banana" in r.stderr


def test_both_api_versions_of_the_documentation_cases() -> None:
    r = run("policy", "translate", "--snapshot", str(DOCS), "--cilium-version", "1.16.5", "-o", "json")
    assert r.exit_code in (0, 1), r.output
    doc = json.loads(r.stdout)
    refs = [*doc["exact"], *(u["policy"] for u in doc["untranslatable"])]
    for ref in (
        "GlobalNetworkPolicy allow-dns",
        "GlobalNetworkPolicy security.pass-prod",
        "NetworkPolicy prod/named-ports",
    ):
        assert ref in refs  # projectcalico.org/v3
    for ref in ("GlobalNetworkPolicy default.default-deny", "NetworkPolicy prod/default.by-service-account"):
        assert ref in refs  # crd.projectcalico.org/v1
    versions = {o["metadata"]["annotations"]["cni-migrate.io/calico-api-version"] for o in doc["objects"]}
    assert versions == {"crd.projectcalico.org/v1", "projectcalico.org/v3"}


# --- the plan command reads and translates the policies ------------------------------------------------------


def test_plan_carries_the_policies_over_and_gates_the_rest(tmp_path: Path) -> None:
    snap = tmp_path / "multipool"
    shutil.copytree(EXAMPLES / "calico-operator-multipool", snap)
    (snap / "zz-shop.yaml").write_text(yaml.safe_dump_all([*NAMESPACES, WEB]))
    out = tmp_path / "plan"
    r = run(
        "--snapshot", str(snap), "plan", "--to", "cilium", "--cilium-version", "1.16.5", "--strategy", "rolling",
        "--out", str(out), "-o", "json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    steps = {s["id"]: s for p in doc["phases"] for s in p["steps"]}
    # the example's two order-dependent GlobalNetworkPolicies stop the plan, each named
    gate = steps["calico-policy-gate"]
    names = sorted(c["argv"][3] for c in gate["preconditions"])
    assert names == ["default.allow-dns", "default.deny-egress-to-metadata"]
    # the translatable one is created, from the file the plan writes, which the runbook applies
    applied = [a for a in steps["apply-cilium-policies"]["actions"] if a["action"] == "apply"]
    made = [o["metadata"]["annotations"]["cni-migrate.io/calico-name"] for a in applied for o in a["objects"]]
    assert made == ["web-ingress"]
    assert (out / "manifests" / "cilium-policies.yaml").is_file()
    assert "-f manifests/cilium-policies.yaml" in (out / "runbook.md").read_text()


def test_plan_refuses_a_malformed_policy(tmp_path: Path) -> None:
    snap = tmp_path / "multipool"
    shutil.copytree(EXAMPLES / "calico-operator-multipool", snap)
    bad = json.loads(json.dumps(WEB))
    bad["spec"]["selector"] = "app == "
    (snap / "zz-shop.yaml").write_text(yaml.safe_dump_all([*NAMESPACES, bad]))
    r = run("--snapshot", str(snap), "plan", "--to", "cilium", "--cilium-version", "1.16.5", "--strategy", "offline")
    assert r.exit_code == 2
    assert "zz-shop.yaml" in r.stderr and "NetworkPolicy shop/web-ingress: spec.selector" in " ".join(r.stderr.split())


def test_the_cilium_version_defaults_to_the_one_the_cluster_runs(tmp_path: Path) -> None:
    cilium = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "cilium", "namespace": "kube-system", "labels": {"k8s-app": "cilium"}},
        "spec": {
            "template": {"spec": {"containers": [{"name": "cilium-agent", "image": "quay.io/cilium/cilium:v1.14.12"}]}}
        },
    }
    snap = snapshot(tmp_path, ALLOW_DNS, cilium)
    r = run("policy", "translate", "--snapshot", str(snap), "-o", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["cilium_version"] == "1.14.12"
