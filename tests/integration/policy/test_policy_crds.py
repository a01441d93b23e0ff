"""Issue 14, "real objects": the Cilium policies the translator emits are accepted by the real API server with
Cilium's real CRDs, for the 1.14 schema (no ``enableDefaultDeny``) and the 1.16 one: a server-side dry run
(``dryRun=All``), then a real create, then the stored objects read back equal to what was sent (a field the schema
does not know would be refused by kubectl's strict field validation, or pruned and caught here).

Inputs: the Calico documentation cases (tests/data/policy/calico-docs: both API versions) created on the API server
as ``crd.projectcalico.org/v1`` objects (the v3 API is served only by Calico's own API server) and read back live
through ``cni-migrate policy translate --kubeconfig``; and a generated set of random Calico policies (seeded, the
seed in the test id) translated in process.

The Cilium CRDs are vendored in tests/data/crds (1.16.5) and tests/data/crds/cilium-1.14 (1.14.19), see the README
there; the test swaps them on the shared control plane and leaves the 1.16.5 ones installed.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from calico_policy_samples import WEB_INGRESS
from cni_migrate.analysis.calico_policies import migrate_policies
from cni_migrate.analysis.plan import PlanOptions, build_plan, render_runbook
from cni_migrate.analysis.plan.model import DeleteObjects
from cni_migrate.analysis.plan.policies import APPLY_STEP, GATE_STEP
from cni_migrate.analysis.plan.runbook import commands_in, step_markdown
from cni_migrate.cli.plan import write_out
from cni_migrate.facts import facts_from_snapshot, load_snapshot
from cni_migrate.facts.live import read_cluster
from cni_migrate.facts.policies import CalicoPolicyObjects, calico_policy_objects
from cni_migrate.kube.client import Cluster
from cni_migrate_testbed import ControlPlane
from cni_migrate_testbed.binaries import find_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CRD_DIR = ROOT / "tests" / "data" / "crds"
CILIUM_CRDS = {
    "1.16.5": [
        CRD_DIR / "cilium.io_ciliumnetworkpolicies.yaml",
        CRD_DIR / "cilium.io_ciliumclusterwidenetworkpolicies.yaml",
    ],
    "1.14.19": [
        CRD_DIR / "cilium-1.14" / "cilium.io_ciliumnetworkpolicies.yaml",
        CRD_DIR / "cilium-1.14" / "cilium.io_ciliumclusterwidenetworkpolicies.yaml",
    ],
}
CALICO_CRDS = [
    CRD_DIR / "crd.projectcalico.org_globalnetworkpolicies.yaml",
    *sorted((CRD_DIR / "calico-policy").glob("*.yaml")),
]
DOCS = ROOT / "tests" / "data" / "policy" / "calico-docs"
VERSIONS = ["1.14.19", "1.16.5"]
SEEDS = [1411, 1412, 1415]  # seeds whose sets translate fast and, together, use every field checked


def install(cp: ControlPlane, files: list[Path]) -> None:
    for f in files:
        cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(f))
    for f in files:
        name = yaml.safe_load(f.read_text())["metadata"]["name"]
        cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    install(control_plane, CALICO_CRDS)
    try:
        yield control_plane
    finally:
        install(control_plane, CILIUM_CRDS["1.16.5"])  # what the other tests (the plans' dry run) expect


def _kubectl_stdin(cp: ControlPlane, args: list[str], objs: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    argv = [str(find_binary("kubectl", cp.cache)), f"--kubeconfig={cp.admin_kubeconfig}", *args, "-f", "-"]
    text = "".join("---\n" + yaml.safe_dump(o, sort_keys=False) for o in objs)
    return subprocess.run(argv, input=text, capture_output=True, text=True, check=False)


def _json_docs(text: str) -> list[dict[str, Any]]:
    """kubectl create -o json prints one JSON document per object, one after the other."""
    dec, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = dec.raw_decode(text, i)
        out.extend(doc.get("items", [doc]))
    return out


def create_and_read_back(cp: ControlPlane, objs: list[dict[str, Any]]) -> None:
    """Dry run (server), create, and compare what the server stored with what was sent; then delete."""
    assert objs
    dry = _kubectl_stdin(cp, ["create", "--dry-run=server", "--validate=strict", "-o", "name"], objs)
    assert dry.returncode == 0, dry.stderr
    assert len(dry.stdout.split()) == len(objs)
    real = _kubectl_stdin(cp, ["create", "--validate=strict", "-o", "json"], objs)
    assert real.returncode == 0, real.stderr
    try:
        stored = {
            (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in _json_docs(real.stdout)
        }
        for sent in objs:
            md = sent["metadata"]
            got = stored[(sent["kind"], md.get("namespace"), md["name"])]  # what the server stored
            for key in ("spec", "specs"):
                assert got.get(key) == sent.get(key), f"{sent['kind']} {md['name']}: {key} stored differently"
            assert got["metadata"]["labels"] == md.get("labels")
            assert got["metadata"]["annotations"] == md.get("annotations")
    finally:
        _kubectl_stdin(cp, ["delete", "--ignore-not-found", "--wait=false"], objs)


# --- the documentation cases, created as Calico objects and read back live -----------------------------------


def _docs_objects(ns: str, prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The documentation cases moved into this test's namespaces and names, all as crd.projectcalico.org/v1."""
    store = load_snapshot(DOCS)
    src = calico_policy_objects(store)
    namespaces = {"prod": ns, "dev": f"{ns}-dev"}
    out: list[dict[str, Any]] = []
    for original in [*src.tiers, *src.policies]:
        o = json.loads(json.dumps(original))
        o["apiVersion"] = "crd.projectcalico.org/v1"
        md = o["metadata"]
        if md.get("namespace"):
            md["namespace"] = namespaces[md["namespace"]]
        else:  # cluster-scoped: a name of this test's own; a tiered policy is named <tier>.<name>
            tier = (o.get("spec") or {}).get("tier")
            if o["kind"] == "Tier":
                md["name"] = f"{prefix}-{md['name']}"
            elif tier and tier != "default":
                o["spec"]["tier"] = f"{prefix}-{tier}"
                md["name"] = f"{prefix}-{md['name']}"
            else:
                md["name"] = f"default.{prefix}-{md['name'].removeprefix('default.')}"
        out.append(o)
    ns_objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{ns}-dev", "labels": {"env": "dev"}}},
    ]
    return out, ns_objs


