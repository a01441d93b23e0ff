"""How a rule is declared: a small unit with id, severity, versions, condition, message, fix and reference.

    @rule("CIL005", "autoDirectNodeRoutes with tunnel routing", severity="error", versions="1.11+",
          path="autoDirectNodeRoutes", fix="...", ref=src("DM"))
    def _(c: Ctx) -> Iterator[Hit]:
        if c.d.auto_direct_node_routes and c.d.routing == "tunnel":
            yield Hit("auto-direct-node-routes cannot be used with tunneling. ...")

The condition is the function body; it yields one :class:`Hit` per problem (message, and where it differs from
the rule's: path, severity, fix). A rule needing a fact the input lacks raises :class:`Unknown` (through the
fact view), or calls ``c.missing(...)`` to report a part it could not judge and goes on with the rest.
Rules outside their ``versions`` are not evaluated for that Cilium version (they cannot apply).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cni_migrate.analysis.lint.derived import Derived
from cni_migrate.analysis.lint.factview import FactView, Unknown
from cni_migrate.analysis.lint.model import LintContext, Severity
from cni_migrate.analysis.lint.values import ValuesView
from cni_migrate.analysis.lint.version import ANCHORS, LAST_MINOR, CiliumVersion

__all__ = [
    "REGISTRY",
    "RULE_PATH",
    "Ctx",
    "Hit",
    "Rule",
    "Unknown",
    "VersionRange",
    "docs",
    "issue",
    "rule",
    "src",
    "upgrade",
]

#: A Hit path meaning "the rule's own path".
RULE_PATH: Any = object()


class Hit:
    """One problem a rule found: the message and, where they differ from the rule's, path, severity, fix."""

    __slots__ = ("fix", "message", "path", "severity", "subjects")

    def __init__(
        self,
        message: str,
        path: Any = RULE_PATH,  # str | None; default: the rule's path
        severity: Severity | None = None,
        fix: str | None = None,
        subjects: tuple[str, ...] = (),
    ) -> None:
        self.message = message
        self.path = path
        self.severity = severity
        self.fix = fix
        self.subjects = subjects


class VersionRange:
    """Inclusive range of Cilium minors (1.x); ``hi=None`` is open-ended."""

    __slots__ = ("hi", "lo")

    def __init__(self, lo: int = 11, hi: int | None = None) -> None:
        self.lo = lo
        self.hi = hi

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        t = text.replace(" ", "")
        if t in ("all", ""):
            return cls()
        if m := re.fullmatch(r"1\.(\d+)\+", t):
            return cls(int(m.group(1)))
        if m := re.fullmatch(r"1\.(\d+)-1\.(\d+)", t):
            return cls(int(m.group(1)), int(m.group(2)))
        if m := re.fullmatch(r"<=1\.(\d+)", t):
            return cls(11, int(m.group(1)))
        if m := re.fullmatch(r"1\.(\d+)", t):
            return cls(int(m.group(1)), int(m.group(1)))
        raise ValueError(f"bad version range {text!r}")

    def contains(self, minor: int) -> bool:
        return minor >= self.lo and (self.hi is None or minor <= self.hi)

    def __str__(self) -> str:
        if self.hi is None:
            return f"1.{self.lo}+"
        if self.hi == self.lo:
            return f"1.{self.lo}"
        return f"1.{self.lo}-1.{self.hi}"


Ref = Callable[[int], str]
Check = Callable[["Ctx"], Iterable[Hit]]


class Rule:
    """A registered rule: metadata plus its condition (``check``)."""

    __slots__ = ("check", "facts", "fix", "id", "path", "ref", "section", "severity", "title", "versions")

    def __init__(
        self,
        id: str,
        title: str,
        severity: Severity,
        versions: VersionRange,
        path: str | None,
        fix: str,
        ref: Ref,
        check: Check,
        section: str,
        facts: tuple[str, ...] = (),
    ) -> None:
        self.id = id
        self.title = title
        self.severity = severity
        self.versions = versions
        self.path = path
        self.fix = fix
        self.ref = ref
        self.check = check
        self.section = section
        self.facts = facts

    def reference(self, minor: int) -> str:
        return self.ref(minor)


REGISTRY: dict[str, Rule] = {}


def rule(
    rule_id: str,
    title: str,
    *,
    severity: Severity,
    fix: str,
    ref: Ref | str,
    versions: str = "all",
    path: str | None = None,
    facts: tuple[str, ...] = (),
) -> Callable[[Check], Check]:
    """Register the decorated condition as rule ``rule_id``."""

    def register(check: Check) -> Check:
        if rule_id in REGISTRY:
            raise ValueError(f"rule {rule_id} registered twice")
        module = check.__module__.rsplit(".", 1)[-1]
        REGISTRY[rule_id] = Rule(
            id=rule_id,
            title=title,
            severity=severity,
            versions=VersionRange.parse(versions),
            path=path,
            fix=fix,
            ref=ref if callable(ref) else _constant(ref),
            check=check,
            section=module,
            facts=facts,
        )
        return check

    return register


def _constant(url: str) -> Ref:
    def ref(_minor: int) -> str:
        return url

    return ref


# --- references ---------------------------------------------------------------------------------------------

