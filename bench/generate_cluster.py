#!/usr/bin/env python3
"""Generate a large synthetic cluster snapshot (kubectl -o json Lists) for benchmarks. Output is not committed.

    python bench/generate_cluster.py --nodes 5000 --pods 150000 --out /tmp/big-cluster

The cluster looks like a big bare-metal kubeadm site: Calico (manifest-installed, BGP with route reflectors, one
IPPool per rack selected by node label), kube-proxy in IPVS mode, 3 control-plane nodes, racks of 40 nodes,
pods spread evenly with ~10% hostNetwork, a PDB per 100 deployments. Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

import orjson
import yaml

Obj = dict[str, Any]


def _list(items: list[Obj]) -> Obj:
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


def generate(nodes: int, pods: int, seed: int) -> dict[str, Obj]:
    rnd = random.Random(seed)
    racks = max(1, (nodes + 39) // 40)
    node_objs: list[Obj] = []
    for i in range(nodes):
        rack = i // 40
        cp = i < 3
        name = f"node-{i:05d}"
        ip = f"10.{100 + rack // 250}.{rack % 250}.{10 + i % 40}"
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "rack": f"r{rack:03d}",
            "topology.kubernetes.io/zone": f"dc1-r{rack:03d}",
        }
        if cp:
            labels["node-role.kubernetes.io/control-plane"] = ""
        if i % 97 == 5:
            labels["gpu"] = "true"
        kernel = "5.15.0-91-generic" if i % 50 else "5.10.0-27-amd64"
        node_objs.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "uid": f"00000000-0000-4000-8000-{i:012d}",
                    "labels": labels,
                    "annotations": {
                        "projectcalico.org/IPv4Address": f"{ip}/24",
                        "node.alpha.kubernetes.io/ttl": "0",
                        **({"projectcalico.org/RouteReflectorClusterID": "244.0.0.1"} if i % 40 == 0 else {}),
                    },
                },
                "spec": {
                    "podCIDR": f"10.{(i // 256) % 64}.{i % 256}.0/24" if False else None,
                    "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}] if cp else [],
                },
                "status": {
                    "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "nodeInfo": {
                        "kernelVersion": kernel,
                        "osImage": "Ubuntu 22.04.3 LTS",
                        "containerRuntimeVersion": "containerd://1.7.2",
                        "kubeletVersion": "v1.29.4",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                    },
                },
            }
        )
        del node_objs[-1]["spec"]["podCIDR"]
    deployments = max(1, pods // 30)
    pod_objs: list[Obj] = []
    for j in range(pods):
        d = j % deployments
        node_i = rnd.randrange(nodes)
        host = j % 10 == 0
        ns = f"team-{d % 200:03d}"
        pod_objs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"app-{d:05d}-{j:07d}",
                    "namespace": ns,
                    "uid": f"10000000-0000-4000-8000-{j:012d}",
                    "labels": {"app": f"app-{d:05d}", "pod-template-hash": "5d8f4b7b9"},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "ReplicaSet",
                            "name": f"app-{d:05d}-5d8f4b7b9",
                            "controller": True,
                        }
                    ],
                },
                "spec": {
                    "nodeName": f"node-{node_i:05d}",
                    "hostNetwork": host,
                    "containers": [
                        {
                            "name": "app",
                            "image": f"registry.example/app-{d % 50}:1.{d % 7}",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        }
                    ],
                },
                "status": {
                    "phase": "Running" if j % 211 else "Pending",
                    "podIP": f"10.{j // 65536 % 64}.{j // 256 % 256}.{j % 256}",
                    "hostIP": "10.100.0.10",
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
    pools = [
        {
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "IPPool",
            "metadata": {"name": f"rack-{r:03d}"},
            "spec": {
                "cidr": f"10.{r // 16}.{(r % 16) * 16}.0/20",
                "blockSize": 26,
                "ipipMode": "Never",
                "vxlanMode": "Never",
                "natOutgoing": True,
                "nodeSelector": f'rack == "r{r:03d}"',
            },
        }
        for r in range(racks)
    ]
    calico = [
        *pools,
        {
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "BGPConfiguration",
            "metadata": {"name": "default"},
            "spec": {
                "asNumber": 64512,
                "nodeToNodeMeshEnabled": False,
                "serviceClusterIPs": [{"cidr": "10.96.0.0/16"}],
            },
        },
        {
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "BGPPeer",
            "metadata": {"name": "peer-with-rr"},
            "spec": {"nodeSelector": "all()", "peerSelector": "has(route-reflector)"},
        },
    ]
    cc = (
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: v1.29.4\n"
        "controlPlaneEndpoint: 10.100.0.1:6443\nnetworking:\n  podSubnet: 10.0.0.0/10\n  serviceSubnet: 10.96.0.0/16\n"
    )
    configmaps = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
            "data": {"ClusterConfiguration": cc},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            "data": {"config.conf": "kind: KubeProxyConfiguration\nmode: ipvs\nclusterCIDR: 10.0.0.0/10\n"},
        },
    ]
    daemonsets = [
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "calico-node", "namespace": "kube-system"},
            "spec": {
                "template": {
                    "spec": {
                        "hostNetwork": True,
                        "containers": [
                            {
                                "name": "calico-node",
                                "image": "docker.io/calico/node:v3.27.3",
                                "env": [{"name": "IP_AUTODETECTION_METHOD", "value": "kubernetes-internal-ip"}],
                            }
                        ],
                    }
                }
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            "spec": {
                "template": {
                    "spec": {
                        "hostNetwork": True,
                        "containers": [{"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.29.4"}],
                    }
                }
            },
        },
    ]
    pdbs = [
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": f"app-{d:05d}", "namespace": f"team-{d % 200:03d}"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": f"app-{d:05d}"}}},
            "status": {"disruptionsAllowed": d % 3, "expectedPods": 30},
        }
        for d in range(0, deployments, 100)
    ]
    manifest = {
        "apiVersion": "cni-migrate.io/v1",
        "kind": "CniMigrateSnapshot",
        "serverVersion": "v1.29.4",
        "listed": [
            {"group": g, "kind": k}
            for g, k in (
                ("", "Node"),
                ("", "Pod"),
                ("", "ConfigMap"),
                ("", "Namespace"),
                ("", "Secret"),
                ("apps", "DaemonSet"),
                ("apps", "Deployment"),
                ("policy", "PodDisruptionBudget"),
                ("networking.k8s.io", "NetworkPolicy"),
                ("apiextensions.k8s.io", "CustomResourceDefinition"),
                ("crd.projectcalico.org", "IPPool"),
                ("crd.projectcalico.org", "BGPConfiguration"),
                ("crd.projectcalico.org", "BGPPeer"),
            )
        ],
    }
    return {
        "nodes.json": _list(node_objs),
        "pods.json": _list(pod_objs),
        "calico.json": _list(calico),
        "configmaps.json": _list(configmaps),
        "daemonsets.json": _list(daemonsets),
        "pdbs.json": _list(pdbs),
        "cni-migrate-snapshot.json": manifest,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=150000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, doc in generate(args.nodes, args.pods, args.seed).items():
        if name == "cni-migrate-snapshot.json":
            (args.out / "cni-migrate-snapshot.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
            continue
        (args.out / name).write_bytes(orjson.dumps(doc))
    print(f"wrote {args.nodes} nodes and {args.pods} pods to {args.out}")


if __name__ == "__main__":
    main()