@pytest.mark.parametrize("version", VERSIONS)
def test_documentation_cases_read_live_and_their_translation_created(
    cluster: ControlPlane, test_namespace: str, name_prefix: str, version: str
) -> None:
    install(cluster, CILIUM_CRDS[version])
    calico, namespaces = _docs_objects(test_namespace, name_prefix)
    cluster.kubectl("label", "namespace", test_namespace, "env=prod")
    made = _kubectl_stdin(cluster, ["create", "--validate=strict"], [*namespaces, *calico])
    assert made.returncode == 0, made.stderr
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "cni_migrate",
                "--kubeconfig",
                str(cluster.admin_kubeconfig),
                "policy",
                "translate",
                "--cilium-version",
                version,
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert proc.returncode in (0, 1), proc.stderr
        doc = json.loads(proc.stdout)
        ours = {o["metadata"]["name"] for o in calico if o["kind"] != "Tier"}

        def mine(o: dict[str, Any]) -> bool:
            return o["metadata"]["annotations"].get("cni-migrate.io/calico-name") in ours

        objects = [o for o in doc["objects"] if mine(o)]
        refs = {r for r in [*doc["exact"], *(u["policy"] for u in doc["untranslatable"])] if any(n in r for n in ours)}
        # every documentation case was read back from the live cluster and either translated or reported
        assert len(refs) == len(ours), (refs, ours)
        # read live, each policy is the v1 object created above
        assert all(
            o["metadata"]["annotations"]["cni-migrate.io/calico-api-version"] == "crd.projectcalico.org/v1"
            for o in objects
        )
        assert {o["kind"] for o in objects} == {"CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"}
        create_and_read_back(cluster, objects)
    finally:
        _kubectl_stdin(cluster, ["delete", "--ignore-not-found", "--wait=false"], [*calico, *namespaces])


# --- generated policy sets -----------------------------------------------------------------------------------

KEYS = ["app", "tier", "team"]
VALUES = ["a", "b", "c"]


