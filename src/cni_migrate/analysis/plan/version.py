"""Cilium versions: parsing, the range the planner supports, and what changed between minors."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")

SUPPORTED_MINORS = (11, 19)  # the lint rules cover Cilium 1.11 through 1.19


class VersionError(ValueError):
    pass


@dataclass(frozen=True, order=True)
class CiliumVersion:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> CiliumVersion:
        m = _VERSION_RE.match(text.strip())
        if not m:
            raise VersionError(f"--cilium-version {text!r} is not a release version X.Y.Z (e.g. 1.16.5)")
        v = cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        lo, hi = SUPPORTED_MINORS
        if v.major != 1 or not lo <= v.minor <= hi:
            raise VersionError(
                f"--cilium-version {text}: the planner supports Cilium 1.{lo} through 1.{hi} "
                "(the releases whose Helm values and rules it knows)"
            )
        return v

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def at_least(self, minor: int) -> bool:
        return self.minor >= minor

    # --- capabilities by minor ---------------------------------------------------------------------------

    @property
    def uses_routing_mode(self) -> bool:
        """``routingMode``/``tunnelProtocol`` replace ``tunnel`` from 1.14 (``tunnel`` removed in 1.15)."""
        return self.minor >= 14

    @property
    def kpr_is_bool(self) -> bool:
        """``kubeProxyReplacement: true|false`` from 1.14 (strict/partial/disabled removed in 1.16)."""
        return self.minor >= 14

    @property
    def dbg_binary(self) -> str:
        """The in-pod debug CLI: ``cilium`` until 1.14, ``cilium-dbg`` from 1.15."""
        return "cilium-dbg" if self.minor >= 15 else "cilium"

    @property
    def node_config_api(self) -> str | None:
        """CiliumNodeConfig: v2alpha1 from 1.13, v2 from 1.16; none before 1.13."""
        if self.minor >= 16:
            return "cilium.io/v2"
        if self.minor >= 13:
            return "cilium.io/v2alpha1"
        return None

    @property
    def bgp_api(self) -> str | None:
        """apiVersion of the BGPv2 control-plane resources (CiliumBGPClusterConfig, CiliumBGPPeerConfig,
        CiliumBGPAdvertisement): cilium.io/v2 from 1.18, cilium.io/v2alpha1 in 1.16-1.17. Older releases only have
        the BGPv1 CiliumBGPPeeringPolicy, which the planner does not generate (kube-router is used there)."""
        if self.minor >= 18:
            return "cilium.io/v2"
        if self.minor >= 16:
            return "cilium.io/v2alpha1"
        return None

    @property
    def base_kernel(self) -> tuple[int, int, int]:
        """The lowest kernel the release runs on (system requirements; RHEL 8 4.18 handled by the caller)."""
        if self.minor >= 18:
            return (5, 10, 0)
        if self.minor >= 16:
            return (5, 4, 0)
        if self.minor >= 14:
            return (4, 19, 57)
        return (4, 9, 17)


def kpr_kernel_ok(kernel: tuple[int, int, int]) -> bool:
    """Socket-LB (which kube-proxy replacement relies on) needs 4.19.57, 5.1.16 or 5.2.0+; no 5.0.y works."""
    if kernel >= (5, 2, 0):
        return True
    if (5, 1, 16) <= kernel < (5, 2, 0):
        return True
    return (4, 19, 57) <= kernel < (5, 0, 0)


def is_rhel8_kernel(version: str) -> bool:
    """RHEL 8 family 4.18 kernels carry the backports the Cilium docs accept in place of newer kernels."""
    return version.startswith("4.18.0-") and ".el8" in version