_SOURCES: dict[str, list[tuple[int, str]]] = {
    "CFG": [(11, "pkg/option/config.go")],
    "KPR": [(11, "daemon/cmd/kube_proxy_replacement.go"), (19, "pkg/kpr/initializer/kube_proxy_replacement.go")],
    "KPRC": [(18, "pkg/kpr/kpr.go")],
    "DM": [(11, "daemon/cmd/daemon_main.go")],
    "DD": [(11, "daemon/cmd/daemon.go")],
    "REQ": [(14, "pkg/datapath/linux/requirements.go")],
    "LBC": [(19, "pkg/loadbalancer/config.go")],
    "MAG": [(11, "pkg/maglev/maglev.go")],
    "EGW": [(15, "pkg/egressgateway/manager.go")],
    "CM": [(11, "install/kubernetes/cilium/templates/cilium-configmap.yaml")],
    "VAL": [(11, "install/kubernetes/cilium/templates/validate.yaml")],
    "HLP": [(11, "install/kubernetes/cilium/templates/_helpers.tpl")],
    "DS": [(11, "install/kubernetes/cilium/templates/cilium-agent/daemonset.yaml")],
    "VALS": [(11, "install/kubernetes/cilium/values.yaml")],
    "DEF": [(11, "pkg/defaults/defaults.go")],
    "IPAM": [(11, "pkg/ipam/ipam.go")],
    "WG": [(11, "pkg/wireguard/agent/agent.go")],
    "BW": [(11, "pkg/bandwidth/bandwidth.go"), (18, "pkg/datapath/linux/bandwidth/bandwidth.go")],
    "BIGTCP": [(13, "pkg/datapath/linux/bigtcp/bigtcp.go")],
    "NODE": [(11, "pkg/datapath/linux/node.go")],
    "TUNG": [(19, "pkg/datapath/tunnel/tunnel.go")],
}


def src(abbr: str, *, since: int = 11) -> Ref:
    """A link to a source file of the catalog at the branch point of the target minor (or the nearest one)."""

    def ref(minor: int) -> str:
        m = max(min(minor, LAST_MINOR), since)
        paths = _SOURCES[abbr]
        path = paths[0][1]
        for first, p in paths:
            if m >= first:
                path = p
        m = max(m, paths[0][0])
        return f"https://github.com/cilium/cilium/blob/{ANCHORS[m]}/{path}"

    return ref


def docs(path: str) -> Ref:
    """A page of the Cilium documentation (the stable docs: page paths moved between old releases)."""
    return lambda _m: f"https://docs.cilium.io/en/stable/{path.strip('/')}/"


def upgrade(minor: int | None = None, anchor: str = "") -> Ref:
    """The upgrade notes of ``minor`` (default: the target minor)."""

    def ref(m: int) -> str:
        target = minor or min(m, LAST_MINOR)
        return f"https://docs.cilium.io/en/v1.{target}/operations/upgrade/" + (f"#{anchor}" if anchor else "")

    return ref


def issue(number: int, repo: str = "cilium/cilium") -> Ref:
    return lambda _m: f"https://github.com/{repo}/issues/{number}"


# --- evaluation context -------------------------------------------------------------------------------------


class Ctx:
    """What a rule's condition sees: values, version, derived variables, facts and the install context."""

    def __init__(self, v: ValuesView, version: CiliumVersion, d: Derived, f: FactView, context: LintContext) -> None:
        self.v = v
        self.version = version
        self.d = d
        self.f = f
        self.context = context
        self._missing: list[tuple[str, str | None]] = []

    @property
    def m(self) -> int:
        """The target Cilium minor version (1.m), capped at the newest minor the catalog knows."""
        return self.version.catalog_minor

    @property
    def patch(self) -> int | None:
        return self.version.patch

    def missing(self, *names: str, detail: str | None = None) -> None:
        """Report facts this rule could not judge, and carry on with the parts it can."""
        for n in names:
            self._missing.append((n, detail))

    def literal(self, path: str) -> Any:
        """A value the rule must interpret; an unexpanded shell expression (``$SEED``) cannot be judged."""
        value = self.v.get(path)
        if self.v.opaque(path):
            raise Unknown(f"value of {path}", detail=f"{path}={value} is a shell expression, not expanded by lint")
        return value

    def take_missing(self) -> list[tuple[str, str | None]]:
        out, self._missing = self._missing, []
        return out


def hits(*items: Hit | None) -> Iterator[Hit]:
    """Yield the non-None hits (for rules written as a few independent conditions)."""
    for h in items:
        if h is not None:
            yield h


def kernel_text(k: tuple[int, int, int]) -> str:
    return f"{k[0]}.{k[1]}.{k[2]}" if k[2] else f"{k[0]}.{k[1]}"


def old_kernels(
    c: Ctx, minimum: tuple[int, int, int], *, ok: Callable[[tuple[int, int, int]], bool] | None = None
) -> tuple[str, tuple[str, ...]] | None:
    """Nodes whose kernel is below ``minimum`` (or fails ``ok``), as a message fragment and subjects; None if
    every node qualifies. Raises Unknown when node kernels are not known."""
    kernels = c.f.kernels()
    bad = sorted((k for k in kernels if (not ok(k.key) if ok else k.key < minimum)), key=lambda k: (k.key, k.node))
    if not bad:
        return None
    shown = ", ".join(f"{k.node} ({k.kernel})" for k in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    notes = {k.note for k in bad if k.note}
    text = f"{len(bad)} of {len(kernels)} nodes run an older kernel, lowest {bad[0].kernel}: {shown}"
    if notes:
        text += f" ({'; '.join(sorted(notes))})"
    return text, tuple(k.node for k in bad)