def _selector(rng: random.Random, depth: int = 0) -> str:
    k, v = rng.choice(KEYS), rng.choice(VALUES)
    atoms = [
        f"{k} == '{v}'",
        f"{k} != '{v}'",
        f"has({k})",
        f"!has({k})",
        f"{k} in {{'{v}', '{rng.choice(VALUES)}'}}",
        f"{k} not in {{'{v}'}}",
        "all()",
    ]
    s = rng.choice(atoms)
    if depth < 1 and rng.random() < 0.35:
        s = f"({s}) {rng.choice(['&&', '||'])} ({_selector(rng, depth + 1)})"
    return s


def _ports(rng: random.Random) -> list[Any]:
    out: list[Any] = []
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.5:
            out.append(rng.choice([53, 80, 443, 5432, 8080]))
        elif r < 0.8:
            lo = rng.choice([1000, 8000, 30000])
            out.append(f"{lo}:{lo + rng.choice([9, 99, 999])}")
        else:
            out.append(rng.choice(["http", "metrics"]))
    return out


def _peer(rng: random.Random, with_ports: bool, namespaced: bool) -> dict[str, Any]:
    p: dict[str, Any] = {}
    r = rng.random()
    if r < 0.4:
        p["selector"] = _selector(rng)
        if rng.random() < 0.4:
            p["namespaceSelector"] = rng.choice(["all()", "env == 'prod'", "has(env)"])
    elif r < 0.6:
        p["nets"] = rng.sample(["203.0.113.0/24", "198.51.100.0/24", "0.0.0.0/0", "192.0.2.0/25"], rng.randint(1, 2))
        if rng.random() < 0.4:
            p["notNets"] = ["203.0.113.128/25"]
    elif r < 0.7 and namespaced:
        p["serviceAccounts"] = {"names": rng.sample(["web", "api", "batch"], rng.randint(1, 2))}
    if with_ports:
        p["ports"] = _ports(rng)
    return p


def _rule(rng: random.Random, direction: str, namespaced: bool) -> dict[str, Any]:
    rule: dict[str, Any] = {"action": rng.choices(["Allow", "Deny", "Pass"], weights=[6, 3, 1])[0]}
    proto = rng.choice([None, "TCP", "UDP", "SCTP", "ICMP"])
    if proto:
        rule["protocol"] = proto
    if proto == "ICMP" and rng.random() < 0.6:
        rule["icmp"] = {"type": rng.choice([0, 3, 8])}
    remote = "source" if direction == "ingress" else "destination"
    rule[remote] = _peer(rng, False, namespaced)
    if proto in ("TCP", "UDP", "SCTP") and rng.random() < 0.7:
        rule["destination"] = {**rule.get("destination", {}), "ports": _ports(rng)}
    return {k: v for k, v in rule.items() if v != {}}


def generated_set(seed: int, n: int, ns: str, prefix: str) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        namespaced = rng.random() < 0.6
        kind = "NetworkPolicy" if namespaced else "GlobalNetworkPolicy"
        types = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"]])
        spec: dict[str, Any] = {"order": rng.choice([10, 100, 500, 1000]), "selector": _selector(rng), "types": types}
        for t in types:
            d = t.lower()
            spec[d] = [_rule(rng, d, namespaced) for _ in range(rng.randint(0, 3))]
        md: dict[str, Any] = {"name": f"default.{prefix}-g{seed}-{i}"}
        if namespaced:
            md["namespace"] = ns
        out.append({"apiVersion": "crd.projectcalico.org/v1", "kind": kind, "metadata": md, "spec": spec})
    return out


def _translated(calico: list[dict[str, Any]], version: str) -> Any:
    objs = CalicoPolicyObjects(
        policies=tuple(calico), tiers=(), namespaces=(), pods=(), service_accounts=(), listed=True
    )
    return migrate_policies(objs, version)


