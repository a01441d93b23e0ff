"""The choices an SRE makes (:class:`PlanOptions`), resolved against the cluster's facts into what the plan does.

Every ``auto`` option becomes a concrete value with a recorded :class:`Decision` (why, from which facts).
Contradictory or unsafe combinations raise :class:`PlanError`, whose lines each name the option and the fact.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cni_migrate.analysis.cidrs import NamedRange, Network, find_overlaps, host_network, try_parse
from cni_migrate.analysis.ipam import AlreadyHasCIDR, Assignment, IPAMState, NodeInfo, import_calico_pools, parse_pools
from cni_migrate.analysis.plan.factrefs import fact_ref
from cni_migrate.analysis.plan.model import Decision, FactRef, GeneratedValue
from cni_migrate.analysis.plan.version import CiliumVersion, VersionError, is_rhel8_kernel, kpr_kernel_ok
from cni_migrate.facts.kernel import parse_kernel
from cni_migrate.facts.model import ClusterFacts, NodeFacts

MAGLEV_TABLE_SIZES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071)
DEFAULT_KUBE_ROUTER_IMAGE = "docker.io/cloudnativelabs/kube-router:v2.1.2"
DEFAULT_VERIFY_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.39"
DEFAULT_PROBE_IMAGE = "ghcr.io/nicolaka/netshoot:v0.8"
# Tunnel ports: Cilium's defaults, and the port the Cilium migration guide uses next to a VXLAN CNI on 8472.
VXLAN_PORT = 8472
GENEVE_PORT = 6081
MIGRATION_VXLAN_PORT = 8473

Tri = Literal["auto", "true", "false"]


class PlanError(ValueError):
    """Options that contradict each other or the cluster's facts; every line names the option and the fact."""

    def __init__(self, problems: list[str], *, kind: Literal["options", "lint", "internal"] = "options") -> None:
        self.problems = problems
        self.kind = kind
        super().__init__("; ".join(problems))


class PlanOptions(BaseModel):
    """Everything ``cni-migrate plan`` accepts, recorded verbatim in the plan (``inputs.options``)."""

    model_config = ConfigDict(extra="forbid")

    cilium_version: str
    strategy: Literal["offline", "rolling"]
    routing: Literal["auto", "native", "tunnel"] = "auto"
    tunnel_protocol: Literal["auto", "vxlan", "geneve"] = "auto"
    tunnel_port: int | None = None
    kube_proxy_replacement: Tri = "auto"
    ipam: Literal["auto", "cluster-pool", "kubernetes", "podcidrpools"] = "auto"
    cluster_pool_cidr: str | None = None
    cluster_pool_mask_size: int | None = None
    native_routing_cidr: str | None = None
    auto_direct_node_routes: bool = False
    bgp: Literal["auto", "none", "kube-router", "cilium"] = "auto"
    lb_mode: Literal["snat", "dsr", "hybrid"] = "snat"
    lb_acceleration: Literal["disabled", "native", "best-effort"] = "disabled"
    maglev: bool = False
    maglev_table_size: int = 16381
    maglev_seed: str | None = None
    hubble: bool = True
    hubble_ui: bool = False
    masquerade: Tri = "auto"
    socket_lb_host_namespace_only: Tri = "auto"
    lb_external_cluster_ip: Tri = "auto"
    batch_size: int = 1
    node_order: Literal["name", "fewest-pods", "most-pods"] = "name"
    first_nodes: list[str] = Field(default_factory=list)
    node_cleanup: Literal["commands", "reboot"] = "commands"
    reboot_migrated_nodes: bool = False
    keep_host_legacy_routing: bool = False
    k8s_service_host: str | None = None
    k8s_service_port: int | None = None
    release_name: str = "cilium"
    namespace: str = "kube-system"
    kube_router_image: str = DEFAULT_KUBE_ROUTER_IMAGE
    verify_image: str = DEFAULT_VERIFY_IMAGE
    probe_image: str = DEFAULT_PROBE_IMAGE
    backup_dir: str = "cni-migrate-backup"
    values_file: str | None = None
    # The cluster the plan is for, as the runbook's kubectl/helm commands must address it.
    kube_context: str | None = None
    kubeconfig: str | None = None
    base_values: dict[str, Any] = Field(default_factory=dict)
    set_values: list[str] = Field(default_factory=list)


OldCni = Literal["calico", "flannel", "canal", "none"]


@dataclass
class Resolved:
    """The options after ``auto`` was decided from the facts: what every builder reads."""

    opts: PlanOptions
    facts: ClusterFacts
    version: CiliumVersion
    old_cni: OldCni
    routing: Literal["native", "tunnel"]
    tunnel_protocol: Literal["vxlan", "geneve"]
    tunnel_port: int | None
    kpr: bool
    ipam: Literal["cluster-pool", "kubernetes", "podcidrpools"]
    pool_cidrs: list[str]
    pool_mask: int
    native_cidr: str | None
    auto_direct_node_routes: bool
    bgp: Literal["none", "kube-router", "cilium"]
    masquerade: bool
    socket_lb_hostns: bool
    lb_external_cluster_ip: bool
    api_host: str | None
    api_port: int | None
    maglev_seed: str | None
    remove_kube_proxy: bool
    worker_batches: list[list[str]]
    control_plane_batches: list[list[str]]
    decisions: list[Decision] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    generated: list[GeneratedValue] = field(default_factory=list)
    pod_cidr_assignments: dict[str, str] = field(default_factory=dict)  # podcidrpools: node -> podCIDR
    podcidrpool_manifests: list[dict[str, Any]] = field(default_factory=list)
    podcidrpool_notes: list[str] = field(default_factory=list)

    @property
    def pod_cidr_text(self) -> str:
        return ",".join(self.pool_cidrs)

    @property
    def effective_tunnel_port(self) -> int:
        if self.tunnel_port is not None:
            return self.tunnel_port
        return GENEVE_PORT if self.tunnel_protocol == "geneve" else VXLAN_PORT

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.facts.nodes]


