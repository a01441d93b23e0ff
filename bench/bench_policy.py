#!/usr/bin/env python3
"""Calico policies to Cilium: 5,000 policies translated and checked vs ``discover`` loading them, same run.

A snapshot (generate_cluster.py's cluster, by default the 5,000-node / 150,000-pod one bench_discover.py uses, plus
5,000 Calico policies: 4,997 NetworkPolicies over 500 namespaces after the patterns of Calico's documentation, varied
per namespace, 1 % of the namespaces with a real order conflict; a security tier with a quarantine-and-Pass
GlobalNetworkPolicy, a global DNS allow and a global default deny) is written once. Then, as child processes
(median of --repeat runs after a warm-up):

* ``cni-migrate --snapshot DIR -o json discover`` (loads every object, policies included);
* a child that loads the same snapshot, parses the policies, translates them for Cilium 1.16 and checks the
  result namespace by namespace (``check_by_namespace``), writing its own phase times.

Target: ratio (translate+check child / discover) <= 2. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import yaml
from _harness import PYTHON, ROOT, bytecode_env, median_run

sys.path.insert(0, str(ROOT / "bench"))
from generate_cluster import generate

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from cni_migrate.facts.snapshot import load_snapshot
from cni_migrate.facts.objects import calico
from cni_migrate.analysis.policy.calico import parse_policy_set
from cni_migrate.analysis.policy.translate import translate
from cni_migrate.analysis.policy.check import check_by_namespace
import ipaddress
store = load_snapshot(sys.argv[1])
t1 = time.perf_counter()
pols = [o for k in ("NetworkPolicy", "GlobalNetworkPolicy") for o in store.of(*calico(k))]
tiers = list(store.of(*calico("Tier")))
ps = parse_policy_set(pols, tiers)
cidrs = [ipaddress.ip_network("10.244.0.0/16")]
t2 = time.perf_counter()
t = translate(ps, cilium_version="1.16", pod_cidrs=cidrs)
t3 = time.perf_counter()
diffs = check_by_namespace(ps, t.objects, cidrs)
t4 = time.perf_counter()
json.dump({"load_s": t1 - t0, "parse_s": t2 - t1, "translate_s": t3 - t2, "check_s": t4 - t3,
           "policies": len(ps.policies), "objects": len(t.objects), "exact": len(t.exact),
           "untranslatable": len(t.untranslatable), "diffs": len(diffs)}, open(sys.argv[2], "w"))
"""

API = "crd.projectcalico.org/v1"


