"""The policy model both evaluators and the translator share: Calico policies parsed into typed rules, and the
universe of endpoints and flows a verdict is computed for.

Everything here is pure data. Calico's two API versions (``crd.projectcalico.org/v1`` as stored by Calico's CRD
backend, ``projectcalico.org/v3`` as calicoctl and the Calico API server show it) parse to the same model.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from cni_migrate.analysis.selectors import Expr

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address

INGRESS = "ingress"
EGRESS = "egress"
DIRECTIONS = (INGRESS, EGRESS)

ALLOW, DENY, PASS, LOG = "Allow", "Deny", "Pass", "Log"
L4_PROTOCOLS = ("TCP", "UDP", "SCTP")


class PolicyInputError(ValueError):
    """A Calico policy that is not valid input; the message names the policy and the field."""


@dataclass(frozen=True)
class PortRange:
    lo: int
    hi: int

    def __str__(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}:{self.hi}"


Port = PortRange | str  # a number range, or a named port


@dataclass(frozen=True)
class Selector:
    text: str
    expr: Expr


@dataclass(frozen=True)
class Peer:
    """Calico's EntityRule (a rule's ``source`` or ``destination``)."""

    nets: tuple[IPNet, ...] | None = None
    not_nets: tuple[IPNet, ...] | None = None
    selector: Selector | None = None
    not_selector: Selector | None = None
    namespace_selector: Selector | None = None
    sa_names: tuple[str, ...] | None = None
    sa_selector: Selector | None = None
    ports: tuple[Port, ...] | None = None
    not_ports: tuple[Port, ...] | None = None
    services: bool = False

    @property
    def endpoint_constrained(self) -> bool:
        """The peer must be a Calico endpoint (a pod here), not just any IP address (in a GlobalNetworkPolicy)."""
        return (
            self.selector is not None
            or self.namespace_selector is not None
            or self.sa_names is not None
            or self.sa_selector is not None
        )

    def pods_only(self, namespaced: bool) -> bool:
        """Calico (libcalico-go ``getEndpointSelector``): in a namespaced policy a ``notSelector`` alone also limits
        the peer to pods of the policy's namespace."""
        return self.endpoint_constrained or (namespaced and self.not_selector is not None)


@dataclass(frozen=True)
class Rule:
    direction: str
    index: int
    action: str
    protocol: str | int | None = None
    not_protocol: str | int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    not_icmp: bool = False
    ip_version: int | None = None
    source: Peer = field(default_factory=Peer)
    destination: Peer = field(default_factory=Peer)
    http: bool = False

    @property
    def local(self) -> Peer:
        return self.destination if self.direction == INGRESS else self.source

    @property
    def remote(self) -> Peer:
        return self.source if self.direction == INGRESS else self.destination


@dataclass(frozen=True)
class Tier:
    name: str
    order: float | None
    default_action: str = DENY  # Deny or Pass: what happens at the end of the tier


DEFAULT_TIER_ORDER = 1_000_000.0


@dataclass(frozen=True)
class Policy:
    kind: str  # NetworkPolicy or GlobalNetworkPolicy
    api_version: str
    name: str
    namespace: str | None
    tier: str
    order: float | None
    selector: Selector
    namespace_selector: Selector | None
    sa_selector: Selector | None
    types: frozenset[str]
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]
    do_not_track: bool = False
    pre_dnat: bool = False
    apply_on_forward: bool = False

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def rules(self, direction: str) -> tuple[Rule, ...]:
        return self.ingress if direction == INGRESS else self.egress

    def sort_key(self) -> tuple[bool, float, str]:
        return (self.order is None, self.order or 0.0, self.name)


@dataclass(frozen=True)
class PolicySet:
    policies: tuple[Policy, ...]
    tiers: Mapping[str, Tier]

    def tier_order(self) -> list[str]:
        def key(t: Tier) -> tuple[bool, float, str]:
            return (t.order is None, t.order or 0.0, t.name)

        return [t.name for t in sorted(self.tiers.values(), key=key)]


# --- the universe ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NamedPort:
    name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Endpoint:
    """A pod (``namespace`` set) or an address outside the cluster (``namespace`` None)."""

    name: str
    ip: IPAddr
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"
    named_ports: tuple[NamedPort, ...] = ()

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None

    def named_port(self, name: str, protocol: str) -> int | None:
        for p in self.named_ports:
            if p.name == name and p.protocol == protocol:
                return p.port
        return None

    def __str__(self) -> str:
        return f"pod {self.namespace}/{self.name}" if self.is_pod else f"address {self.ip}"


@dataclass(frozen=True)
class Flow:
    """One packet class: ``protocol`` is TCP/UDP/SCTP (with ``port``), ICMP (with type/code) or a number."""

    src: Endpoint
    dst: Endpoint
    protocol: str | int
    port: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None

    def describe(self) -> str:
        if self.protocol in L4_PROTOCOLS:
            what = f"{self.protocol}/{self.port}"
        elif self.protocol == "ICMP":
            what = f"ICMP type {self.icmp_type} code {self.icmp_code}"
        else:
            what = f"IP protocol {self.protocol}"
        return f"{self.src} -> {self.dst} {what}"


@dataclass(frozen=True)
class Universe:
    namespaces: Mapping[str, Namespace]
    pods: tuple[Endpoint, ...]
    externals: tuple[Endpoint, ...]
    pod_cidrs: tuple[IPNet, ...]

    def namespace_labels(self, ns: str) -> Mapping[str, str]:
        n = self.namespaces.get(ns)
        return n.labels if n else {}
