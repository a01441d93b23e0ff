"""Helpers of the IPAM operator's integration tests (fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from lightkube import ApiError, Client
from lightkube.generic_resource import create_global_resource
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Event as CoreEvent
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType

from cni_migrate_testbed import TEST_LABEL, ControlPlane, wait_for
from cni_migrate_testbed.binaries import find_binary
from cni_migrate_testbed.process import _die_with_parent

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "cni-migrate-ipam"
RELEASE = "cni-migrate-ipam"
LEASE_NAME = "cni-migrate-ipam"
ADMISSION_LEASE_NAME = f"{LEASE_NAME}-admission"
FINALIZER = "ipam.cni-migrate.io/pool-in-use"
PodCIDRPool = create_global_resource("ipam.cni-migrate.io", "v1alpha1", "PodCIDRPool", "podcidrpools")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def helm(cp: ControlPlane, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [str(find_binary("helm", cp.cache)), f"--kubeconfig={cp.admin_kubeconfig}", *args]
    env = {**os.environ, "HELM_CACHE_HOME": str(cp.workdir / "helm-cache"),
           "HELM_CONFIG_HOME": str(cp.workdir / "helm-config"), "HELM_DATA_HOME": str(cp.workdir / "helm-data")}  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class IpamRelease:
    cp: ControlPlane
    namespace: str
    service_account: str
    kubeconfig: Path  # authenticates as the chart's ServiceAccount
    webhook_port: int
    cert: Path
    key: Path
    workdir: Path

    @property
    def webhook_url(self) -> str:
        return f"https://127.0.0.1:{self.webhook_port}/validate-podcidrpool"


# ------------------------------------------------------------------------------------------- operator processes


@dataclass
class OperatorProcess:
    release: IpamRelease
    identity: str
    args: list[str]
    webhook: bool = False
    mode: str = "spec"
    webhook_port: int = 0  # 0: the release's (the port its ValidatingWebhookConfiguration calls)
    health_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.release.workdir / f"operator-{self.identity}.log"

    @property
    def audit_path(self) -> Path:
        return self.release.workdir / f"audit-{self.identity}.jsonl"

    @property
    def field_manager(self) -> str:
        return f"cni-migrate-ipam/{self.identity}"

    def start(self) -> OperatorProcess:
        r = self.release
        argv = [
            sys.executable, "-m", "cni_migrate.actions.ipam_operator",
            f"--kubeconfig={r.kubeconfig}",
            f"--lease-namespace={r.namespace}",
            f"--lease-name={LEASE_NAME}",
            f"--identity={self.identity}",
            f"--field-manager={self.field_manager}",
            f"--mode={self.mode}",
            f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
            f"--health-bind-address=127.0.0.1:{self.health_port}",
            f"--audit-log={self.audit_path}",
            "--lease-duration=4", "--renew-deadline=3", "--retry-period=0.5",
            "--qps=200", "--burst=400",
            *self.args,
        ]  # fmt: skip
        if self.webhook:
            argv += [
                f"--webhook-bind-address=127.0.0.1:{self.webhook_port or r.webhook_port}",
                f"--webhook-cert-file={r.cert}",
                f"--webhook-key-file={r.key}",
            ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # SIGKILL the operator if the test process dies without cleaning up (the testbed does the same).
            preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,  # noqa: PLW1509
        )
        log.close()
        return self

    def _get(self, port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as e:
            return int(e.code), ""
        except OSError:
            return 0, ""

    def ready(self) -> bool:
        return self._get(self.health_port, "/readyz")[0] == 200

    def wait_ready(self, timeout: float = 30.0) -> OperatorProcess:
        def probe() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"operator {self.identity} exited:\n{self.tail()}")
            return self.ready()

        wait_for(f"operator {self.identity} ready", probe, timeout)
        return self

    def metrics(self) -> str:
        return self._get(self.metrics_port, "/metrics")[1]

    def metric(self, name: str, **labels: str) -> float:
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.metrics().splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            metric, _, rest = key.partition("{")
            have = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
            if metric == name and have == want:
                return float(value)
        return 0.0

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines() if line.strip()]

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL: no cleanup at all (the Lease stays held until it expires)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


class Operators:
    """Starts operator processes; kills whatever is left and deletes the Lease at teardown."""

    def __init__(self, release: IpamRelease) -> None:
        self.release = release
        self.started: list[OperatorProcess] = []
        self._n = 0

    def start(
        self,
        *args: str,
        identity: str | None = None,
        webhook: bool = False,
        mode: str = "spec",
        ready: bool = True,
        webhook_port: int = 0,
    ) -> OperatorProcess:
        self._n += 1
        identity = identity or f"op{self._n}-{os.urandom(2).hex()}"
        op = OperatorProcess(self.release, identity, list(args), webhook, mode, webhook_port)
        self.started.append(op.start())
        if ready:
            op.wait_ready()
        return op

    def cleanup(self) -> None:
        for op in self.started:
            op.kill()
        for lease in (LEASE_NAME, ADMISSION_LEASE_NAME):
            with contextlib.suppress(ApiError):
                self.release.cp.client.delete(Lease, lease, namespace=self.release.namespace)


# ------------------------------------------------------------------------------------------- pools and nodes


def pool_doc(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "ipam.cni-migrate.io/v1alpha1",
        "kind": "PodCIDRPool",
        "metadata": {"name": name},
        "spec": spec,
    }


def kubectl_apply(cp: ControlPlane, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    argv = [str(find_binary("kubectl", cp.cache)), f"--kubeconfig={cp.admin_kubeconfig}", "apply", "-f", "-"]
    return subprocess.run(argv, input=yaml.safe_dump(doc), capture_output=True, text=True, check=False)


def selector_for(prefix: str, **labels: str) -> dict[str, Any]:
    """A nodeSelector restricted to this test's nodes (other tests share the control plane)."""
    return {"matchLabels": {TEST_LABEL: prefix, **labels}}


