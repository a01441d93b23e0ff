"""Fake nodes: Node objects that kwok keeps Ready and whose pods it moves to Running."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import msgspec
from lightkube import Client
from lightkube.models.core_v1 import NodeSpec, NodeStatus, Taint
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType

from cni_migrate_testbed.errors import TestbedError

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_ANNOTATION_VALUE = "fake"
#: Every node made here carries this label, so a cleanup can always find them.
FAKE_NODE_LABEL = "testbed.cni-migrate.io/fake-node"

TaintLike = Taint | Mapping[str, str]


@dataclass(frozen=True)
class FakeNodeSpec:
    """What a fake node looks like. ``internal_ip`` None lets the control plane pick a unique one."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[TaintLike] = ()
    kernel_version: str = "6.1.0-28-amd64"
    os_image: str = "Debian GNU/Linux 12 (bookworm)"
    container_runtime_version: str = "containerd://1.7.24"
    kubelet_version: str = "v1.34.4"
    architecture: str = "amd64"
    internal_ip: str | None = None
    pod_cidr: str | None = None
    pod_cidrs: Sequence[str] = ()
    cpu: str = "8"
    memory: str = "32Gi"
    max_pods: int = 110


def _taint(t: TaintLike) -> Taint:
    if isinstance(t, Taint):
        return t
    return Taint(key=t["key"], effect=t.get("effect", "NoSchedule"), value=t.get("value"))


def node_object(spec: FakeNodeSpec, internal_ip: str) -> Node:
    """The whole Node as created, status included, annotated for kwok."""
    labels = {
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": spec.architecture,
        "type": "kwok",
        FAKE_NODE_LABEL: "true",
        **spec.labels,
    }
    annotations = {**spec.annotations, KWOK_ANNOTATION: KWOK_ANNOTATION_VALUE}
    pod_cidrs = list(spec.pod_cidrs)
    if spec.pod_cidr is not None and not pod_cidrs:
        pod_cidrs = [spec.pod_cidr]
    pod_cidr = spec.pod_cidr if spec.pod_cidr is not None else (pod_cidrs[0] if pod_cidrs else None)
    node = Node(
        metadata=ObjectMeta(name=spec.name, labels=labels, annotations=annotations),
        spec=NodeSpec(
            podCIDR=pod_cidr,
            podCIDRs=pod_cidrs or None,
            taints=[_taint(t) for t in spec.taints] or None,
        ),
    )
    node.status = msgspec.convert(node_status(spec, internal_ip), NodeStatus)
    return node


def node_status(spec: FakeNodeSpec, internal_ip: str) -> dict[str, Any]:
    """nodeInfo, addresses (InternalIP and Hostname: kwok fills in only missing ones), capacity."""
    resources = {"cpu": spec.cpu, "memory": spec.memory, "pods": str(spec.max_pods)}
    return {
        "nodeInfo": {
            "kernelVersion": spec.kernel_version,
            "osImage": spec.os_image,
            "containerRuntimeVersion": spec.container_runtime_version,
            "kubeletVersion": spec.kubelet_version,
            "kubeProxyVersion": spec.kubelet_version,
            "operatingSystem": "linux",
            "architecture": spec.architecture,
            "machineID": spec.name,
            "systemUUID": spec.name,
            "bootID": spec.name,
        },
        "addresses": [
            {"type": "InternalIP", "address": internal_ip},
            {"type": "Hostname", "address": spec.name},
        ],
        "capacity": resources,
        "allocatable": resources,
    }


def create_node(client: Client, spec: FakeNodeSpec, internal_ip: str) -> None:
    """Create the Node, status included, already annotated for kwok.

    kwok starts managing a node (Lease, pods) only when it first sees it with the annotation, and its
    node-initialize stage keeps any nodeInfo and addresses already present, so everything goes in one request.
    Should an apiserver drop the status on create, it is set again through the status subresource.
    """
    created = client.create(node_object(spec, internal_ip))
    info = created.status.nodeInfo if created.status is not None else None
    if info is None or info.kernelVersion != spec.kernel_version:
        client.patch(Node.Status, spec.name, {"status": node_status(spec, internal_ip)}, patch_type=PatchType.MERGE)


def create_nodes(client: Client, specs: Sequence[FakeNodeSpec], ips: Sequence[str], workers: int = 16) -> None:
    if len(specs) != len(ips):
        raise ValueError("one internal IP per node spec")
    if len(specs) == 1:
        create_node(client, specs[0], ips[0])
        return
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(specs)))) as pool:
        for future in [pool.submit(create_node, client, s, ip) for s, ip in zip(specs, ips, strict=True)]:
            future.result()


def is_ready(node: Node) -> bool:
    conditions = node.status.conditions if node.status is not None else None
    return any(c.type == "Ready" and c.status == "True" for c in conditions or ())


def wait_ready(client: Client, names: Iterable[str], timeout: float = 120.0) -> dict[str, Node]:
    """Wait until every named node has Ready=True (kwok's doing); return the nodes as last read."""
    pending = set(names)
    ready: dict[str, Node] = {}
    deadline = time.monotonic() + timeout
    while True:
        if len(pending) <= 10:
            nodes = [client.get(Node, n) for n in sorted(pending)]
        else:
            nodes = list(client.list(Node, labels={FAKE_NODE_LABEL: "true"}))
        for node in nodes:
            name = node.metadata.name if node.metadata is not None else None
            if name is not None and name in pending and is_ready(node):
                ready[name] = node
                pending.discard(name)
        if not pending:
            return ready
        if time.monotonic() > deadline:
            shown = ", ".join(sorted(pending)[:10])
            raise TestbedError(
                f"{len(pending)} fake node(s) not Ready after {timeout:.0f} s (is kwok running?): {shown}"
            )
        time.sleep(0.2 if len(pending) <= 10 else 1.0)
