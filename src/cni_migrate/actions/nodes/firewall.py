"""Firewall state of a node: iptables (legacy and nft backends, IPv4 and IPv6), ipsets and nftables tables.

All reading goes through ``*-save`` / ``ipset save`` / ``nft -j``; all writing through ``iptables-restore
--noflush`` scripts that delete or add exactly the owned chains and rules (one atomic transaction per table),
``ipset destroy|restore`` and ``nft delete|-f``. Nothing is ever flushed wholesale.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

from cni_migrate.actions.nodes.owners import Owner, chain_owner, ipset_owner, nft_table_owner


class NodeToolError(Exception):
    """A tool the agent needs is missing or failed; the message says which and what to do."""


def run_tool(argv: list[str], *, stdin: str | None = None, timeout: float = 60.0) -> str:
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as e:
        raise NodeToolError(f"{argv[0]}: not found in PATH") from e
    except subprocess.TimeoutExpired as e:
        raise NodeToolError(f"{' '.join(argv)}: no answer after {timeout:.0f} s") from e
    if proc.returncode != 0:
        msg = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise NodeToolError(f"{' '.join(argv[:3])}: exit {proc.returncode}: {msg[-1] if msg else 'no output'}")
    return proc.stdout


# ---------------------------------------------------------------- iptables


@dataclass(frozen=True)
class Backend:
    """One iptables backend for one family: ``legacy``/``nft`` x ``ipv4``/``ipv6``."""

    kind: str
    family: str
    save: str
    restore: str

    @property
    def label(self) -> str:
        return f"iptables-{self.kind} {self.family}"


_VARIANTS = {
    ("legacy", "ipv4"): ("iptables-legacy-save", "iptables-legacy-restore"),
    ("legacy", "ipv6"): ("ip6tables-legacy-save", "ip6tables-legacy-restore"),
    ("nft", "ipv4"): ("iptables-nft-save", "iptables-nft-restore"),
    ("nft", "ipv6"): ("ip6tables-nft-save", "ip6tables-nft-restore"),
}


def detect_backends() -> list[Backend]:
    """The iptables backends this node has binaries for. Debian/RHEL ship both variants under their own names;
    a node with only ``iptables-save`` has its backend read from ``--version`` ("(legacy)" / "(nf_tables)").

    Raises NodeToolError when there is no iptables at all or the plain binary's backend cannot be told."""
    found = [
        Backend(kind, family, save, restore)
        for (kind, family), (save, restore) in _VARIANTS.items()
        if shutil.which(save) and shutil.which(restore)
    ]
    if found:
        return found
    plain = shutil.which("iptables-save")
    if not plain:
        raise NodeToolError(
            "no iptables binaries in PATH (looked for iptables-legacy-save, iptables-nft-save and iptables-save): "
            "install the iptables package on the node"
        )
    version = run_tool([plain, "--version"]).strip()
    if "nf_tables" in version:
        kind = "nft"
    elif "legacy" in version:
        kind = "legacy"
    else:
        raise NodeToolError(
            f"{plain}: unknown iptables backend: its version says {version!r}, expected '(legacy)' or '(nf_tables)'"
        )
    result = [Backend(kind, "ipv4", plain, "iptables-restore")]
    if shutil.which("ip6tables-save"):
        result.append(Backend(kind, "ipv6", "ip6tables-save", "ip6tables-restore"))
    return result


@dataclass
class Table:
    name: str
    chains: dict[str, str] = field(default_factory=dict)  # name -> policy ("-" for user chains)
    rules: list[tuple[str, str]] = field(default_factory=list)  # (chain, rule text after "-A CHAIN ")

    def chain_rules(self, chain: str) -> list[str]:
        return [r for c, r in self.rules if c == chain]


def parse_save(text: str) -> dict[str, Table]:
    tables: dict[str, Table] = {}
    current: Table | None = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = tables.setdefault(line[1:], Table(line[1:]))
        elif current is None or line == "COMMIT":
            continue
        elif line.startswith(":"):
            name, policy, *_ = line[1:].split()
            current.chains[name] = policy
        elif line.startswith("-A "):
            chain, _, rest = line[3:].partition(" ")
            current.rules.append((chain, rest))
    return tables


def rule_target(rule: str) -> str | None:
    """The chain a rule jumps or goes to (``-j X`` / ``-g X``), if any."""
    try:
        words = shlex.split(rule)
    except ValueError:
        words = rule.split()
    for i, w in enumerate(words[:-1]):
        if w in ("-j", "--jump", "-g", "--goto"):
            return words[i + 1]
    return None


@dataclass(frozen=True)
class RuleRef:
    """A rule in a chain that is not owned (a built-in or another program's chain) that jumps to an owned one."""

    chain: str
    position: int  # 1-based, in the chain as saved
    rule: str
    owner: Owner


@dataclass
class OwnedTable:
    backend: str
    table: str
    chains: dict[str, list[str]]  # owned chain -> its rules
    chain_owner: dict[str, Owner]
    jumps: list[RuleRef]

    def empty(self) -> bool:
        return not self.chains and not self.jumps