class Pools:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.names: list[str] = []

    def apply(self, name: str, spec: dict[str, Any], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        if name not in self.names:
            self.names.append(name)
        result = kubectl_apply(self.cp, pool_doc(name, spec))
        if check and result.returncode != 0:
            raise AssertionError(f"applying PodCIDRPool {name} failed: {result.stderr}")
        return result

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.cp.client.get(PodCIDRPool, name))

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        for c in self.status(name).get("conditions") or []:
            if c.get("type") == type_:
                return dict(c)
        return None

    def cleanup(self) -> None:
        client = self.cp.client
        for name in self.names:
            with contextlib.suppress(ApiError):
                client.patch(PodCIDRPool, name, {"metadata": {"finalizers": None}}, patch_type=PatchType.MERGE)
            with contextlib.suppress(ApiError):
                client.delete(PodCIDRPool, name)


def node_cidrs(client: Client, prefix: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (uid, spec.podCIDRs) of this test's nodes."""
    out: dict[str, tuple[str, list[str]]] = {}
    for n in client.list(Node, labels={TEST_LABEL: prefix}):
        assert n.metadata is not None and n.metadata.name is not None
        cidrs = list((n.spec.podCIDRs if n.spec is not None else None) or [])
        out[n.metadata.name] = (n.metadata.uid or "", cidrs)
    return out


def delete_nodes(client: Client, names: Sequence[str], workers: int = 16) -> None:
    def one(name: str) -> None:
        with contextlib.suppress(ApiError):
            client.delete(Node, name)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, names))


class CidrRecorder:
    """Watches this test's nodes; remembers every CIDR list ever seen per node UID and flags any change."""

    def __init__(self, cp: ControlPlane, prefix: str) -> None:
        self.client = cp.new_client()
        self.prefix = prefix
        self.seen: dict[str, list[str]] = {}
        self.names: dict[str, str] = {}
        self.violations: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> CidrRecorder:
        self._thread.start()
        return self

    def _record(self, node: Node) -> None:
        md, spec = node.metadata, node.spec
        if md is None or md.uid is None:
            return
        cidrs = list((spec.podCIDRs if spec is not None else None) or [])
        self.names[md.uid] = md.name or ""
        before = self.seen.get(md.uid)
        if before and cidrs != before:
            self.violations.append(f"node {md.name} (uid {md.uid}) changed CIDRs from {before} to {cidrs}")
        if cidrs and not before:
            self.seen[md.uid] = cidrs

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for _type, node in self.client.watch(Node, labels={TEST_LABEL: self.prefix}, server_timeout=5):
                    self._record(node)
                    if self._stop.is_set():
                        return
            except Exception:
                time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        self.client.close()  # ends a watch blocked waiting for events
        self._thread.join(2)


def assert_disjoint(cidrs_by_node: dict[str, list[str]]) -> None:
    """No two nodes share or overlap a CIDR (sweep over address ranges, per family)."""
    spans = []
    for node, cidrs in cidrs_by_node.items():
        for c in cidrs:
            net = ipaddress.ip_network(c)
            spans.append((net.version, int(net.network_address), int(net.broadcast_address), node, c))
    spans.sort()
    for a, b in itertools.pairwise(spans):
        if a[0] == b[0] and b[1] <= a[2]:
            raise AssertionError(f"{a[4]} on node {a[3]} overlaps {b[4]} on node {b[3]}")


def node_events(cp: ControlPlane, name: str, reason: str) -> list[str]:
    """Notes of the events with this reason about the object named ``name`` (namespace default)."""
    out = []
    for ev in cp.client.list(CoreEvent, namespace="default", fields={"involvedObject.name": name}):
        if ev.reason == reason:
            out.append(ev.message or "")
    return out