def _np(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def _gnp(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "GlobalNetworkPolicy", "metadata": {"name": name}, "spec": spec}


def policies(n_ns: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = [
        {"apiVersion": API, "kind": "Tier", "metadata": {"name": "security"}, "spec": {"order": 100}},
        _gnp(
            "security.quarantine",
            tier="security",
            order=10,
            ingress=[{"action": "Deny", "source": {"selector": "quarantine == 'true'"}}, {"action": "Pass"}],
            egress=[{"action": "Pass"}],
            types=["Ingress", "Egress"],
        ),
        _gnp(
            "allow-dns",
            order=10,
            types=["Egress"],
            egress=[
                {
                    "action": "Allow",
                    "protocol": "UDP",
                    "destination": {"selector": "k8s-app == 'kube-dns'", "ports": [53]},
                }
            ],
        ),
        _gnp(
            "default-deny",
            selector="projectcalico.org/namespace not in {'kube-system', 'calico-system'}",
            types=["Ingress", "Egress"],
        ),
    ]
    for i in range(n_ns):
        ns = f"team-{i:03d}"
        app = f"svc-{rnd.randrange(50)}"
        port = rnd.choice([80, 8080, 8443, 9000])
        group = [
            _np(
                "deny-dev",
                ns,
                order=50,
                ingress=[
                    {"action": "Deny", "source": {"namespaceSelector": f"env == '{rnd.choice(['dev', 'test'])}'"}}
                ],
            ),
            _np(
                "allow-frontend",
                ns,
                order=100,
                selector=f"app == '{app}'",
                ingress=[
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {"selector": f"role in {{'frontend', 'edge-{rnd.randrange(9)}'}}"},
                        "destination": {"ports": [port, "http"]},
                    }
                ],
            ),
            _np(
                "allow-monitoring",
                ns,
                order=200,
                ingress=[
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {"namespaceSelector": "team == 'monitoring'", "selector": "has(prometheus)"},
                        "destination": {"ports": [f"{9100 + rnd.randrange(5)}:9110"]},
                    }
                ],
            ),
            _np(
                "allow-db",
                ns,
                order=300,
                selector="app == 'db' || app == 'cache'",
                ingress=[
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {"serviceAccounts": {"names": [f"{app}-sa"]}},
                        "destination": {"ports": [5432, 6379]},
                    }
                ],
            ),
            _np(
                "egress-partners",
                ns,
                order=400,
                selector=f"app in {{'{app}', 'worker'}}",
                types=["Egress"],
                egress=[
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "destination": {"nets": [f"203.0.{rnd.randrange(113, 120)}.0/24"], "ports": [443]},
                    }
                ],
            ),
            _np(
                "egress-same-namespace",
                ns,
                order=500,
                types=["Egress"],
                egress=[{"action": "Allow", "destination": {"selector": "all()"}}],
            ),
            _np("allow-ping", ns, order=600, ingress=[{"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}}]),
            _np(
                "allow-internal",
                ns,
                order=700,
                selector="tier == 'web' || tier == 'api'",
                ingress=[{"action": "Allow", "source": {"selector": "!has(external)"}}],
            ),
            _np(
                "allow-ingress-controller",
                ns,
                order=800,
                selector=f"app == '{app}'",
                ingress=[
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {
                            "namespaceSelector": "projectcalico.org/name == 'ingress-nginx'",
                            "selector": "app.kubernetes.io/name == 'ingress-nginx'",
                        },
                        "destination": {"ports": [port]},
                    }
                ],
            ),
            _np(
                "deny-all",
                ns,
                order=1000,
                types=["Ingress", "Egress"],
                ingress=[{"action": "Deny"}],
                egress=[{"action": "Deny"}],
            ),
        ]
        if i % 100 == 7:  # 1 %: an allow before an overlapping deny that a later allow follows
            group[1]["spec"]["ingress"].append({"action": "Allow", "protocol": "TCP", "destination": {"ports": [22]}})
            group[0] = _np(
                "deny-ssh",
                ns,
                order=150,
                ingress=[{"action": "Deny", "protocol": "TCP", "destination": {"ports": [22]}}],
            )
            group[7] = _np("allow-rest", ns, order=900, ingress=[{"action": "Allow", "protocol": "TCP"}])
        out.extend(group)
    pols = [o for o in out if o["kind"] != "Tier"]
    tiers = [o for o in out if o["kind"] == "Tier"]
    return tiers + pols[:5000]  # 3 global + 10 per namespace, less the last namespace's last three


def write_snapshot(out: Path, seed: int, nodes: int, pods: int) -> int:
    docs = generate(nodes, pods, seed)
    pols = policies(500, seed)
    docs["calico.json"]["items"].extend(pols)
    manifest = docs.pop("cni-migrate-snapshot.json")
    manifest["listed"] += [
        {"group": "crd.projectcalico.org", "kind": k} for k in ("NetworkPolicy", "GlobalNetworkPolicy", "Tier")
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "cni-migrate-snapshot.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    for name, doc in docs.items():
        (out / name).write_bytes(orjson.dumps(doc))
    return sum(1 for p in pols if p["kind"] != "Tier")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nodes", type=int, default=5000, help="size of the cluster the policies come with")
    ap.add_argument("--pods", type=int, default=150000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        snap = Path(tmp) / "snapshot"
        n = write_snapshot(snap, args.seed, args.nodes, args.pods)
        env = bytecode_env(Path(tmp) / "pycache")
        discover = median_run(
            [PYTHON, "-m", "cni_migrate", "--snapshot", str(snap), "-o", "json", "discover"], args.repeat, env=env
        )
        phases = Path(tmp) / "phases.json"
        policy = median_run([PYTHON, "-c", CHILD, str(snap), str(phases)], args.repeat, env=env)
        figures = json.loads(phases.read_text())
    print(
        json.dumps(
            {
                "bench": "policy",
                "calico_policies": n,
                "nodes": args.nodes,
                "pods": args.pods,
                "discover_s": round(discover.wall_s, 3),
                "translate_and_check_s": round(policy.wall_s, 3),
                "ratio": round(policy.wall_s / discover.wall_s, 3),
                "last_run_phases_s": {k: round(v, 3) for k, v in figures.items() if k.endswith("_s")},
                "objects": figures["objects"],
                "exact": figures["exact"],
                "untranslatable": figures["untranslatable"],
                "check_diffs": figures["diffs"],
                "target": "ratio <= 2",
            }
        )
    )


if __name__ == "__main__":
    main()