@pytest.mark.parametrize(
    "version",
    [
        "1.14.19",
        "1.16.5",
    ],
)
def test_generated_translations_are_created(
    cluster: ControlPlane, test_namespace: str, name_prefix: str, version: str
) -> None:
    install(cluster, CILIUM_CRDS[version])
    objects: list[dict[str, Any]] = []
    for seed in SEEDS:
        for batch in range(8):  # small sets, so most policies translate (a big random set is mostly order conflicts)
            pm = _translated(generated_set(seed * 100 + batch, 4, test_namespace, name_prefix), version)
            objects += pm.objects
    assert len(objects) >= 40, f"seeds {SEEDS}: only {len(objects)} objects"
    fields = json.dumps(objects)
    used = ["ingressDeny", "egressDeny", "toCIDRSet", "toPorts", "fromEndpoints", "toEntities", "icmps"]
    # endPort exists from Cilium 1.16; before, the translator writes a range's ports one by one
    used.append("endPort" if version >= "1.16" else "port")
    if version < "1.16":
        assert '"endPort"' not in fields
    for key in used:
        assert f'"{key}"' in fields, f"seeds {SEEDS}: no translated object uses {key}; choose other seeds"
    if version.startswith("1.14"):
        assert "enableDefaultDeny" not in fields
    else:
        assert '"enableDefaultDeny"' in fields
    create_and_read_back(cluster, objects)


def test_the_1_14_schema_refuses_what_only_1_16_has(cluster: ControlPlane, test_namespace: str) -> None:
    """The control: the vendored 1.14 CRD refuses a 1.16 field, so the acceptance above means something."""
    install(cluster, CILIUM_CRDS["1.14.19"])
    cnp = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "default-deny-off", "namespace": test_namespace},
        "spec": {"endpointSelector": {}, "enableDefaultDeny": {"ingress": False}, "ingress": [{}]},
    }
    r = _kubectl_stdin(cluster, ["create", "--dry-run=server", "--validate=strict"], [cnp])
    assert r.returncode != 0 and "enableDefaultDeny" in r.stderr, r.stderr
    install(cluster, CILIUM_CRDS["1.16.5"])
    r = _kubectl_stdin(cluster, ["create", "--dry-run=server", "--validate=strict"], [cnp])
    assert r.returncode == 0, r.stderr


# --- the plan's policies file, applied by the runbook's own command ------------------------------------------


