"""Cilium versions as users write them (``1.16``, ``1.16.5``, ``v1.15.0-rc.1``) and the catalog's version anchors."""

from __future__ import annotations

import re

from cni_migrate.analysis.lint.errors import LintInputError

#: Minor versions the rule catalog covers; newer minors are linted with the newest rules (and an info finding).
FIRST_MINOR = 11
LAST_MINOR = 19

#: Upstream commit at which each minor's release branch was cut (catalog section 0): links to source use these.
ANCHORS: dict[int, str] = {
    11: "f313f7dfc0a5",
    12: "5c5322203439",
    13: "5f7ac9162ce0",
    14: "751fc715b94a",
    15: "65286ceb7de4",
    16: "5614531067a8",
    17: "a1cb89775aef",
    18: "228a293646c4",
    19: "95e477fdcfd3",
}

_VERSION_RE = re.compile(r"^v?(?P<major>\d+)\.(?P<minor>\d+)(?:\.(?P<patch>\d+))?(?P<pre>-[0-9A-Za-z.\-]+)?$")


class CiliumVersion:
    """A parsed Cilium version (immutable by convention)."""

    __slots__ = ("major", "minor", "patch", "pre")

    def __init__(self, major: int, minor: int, patch: int | None = None, pre: str | None = None) -> None:
        self.major = major
        self.minor = minor
        self.patch = patch
        self.pre = pre

    def _key(self) -> tuple[int, int, int, str]:
        return (self.major, self.minor, self.patch if self.patch is not None else -1, self.pre or "")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CiliumVersion) and self._key() == other._key()

    def __lt__(self, other: CiliumVersion) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"CiliumVersion({self})"

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}"
        if self.patch is not None:
            text += f".{self.patch}"
        return text + (self.pre or "")

    @property
    def short(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def catalog_minor(self) -> int:
        """The minor whose rules apply: versions newer than the catalog use its newest rules."""
        return min(self.minor, LAST_MINOR)

    @property
    def beyond_catalog(self) -> bool:
        return self.minor > LAST_MINOR


def parse_cilium_version(text: str) -> CiliumVersion:
    """Parse ``X.Y`` or ``X.Y.Z`` (optional ``v`` prefix and pre-release suffix); only Cilium 1.11 and newer."""
    raw = text.strip()
    m = _VERSION_RE.match(raw)
    if not m:
        raise LintInputError(
            f"Cilium version {text!r} is not of the form X.Y or X.Y.Z (for example 1.16 or 1.16.5); "
            "Helm version constraints such as '~1.16' or '>=1.15' cannot be linted, pass --cilium-version"
        )
    major, minor = int(m.group("major")), int(m.group("minor"))
    patch = int(m.group("patch")) if m.group("patch") is not None else None
    if major != 1:
        raise LintInputError(f"Cilium version {text!r}: only Cilium 1.x is known to the rule catalog")
    if minor < FIRST_MINOR:
        raise LintInputError(
            f"Cilium version {text!r}: the rule catalog covers Cilium 1.{FIRST_MINOR} to 1.{LAST_MINOR}; "
            "older releases are end-of-life and not linted"
        )
    return CiliumVersion(major, minor, patch, m.group("pre"))