def owned_state(tables: dict[str, Table], owners: frozenset[Owner], backend: Backend) -> list[OwnedTable]:
    result = []
    for t in tables.values():
        mine = {c: o for c in t.chains if (o := chain_owner(c, backend.family)) is not None and o in owners}
        jumps: list[RuleRef] = []
        positions: dict[str, int] = {}
        for chain, rule in t.rules:
            positions[chain] = positions.get(chain, 0) + 1
            if chain in mine:
                continue
            target = rule_target(rule)
            if target in mine:
                jumps.append(RuleRef(chain, positions[chain], rule, mine[target]))
        owned = OwnedTable(backend.label, t.name, {c: t.chain_rules(c) for c in mine}, mine, jumps)
        if not owned.empty():
            result.append(owned)
    return result


def clean_script(owned: Iterable[OwnedTable]) -> str:
    """An ``iptables-restore --noflush`` script: delete the jumps, flush the owned chains, delete them."""
    out = []
    for t in owned:
        out.append(f"*{t.table}")
        out.extend(f"-D {j.chain} {j.rule}" for j in t.jumps)
        out.extend(f"-F {c}" for c in t.chains)
        out.extend(f"-X {c}" for c in t.chains)
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def restore_script(saved: list[OwnedTable], current: dict[str, Table]) -> tuple[str, int]:
    """Put back what ``saved`` had and ``current`` lacks: owned chains (re-filled in their saved order) and the
    jumps to them (inserted at their saved positions). Returns the script and the number of changes."""
    out: list[str] = []
    changes = 0
    for t in saved:
        cur = current.get(t.table, Table(t.table))
        lines: list[str] = []
        for chain, rules in t.chains.items():
            if chain in cur.chains and cur.chain_rules(chain) == rules:
                continue
            lines.append(f"-F {chain}" if chain in cur.chains else f"-N {chain}")
            changes += 1
        for chain, rules in t.chains.items():
            if chain in cur.chains and cur.chain_rules(chain) == rules:
                continue
            lines.extend(f"-A {chain} {r}" for r in rules)
        lengths = {c: len(cur.chain_rules(c)) for c in cur.chains}
        for j in sorted(t.jumps, key=lambda j: (j.chain, j.position)):
            if j.rule in cur.chain_rules(j.chain):
                continue
            n = lengths.get(j.chain, 0)
            lines.append(f"-I {j.chain} {min(j.position, n + 1)} {j.rule}")
            lengths[j.chain] = n + 1
            changes += 1
        if lines:
            out += [f"*{t.table}", *lines, "COMMIT"]
    return ("\n".join(out) + "\n" if out else ""), changes


def owned_to_json(t: OwnedTable) -> dict[str, object]:
    return {
        "backend": t.backend,
        "table": t.table,
        "chains": t.chains,
        "chain_owner": {c: o.value for c, o in t.chain_owner.items()},
        "jumps": [{"chain": j.chain, "position": j.position, "rule": j.rule, "owner": j.owner.value} for j in t.jumps],
    }


def owned_from_json(d: dict[str, object]) -> OwnedTable:
    chains = d["chains"]
    owners = d["chain_owner"]
    jumps = d["jumps"]
    assert isinstance(chains, dict) and isinstance(owners, dict) and isinstance(jumps, list)
    return OwnedTable(
        str(d["backend"]),
        str(d["table"]),
        {str(k): list(v) for k, v in chains.items()},
        {str(k): Owner(v) for k, v in owners.items()},
        [RuleRef(j["chain"], int(j["position"]), j["rule"], Owner(j["owner"])) for j in jumps],
    )


# ---------------------------------------------------------------- ipset


@dataclass
class IpSet:
    name: str
    lines: list[str]  # "create ..." then "add ..." lines, as ipset save prints them
    owner: Owner | None


def ipset_available() -> bool:
    return shutil.which("ipset") is not None


def parse_ipsets(text: str) -> dict[str, IpSet]:
    sets: dict[str, IpSet] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("create", "add"):
            s = sets.setdefault(words[1], IpSet(words[1], [], ipset_owner(words[1])))
            s.lines.append(line)
    return sets


def save_ipsets() -> str:
    return run_tool(["ipset", "save"]) if ipset_available() else ""


# ---------------------------------------------------------------- nftables


def nft_available() -> bool:
    return shutil.which("nft") is not None


def nft_tables() -> list[tuple[str, str]]:
    if not nft_available():
        return []
    data = json.loads(run_tool(["nft", "-j", "list", "tables"]) or "{}")
    return [(e["table"]["family"], e["table"]["name"]) for e in data.get("nftables", []) if "table" in e]


def owned_nft_tables(owners: frozenset[Owner]) -> list[tuple[str, str, Owner]]:
    return [(f, n, o) for f, n in nft_tables() if (o := nft_table_owner(f, n)) is not None and o in owners]


def nft_table_text(family: str, name: str) -> str:
    return run_tool(["nft", "list", "table", family, name])
