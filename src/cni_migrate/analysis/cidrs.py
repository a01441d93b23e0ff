"""CIDR helpers shared by every check: parsing with clear errors, overlaps between named ranges."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CidrError(ValueError):
    pass


def parse_cidr(text: str, *, what: str = "CIDR") -> Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as e:
        raise CidrError(f"{what} {text!r} is not a valid network in CIDR notation ({e})") from e


def try_parse(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


@dataclass(frozen=True)
class NamedRange:
    label: str  # e.g. "service CIDR", "node 10.31.90.1", "Calico IPPool default-ipv4-ippool"
    network: Network


@dataclass(frozen=True)
class Overlap:
    a: NamedRange
    b: NamedRange

    def __str__(self) -> str:
        return f"{self.a.label} {self.a.network} overlaps {self.b.label} {self.b.network}"


def overlaps(a: Network, b: Network) -> bool:
    return a.version == b.version and a.overlaps(b)


def find_overlaps(left: Iterable[NamedRange], right: Iterable[NamedRange] | None = None) -> list[Overlap]:
    """Overlaps between two groups, or among one group's members when ``right`` is None."""
    lhs = list(left)
    if right is None:
        return [Overlap(x, y) for i, x in enumerate(lhs) for y in lhs[i + 1 :] if overlaps(x.network, y.network)]
    rhs = list(right)
    return [Overlap(x, y) for x in lhs for y in rhs if overlaps(x.network, y.network)]


def host_network(ip: str) -> Network | None:
    """A node address as a /32 (or /128) network."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return ipaddress.ip_network(f"{addr}/{addr.max_prefixlen}")
