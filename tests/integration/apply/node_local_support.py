"""Simulated nodes for the executor's end-to-end tests through the real ``local`` transport.

Every Node of the example gets a network namespace of a :class:`NetnsLab` (named as the Node, with its InternalIP on
eth0) and a *private root* (the local transport's ``node_root``: /etc, /var and /run are copy-on-write overlays
whose writes land in the lab node's directory), so the plan's node commands and the node agent run with the paths a
real node has (``/etc/cni/net.d``, ``/var/backups/cni-migrate/...``, ``/run/flannel``) and never touch this
machine's files. The agent is the one installed in this test's virtualenv, put on the nodes' ``PATH`` as an SRE
installs it on a node; the plan's guard (``command -v cni-migrate``) then takes the agent's path, not the by-hand
shell.

The state on the nodes comes from the same fixtures as the node agent's tests (``tests/netns/node_state.py``): the
host's own firewall, Docker's chains, a static route, an ipset, an nftables table and kubelet's chains, then real
kube-proxy processes and Calico's state as calico-node writes it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from cni_migrate.actions.nodes.transport import CommandResult, LocalTransport
from cni_migrate.kube.rest import Rest
from cni_migrate_testbed.netns import NetnsLab, NodeNs

ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")
KUBE_PROXY = "k8s-app=kube-proxy"  # the kube-proxy DaemonSet's pods (both examples)


def node_state_fixtures() -> ModuleType:
    """``tests/netns/node_state.py`` (host, kubelet and Calico state), loaded by path: the two test trees are
    imported as separate top-level packages by pytest, so neither can import the other by name."""
    path = ROOT / "tests" / "netns" / "node_state.py"
    spec = importlib.util.spec_from_file_location("cni_migrate_netns_node_state", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def agent_path() -> str:
    """``PATH`` with the directory of this virtualenv's ``cni-migrate`` first (the agent the nodes run)."""
    bindir = Path(sys.executable).parent
    assert (bindir / "cni-migrate").exists(), f"no cni-migrate next to {sys.executable}: run `make setup`"
    return f"{bindir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"


def node_addresses(rest: Rest) -> list[tuple[str, str]]:
    """(name, InternalIP) of every Node, sorted by name."""
    out = []
    for n in rest.list("v1", "Node"):
        addrs = (n.get("status") or {}).get("addresses") or []
        ip = next(a["address"] for a in addrs if a.get("type") == "InternalIP")
        out.append((n["metadata"]["name"], ip))
    return sorted(out)


def daemonset_nodes(rest: Rest, namespace: str, name: str, selector: str, timeout: float = 60) -> set[str]:
    """The nodes a DaemonSet has a pod on (its pods found by ``selector``), once it has all it wants."""
    deadline = time.monotonic() + timeout
    while True:
        ds = rest.get("apps/v1", "DaemonSet", name, namespace) or {}
        want = (ds.get("status") or {}).get("desiredNumberScheduled")
        pods = rest.list("v1", "Pod", namespace=namespace, label_selector=selector)
        nodes = {p["spec"]["nodeName"] for p in pods if p["spec"].get("nodeName")}
        if want and len(nodes) == want:
            return nodes
        assert time.monotonic() < deadline, f"{namespace}/{name}: pods on {len(nodes)} nodes of {want}"
        time.sleep(0.3)


def local_transport(lab: NetnsLab) -> LocalTransport:
    """The transport ``apply --node-transport local --node-netns NODE=NETNS`` builds, plus each node's private
    root and the agent on ``PATH``."""
    return LocalTransport(
        {n.name: n.netns for n in lab.nodes},
        {n.name: {"PATH": agent_path()} for n in lab.nodes},
        {n.name: n.root for n in lab.nodes},
    )


def agent(transport: LocalTransport, node: NodeNs, *args: str, timeout: float = 120) -> CommandResult:
    """``cni-migrate -o json node ARGS`` on the node, through the transport, with the agent's default root ``/``
    (the private root's overlays); the test's own runs name the agent by path, independent of the nodes' PATH."""
    binary = shlex.quote(str(Path(sys.executable).parent / "cni-migrate"))
    return transport.run(node.name, f"{binary} -o json node {shlex.join(args)}", timeout=timeout)


def calico_state(lab: NetnsLab, node: NodeNs, index: int, *, backend: str = "legacy") -> None:
    """Calico's state on ``node`` (``node_state.calico_state``, whose workload namespace name is one per lab: here
    one per node)."""
    fx = node_state_fixtures()
    lab.add_pod(node, f"calipod{index}", "10.244.1.5", "169.254.1.1", host_if="cali1a2b3c4d5e6", prefixlen=32)
    lab.sh(node, fx.CALICO_NETLINK.format(node_ip=node.ip))
    lab.run(node, [f"iptables-{backend}-restore", "--noflush"], stdin=fx.CALICO_IPTABLES)
    for rel, text in fx.CALICO_FILES.items():
        p = node.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def iptables_all(lab: NetnsLab, node: NodeNs) -> str:
    return "".join(
        lab.run(node, [s], check=False).stdout
        for s in ("iptables-legacy-save", "iptables-nft-save", "ip6tables-legacy-save", "ip6tables-nft-save")
    )


