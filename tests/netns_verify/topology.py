"""A small routed cluster made of network namespaces, for the prober's tests and benchmark (iproute2 + iptables).

* a **fabric** namespace with a bridge: the nodes' underlay, 192.168.100.0/24 (node i is 192.168.100.(10+i));
* a **node** namespace per node, forwarding, with a route to every other node's pod range via that node, and
  static ARP/FDB entries for the other nodes (see :meth:`Topology._static_neighbours`);
* **pod** namespaces behind veth pairs, in one of two styles:
  - ``"flannel"``: pods on a ``cni0`` bridge, 10.244.i.0/24, gateway 10.244.i.1; the node masquerades traffic
    from 10.244.0.0/16 to anywhere outside it (Flannel's ``--ip-masq``);
  - ``"cilium"``: one /32 route per pod, gateway 172.20.i.1 on a ``cilium_host`` device (a port-less bridge: this kernel has no dummy driver), 172.20.i.0/24; the node
    masquerades traffic from 172.20.0.0/16 to anywhere outside it (Cilium's ``enableIPv4Masquerade``).
* optionally a "Service": ClusterIP 10.96.0.10:80 and NodePort 30710 on every node, DNAT to backend pods, as
  kube-proxy's iptables mode does it (random backend per connection, NodePort traffic masqueraded).

Nothing touches the machine's own namespace; :meth:`Topology.destroy` removes every namespace (and with them every
link). Probers run inside the pod and node namespaces with their control socket in a directory of the test.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cni_migrate.actions.verify.agents import AgentInfo, SocketChannel

CLUSTER_RANGE = {"flannel": "10.244.0.0/16", "cilium": "172.20.0.0/16"}
SERVICE_IP = "10.96.0.10"
SERVICE_PORT = 80
NODE_PORT = 30710
PROBE_PORT = 7310


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def ip_batch(netns: str, lines: Sequence[str]) -> None:
    proc = subprocess.run(
        ["ip", "-n", netns, "-batch", "-"], input="\n".join(lines) + "\n", capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ip -n {netns} -batch: {proc.stderr.strip()}")


@dataclass
class PodNS:
    netns: str
    name: str
    node: str
    ip: str
    cni: str


@dataclass
class NodeNS:
    netns: str
    name: str
    index: int
    underlay_ip: str
    cni: str
    pod_cidr: str
    gateway: str
    pods: list[PodNS] = field(default_factory=list)

    @property
    def mac(self) -> str:
        return f"02:00:c0:a8:{self.index >> 8:02x}:{self.index & 0xFF:02x}"


@dataclass
class Prober:
    process: subprocess.Popen[bytes]
    control: str
    netns: str
    ready_file: Path


class Topology:
    def __init__(self, cnis: Sequence[str], pods_per_node: int, workdir: Path, *, service: bool = False) -> None:
        self.prefix = f"v{secrets.token_hex(3)}"
        self.workdir = workdir
        self.fabric = f"{self.prefix}-fab"
        self.nodes: list[NodeNS] = []
        self.probers: dict[str, Prober] = {}
        self._created: list[str] = []
        self.with_service = service
        for i, cni in enumerate(cnis):
            third = i
            if cni == "flannel":
                cidr, gw = f"10.244.{third}.0/24", f"10.244.{third}.1"
            elif cni == "cilium":
                cidr, gw = f"172.20.{third}.0/24", f"172.20.{third}.1"
            else:
                raise ValueError(f"unknown CNI style {cni!r}")
            node = NodeNS(f"{self.prefix}-n{i}", f"node{i}", i, f"192.168.100.{10 + i}", cni, cidr, gw)
            base = cidr.split("/")[0].rsplit(".", 1)[0]
            for j in range(pods_per_node):
                node.pods.append(PodNS(f"{self.prefix}-n{i}p{j}", f"pod{i}-{j}", node.name, f"{base}.{10 + j}", cni))
            self.nodes.append(node)

    @property
    def pods(self) -> list[PodNS]:
        return [p for n in self.nodes for p in n.pods]

    def node(self, name: str) -> NodeNS:
        return next(n for n in self.nodes if n.name == name)

    # --- construction -----------------------------------------------------------------------------------------

    def _netns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self._created.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def create(self) -> Topology:
        try:
            self._create()
        except BaseException:
            self.destroy()
            raise
        return self

    def _create(self) -> None:
        self._netns(self.fabric)
        ip_batch(self.fabric, ["link add br0 type bridge", "link set br0 up"])
        for n in self.nodes:
            self._netns(n.netns)
            sh("ip", "link", "add", "eth0", "address", n.mac, "netns", n.netns, "type", "veth", "peer", "name",
               f"f{n.index}", "netns", self.fabric)  # fmt: skip
            ip_batch(self.fabric, [f"link set f{n.index} master br0", f"link set f{n.index} up"])
            lines = [f"addr add {n.underlay_ip}/24 dev eth0", "link set eth0 up"]
            if n.cni == "flannel":
                lines += ["link add cni0 type bridge", f"addr add {n.gateway}/24 dev cni0", "link set cni0 up"]
            else:
                lines += ["link add cilium_host type bridge", f"addr add {n.gateway}/32 dev cilium_host",
                          "link set cilium_host up"]  # fmt: skip
            for m in self.nodes:
                if m is not n:
                    lines.append(f"route add {m.pod_cidr} via {m.underlay_ip} dev eth0")
            ip_batch(n.netns, lines)
            sh("ip", "netns", "exec", n.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            rng = CLUSTER_RANGE[n.cni]
            self._iptables(n.netns, "-t", "nat", "-A", "POSTROUTING", "-s", rng, "!", "-d", rng, "-j", "MASQUERADE")
            for j, p in enumerate(n.pods):
                self._netns(p.netns)
                # As container runtimes do for pods: unprivileged ICMP sockets (ping) for every group.
                sh("ip", "netns", "exec", p.netns, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
                host_if = f"p{j}"
                sh("ip", "link", "add", "eth0", "netns", p.netns, "type", "veth", "peer", "name", host_if,
                   "netns", n.netns)  # fmt: skip
                if n.cni == "flannel":
                    ip_batch(n.netns, [f"link set {host_if} master cni0", f"link set {host_if} up",
                                       f"link set {host_if} type bridge_slave hairpin on"])  # fmt: skip
                    ip_batch(p.netns, [f"addr add {p.ip}/24 dev eth0", "link set eth0 up",
                                       f"route add default via {n.gateway}"])  # fmt: skip
                else:
                    ip_batch(n.netns, [f"link set {host_if} up", f"route add {p.ip}/32 dev {host_if}"])
                    ip_batch(p.netns, [f"addr add {p.ip}/32 dev eth0", "link set eth0 up",
                                       f"route add {n.gateway} dev eth0 scope link",
                                       f"route add default via {n.gateway} dev eth0"])  # fmt: skip
        self._static_neighbours()
        if self.with_service:
            self._service()

    def _static_neighbours(self) -> None:
        """Permanent ARP entries for every other node and static bridge FDB entries, as Flannel's VXLAN backend
        programs them for remote nodes. Without them, a matrix over 100 nodes floods the fabric with broadcast ARP
        (every node resolving 99 others at once, each request copied to 100 ports) and the kernel's per-CPU input
        backlog (net.core.netdev_max_backlog, a host-wide setting this topology must not touch) drops most of it."""
        for n in self.nodes:
            ip_batch(n.netns, [f"neigh replace {m.underlay_ip} lladdr {m.mac} dev eth0 nud permanent"
                               for m in self.nodes if m is not n])  # fmt: skip
        proc = subprocess.run(
            ["bridge", "-n", self.fabric, "-batch", "-"],
            input="".join(f"fdb replace {n.mac} dev f{n.index} master static\n" for n in self.nodes),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"bridge -n {self.fabric} -batch: {proc.stderr.strip()}")

    @staticmethod
    def _iptables(netns: str, *args: str) -> None:
        sh("ip", "netns", "exec", netns, "iptables", "-w", *args)

    def _service(self) -> None:
        backends = [p.ip for p in self.pods]
        for n in self.nodes:
            count = len(backends)
            lines = ["*nat", ":SVC - [0:0]", *(f":SEP{i} - [0:0]" for i in range(count))]
            for i, b in enumerate(backends):
                prob = "" if i == count - 1 else f"-m statistic --mode random --probability {1 / (count - i):.6f} "
                lines.append(f"-A SVC {prob}-j SEP{i}")
                # A pod reaching itself through the Service: masqueraded (hairpin), as kube-proxy does.
                lines.append(f"-A SEP{i} -s {b}/32 -j MARK --set-xmark 0x4000/0x4000")
                lines.append(f"-A SEP{i} -p tcp -j DNAT --to-destination {b}:{PROBE_PORT}")
            lines += [
                f"-A PREROUTING -d {SERVICE_IP}/32 -p tcp --dport {SERVICE_PORT} -j SVC",
                f"-A PREROUTING -d {n.underlay_ip}/32 -p tcp --dport {NODE_PORT} -j SVC",
                f"-A POSTROUTING -m conntrack --ctstate DNAT --ctorigdstport {NODE_PORT} -j MASQUERADE",
                "-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE",
                "COMMIT",
            ]
            proc = subprocess.run(
                ["ip", "netns", "exec", n.netns, "iptables-restore", "-w", "--noflush"],
                input="\n".join(lines) + "\n",
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"iptables-restore in {n.netns}: {proc.stderr.strip()}")

    # --- changes during a test --------------------------------------------------------------------------------

    def cut_route(self, on: str, to: str) -> tuple[float, float]:
        """Remove, on node ``on``, the route to node ``to``'s pods; returns monotonic (before, after) the change."""
        n, m = self.node(on), self.node(to)
        t0 = time.monotonic()
        sh("ip", "-n", n.netns, "route", "del", m.pod_cidr, "via", m.underlay_ip)
        return t0, time.monotonic()

    def restore_route(self, on: str, to: str) -> tuple[float, float]:
        n, m = self.node(on), self.node(to)
        t0 = time.monotonic()
        sh("ip", "-n", n.netns, "route", "add", m.pod_cidr, "via", m.underlay_ip, "dev", "eth0")
        return t0, time.monotonic()

    # --- probers ----------------------------------------------------------------------------------------------

    def start_prober(self, netns: str, name: str, node: str, ip: str) -> Prober:
        control = f"unix:{self.workdir / (name + '.sock')}"
        ready = self.workdir / f"{name}.ready"
        with contextlib.suppress(FileNotFoundError):
            ready.unlink()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "cni_migrate.actions.verify.prober", "serve",
             "--control", control, "--pod", name, "--node", node, "--ip", ip, "--ready-file", str(ready)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        log.close()
        prober = Prober(proc, control, netns, ready)
        self.probers[name] = prober
        return prober

    def start_all(self, *, node_probers: bool = False, timeout: float = 60.0) -> None:
        for p in self.pods:
            self.start_prober(p.netns, p.name, p.node, p.ip)
        if node_probers:
            for n in self.nodes:
                self.start_prober(n.netns, f"host-{n.name}", n.name, n.underlay_ip)
        deadline = time.monotonic() + timeout
        for name, pr in self.probers.items():
            while not pr.ready_file.exists():
                if pr.process.poll() is not None:
                    log = (self.workdir / f"{name}.log").read_text()
                    raise RuntimeError(f"prober {name} exited {pr.process.returncode}: {log}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"prober {name} not ready after {timeout} s")
                time.sleep(0.02)

    def stop_probers(self) -> None:
        for pr in self.probers.values():
            if pr.process.poll() is None:
                pr.process.terminate()
        for pr in self.probers.values():
            try:
                pr.process.wait(5)
            except subprocess.TimeoutExpired:
                pr.process.kill()
                pr.process.wait(5)
        self.probers.clear()

    def destroy(self) -> None:
        self.stop_probers()
        for name in reversed(self._created):
            sh("ip", "netns", "del", name, check=False)
        self._created.clear()

    def agents(self) -> list[AgentInfo]:
        """The running probers as a controller sees them."""
        out = []
        for n in self.nodes:
            for p in n.pods:
                if p.name in self.probers:
                    out.append(AgentInfo(p.name, n.name, p.ip, PROBE_PORT, SocketChannel(self.probers[p.name].control),
                                         "pod", p.cni))  # fmt: skip
            host = f"host-{n.name}"
            if host in self.probers:
                out.append(AgentInfo(host, n.name, n.underlay_ip, PROBE_PORT, SocketChannel(self.probers[host].control),
                                     "node"))  # fmt: skip
        return out

    def leftovers(self) -> list[str]:
        """Namespaces of this topology still present (should be none after destroy)."""
        out = sh("ip", "netns", "list").stdout
        return [line.split()[0] for line in out.splitlines() if line.startswith(self.prefix)]
