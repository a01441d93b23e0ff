"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (which simulates the nodes), each a child process stopped by PID."""

from __future__ import annotations

import atexit
import http.client
import ipaddress
import itertools
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self

from lightkube import ApiError, Client, KubeConfig
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Node, ServiceAccount

from cni_migrate_testbed import nodes as _nodes
from cni_migrate_testbed.binaries import CONTROL_PLANE_BINARIES, KWOK_STAGES, cache_dir, find_binary
from cni_migrate_testbed.errors import ComponentStartError, TestbedError
from cni_migrate_testbed.kubeconfig import write_kubeconfig
from cni_migrate_testbed.nodes import FakeNodeSpec, TaintLike
from cni_migrate_testbed.pki import Pki, make_pki
from cni_migrate_testbed.process import ManagedProcess

SERVICE_CIDR = "10.96.0.0/16"
#: Pod IPs kwok hands out on nodes that have no spec.podCIDR.
KWOK_FALLBACK_POD_CIDR = "10.0.0.1/16"
#: Default InternalIPs of fake nodes are taken from here, one per node, in order.
NODE_IP_RANGE = ipaddress.ip_network("172.16.0.0/12")
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"

_LIVE: set[ControlPlane] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for cp in live:
        cp.stop()


atexit.register(_stop_all_at_exit)


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports, all bound at once then released (a clash remains possible: see start)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _http_get(
    port: int, path: str, *, tls: ssl.SSLContext | None = None, token: str | None = None
) -> tuple[int, bytes]:
    conn: http.client.HTTPConnection
    if tls is not None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls, timeout=3)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class ControlPlane:
    """One throw-away cluster. ``ControlPlane().start()`` blocks until every component is healthy.

    Use it as a context manager, or call :meth:`stop`; an ``atexit`` hook stops any left running.
    """

    def __init__(self, *, cache: Path | None = None, workdir: Path | None = None, quiet: bool = False) -> None:
        self.cache = cache if cache is not None else cache_dir()
        self.quiet = quiet
        self._requested_workdir = workdir
        self._owns_workdir = False
        self._workdir: Path | None = None
        self._procs: list[ManagedProcess] = []
        self._client: Client | None = None
        self._pki: Pki | None = None
        self._node_ips = itertools.count(10)
        self._lock = threading.Lock()
        self.admin_token = secrets.token_hex(24)
        self.apiserver_port = 0
        self.allocate_node_cidrs = False
        self.cluster_cidr = "10.244.0.0/16"
        self.node_cidr_mask = 24
        self.ready_seconds: float | None = None
        """Seconds from launching etcd until every component answered healthy (set by :meth:`start`)."""
        self.phase_seconds: dict[str, float] = {}
        self.started = False

    # ------------------------------------------------------------------ lifecycle

    def start(
        self,
        allocate_node_cidrs: bool = False,
        cluster_cidr: str = "10.244.0.0/16",
        node_cidr_mask: int = 24,
        *,
        timeout: float = 120.0,
        attempts: int = 3,
    ) -> Self:
        """Start every component on free loopback ports and wait until all are healthy.

        ``allocate_node_cidrs`` turns on kube-controller-manager's own range allocator over
        ``cluster_cidr`` (``node_cidr_mask`` bits per node); when off, nodes keep the podCIDR they are
        created with.
        """
        if self.started:
            raise TestbedError("control plane already started")
        binaries = {name: find_binary(name, self.cache) for name in CONTROL_PLANE_BINARIES}
        binaries[KWOK_STAGES] = find_binary(KWOK_STAGES, self.cache, executable=False)
        self.allocate_node_cidrs = allocate_node_cidrs
        self.cluster_cidr = str(ipaddress.ip_network(cluster_cidr))
        self.node_cidr_mask = node_cidr_mask
        if self._requested_workdir is not None:
            self._workdir = self._requested_workdir
            self._workdir.mkdir(parents=True, exist_ok=True)
        else:
            self._workdir = Path(tempfile.mkdtemp(prefix="cni-migrate-testbed-"))
            self._owns_workdir = True
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            self._pki = make_pki(self.workdir / "pki")
            (self.workdir / "tokens.csv").write_text(f'{self.admin_token},admin,admin,"system:masters"\n')
            for attempt in range(1, attempts + 1):
                try:
                    self._start_once(binaries, timeout)
                    break
                except ComponentStartError as err:
                    clash = any(p.log_contains("address already in use") for p in self._procs)
                    self._stop_processes()
                    if not clash or attempt == attempts:
                        raise
                    self._say(f"port clash ({err.component}), retrying with new ports")
        except BaseException:
            self._stop_processes()
            shutil.rmtree(self.workdir / "etcd-data", ignore_errors=True)
            with _LIVE_LOCK:
                _LIVE.discard(self)
            if self._owns_workdir:
                self._say(f"startup failed; logs kept in {self.workdir}")
            raise
        self.started = True
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in self.phase_seconds.items())
        self._say(f"control plane ready in {self.ready_seconds:.1f} s ({phases}); KUBECONFIG={self.admin_kubeconfig}")
        return self

    def _start_once(self, binaries: Mapping[str, Path], timeout: float) -> None:
        self._procs = []
        self.phase_seconds = {}
        wd, pki = self.workdir, self.pki
        shutil.rmtree(wd / "etcd-data", ignore_errors=True)
        etcd_port, peer_port, api_port, kcm_port, sched_port, kwok_port = _free_ports(6)
        self.apiserver_port = api_port
        tls = ssl.create_default_context(cafile=str(pki.ca_cert))
        write_kubeconfig(
            self.admin_kubeconfig,
            server=self.server,
            ca_pem=pki.ca_cert.read_bytes(),
            token=self.admin_token,
            user="admin",
        )
        kubeconfig = str(self.admin_kubeconfig)
        t0 = time.monotonic()
        deadline = t0 + timeout

        etcd = self._launch(
            "etcd",
            binaries["etcd"],
            [
                "--name=testbed",
                f"--data-dir={wd / 'etcd-data'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=testbed=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
        )
        self._wait([etcd], deadline, "etcd", lambda: b'"health":"true"' in _http_get(etcd_port, "/health")[1])
        self.phase_seconds["etcd"] = time.monotonic() - t0

        t1 = time.monotonic()
        apiserver = self._launch(
            "kube-apiserver",
            binaries["kube-apiserver"],
            [
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--token-auth-file={wd / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                "--endpoint-reconciler-type=none",
                f"--cert-dir={wd / 'apiserver-certs'}",
            ],
        )
        self._wait(
            [etcd, apiserver],
            deadline,
            "kube-apiserver",
            lambda: _http_get(api_port, "/readyz", tls=tls, token=self.admin_token)[0] == 200,
        )
        self.phase_seconds["kube-apiserver"] = time.monotonic() - t1

        t2 = time.monotonic()
        serving = [f"--tls-cert-file={pki.serving_cert}", f"--tls-private-key-file={pki.serving_key}"]
        delegated = [f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}"]
        if self.allocate_node_cidrs:
            ipam = [
                "--allocate-node-cidrs=true",
                f"--cluster-cidr={self.cluster_cidr}",
                f"--node-cidr-mask-size={self.node_cidr_mask}",
            ]
        else:
            ipam = ["--allocate-node-cidrs=false"]
        kcm = self._launch(
            "kube-controller-manager",
            binaries["kube-controller-manager"],
            [
                f"--kubeconfig={kubeconfig}",
                *delegated,
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                *serving,
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                *ipam,
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--concurrent-service-syncs=2",
            ],
        )
        scheduler = self._launch(
            "kube-scheduler",
            binaries["kube-scheduler"],
            [
                f"--kubeconfig={kubeconfig}",
                *delegated,
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                *serving,
                "--kube-api-qps=200",
                "--kube-api-burst=400",
            ],
        )
        kwok = self._launch(
            "kwok",
            binaries["kwok"],
            [
                f"--config={binaries[KWOK_STAGES]}",
                f"--kubeconfig={kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={_nodes.KWOK_ANNOTATION}={_nodes.KWOK_ANNOTATION_VALUE}",
                "--manage-nodes-with-label-selector=",
                f"--cidr={KWOK_FALLBACK_POD_CIDR}",
                "--node-ip=10.0.0.1",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{kwok_port}",
            ],
            env={"HOME": str(wd)},  # keep a user's ~/.kwok/kwok.yaml out of the tests
        )
        everyone = [etcd, apiserver, kcm, scheduler, kwok]
        self._wait(everyone, deadline, "kube-controller-manager",
                   lambda: _http_get(kcm_port, "/healthz", tls=tls)[0] == 200)  # fmt: skip
        self._wait(everyone, deadline, "kube-scheduler",
                   lambda: _http_get(sched_port, "/healthz", tls=tls)[0] == 200)  # fmt: skip
        self._wait(everyone, deadline, "kwok", lambda: _http_get(kwok_port, "/healthz")[0] == 200)
        # kube-controller-manager's service-account controller: pods can be created in "default".
        self._wait(everyone, deadline, "kube-controller-manager", lambda: self._has_service_account("default"))
        now = time.monotonic()
        self.phase_seconds["controllers+kwok"] = now - t2
        self.ready_seconds = now - t0

    def _launch(
        self, name: str, binary: Path, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        proc = ManagedProcess(
            name,
            [str(binary), *args],
            self.workdir / f"{name}.log",
            cwd=self.workdir,
            env={**os.environ, **env} if env else None,
        )
        self._procs.append(proc)
        proc.start()
        return proc

    def _wait(
        self, watched: Sequence[ManagedProcess], deadline: float, component: str, check: Callable[[], bool]
    ) -> None:
        while True:
            for p in watched:
                p.check_alive()
            try:
                if check():
                    return
            except (OSError, http.client.HTTPException, ApiError):
                pass
            if time.monotonic() > deadline:
                proc = next((p for p in self._procs if p.name == component), watched[-1])
                raise proc.start_error("did not become ready in time")
            time.sleep(0.1)

    def _has_service_account(self, namespace: str) -> bool:
        try:
            self.client.get(ServiceAccount, "default", namespace=namespace)
        except ApiError as err:
            if err.status.code == 404:
                return False
            raise
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every component (SIGTERM, then SIGKILL after ``timeout``), reap it, remove the temp dir."""
        self._stop_processes(timeout)
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._owns_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self.started = False

    def _stop_processes(self, timeout: float = 10.0) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        for proc in reversed(self._procs):
            proc.stop(timeout)

    def __enter__(self) -> Self:
        if not self.started:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _say(self, message: str) -> None:
        if not self.quiet:
            print(f"cni-migrate-testbed: {message}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ facts

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise TestbedError("control plane not started")
        return self._workdir

    @property
    def pki(self) -> Pki:
        if self._pki is None:
            raise TestbedError("control plane not started")
        return self._pki

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def pids(self) -> dict[str, int]:
        """PID of every component started, running or not."""
        return {p.name: p.pid for p in self._procs if p.pid is not None}

    def log_path(self, component: str) -> Path:
        return self.workdir / f"{component}.log"

    @property
    def bin_dir(self) -> Path:
        return self.cache / "bin"

    # ------------------------------------------------------------------ clients

    def new_client(self, kubeconfig: Path | None = None, *, namespace: str | None = None) -> Client:
        """A fresh lightkube client (admin unless ``kubeconfig`` is given). The caller closes it."""
        config = KubeConfig.from_file(kubeconfig if kubeconfig is not None else self.admin_kubeconfig)
        return Client(config=config, namespace=namespace, trust_env=False, field_manager="cni-migrate-testbed")

    @property
    def client(self) -> Client:
        """The shared admin client (thread-safe; closed by :meth:`stop`)."""
        with self._lock:
            if self._client is None:
                self._client = self.new_client()
            return self._client

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the cache's kubectl against this control plane as admin."""
        argv = [str(find_binary("kubectl", self.cache)), f"--kubeconfig={self.admin_kubeconfig}", *args]
        return subprocess.run(argv, capture_output=True, text=True, check=check)

    def kubeconfig_for_service_account(self, namespace: str, name: str, *, expiration_seconds: int = 24 * 3600) -> Path:
        """A kubeconfig authenticating as the ServiceAccount, with a token from the TokenRequest API.

        The ServiceAccount must exist. Code run with it gets exactly the RBAC it would get in production.
        """
        spec = TokenRequestSpec(audiences=[SA_ISSUER], expirationSeconds=expiration_seconds)
        request = ServiceAccount.Token(metadata=ObjectMeta(name=name, namespace=namespace), spec=spec)
        response = self.client.create(request, name, namespace=namespace)
        token = response.status.token if response.status is not None else None
        if not token:
            raise TestbedError(f"TokenRequest for serviceaccount {namespace}/{name} returned no token")
        directory = self.workdir / "kubeconfigs"
        directory.mkdir(exist_ok=True)
        return write_kubeconfig(
            directory / f"sa-{namespace}-{name}.kubeconfig",
            server=self.server,
            ca_pem=self.pki.ca_cert.read_bytes(),
            token=token,
            user=f"system:serviceaccount:{namespace}:{name}",
            namespace=namespace,
        )

    # ------------------------------------------------------------------ fake nodes

    def next_node_ip(self) -> str:
        return str(NODE_IP_RANGE.network_address + next(self._node_ips))

    def create_fake_node(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        taints: Sequence[TaintLike] = (),
        kernel_version: str = "6.1.0-28-amd64",
        os_image: str = "Debian GNU/Linux 12 (bookworm)",
        container_runtime_version: str = "containerd://1.7.24",
        kubelet_version: str = "v1.34.4",
        internal_ip: str | None = None,
        pod_cidr: str | None = None,
        pod_cidrs: Sequence[str] = (),
        annotations: Mapping[str, str] | None = None,
        wait_ready: bool = True,
        timeout: float = 60.0,
    ) -> Node:
        """Create one node that kwok keeps Ready; return it (Ready, unless ``wait_ready`` is False)."""
        spec = FakeNodeSpec(
            name=name,
            labels=dict(labels or {}),
            annotations=dict(annotations or {}),
            taints=tuple(taints),
            kernel_version=kernel_version,
            os_image=os_image,
            container_runtime_version=container_runtime_version,
            kubelet_version=kubelet_version,
            internal_ip=internal_ip,
            pod_cidr=pod_cidr,
            pod_cidrs=tuple(pod_cidrs),
        )
        return self.create_fake_nodes([spec], wait_ready=wait_ready, timeout=timeout)[0]

    def create_fake_nodes(
        self,
        specs: Sequence[FakeNodeSpec],
        *,
        workers: int = 16,
        wait_ready: bool = True,
        timeout: float = 300.0,
    ) -> list[Node]:
        """Create many nodes concurrently (``workers`` threads); return them in the order given."""
        ips = [s.internal_ip or self.next_node_ip() for s in specs]
        _nodes.create_nodes(self.client, specs, ips, workers=workers)
        if not wait_ready:
            return [self.client.get(Node, s.name) for s in specs]
        ready = _nodes.wait_ready(self.client, [s.name for s in specs], timeout=timeout)
        return [ready[s.name] for s in specs]

    def delete_nodes(self, names: Sequence[str], *, workers: int = 16) -> None:
        """Delete nodes by name (concurrently); already gone is fine."""

        def delete(name: str) -> None:
            try:
                self.client.delete(Node, name)
            except ApiError as err:
                if err.status.code != 404:
                    raise

        if len(names) <= 1:
            for name in names:
                delete(name)
            return
        with ThreadPoolExecutor(max_workers=min(workers, len(names))) as pool:
            for future in [pool.submit(delete, n) for n in names]:
                future.result()