def make_services(rest: Rest, namespace: str) -> None:
    """A ClusterIP and a NodePort Service with two endpoints each, for kube-proxy to program."""
    rest.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for name, kind in (("web", "ClusterIP"), ("edge", "NodePort")):
        rest.apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"type": kind, "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]},
            }
        )
        rest.apply(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-1",
                    "namespace": namespace,
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.33.2.5"]}, {"addresses": ["10.33.3.7"]}],
                "ports": [{"port": 8080, "protocol": "TCP", "name": ""}],
            }
        )


def kernel_paths(lab: NetnsLab) -> tuple[list[str], list[str]]:
    """What this kernel can do of the paths the agent has (ipip, wireguard links; IPVS), tried in a lab node."""
    node = lab.nodes[0]
    absent = []
    for kind in ("ipip", "wireguard"):
        p = lab.run(node, ["ip", "link", "add", f"probe-{kind[:6]}", "type", kind], check=False)
        if p.returncode == 0:
            lab.run(node, ["ip", "link", "del", f"probe-{kind[:6]}"])
        else:
            absent.append(kind)
    if lab.run(node, ["test", "-e", "/proc/net/ip_vs"], check=False).returncode != 0:
        absent.append("ip_vs")
    present = [k for k in ("ipip", "wireguard", "ip_vs") if k not in absent]
    return present, absent


@dataclass
class Container:
    """A node component's process and the pod whose container it stands for (``selector`` in kube-system)."""

    node: str
    selector: str
    proc: Any  # subprocess.Popen
    namespace: str = "kube-system"
    pod_uid: str = ""
    stopped: str = ""  # why the stand-in kubelet stopped it ("pod gone", "pod terminating")


@dataclass
class KubeletStandIn:
    """What the kubelet does to a container when its pod is deleted, which nothing else does here (the Nodes are
    kwok's, whose pods run no containers): when the pod that was bound to the node at the start (a DaemonSet's pod,
    found by label) is gone or has a deletionTimestamp, the process standing for its container gets SIGTERM (then
    SIGKILL after 5 s), as the kubelet stops a container. kube-proxy and flanneld leave their rules, links and files
    behind when they stop, as on a real node. It never starts a process: a pod that comes back (a rollback
    re-creates the DaemonSets) is the API side's business, checked there."""

    rest: Rest
    lab: NetnsLab
    containers: list[Container]
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.rest.list("v1", "Pod", namespace=namespace, label_selector=selector)

    def start(self) -> None:
        for c in self.containers:
            pods = self._pods(c.namespace, c.selector)
            uids = [p["metadata"]["uid"] for p in pods if p["spec"].get("nodeName") == c.node]
            assert len(uids) == 1, f"{len(uids)} pods {c.selector} bound to {c.node}: the stand-in kubelet needs one"
            c.pod_uid = uids[0]
        self._thread = threading.Thread(target=self._run, name="kubelet-stand-in", daemon=True)
        self._thread.start()

    def all_stopped(self) -> bool:
        return all(c.stopped for c in self.containers)

    def running(self) -> list[str]:
        return [f"{c.selector} on {c.node}" for c in self.containers if not c.stopped]

    def _run(self) -> None:
        while not self._stop.wait(0.1) and not self.all_stopped():
            try:
                wanted = {(c.namespace, c.selector) for c in self.containers}
                live = {p["metadata"]["uid"]: p for ns, sel in wanted for p in self._pods(ns, sel)}
                for c in self.containers:
                    pod = live.get(c.pod_uid)
                    if not c.stopped and (pod is None or pod["metadata"].get("deletionTimestamp")):
                        self.lab.terminate(c.proc)
                        c.stopped = "pod gone" if pod is None else "pod terminating"
            except Exception as e:  # reported by the test, never swallowed
                self.errors.append(repr(e))
                if len(self.errors) > 20:
                    return

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def on_nodes(lab: NetnsLab, fn: Callable[[NodeNs], T]) -> dict[str, T]:
    """``fn`` for every node of the lab, three at a time (snapshots and agent runs are mostly process start-up)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip([n.name for n in lab.nodes], pool.map(fn, lab.nodes), strict=True))


def inspect_counts(transport: LocalTransport, node: NodeNs, *, fail_if_found: bool = False) -> dict[str, int]:
    """The agent's counts of the old CNIs' and kube-proxy's state on the node (every owner it knows)."""
    args = ["inspect", *(["--fail-if-found"] if fail_if_found else [])]
    r = agent(transport, node, *args)
    assert r.exit_code == 0, f"{node.name}: agent inspect exit {r.exit_code}: {r.stderr or r.stdout}"
    counts: dict[str, int] = json.loads(r.stdout)["found"]["counts"]
    return counts
