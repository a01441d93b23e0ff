"""Simulated nodes for node-level tests: one network namespace per node, all veth-connected to a switch namespace
(a bridge), each with its own file-system root directory; real kube-proxy and flanneld started inside them
against the test API server; everything torn down afterwards (namespaces, links, processes, directories).

    with NetnsLab(prefix, nodes=2) as lab:
        lab.forward_api(control_plane.apiserver_port)      # 127.0.0.1:PORT inside each node -> the API server
        p = lab.start_kube_proxy(lab.nodes[0], kubeconfig)  # real kube-proxy, iptables mode
        lab.run(lab.nodes[0], ["iptables-save"])
        snap = node_snapshot(lab, lab.nodes[0])            # normalized state, for before/after comparisons

The host's own network namespace is never touched: every link is created inside a lab namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from cni_migrate_testbed.binaries import cache_dir

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class NodeNs:
    name: str  # the Kubernetes node name
    netns: str
    ip: str  # on eth0, in the lab's /24
    root: Path  # the node's file-system root (etc/cni/net.d, run/flannel, var/lib/...)
    env: dict[str, str] = field(default_factory=dict)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class NetnsLab:
    def __init__(
        self,
        prefix: str,
        nodes: int = 2,
        *,
        subnet: str = "192.168.77",
        workdir: Path | None = None,
        names: Sequence[str] | None = None,
        ips: Sequence[str] | None = None,
    ):
        """``names``/``ips``: the Kubernetes node names and eth0 addresses (in one /24) of the nodes, when they must
        match existing Node objects (default ``PREFIX-nodeI`` and ``SUBNET.1I``)."""
        self.prefix = re.sub(r"[^a-z0-9]", "", prefix.lower())[:8] + secrets.token_hex(2)
        self.subnet = subnet
        self.count = nodes
        for what, given in (("names", names), ("ips", ips)):
            if given is not None and len(given) != nodes:
                raise ValueError(f"NetnsLab: {len(given)} {what} for {nodes} nodes")
        self._names = list(names) if names is not None else None
        self._ips = list(ips) if ips is not None else None
        self.switch = f"{self.prefix}-sw"
        self.nodes: list[NodeNs] = []
        self.extra_netns: list[str] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._servers: list[socket.socket] = []
        self._stop = threading.Event()
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"netns-{self.prefix}-"))

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> NetnsLab:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        ip("netns", "add", self.switch)
        self.extra_netns.append(self.switch)
        self.run_in(self.switch, ["ip", "link", "add", "br0", "type", "bridge"])
        self.run_in(self.switch, ["ip", "link", "set", "br0", "up"])
        for i in range(1, self.count + 1):
            ns = f"{self.prefix}-n{i}"
            root = self.workdir / f"node{i}"
            for d in ("etc/cni/net.d", "run", "var/lib"):
                (root / d).mkdir(parents=True, exist_ok=True)
            name = self._names[i - 1] if self._names else f"{self.prefix}-node{i}"
            node = NodeNs(name, ns, self._ips[i - 1] if self._ips else f"{self.subnet}.{10 + i}", root)
            node.env = {"CNI_MIGRATE_NODE_ROOT": str(root)}
            ip("netns", "add", ns)
            self.nodes.append(node)
            ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"p{i}", "netns", self.switch)
            self.run_in(self.switch, ["ip", "link", "set", f"p{i}", "master", "br0", "up"])
            self.run(node, ["ip", "link", "set", "lo", "up"])
            self.run(node, ["ip", "addr", "add", f"{node.ip}/24", "dev", "eth0"])
            self.run(node, ["ip", "link", "set", "eth0", "up"])
            self.run(node, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])

    def stop(self) -> None:
        self._stop.set()
        for s in self._servers:
            with contextlib.suppress(OSError):
                s.close()
        for p in self._procs:
            self._kill(p)
        for ns in [*(n.netns for n in self.nodes), *self.extra_netns]:
            ip("netns", "del", ns, check=False)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @staticmethod
    def _kill(p: subprocess.Popen[bytes]) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

    def leftovers(self) -> list[str]:
        """What of this lab still exists (for the "leaves nothing behind" assertion)."""
        out = [ns for ns in ip("netns", "list").stdout.split() if ns.startswith(self.prefix)]
        out += [f"pid {p.pid}" for p in self._procs if p.poll() is None]
        if self.workdir.exists() and self._own_workdir:
            out.append(str(self.workdir))
        return out

    # ------------------------------------------------------------ running things

    def run_in(
        self,
        netns: str,
        argv: Sequence[str],
        *,
        check: bool = True,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run(
            ["ip", "netns", "exec", netns, *argv],
            capture_output=True,
            text=True,
            env=full_env,
            input=stdin,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{netns}: {' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def run(self, node: NodeNs, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run_in(node.netns, argv, **kw)

    def sh(self, node: NodeNs, script: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(node, ["sh", "-ec", script], **kw)

    def popen(
        self, node: NodeNs, argv: Sequence[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        f = log.open("ab")
        p = subprocess.Popen(
            ["ip", "netns", "exec", node.netns, *argv],
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        f.close()
        self._procs.append(p)
        return p

    def terminate(self, p: subprocess.Popen[bytes]) -> None:
        self._kill(p)

    # ------------------------------------------------------------ pods

    def add_pod(
        self,
        node: NodeNs,
        name: str,
        pod_ip: str,
        gateway: str,
        *,
        host_if: str,
        bridge: str | None = None,
        prefixlen: int = 24,
    ) -> str:
        """A pod: its own namespace with eth0, the host end ``host_if`` in the node (on ``bridge`` if given,
        as the bridge CNI plugin does; else routed, as Calico's CNI plugin does)."""
        ns = f"{self.prefix}-{name}"
        ip("netns", "add", ns)
        self.extra_netns.append(ns)
        self.run(node, ["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns])
        if bridge:
            self.run(node, ["ip", "link", "set", host_if, "master", bridge])
        self.run(node, ["ip", "link", "set", host_if, "up"])
        self.run_in(ns, ["ip", "link", "set", "lo", "up"])
        self.run_in(ns, ["ip", "addr", "add", f"{pod_ip}/{prefixlen}", "dev", "eth0"])
        self.run_in(ns, ["ip", "link", "set", "eth0", "up"])
        if bridge:
            self.run_in(ns, ["ip", "route", "add", "default", "via", gateway])
        else:
            self.run_in(ns, ["ip", "route", "add", gateway, "dev", "eth0", "scope", "link"])
            self.run_in(ns, ["ip", "route", "add", "default", "via", gateway, "dev", "eth0"])
        return ns

    # ------------------------------------------------------------ the API server inside the nodes

    def forward_api(self, port: int) -> None:
        """Make 127.0.0.1:``port`` inside every node reach the API server on the host's 127.0.0.1:``port``
        (a listening socket created in the node's namespace, relayed by a thread of this process)."""
        for node in self.nodes:
            srv = _socket_in_netns(node.netns, port)
            self._servers.append(srv)
            threading.Thread(target=self._accept, args=(srv, port), daemon=True).start()

    def _accept(self, srv: socket.socket, port: int) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                conn.close()
                continue
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    # ------------------------------------------------------------ real node components

    def start_kube_proxy(
        self, node: NodeNs, kubeconfig: Path, *, mode: str = "iptables", cluster_cidr: str = "10.244.0.0/16"
    ) -> subprocess.Popen[bytes]:
        cfg = self.workdir / f"kube-proxy-{node.name}.yaml"
        cfg.write_text(
            json.dumps(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "clientConnection": {"kubeconfig": str(kubeconfig)},
                    "hostnameOverride": node.name,
                    "mode": mode,
                    "clusterCIDR": cluster_cidr,
                    "conntrack": {"maxPerCore": 0, "min": 0},
                    "metricsBindAddress": "127.0.0.1:10249",
                    "healthzBindAddress": "127.0.0.1:10256",
                }
            )
        )
        binary = cache_dir() / "bin" / "kube-proxy"
        return self.popen(node, [str(binary), f"--config={cfg}", "-v=2"], self.workdir / f"kube-proxy-{node.name}.log")

    def start_flannel(
        self, node: NodeNs, kubeconfig: Path, *, network: str = "10.244.0.0/16", backend: str = "vxlan"
    ) -> subprocess.Popen[bytes]:
        # In a cluster this is the kube-flannel-cfg ConfigMap mounted into the pod, not a file of the node.
        conf = self.workdir / f"flannel-{node.name}-net-conf.json"
        conf.write_text(json.dumps({"Network": network, "Backend": {"Type": backend}}))
        binary = cache_dir() / "bin" / "flanneld"
        argv = [
            str(binary),
            "--kube-subnet-mgr",
            f"--kubeconfig-file={kubeconfig}",
            "--iface=eth0",
            "--ip-masq",
            f"--net-config-path={conf}",
            f"--subnet-file={node.root / 'run/flannel/subnet.env'}",
        ]
        return self.popen(node, argv, self.workdir / f"flannel-{node.name}.log", env={"NODE_NAME": node.name})


def _socket_in_netns(netns: str, port: int) -> socket.socket:
    result: list[socket.socket | BaseException] = []

    def make() -> None:  # setns changes only this (short-lived) thread's namespace
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns}")
            finally:
                os.close(fd)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(64)
            result.append(s)
        except BaseException as e:  # handed to the caller
            result.append(e)

    t = threading.Thread(target=make)
    t.start()
    t.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def wait_until(check: Any, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.3)


# ---------------------------------------------------------------- normalized state snapshots

_IPT_TABLES_OF_IPTABLES_NFT = {("ip", t) for t in ("filter", "nat", "mangle", "raw", "security")} | {
    ("ip6", t) for t in ("filter", "nat", "mangle", "raw", "security")
}
_LINK_VOLATILE = re.compile(
    r"(^|_)(ifindex|link_index|stats\d*|timer|link_netnsid|txqlen|operstate|"
    r"gc_timer|hello_timer|tcn_timer|topology_change_timer|group_fwd_mask)$"
)


def _drop_volatile(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _drop_volatile(v) for k, v in sorted(d.items()) if not _LINK_VOLATILE.search(k)}
    if isinstance(d, list):
        return [_drop_volatile(v) for v in d]
    return d


def _drop_handles(d: Any) -> Any:
    """nftables object handles are allocated anew when a table is created again: not part of the state."""
    if isinstance(d, dict):
        return {k: _drop_handles(v) for k, v in d.items() if k != "handle"}
    if isinstance(d, list):
        return [_drop_handles(v) for v in d]
    return d


def _iptables_norm(text: str) -> str:
    """iptables-save without comments and counters; a table holding only empty built-in ACCEPT chains counts as
    absent (iptables-nft shows a table once anything created it, and deleting the last rule leaves it)."""
    out: list[str] = []
    table: list[str] = []
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        line = re.sub(r"\[\d+:\d+\]", "[0:0]", raw)
        table.append(line)
        if line == "COMMIT":
            body = table[1:-1]
            trivial = all(re.fullmatch(r":[A-Z]+ ACCEPT \[0:0\]", b) for b in body)
            if not trivial:
                out += table
            table = []
    return "\n".join(out)


#: Files under a node's root that are no state of the node: the agent's backups (its default directory and the
#: plan's node backup directory, /var/backups/cni-migrate) and iptables-legacy's lock file, which a script run in a
#: private root (the local transport's ``node_root``) creates there.
SNAPSHOT_SKIPPED_FILES = ("var/lib/cni-migrate", "var/backups/cni-migrate", "run/xtables.lock")


def node_snapshot(lab: NetnsLab, node: NodeNs) -> dict[str, Any]:
    """Links, addresses, routes, permanent neighbours, FDB, iptables (both backends, both families), ipsets,
    nftables tables (other than iptables-nft's) and the files under the node's root (minus backups)."""

    def out(*argv: str) -> str:
        p = lab.run(node, list(argv), check=False)
        return p.stdout if p.returncode == 0 else f"<exit {p.returncode}>"

    # IPv6 duplicate address detection on new links takes a moment: wait for it, so "tentative" never differs.
    wait_until(lambda: not out("ip", "-6", "addr", "show", "tentative").strip(), 15, "IPv6 DAD")

    links = {x["ifname"]: _drop_volatile(x) for x in json.loads(out("ip", "-j", "-d", "link", "show"))}
    addrs = {x["ifname"]: _drop_volatile(x.get("addr_info", [])) for x in json.loads(out("ip", "-j", "addr"))}
    snap: dict[str, Any] = {
        "links": links,
        "addresses": addrs,
        "routes4": sorted(out("ip", "route", "show", "table", "all").splitlines()),
        "routes6": sorted(out("ip", "-6", "route", "show", "table", "all").splitlines()),
        "neigh": sorted(out("ip", "neigh", "show", "nud", "permanent").splitlines()),
        "fdb": sorted(out("bridge", "fdb", "show").splitlines()),
        "ipset": out("ipset", "save"),
    }
    for save in ("iptables-legacy-save", "ip6tables-legacy-save", "iptables-nft-save", "ip6tables-nft-save"):
        snap[save] = _iptables_norm(out(save))
    ruleset = json.loads(out("nft", "-j", "list", "ruleset") or "{}").get("nftables", [])
    snap["nft"] = sorted(
        json.dumps(_drop_handles(e), sort_keys=True)
        for e in ruleset
        if "metainfo" not in e
        and (
            e.get(next(iter(e)), {}).get("family"),
            e.get(next(iter(e)), {}).get("table", e.get(next(iter(e)), {}).get("name")),
        )
        not in _IPT_TABLES_OF_IPTABLES_NFT
    )
    files = {}
    for p in sorted(node.root.rglob("*")):
        rel = str(p.relative_to(node.root))
        if rel.startswith(SNAPSHOT_SKIPPED_FILES) or (
            p.is_dir() and any(skipped.startswith(rel + "/") for skipped in SNAPSHOT_SKIPPED_FILES)
        ):
            continue  # (nor the directories on the way to them; what else those hold is listed)
        files[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    snap["files"] = files
    return snap


def snapshot_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable differences between two snapshots (empty when equal)."""
    diffs = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) == b.get(k):
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            for sub in sorted(set(va) | set(vb)):
                if va.get(sub) != vb.get(sub):
                    diffs.append(f"{k}[{sub}]: {va.get(sub)!r} != {vb.get(sub)!r}")
        elif isinstance(va, list) and isinstance(vb, list):
            diffs.append(f"{k}: only before {sorted(set(va) - set(vb))}, only after {sorted(set(vb) - set(va))}")
        else:
            la, lb = str(va).splitlines(), str(vb).splitlines()
            diffs.append(
                f"{k}: only before {[x for x in la if x not in lb]}, only after {[x for x in lb if x not in la]}"
            )
    return diffs