def test_the_runbook_command_applies_the_plans_policies(
    cluster: ControlPlane, test_namespace: str, tmp_path: Path
) -> None:
    """A rolling plan of the multi-pool example carrying the documentation cases: the runbook's kubectl apply of
    manifests/cilium-policies.yaml, run as written (but for the context pin) with a server-side dry run, then for
    real, creates every object the step's rollback would delete."""
    install(cluster, CILIUM_CRDS["1.16.5"])
    src = calico_policy_objects(load_snapshot(DOCS))
    moved = []
    for o in src.policies:
        c = json.loads(json.dumps(o))
        if c["metadata"].get("namespace"):
            c["metadata"]["namespace"] = test_namespace
        moved.append(c)
    objs = CalicoPolicyObjects(
        policies=tuple(moved), tiers=src.tiers, namespaces=(), pods=(), service_accounts=(), listed=True
    )
    pm = migrate_policies(objs, "1.16.5")
    facts = facts_from_snapshot(str(ROOT / "examples" / "calico-operator-multipool"))
    plan = build_plan(facts, PlanOptions(cilium_version="1.16.5", strategy="rolling"), tool_version="test", policies=pm)
    out = tmp_path / "plan"
    write_out(plan, render_runbook(plan), out, force=False)
    (apply,) = [a for a in commands_in((out / "runbook.md").read_text()) if "manifests/cilium-policies.yaml" in a]
    assert apply[:1] == ["kubectl"] and apply[1] == "--context"
    argv = [str(find_binary("kubectl", cluster.cache)), f"--kubeconfig={cluster.admin_kubeconfig}", *apply[3:]]
    for extra in (["--dry-run=server"], []):
        r = subprocess.run([*argv, *extra], cwd=out, capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
    (delete,) = plan.step(APPLY_STEP).rollback.actions
    assert isinstance(delete, DeleteObjects) and len(delete.objects) == len(pm.objects) > 3
    try:
        for ref in delete.objects:
            ns = ["-n", ref.namespace] if ref.namespace else []
            got = cluster.kubectl("get", f"{ref.kind.lower()}.cilium.io", ref.name, *ns, "-o", "name", check=False)
            assert got.returncode == 0 and got.stdout.strip(), f"{ref.text()} was not created: {got.stderr}"
    finally:
        subprocess.run(
            [*argv[:2], "delete", "--ignore-not-found", "-f", "manifests/cilium-policies.yaml"], cwd=out, check=False
        )


def test_the_runbook_gate_stops_while_an_untranslatable_policy_exists(
    cluster: ControlPlane, test_namespace: str, tmp_path: Path
) -> None:
    """The plan's calico-policy-gate block, run by bash with the real kubectl as the runbook pins it: it fails,
    naming the policy, while the policy exists, and passes once it is gone."""
    bad = {
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default.by-prefix", "namespace": test_namespace},
        "spec": {
            "selector": "app == 'db'",
            "ingress": [{"action": "Allow", "source": {"selector": "app starts with 'web'"}}],
        },
    }
    objs = CalicoPolicyObjects(policies=(bad,), tiers=(), namespaces=(), pods=(), service_accounts=(), listed=True)
    pm = migrate_policies(objs, "1.16.5")
    context = yaml.safe_load(cluster.admin_kubeconfig.read_text())["current-context"]
    opts = PlanOptions(
        cilium_version="1.16.5", strategy="offline", kube_context=context, kubeconfig=str(cluster.admin_kubeconfig)
    )
    plan = build_plan(
        facts_from_snapshot(str(ROOT / "examples" / "calico-bgp-lossy")), opts, tool_version="t", policies=pm
    )
    block = _before_block(plan, GATE_STEP)
    bash = shutil.which("bash")
    assert bash
    env = {"PATH": f"{find_binary('kubectl', cluster.cache).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    made = _kubectl_stdin(cluster, ["create"], [bad])
    assert made.returncode == 0, made.stderr
    try:
        r = subprocess.run([bash, "-c", block], capture_output=True, text=True, env=env, check=False)
        assert r.returncode != 0 and f"NetworkPolicy {test_namespace}/default.by-prefix" in r.stderr, (
            r.stdout,
            r.stderr,
        )
    finally:
        _kubectl_stdin(cluster, ["delete", "--ignore-not-found"], [bad])
    r = subprocess.run([bash, "-c", block], capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 0, r.stderr


def _before_block(plan: Any, step_id: str) -> str:
    lines = step_markdown(plan.step(step_id), plan, "1")
    start = lines.index("Before:") + 2
    assert lines[start] == "```bash"
    return "\n".join(lines[start + 1 : lines.index("```", start + 1)])


def test_the_apply_step_refuses_policies_changed_since_the_plan(
    cluster: ControlPlane, test_namespace: str, tmp_path: Path
) -> None:
    """Planned from the live cluster, the apply step first proves the Calico policies are the ones translated (names
    and resourceVersions): its runbook check passes as planned and fails once a policy changed."""
    web = json.loads(json.dumps(WEB_INGRESS))
    del web["metadata"]["namespace"]
    web["metadata"]["namespace"] = test_namespace
    made = _kubectl_stdin(cluster, ["create"], [web])
    assert made.returncode == 0, made.stderr
    try:
        store = read_cluster(Cluster.connect(str(cluster.admin_kubeconfig), None))
        pm = migrate_policies(calico_policy_objects(store), "1.16.5")
        assert f"NetworkPolicy {test_namespace}/default.web-ingress" in pm.translation.exact
        context = yaml.safe_load(cluster.admin_kubeconfig.read_text())["current-context"]
        opts = PlanOptions(
            cilium_version="1.16.5", strategy="offline", kube_context=context, kubeconfig=str(cluster.admin_kubeconfig)
        )
        facts = facts_from_snapshot(str(ROOT / "examples" / "calico-bgp-lossy"))
        plan = build_plan(facts, opts, tool_version="t", policies=pm)
        block = _before_block(plan, APPLY_STEP)
        bash = shutil.which("bash")
        assert bash
        env = {"PATH": f"{find_binary('kubectl', cluster.cache).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
        r = subprocess.run([bash, "-c", block], capture_output=True, text=True, env=env, check=False)
        assert r.returncode == 0, (r.stdout, r.stderr)
        cluster.kubectl(
            "annotate",
            "networkpolicies.crd.projectcalico.org",
            "default.web-ingress",
            "-n",
            test_namespace,
            "changed=yes",
        )
        r = subprocess.run([bash, "-c", block], capture_output=True, text=True, env=env, check=False)
        assert r.returncode != 0 and "are the ones the plan translated" in r.stderr
    finally:
        _kubectl_stdin(cluster, ["delete", "--ignore-not-found"], [web])