class _Resolver:
    def __init__(self, facts: ClusterFacts, opts: PlanOptions, reuse: Mapping[str, str] | None = None) -> None:
        self.facts = facts
        self.o = opts
        self.reuse = dict(reuse or {})
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.decisions: list[Decision] = []
        self.generated: list[GeneratedValue] = []
        self.assignments: dict[str, str] = {}
        self.derived_adnr = False
        self.podcidrpool_manifests: list[dict[str, Any]] = []
        self.podcidrpool_notes: list[str] = []

    # --- helpers -----------------------------------------------------------------------------------------

    def f(self, path: str) -> FactRef:
        return fact_ref(self.facts, path)

    def decide(self, option: str, value: Any, origin: str, reason: str, *facts: str) -> None:
        self.decisions.append(
            Decision(
                option=option,
                value=value,
                origin=origin,
                reason=reason,
                facts=[self.f(p) for p in facts],
            )
        )

    def error(self, text: str) -> None:
        self.errors.append(text)

    # --- resolution ----------------------------------------------------------------------------------------

    def run(self) -> Resolved:
        o = self.o
        try:
            version = CiliumVersion.parse(o.cilium_version)
        except VersionError as e:
            raise PlanError([str(e)]) from e
        self.version = version
        old = self._old_cni()
        self._basic_option_checks()
        routing, tproto, tport = self._routing(old)
        kpr = self._kpr()
        ipam, pools, mask = self._ipam(old, routing)
        api_host, api_port = self._api_endpoint(kpr)
        bgp = self._bgp(old, ipam)
        native_cidr, adnr = self._native(routing, pools, bgp)
        masq = self._masquerade(old)
        hostns = self._socket_lb(kpr)
        ext_cip = self._external_cluster_ip(kpr, bgp)
        self._lb_checks(kpr, routing, tproto)
        self._kernel_checks(kpr)
        seed = self._maglev_seed(kpr)
        workers, cps = self._batches()
        remove_kp = self._remove_kube_proxy(kpr)
        self._fact_refusals(ipam, bgp)
        if self.errors:
            raise PlanError(self.errors)
        return Resolved(
            opts=o,
            facts=self.facts,
            version=version,
            old_cni=old,
            routing=routing,
            tunnel_protocol=tproto,
            tunnel_port=tport,
            kpr=kpr,
            ipam=ipam,
            pool_cidrs=pools,
            pool_mask=mask,
            native_cidr=native_cidr,
            auto_direct_node_routes=adnr,
            bgp=bgp,
            masquerade=masq,
            socket_lb_hostns=hostns,
            lb_external_cluster_ip=ext_cip,
            api_host=api_host,
            api_port=api_port,
            maglev_seed=seed,
            remove_kube_proxy=remove_kp,
            worker_batches=workers,
            control_plane_batches=cps,
            decisions=self.decisions,
            warnings=self.warnings,
            generated=self.generated,
            pod_cidr_assignments=self.assignments,
            podcidrpool_manifests=self.podcidrpool_manifests,
            podcidrpool_notes=self.podcidrpool_notes,
        )

    def _old_cni(self) -> OldCni:
        cni = self.facts.cni
        detected = cni.detected
        if detected in ("calico", "flannel", "canal"):
            return detected
        if detected == "cilium":
            raise PlanError(
                [f"--to cilium: the cluster already runs Cilium (fact cni.detected=cilium: {'; '.join(cni.evidence)})"]
            )
        if detected == "unknown":
            raise PlanError(
                [
                    "cannot tell which CNI the cluster runs (fact cni.detected=unknown: "
                    f"{'; '.join(cni.evidence)}); capture DaemonSets in the snapshot"
                ]
            )
        if detected == "kube-router":
            raise PlanError(["kube-router as the CNI is not supported by the planner (fact cni.detected=kube-router)"])
        if self.o.strategy == "rolling":
            raise PlanError(
                ["--strategy rolling moves pods from a running CNI to Cilium, but no CNI runs (fact cni.detected=none)"]
            )
        return "none"

    def _fact_refusals(self, ipam: str, bgp: str) -> None:
        """Facts that make any plan unsafe (or one the planner cannot make), each named."""
        facts = self.facts
        node_cidrs = [
            NamedRange(f"node {n.name} podCIDR {c} (fact nodes[{n.name}].pod_cidrs)", parsed)
            for n in facts.nodes
            for c in (n.pod_cidrs or ([n.pod_cidr] if n.pod_cidr else []))
            if (parsed := try_parse(c)) is not None
        ]
        overlaps = find_overlaps(node_cidrs)
        for ov in overlaps[:5]:
            text = f"{ov.a.label} overlaps {ov.b.label}: two nodes would hand out the same pod addresses"
            if ipam == "kubernetes":
                self.error(f"--ipam kubernetes: {text}; fix the nodes' spec.podCIDR first")
            else:
                self.warnings.append(text)
        v6: list[str] = []
        net = facts.network
        for label, values in (
            ("network.pod_cidrs", net.pod_cidrs.value),
            ("network.service_cidrs", net.service_cidrs.value),
        ):
            v6 += [f"{c} (fact {label})" for c in values or [] if (p := try_parse(c)) is not None and p.version == 6]
        for n in facts.nodes:
            v6 += [
                f"{c} (fact nodes[{n.name}].pod_cidrs)"
                for c in n.pod_cidrs
                if (p := try_parse(c)) is not None and p.version == 6
            ]
        calico = facts.cni.calico
        if calico is not None:
            v6 += [
                f"IPPool {p.name} {p.cidr} (fact cni.calico.ip_pools)"
                for p in calico.ip_pools.value or []
                if not p.disabled and ":" in p.cidr
            ]
        if v6:
            self.error(
                "the cluster is dual-stack or IPv6 ("
                + ", ".join(v6[:4])
                + (" ..." if len(v6) > 4 else "")
                + "), and the planner makes IPv4-only plans: Cilium would drop the IPv6 pod network; plan this "
                "migration by hand"
            )
        if calico is not None and bgp != "none":
            node_ips = {ip: n.name for n in facts.nodes for ip in n.internal_ips}
            for peer in calico.bgp_peers:
                addr = (
                    (peer.peer_ip or "").rsplit(":", 1)[0].strip("[]")
                    if peer.peer_ip and peer.peer_ip.count(":") == 1
                    else (peer.peer_ip or "").strip("[]")
                )
                if addr in node_ips:
                    self.error(
                        f"--bgp {bgp}: BGP peer {peer.name} has the address {peer.peer_ip} of node {node_ips[addr]} "
                        f"(fact cni.calico.bgp_peers, nodes[{node_ips[addr]}].internal_ips): an in-cluster peering "
                        "(e.g. a route reflector by address), which would be translated as an external router; "
                        "remove it from Calico first or use --bgp none"
                    )

    def _basic_option_checks(self) -> None:
        o = self.o
        if o.k8s_service_port is not None and not 1 <= o.k8s_service_port <= 65535:
            self.error(f"--k8s-service-port {o.k8s_service_port}: not a TCP port (1-65535)")
        for option, value in (
            ("--cluster-pool-cidr", o.cluster_pool_cidr),
            ("--native-routing-cidr", o.native_routing_cidr),
        ):
            parsed = try_parse(value) if value else None
            if parsed is not None and parsed.version != 4:
                self.error(f"{option} {value}: an IPv6 network, but the plan is IPv4-only; give an IPv4 CIDR")
        if o.batch_size < 1:
            self.error(f"--batch-size {o.batch_size}: must be at least 1")
        if o.maglev_table_size not in MAGLEV_TABLE_SIZES:
            self.error(
                f"--maglev-table-size {o.maglev_table_size}: Cilium accepts only the primes "
                f"{', '.join(str(x) for x in MAGLEV_TABLE_SIZES)}"
            )
        if o.hubble_ui and not o.hubble:
            self.error("--hubble-ui needs Hubble: drop --no-hubble")
        if o.tunnel_port is not None and not 1 <= o.tunnel_port <= 65535:
            self.error(f"--tunnel-port {o.tunnel_port}: not a UDP port")
        if o.cluster_pool_mask_size is not None and not 16 <= o.cluster_pool_mask_size <= 30:
            self.error(f"--cluster-pool-mask-size {o.cluster_pool_mask_size}: use a prefix length between 16 and 30")
        names = {n.name for n in self.facts.nodes}
        for n in o.first_nodes:
            if n not in names:
                self.error(f"--first-nodes {n}: no such node (fact nodes: {len(names)} nodes)")
        if o.strategy == "rolling" and self.version.node_config_api is None:
            self.error(
                f"--strategy rolling needs CiliumNodeConfig, which Cilium {self.version} lacks (it appeared in 1.13); "
                "choose --cilium-version 1.13 or newer"
            )
        calico = self.facts.cni.calico
        if o.strategy == "rolling" and calico is not None and calico.felix.get("bpfEnabled") == "true":
            self.error(
                "--strategy rolling: Calico runs its eBPF dataplane (fact cni.calico.felix.bpfEnabled=true), so nodes "
                "do not route between the two CNIs through the Linux stack; use --strategy offline"
            )
        if o.lb_acceleration == "best-effort" and not self.version.at_least(15):
            self.error(f"--lb-acceleration best-effort: Cilium {self.version} knows only native and disabled (1.15+)")

    # routing ------------------------------------------------------------------------------------------------

    def _old_vxlan_port(self) -> tuple[int | None, str]:
        cni = self.facts.cni
        if cni.flannel is not None and cni.flannel.backend_type.value == "vxlan":
            port = cni.flannel.backend_port.value
            return (int(port) if port is not None else VXLAN_PORT), "cni.flannel.backend_port"
        if cni.calico is not None and cni.calico.uses_vxlan.value:
            return cni.calico.vxlan_port, "cni.calico.vxlan_port"
        return None, ""

    def _routing(self, old: OldCni) -> tuple[Literal["native", "tunnel"], Literal["vxlan", "geneve"], int | None]:
        o = self.o
        cni = self.facts.cni
        routing: Literal["native", "tunnel"]
        if o.strategy == "rolling":
            if o.routing == "native":
                self.error(
                    "--routing native with --strategy rolling: while both CNIs run, Cilium must use its own overlay "
                    "(Cilium's migration guide requires a tunnel and has not tested native/BGP routing); "
                    "use --strategy offline for native routing"
                )
            routing = "tunnel"
            self.decide(
                "routing",
                "tunnel",
                "derived" if o.routing == "auto" else "option",
                "a rolling migration runs Cilium as a second overlay next to the old CNI",
            )
        elif o.routing != "auto":
            routing = o.routing
            self.decide("routing", routing, "option", "given")
        else:
            calico = cni.calico
            flannel = cni.flannel
            subnets = self._node_subnets()
            # Calico routes pod CIDRs over BGP only with BIRD (CALICO_NETWORKING_BACKEND=bird); vxlan and none
            # (Canal) route nothing over BGP.
            bird = calico is not None and calico.calico_networking_backend.value == "bird"
            if calico is not None and bird and calico.uses_ipip.value is False and calico.uses_vxlan.value is False:
                if self._calico_external_peers() and o.bgp != "none":
                    routing = "native"
                    self.decide(
                        "routing",
                        "native",
                        "derived",
                        "Calico routes pod CIDRs without encapsulation and advertises them to external BGP routers, "
                        "so the network already carries pod routes",
                        "cni.calico.ip_pools",
                        "cni.calico.bgp_peers",
                    )
                elif len(subnets) == 1:
                    routing = "native"
                    self.derived_adnr = True
                    self.decide(
                        "routing",
                        "native",
                        "derived",
                        "Calico routes pod CIDRs between nodes without encapsulation and every node is in "
                        f"{subnets[0]}: Cilium installs the same direct routes (autoDirectNodeRoutes)",
                        "cni.calico.ip_pools",
                        "cni.calico.nodes_bgp",
                    )
                else:
                    routing = "tunnel"
                    self.decide(
                        "routing",
                        "tunnel",
                        "derived",
                        "Calico routes pod CIDRs with BGP among the nodes only (no external routers), across "
                        f"{len(subnets) or 'unknown'} node subnets: without BGP Cilium cannot reproduce that, so it "
                        "tunnels",
                        "cni.calico.ip_pools",
                        "cni.calico.bgp_peers",
                        "cni.calico.nodes_bgp",
                    )
            elif calico is not None and bird and not (calico.uses_ipip.known and calico.uses_vxlan.known):
                routing = "tunnel"
                self.decide(
                    "routing",
                    "tunnel",
                    "derived",
                    f"Calico's encapsulation is unknown ({calico.uses_vxlan.unknown}): Cilium tunnels, which needs "
                    "nothing from the network",
                    "cni.calico.ip_pools",
                )
            elif flannel is not None and flannel.backend_type.value == "host-gw":
                routing = "native"
                self.derived_adnr = True
                self.decide(
                    "routing",
                    "native",
                    "derived",
                    "Flannel host-gw routes pod CIDRs directly between nodes on one L2 segment",
                    "cni.flannel.backend_type",
                )
            else:
                routing = "tunnel"
                self.decide("routing", "tunnel", "default", "the old CNI encapsulates pod traffic, so Cilium tunnels")

        old_port, old_port_fact = self._old_vxlan_port()
        tproto: Literal["vxlan", "geneve"]
        tport: int | None = o.tunnel_port
        if o.tunnel_protocol != "auto":
            tproto = o.tunnel_protocol
            self.decide("tunnel-protocol", tproto, "option", "given")
        elif o.strategy == "rolling" and old_port is not None:
            tproto = "geneve"
            self.decide(
                "tunnel-protocol",
                "geneve",
                "derived",
                f"the old CNI already owns a VXLAN device (UDP {old_port}); a host should run one VXLAN overlay, "
                "so Cilium uses Geneve (UDP 6081) while both run",
                old_port_fact,
            )
        else:
            tproto = "vxlan"
            if routing == "tunnel":
                self.decide("tunnel-protocol", "vxlan", "default", "Cilium's default encapsulation")
        if routing == "tunnel" and o.strategy == "rolling" and old_port is not None:
            effective = tport if tport is not None else (GENEVE_PORT if tproto == "geneve" else VXLAN_PORT)
            if tproto == "vxlan" and effective == old_port:
                if o.tunnel_port is not None:
                    self.error(
                        f"--tunnel-port {o.tunnel_port}: the old CNI's VXLAN device already listens on UDP {old_port} "
                        f"(fact {old_port_fact}={old_port}); both overlays run side by side during a rolling migration"
                    )
                else:
                    tport = MIGRATION_VXLAN_PORT if old_port != MIGRATION_VXLAN_PORT else MIGRATION_VXLAN_PORT + 1
                    self.decide(
                        "tunnel-port",
                        tport,
                        "derived",
                        f"the old CNI's VXLAN device uses UDP {old_port}; Cilium's VXLAN must use another port",
                        old_port_fact,
                    )
            if tproto == "vxlan" and not self.version.uses_routing_mode and tport is not None:
                self.warnings.append(
                    f"Cilium {self.version} has no tunnelPort Helm value; the port is set through extraConfig "
                    "tunnel-port"
                )
        if routing == "native" and o.tunnel_protocol != "auto":
            self.warnings.append(f"--tunnel-protocol {o.tunnel_protocol} has no effect with native routing")
        return routing, tproto, tport

    def _node_subnets(self) -> list[str]:
        """The node subnets Calico records (projectcalico.org/IPv4Address with its prefix), sorted."""
        calico = self.facts.cni.calico
        out: set[str] = set()
        for n in calico.nodes_bgp if calico is not None else []:
            if n.ipv4_address and "/" in n.ipv4_address:
                try:
                    out.add(str(ipaddress.ip_interface(n.ipv4_address).network))
                except ValueError:
                    continue
        return sorted(out)

    # kube-proxy replacement -----------------------------------------------------------------------------------

    def _kernel_problems(self) -> tuple[list[NodeFacts], list[NodeFacts]]:
        """Nodes whose kernel cannot do kube-proxy replacement, and nodes with no known kernel."""
        bad: list[NodeFacts] = []
        unknown: list[NodeFacts] = []
        for n in self.facts.nodes:
            parsed = parse_kernel(n.kernel_version) if n.kernel_version else None
            if parsed is None:
                unknown.append(n)
            elif not kpr_kernel_ok(parsed) and not is_rhel8_kernel(n.kernel_version or ""):
                bad.append(n)
        return bad, unknown

    def _kpr(self) -> bool:
        o = self.o
        kp = self.facts.kube_proxy
        bad, unknown = self._kernel_problems()
        if o.kube_proxy_replacement == "true":
            self.decide("kube-proxy-replacement", True, "option", "given")
            if bad:
                n = bad[0]
                self.error(
                    f"--kube-proxy-replacement true: node {n.name} runs kernel {n.kernel_version} (fact "
                    f"nodes[{n.name}].kernel_version), but kube-proxy replacement needs socket-LB: kernel 4.19.57, "
                    f"5.1.16 or 5.2+ ({len(bad)} node(s) too old)"
                )
            if unknown:
                self.warnings.append(
                    f"{len(unknown)} node(s) report no kernel version, so kube-proxy replacement support is unchecked "
                    f"there: {', '.join(n.name for n in unknown[:5])}"
                )
            return True
        if o.kube_proxy_replacement == "false":
            self.decide("kube-proxy-replacement", False, "option", "given")
            if kp.present.known and kp.present.value is False:
                self.error(
                    "--kube-proxy-replacement false: kube-proxy is not installed (fact kube_proxy.present=false, "
                    f"{kp.present.source}); without either, NodePort, LoadBalancer and host access to ClusterIPs break"
                )
            return False
        # auto
        if o.strategy == "rolling":
            value = bool(kp.present.known and kp.present.value is False)
            self.decide(
                "kube-proxy-replacement",
                value,
                "default",
                "a rolling migration keeps kube-proxy; kube-proxy replacement is an opt-in per-node phase afterwards"
                if not value
                else "kube-proxy is not installed, so Cilium must replace it",
                "kube_proxy.present",
            )
            if value and bad:
                n = bad[0]
                self.error(
                    f"kube-proxy is not installed (fact kube_proxy.present=false) and node {n.name} runs kernel "
                    f"{n.kernel_version}, too old for kube-proxy replacement (needs 4.19.57, 5.1.16 or 5.2+)"
                )
            return value
        if bad:
            self.decide(
                "kube-proxy-replacement",
                False,
                "derived",
                f"node {bad[0].name} runs kernel {bad[0].kernel_version}, too old for socket-LB; kube-proxy stays",
                "nodes",
            )
            if kp.present.known and kp.present.value is False:
                self.error(
                    f"kube-proxy is not installed (fact kube_proxy.present=false) and node {bad[0].name} runs kernel "
                    f"{bad[0].kernel_version}, too old for kube-proxy replacement"
                )
            return False
        self.decide(
            "kube-proxy-replacement",
            True,
            "default",
            "every node's kernel supports socket-LB; an offline migration replaces kube-proxy (as the lossy seed does)",
            "nodes",
        )
        if unknown:
            self.warnings.append(
                f"{len(unknown)} node(s) report no kernel version; kube-proxy replacement support is unchecked there"
            )
        return True

    def _remove_kube_proxy(self, kpr: bool) -> bool:
        kp = self.facts.kube_proxy
        present = bool(kp.present.known and kp.present.value)
        if not kp.present.known:
            self.warnings.append(f"whether kube-proxy runs is unknown ({kp.present.unknown}); the plan assumes it does")
            present = True
        return kpr and present

    # IPAM -------------------------------------------------------------------------------------------------------

    def _all_nodes_have_podcidr(self) -> bool:
        return bool(self.facts.nodes) and all(n.pod_cidrs or n.pod_cidr for n in self.facts.nodes)

    def _enabled_pool_cidrs(self) -> list[str]:
        calico = self.facts.cni.calico
        if calico is None:
            return []
        return [p.cidr for p in calico.ip_pools.value or [] if not p.disabled and ":" not in p.cidr]

    def _existing_ranges(self) -> list[NamedRange]:
        """Every range a new Cilium pool must not overlap: pod, service and LB CIDRs, Calico pools, Flannel's
        network, node podCIDRs and node addresses."""
        out: list[NamedRange] = []

        def add(label: str, cidrs: list[str] | None) -> None:
            for c in cidrs or []:
                net = try_parse(c)
                if net is not None:
                    out.append(NamedRange(label, net))

        net = self.facts.network
        add("pod CIDR (fact network.pod_cidrs)", net.pod_cidrs.value)
        add("service CIDR (fact network.service_cidrs)", net.service_cidrs.value)
        add("LoadBalancer CIDR (fact network.load_balancer_cidrs)", net.load_balancer_cidrs.value)
        if self.facts.cni.calico is not None:
            for p in self.facts.cni.calico.ip_pools.value or []:
                add(f"Calico IPPool {p.name} (fact cni.calico.ip_pools)", [p.cidr])
        if self.facts.cni.flannel is not None and self.facts.cni.flannel.network.value:
            add("Flannel network (fact cni.flannel.network)", [self.facts.cni.flannel.network.value])
        seen: set[str] = set()
        for n in self.facts.nodes:
            for c in n.pod_cidrs or ([n.pod_cidr] if n.pod_cidr else []):
                if c not in seen:
                    seen.add(c)
                    add(f"node {n.name} podCIDR", [c])
            for ip in n.internal_ips:
                h = host_network(ip)
                if h is not None:
                    out.append(NamedRange(f"node {n.name} address {ip} (fact nodes[{n.name}].internal_ips)", h))
        return out

    def _service_ranges(self) -> list[NamedRange]:
        out: list[NamedRange] = []
        net = self.facts.network
        for label, fact in (
            ("service CIDR (fact network.service_cidrs)", net.service_cidrs),
            ("LoadBalancer CIDR (fact network.load_balancer_cidrs)", net.load_balancer_cidrs),
        ):
            for c in fact.value or []:
                n = try_parse(c)
                if n is not None:
                    out.append(NamedRange(label, n))
        for node in self.facts.nodes:
            for ip in node.internal_ips:
                h = host_network(ip)
                if h is not None:
                    out.append(NamedRange(f"node {node.name} address {ip}", h))
        return out

    def _mask(self) -> int:
        if self.o.cluster_pool_mask_size is not None:
            return self.o.cluster_pool_mask_size
        m = self.facts.network.node_cidr_mask_size
        if m.known and m.value is not None and 16 <= m.value <= 30:
            return int(m.value)
        return 24

    def _choose_pool(self, mask: int) -> str:
        """The first private range, large enough for every node (with 25% headroom, at least a /16), that
        overlaps nothing the cluster uses. The Cilium migration guide's 10.245.0.0/16 comes first."""
        needed = max(1, (len(self.facts.nodes) * 5 + 3) // 4)
        prefix = min(16, mask - max(needed - 1, 0).bit_length())
        if prefix < 8:
            raise PlanError([f"{len(self.facts.nodes)} nodes with /{mask} per node need more than a /8 pod pool"])
        taken = self._existing_ranges()
        candidates: list[Network] = []
        if prefix == 16:
            candidates.append(ipaddress.ip_network("10.245.0.0/16"))
        for supernet in ("10.0.0.0/8", "172.16.0.0/12", "100.64.0.0/10"):
            sn = ipaddress.ip_network(supernet)
            if sn.prefixlen <= prefix:
                candidates.extend(sn.subnets(new_prefix=prefix))
        for cand in candidates:
            if not any(cand.overlaps(t.network) for t in taken if t.network.version == 4):
                return str(cand)
        raise PlanError(["no free private range for the Cilium pod pool; pass --cluster-pool-cidr"])

    def _ipam(
        self, old: OldCni, routing: str
    ) -> tuple[Literal["cluster-pool", "kubernetes", "podcidrpools"], list[str], int]:
        o = self.o
        net = self.facts.network
        mask = self._mask()
        ipam: Literal["cluster-pool", "kubernetes", "podcidrpools"]
        if o.strategy == "rolling":
            if o.ipam not in ("auto", "cluster-pool"):
                self.error(
                    f"--ipam {o.ipam} with --strategy rolling: both CNIs allocate pod addresses at the same time, so "
                    "Cilium needs its own IPAM (cluster-pool) and CIDR; "
                    + (
                        "Flannel already allocates from the node podCIDRs (fact cni.flannel)"
                        if old in ("flannel", "canal")
                        else "Cilium's migration guide requires cluster-pool"
                    )
                )
            ipam = "cluster-pool"
            if o.cluster_pool_cidr:
                pools = [o.cluster_pool_cidr]
                self.decide("cluster-pool-cidr", o.cluster_pool_cidr, "option", "given")
            else:
                try:
                    pools = [self._choose_pool(mask)]
                except PlanError as e:
                    self.errors.extend(e.problems)
                    return ipam, [], mask
                self.decide(
                    "cluster-pool-cidr",
                    pools[0],
                    "derived",
                    "a rolling migration needs a distinct pod CIDR; this is the first private range overlapping no "
                    "pod, service, LoadBalancer, pool, node podCIDR or node address range",
                    "network.pod_cidrs",
                    "network.service_cidrs",
                    "network.load_balancer_cidrs",
                )
            self.decide("ipam", "cluster-pool", "derived" if o.ipam == "auto" else "option", "rolling: distinct IPAM")
            self._check_pool(pools, rolling=True)
            return ipam, pools, mask

        # offline
        if o.ipam == "auto":
            if self._all_nodes_have_podcidr():
                ipam = "kubernetes"
                self.decide(
                    "ipam",
                    "kubernetes",
                    "derived",
                    "every node has a spec.podCIDR; Cilium keeps using them (as the lossy seed does)",
                    "network.allocate_node_cidrs",
                )
            else:
                ipam = "cluster-pool"
                self.decide(
                    "ipam",
                    "cluster-pool",
                    "derived",
                    "not every node has a spec.podCIDR",
                    "network.allocate_node_cidrs",
                )
                calico = self.facts.cni.calico
                if calico is not None and len([p for p in calico.ip_pools.value or [] if not p.disabled]) > 1:
                    self.warnings.append(
                        "Calico assigns pools by node label; Cilium's cluster-pool allocates from all of them "
                        "regardless of the node: use --ipam podcidrpools to keep per-label pools"
                    )
        else:
            ipam = o.ipam
            self.decide("ipam", ipam, "option", "given")

        if ipam == "kubernetes":
            missing = [n.name for n in self.facts.nodes if not (n.pod_cidrs or n.pod_cidr)]
            if missing:
                self.error(
                    f"--ipam kubernetes: {len(missing)} node(s) have no spec.podCIDR (fact nodes[].pod_cidr: "
                    f"{', '.join(missing[:5])}; network.allocate_node_cidrs={net.allocate_node_cidrs.value}); "
                    "Cilium's agent would wait forever for one"
                )
            pools = list(net.pod_cidrs.value or [])
            if not pools:
                pools = sorted({c for n in self.facts.nodes for c in (n.pod_cidrs or [n.pod_cidr or ""]) if c})
        elif ipam == "podcidrpools":
            pools = self._podcidrpools(mask)
        elif o.cluster_pool_cidr:  # cluster-pool
            pools = [o.cluster_pool_cidr]
        else:
            pools = self._enabled_pool_cidrs() or list(net.pod_cidrs.value or [])
            if not pools:
                self.error(
                    "--ipam cluster-pool: no pod CIDR is known (fact network.pod_cidrs unknown: "
                    f"{net.pod_cidrs.unknown}); pass --cluster-pool-cidr"
                )
            else:
                self.decide(
                    "cluster-pool-cidr",
                    pools,
                    "derived",
                    "offline: the old CNI is gone before Cilium starts, so Cilium reuses its pod ranges",
                    "network.pod_cidrs",
                )
        self._check_pool(pools, rolling=False)
        return ipam, pools, mask

    def _podcidrpools(self, mask: int) -> list[str]:
        """Import Calico's IPPools as PodCIDRPools and run the allocator over the nodes: every node must end up
        with a podCIDR (an existing one inside a pool is kept), or Cilium's agent there never becomes ready."""
        calico = self.facts.cni.calico
        if calico is not None and not calico.ip_pools.known:
            self.error(
                f"--ipam podcidrpools: Calico's IPPools are unknown (fact cni.calico.ip_pools: "
                f"{calico.ip_pools.unknown})"
            )
            return []
        if calico is None or not [p for p in calico.ip_pools.value or [] if not p.disabled]:
            self.error("--ipam podcidrpools: the cluster has no enabled Calico IPPools to turn into PodCIDRPools")
            return []
        imported = import_calico_pools(calico.ip_pools.value or [], ipv4_block_size=mask)
        self.warnings.extend(i.message for i in imported.issues)
        parsed, errors = parse_pools(imported.manifests)
        for e in errors:
            self.error(f"--ipam podcidrpools: {e}")
        state = IPAMState(parsed, [NodeInfo.from_facts(n) for n in self.facts.nodes])
        for rep in state.occupy_existing():
            if rep.kind in ("foreign", "duplicate", "overlap", "invalid"):
                self.error(f"--ipam podcidrpools: {rep.message} (fact nodes[{rep.node}].pod_cidrs)")
        unassigned: list[str] = []
        for name, result in state.plan():
            if isinstance(result, Assignment) and result.ipv4 is not None:
                self.assignments[name] = str(result.ipv4)
            elif isinstance(result, AlreadyHasCIDR):
                self.assignments[name] = str(result.cidrs[0])
            else:
                unassigned.append(f"{result.message}")
        if unassigned:
            skipped = "".join(f"; {i.message}" for i in imported.issues)
            self.error(
                f"--ipam podcidrpools: {len(unassigned)} node(s) would get no podCIDR, so Cilium's agent there would "
                f"never become ready (fact nodes[].labels): {'; '.join(unassigned[:5])}{skipped}"
            )
        self.podcidrpool_manifests = imported.manifests
        self.podcidrpool_notes = imported.notes
        self.decide(
            "podcidrpools",
            [m["metadata"]["name"] for m in imported.manifests],
            "derived",
            "one PodCIDRPool per Calico node selector; the allocator gives every node a podCIDR from its pool",
            "cni.calico.ip_pools",
        )
        return [c for m in imported.manifests for c in m["spec"]["cidrs"] if ":" not in c]

    def _check_pool(self, pools: list[str], *, rolling: bool) -> None:
        option = "--cluster-pool-cidr" if self.o.cluster_pool_cidr else "pod CIDR"
        parsed: list[NamedRange] = []
        for c in pools:
            n = try_parse(c)
            if n is None or str(n) != c.strip():
                self.error(f"{option} {c!r} is not a network in CIDR notation")
                continue
            parsed.append(NamedRange(f"{option} {c}", n))
        others = self._existing_ranges() if rolling else self._service_ranges()
        for ov in find_overlaps(parsed, others):
            self.error(
                f"{ov.a.label} overlaps {ov.b.label} {ov.b.network}"
                + (": both CNIs allocate pod addresses during a rolling migration" if rolling else "")
            )

    # API endpoint, BGP, native routing ----------------------------------------------------------------------------

    def _api_endpoint(self, kpr: bool) -> tuple[str | None, int | None]:
        o = self.o
        ep = self.facts.network.api_endpoint
        host, port = o.k8s_service_host, o.k8s_service_port
        if host is None and ep.known and ep.value is not None:
            host = ep.value.host
            self.decide("k8s-service-host", host, "derived", "the API server endpoint", "network.api_endpoint")
        if port is None and ep.known and ep.value is not None:
            port = ep.value.port
        if host is not None and port is None:
            port = 6443
        if kpr and host is None:
            self.error(
                "--k8s-service-host: Cilium must reach the API server without kube-proxy, but its address is unknown "
                f"(fact network.api_endpoint unknown: {ep.unknown}); pass --k8s-service-host and --k8s-service-port"
            )
        return host, port

    def _calico_external_peers(self) -> bool:
        calico = self.facts.cni.calico
        return calico is not None and any(p.peer_ip for p in calico.bgp_peers)

    def _bgp(self, old: OldCni, ipam: str) -> Literal["none", "kube-router", "cilium"]:
        o = self.o
        bgp: Literal["none", "kube-router", "cilium"]
        peers = self._calico_external_peers()
        if o.bgp == "auto":
            if peers:
                bgp = "cilium" if self.version.bgp_api is not None else "kube-router"
                self.decide(
                    "bgp",
                    bgp,
                    "derived",
                    "Calico peers with external BGP routers; "
                    + (
                        "Cilium's BGP control plane takes over the sessions"
                        if bgp == "cilium"
                        else f"Cilium {self.version} has no BGP control plane, so kube-router advertises the routes"
                    ),
                    "cni.calico.bgp_peers",
                    "cni.calico.bgp",
                )
            else:
                bgp = "none"
                self.decide("bgp", "none", "default", "the old CNI has no external BGP peers", "cni.calico.bgp_peers")
        else:
            bgp = o.bgp
            self.decide("bgp", bgp, "option", "given")
            if bgp == "none" and peers:
                self.warnings.append(
                    "--bgp none: Calico advertises routes to external BGP peers today; after the migration nothing will"
                )
        calico = self.facts.cni.calico
        in_cluster_bgp = calico is not None and (
            bool(calico.route_reflectors) or (calico.bgp.value is not None and calico.bgp.value.node_to_node_mesh)
        )
        if bgp != "none" and not peers and not (bgp == "kube-router" and in_cluster_bgp):
            self.error(
                f"--bgp {bgp}: there are no BGP peers to take over (fact cni.calico.bgp_peers is empty or the old CNI "
                f"is {old}); the planner translates Calico's BGPPeers and does not invent peers"
            )
        if bgp == "kube-router" and ipam not in ("kubernetes", "podcidrpools"):
            if o.bgp == "auto":
                self.error(
                    "Calico peers with external BGP routers (fact cni.calico.bgp_peers), but Cilium "
                    f"{self.version} has no BGPv2 control plane (1.16+) and kube-router advertises node "
                    f"spec.podCIDRs, which --ipam {ipam} does not use: choose --cilium-version 1.16 or newer, "
                    "--ipam kubernetes, or --bgp none to stop advertising routes"
                )
            else:
                self.error(
                    f"--bgp kube-router with --ipam {ipam}: kube-router advertises each node's spec.podCIDR, which "
                    "Cilium uses only with --ipam kubernetes"
                )
        if bgp == "cilium" and self.version.bgp_api is None:
            self.error(
                f"--bgp cilium: the planner generates Cilium's BGPv2 resources, which Cilium {self.version} lacks "
                "(1.16+); use --bgp kube-router or a newer --cilium-version"
            )
        if bgp == "kube-router" and o.strategy == "rolling":
            self.warnings.append(
                "kube-router starts only after Calico is removed (both would speak BGP on TCP 179 from the same node)"
            )
        return bgp

    def _native(self, routing: str, pools: list[str], bgp: str) -> tuple[str | None, bool]:
        o = self.o
        adnr = o.auto_direct_node_routes
        flannel = self.facts.cni.flannel
        if routing != "native":
            if o.native_routing_cidr:
                self.warnings.append("--native-routing-cidr has no effect with tunnel routing")
            if adnr:
                self.error(
                    "--auto-direct-node-routes with tunnel routing: Cilium refuses it (routes must go through the "
                    "tunnel); use --routing native"
                )
            return None, False
        if not adnr and self.derived_adnr and bgp == "none":
            adnr = True
            self.decide(
                "auto-direct-node-routes",
                True,
                "derived",
                "the old CNI routes pods directly between nodes, which share one L2 segment",
                "cni.flannel.backend_type" if flannel is not None else "cni.calico.nodes_bgp",
            )
        if not adnr and bgp != "none":
            # Cilium's BGP control plane advertises pod CIDRs to its peers but installs no routes between the
            # nodes (Calico's BIRD did, over its mesh or route reflectors).
            subnets = self._node_subnets()
            if len(subnets) == 1 or self.derived_adnr:
                adnr = True
                self.decide(
                    "auto-direct-node-routes",
                    True,
                    "derived",
                    f"native routing with BGP: {bgp}'s BGP advertises pod CIDRs to the routers only, so the nodes, "
                    f"which share one L2 segment ({subnets[0] if subnets else 'per the old CNI'}), route each "
                    "other's pod CIDRs directly",
                    "cni.calico.nodes_bgp",
                )
            else:
                self.warnings.append(
                    f"native routing with --bgp {bgp}: Cilium programs no routes between nodes, and the nodes are "
                    f"not known to share one L2 segment (fact cni.calico.nodes_bgp: {len(subnets) or 'no'} node "
                    "subnets): pod traffic between nodes goes through the BGP routers, which must accept and "
                    "re-advertise every node's pod CIDR; pass --auto-direct-node-routes if the nodes do share one"
                )
        if bgp == "none" and not adnr:
            self.error(
                "--routing native: nothing would route pod CIDRs between nodes: there is no BGP (--bgp none; fact "
                "cni.calico.bgp_peers has no external peers) and no --auto-direct-node-routes; add "
                "--auto-direct-node-routes when all nodes share one L2 segment, or use --routing tunnel"
            )
        cidr = o.native_routing_cidr
        if cidr is None:
            nets = [n for c in pools if (n := try_parse(c)) is not None and n.version == 4]
            if not nets:
                self.error(
                    "--routing native without a routable CIDR: no pod CIDR is known (fact network.pod_cidrs "
                    f"unknown: {self.facts.network.pod_cidrs.unknown}); pass --native-routing-cidr"
                )
                return None, adnr
            sup = nets[0]
            while not all(n.subnet_of(sup) for n in nets):
                sup = sup.supernet()
            cidr = str(sup)
            self.decide(
                "native-routing-cidr",
                cidr,
                "derived",
                "the smallest CIDR covering every pod CIDR: traffic inside it is routed, not masqueraded",
                "network.pod_cidrs",
            )
        net = try_parse(cidr)
        if net is None:
            self.error(f"--native-routing-cidr {cidr!r} is not a network in CIDR notation")
            return cidr, adnr
        for r in self._service_ranges():
            if net.version == r.network.version and net.overlaps(r.network) and "address" not in r.label:
                self.error(
                    f"--native-routing-cidr {cidr} overlaps {r.label} {r.network}: Cilium would treat service "
                    "addresses as routable pod addresses; pass a narrower --native-routing-cidr"
                )
        return cidr, adnr

    def _masquerade(self, old: OldCni) -> bool:
        o = self.o
        if o.masquerade != "auto":
            value = o.masquerade == "true"
            self.decide("masquerade", value, "option", "given")
            return value
        calico = self.facts.cni.calico
        flannel = self.facts.cni.flannel
        if calico is not None and calico.ip_pools.value:
            value = any(p.nat_outgoing for p in calico.ip_pools.value if not p.disabled)
            if not value and o.strategy == "rolling" and self._calico_external_peers():
                self.decide(
                    "masquerade",
                    True,
                    "derived",
                    "Calico does not masquerade because the routers learn its pod CIDRs over BGP, but migrated pods "
                    "get addresses from Cilium's new pool, which no router knows while Calico runs: masquerading "
                    "gives their egress traffic a return route during the migration",
                    "cni.calico.ip_pools",
                    "cni.calico.bgp_peers",
                )
                self.warnings.append(
                    "masquerading is on for the rolling migration (migrated pods' egress needs a return route); the "
                    "final values keep it: turn it off (--no-masquerade in a later plan) once Cilium's BGP "
                    "advertises the new pod CIDR"
                )
                return True
            self.decide(
                "masquerade",
                value,
                "derived",
                "keeps Calico's natOutgoing behaviour for pod traffic leaving the pod ranges",
                "cni.calico.ip_pools",
            )
            return value
        if flannel is not None and flannel.ip_masq.known:
            value = bool(flannel.ip_masq.value)
            self.decide("masquerade", value, "derived", "keeps Flannel's --ip-masq behaviour", "cni.flannel.ip_masq")
            return value
        self.decide("masquerade", True, "default", "Cilium's default")
        return True

    def _socket_lb(self, kpr: bool) -> bool:
        o = self.o
        istio = self.facts.istio.present
        if o.socket_lb_host_namespace_only != "auto":
            value = o.socket_lb_host_namespace_only == "true"
            self.decide("socket-lb-host-namespace-only", value, "option", "given")
        else:
            value = bool(kpr and istio.known and istio.value)
            if value:
                self.decide(
                    "socket-lb-host-namespace-only",
                    True,
                    "derived",
                    "Istio is present: socket-LB must not rewrite ClusterIPs inside pods or sidecars are bypassed",
                    "istio.present",
                )
        if value and not kpr:
            self.warnings.append("--socket-lb-host-namespace-only only matters with kube-proxy replacement")
        if value:
            old = [
                n
                for n in self.facts.nodes
                if n.kernel_version and (p := parse_kernel(n.kernel_version)) is not None and p < (5, 7, 0)
            ]
            if old:
                self.warnings.append(
                    f"socketLB.hostNamespaceOnly needs kernel 5.7+; node {old[0].name} runs {old[0].kernel_version} "
                    "and Cilium silently ignores the setting there"
                )
        return value

    def _external_cluster_ip(self, kpr: bool, bgp: str) -> bool:
        o = self.o
        if o.lb_external_cluster_ip != "auto":
            value = o.lb_external_cluster_ip == "true"
            self.decide("lb-external-cluster-ip", value, "option", "given")
            if value and not kpr:
                self.error("--lb-external-cluster-ip true needs kube-proxy replacement (--kube-proxy-replacement true)")
            return value
        calico = self.facts.cni.calico
        advertised = bool(
            calico is not None
            and calico.bgp.value is not None
            and calico.bgp.value.service_cluster_ips
            and bgp != "none"
        )
        if advertised and kpr:
            self.decide(
                "lb-external-cluster-ip",
                True,
                "derived",
                "Calico advertises the service CIDR over BGP, so clients outside the cluster reach ClusterIPs; "
                "Cilium must keep answering them",
                "cni.calico.bgp",
            )
            return True
        return False

    def _lb_checks(self, kpr: bool, routing: str, tproto: str) -> None:
        o = self.o
        if o.lb_mode != "snat":
            if not kpr:
                self.error(f"--lb-mode {o.lb_mode} needs kube-proxy replacement (--kube-proxy-replacement true)")
            if routing == "tunnel" and tproto == "vxlan":
                self.error(
                    f"--lb-mode {o.lb_mode} with a VXLAN tunnel: Cilium refuses DSR under VXLAN; use --routing native "
                    "or --tunnel-protocol geneve"
                )
            if routing == "tunnel" and tproto == "geneve" and not self.version.at_least(14):
                self.error(f"--lb-mode {o.lb_mode} with Geneve needs Geneve DSR dispatch (Cilium 1.14+)")
        if o.maglev and not kpr:
            self.error("--maglev needs kube-proxy replacement (Maglev is a NodePort/BPF load-balancer algorithm)")
        if o.lb_acceleration != "disabled" and not kpr:
            self.error(f"--lb-acceleration {o.lb_acceleration} needs kube-proxy replacement")

    def _kernel_checks(self, kpr: bool) -> None:
        floor = self.version.base_kernel
        for n in self.facts.nodes:
            parsed = parse_kernel(n.kernel_version) if n.kernel_version else None
            if parsed is None or is_rhel8_kernel(n.kernel_version or ""):
                continue
            if parsed < floor:
                self.error(
                    f"--cilium-version {self.version}: node {n.name} runs kernel {n.kernel_version} (fact "
                    f"nodes[{n.name}].kernel_version), below the {'.'.join(map(str, floor))} this release requires"
                )
                break

    def _maglev_seed(self, kpr: bool) -> str | None:
        o = self.o
        if not o.maglev:
            if o.maglev_seed:
                self.warnings.append("--maglev-seed has no effect without --maglev")
            return None
        if o.maglev_seed:
            try:
                raw = base64.b64decode(o.maglev_seed, validate=True)
            except (binascii.Error, ValueError):
                self.error(f"--maglev-seed {o.maglev_seed!r}: not standard base64")
                return None
            if len(raw) != 12:
                self.error(f"--maglev-seed: decodes to {len(raw)} bytes; Cilium needs exactly 12")
                return None
            self.generated.append(GeneratedValue(name="maglev.hashSeed", value=o.maglev_seed, origin="supplied"))
            return o.maglev_seed
        previous = self.reuse.get("maglev.hashSeed")
        seed = previous or base64.b64encode(secrets.token_bytes(12)).decode()
        self.generated.append(
            GeneratedValue(
                name="maglev.hashSeed",
                value=seed,
                origin="generated",
                note="generated once and recorded; re-planning into the same --out directory reuses it, "
                "or pass --maglev-seed",
            )
        )
        return seed

    def _batches(self) -> tuple[list[list[str]], list[list[str]]]:
        o = self.o
        first = {n: i for i, n in enumerate(o.first_nodes)}

        def key(n: NodeFacts) -> tuple[int, int, str]:
            pods = n.pods if o.node_order == "fewest-pods" else -n.pods if o.node_order == "most-pods" else 0
            return (first.get(n.name, len(first)), pods, n.name)

        workers = sorted((n for n in self.facts.nodes if not n.control_plane), key=key)
        cps = sorted((n for n in self.facts.nodes if n.control_plane), key=key)
        size = max(1, o.batch_size)
        wb = [[n.name for n in workers[i : i + size]] for i in range(0, len(workers), size)]
        cb = [[n.name] for n in cps]
        if o.strategy == "rolling":
            self.decide(
                "node-order",
                o.node_order,
                "option" if o.node_order != "name" or o.first_nodes else "default",
                f"workers first in batches of {size}, then control-plane nodes one at a time",
                "nodes",
            )
        return wb, cb


def resolve(facts: ClusterFacts, opts: PlanOptions, reuse: Mapping[str, str] | None = None) -> Resolved:
    """``reuse``: values generated by an earlier plan (name -> value), kept instead of generating new ones."""
    return _Resolver(facts, opts, reuse).run()
