"""The node agent: ``inspect``, ``backup``, ``clean`` and ``restore`` of the old CNI's and kube-proxy's state on
the node it runs on (in its network namespace and under its file-system root).

``clean`` removes exactly the owned state (see :mod:`owners`) and leaves everything else byte-identical: it
backs the node up first (into a new backup directory, written to a temporary name and renamed when complete,
every file checksummed), moves the old CNI's files into that backup, and only then deletes. Each step reads
the current state first, so a second run after an interrupted one finishes the work and a run on a clean node
changes nothing. ``restore`` verifies the checksums and adds back what is missing, from the oldest backup not
yet restored (the state before the first ``clean``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from cni_migrate.actions.nodes import firewall as fw
from cni_migrate.actions.nodes import netlink as nl
from cni_migrate.actions.nodes.owners import Owner, cni_file_owner, names

PAUSE_ENV = "CNI_MIGRATE_NODE_PAUSE_AFTER"  # test hook: stop (sleep) after the named clean stage
ROOT_ENV = "CNI_MIGRATE_NODE_ROOT"
ALL_OWNERS = frozenset(Owner)


class AgentError(Exception):
    """The agent cannot do what was asked; ``exit_code`` 2 for bad input/environment, 1 for a failed action."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class NodePaths:
    root: Path
    backup_dir: Path

    @classmethod
    def at(cls, root: str | Path | None = None, backup_dir: str | Path | None = None) -> NodePaths:
        r = Path(root or os.environ.get(ROOT_ENV) or "/")
        return cls(r, Path(backup_dir) if backup_dir else r / "var/lib/cni-migrate/node-backups")

    def host(self, path: str) -> Path:
        """A node path (``/etc/cni/net.d``) under the root."""
        return self.root / path.lstrip("/")

    @property
    def cni_conf_dir(self) -> Path:
        return self.host("/etc/cni/net.d")

    def owned_dirs(self) -> dict[Owner, list[Path]]:
        # Flannel's daemon writes /run/flannel/subnet.env; Calico keeps /var/lib/calico (nodename, mtu) and
        # /var/run/calico (bird sockets, cni-server state).
        return {
            Owner.flannel: [self.host("/run/flannel")],
            Owner.calico: [self.host("/var/lib/calico"), self.host("/var/run/calico")],
            Owner.kube_proxy: [],
        }


@dataclass
class Change:
    kind: str
    action: str  # "remove", "add", "move", "keep"
    what: str
    owner: str | None = None

    def line(self) -> str:
        sign = {"remove": "-", "move": "-", "add": "+"}.get(self.action, " ")
        owner = f" [{self.owner}]" if self.owner else ""
        return f"{sign} {self.kind}: {self.what}{owner}"


@dataclass
class Report:
    action: str
    owners: list[str]
    dry_run: bool = False
    backup: str | None = None
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_restorable: list[str] = field(default_factory=list)
    found: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- reading the node


@dataclass
class Owned:
    """The owned state of a set of owners on this node, as read now."""

    owners: frozenset[Owner]
    backends: list[fw.Backend]
    saves: dict[str, str]  # backend label -> full save
    iptables: list[fw.OwnedTable]
    ipsets_save: str
    ipsets: dict[str, fw.IpSet]
    nft: list[tuple[str, str, Owner]]
    netlink: nl.Record
    links: list[nl.Record]
    routes: list[nl.Record]
    neighbours: list[nl.Record]
    fdb: list[nl.Record]
    files: list[tuple[Path, Owner]]
    flannel_networks: list[str]
    ipvs: str | None
    notes: list[str]

    def changes(self, action: str = "remove") -> list[Change]:
        out: list[Change] = []
        for t in self.iptables:
            out += [Change(t.backend, action, f"{t.table}: -A {j.chain} {j.rule}", j.owner.value) for j in t.jumps]
            out += [Change(t.backend, action, f"{t.table}: chain {c}", t.chain_owner[c].value) for c in t.chains]
        out += [Change("ipset", action, s.name, s.owner.value if s.owner else None) for s in self.ipsets.values()]
        out += [Change("nftables", action, f"table {f} {n}", o.value) for f, n, o in self.nft]
        if self.ipvs:
            out.append(Change("ipvs", action, "all IPVS virtual services", Owner.kube_proxy.value))
        out += [Change("route", action, nl.route_text(r), r["owner"]) for r in self.routes if not r["via_link"]]
        out += [Change("link", action, f"{x['name']} ({x['kind']})", x["owner"]) for x in self.links]
        move = "move" if action == "remove" else action
        out += [Change("file", move, str(p), o.value) for p, o in self.files]
        return out

    def empty(self) -> bool:
        return not (self.iptables or self.ipsets or self.nft or self.ipvs or self.routes or self.links or self.files)


def _read_subnet_env(path: Path) -> list[str]:
    nets = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key in ("FLANNEL_NETWORK", "FLANNEL_IPV6_NETWORK") and value.strip():
                nets.append(value.strip())
    return nets


def read_owned(paths: NodePaths, owners: frozenset[Owner], *, flannel_networks: list[str] | None = None) -> Owned:
    notes: list[str] = []
    backends = fw.detect_backends()
    saves: dict[str, str] = {}
    tables: list[fw.OwnedTable] = []
    for b in backends:
        try:
            text = fw.run_tool([b.save])
        except fw.NodeToolError as e:
            notes.append(f"{b.label}: not readable on this node ({e}); skipped")
            continue
        saves[b.label] = text
        tables += fw.owned_state(fw.parse_save(text), owners, b)
    if not saves:
        raise fw.NodeToolError("no iptables backend could be read: " + "; ".join(notes))
    ipsets_save = ""
    if fw.ipset_available():
        ipsets_save = fw.save_ipsets()
    else:
        notes.append("ipset: not installed on this node; ipsets not checked")
    ipsets = {n: s for n, s in fw.parse_ipsets(ipsets_save).items() if s.owner in owners}
    if not fw.nft_available():
        notes.append("nft: not installed on this node; nftables tables not checked")
    nft = fw.owned_nft_tables(owners)
    state = nl.read_state()
    links = [x for x in state["links"] if x["owner"] and Owner(x["owner"]) in owners]
    link_owners = {x["name"]: x["owner"] for x in links}
    nets = list(flannel_networks or [])
    if Owner.flannel in owners:
        nets += _read_subnet_env(paths.host("/run/flannel/subnet.env"))
    routes = []
    for r in state["routes"]:
        o = nl.route_owner(r, link_owners, nets if Owner.flannel in owners else [])
        if o is not None and o in owners:
            routes.append({**r, "owner": o.value, "via_link": r["oif"] in link_owners})
    files: list[tuple[Path, Owner]] = []
    if paths.cni_conf_dir.is_dir():
        for p in sorted(paths.cni_conf_dir.iterdir()):
            o = cni_file_owner(p.name)
            if o is not None and o in owners:
                files.append((p, o))
    for o, dirs in paths.owned_dirs().items():
        if o in owners:
            files += [(d, o) for d in dirs if d.exists()]
    ipvs = None
    if Owner.kube_proxy in owners:
        if not Path("/proc/net/ip_vs").exists():
            notes.append("IPVS: this kernel has no ip_vs; IPVS services not checked")
        elif not shutil.which("ipvsadm"):
            notes.append("IPVS: the kernel has ip_vs but ipvsadm is not installed; IPVS services not checked")
        else:
            text = fw.run_tool(["ipvsadm", "-S", "-n"])
            ipvs = text if text.strip() else None
    owned_links = {x["name"] for x in links}
    return Owned(
        owners,
        backends,
        saves,
        tables,
        ipsets_save,
        ipsets,
        nft,
        state,
        links,
        routes,
        [n for n in state["neighbours"] if n["link"] in owned_links],
        [f for f in state["fdb"] if f["link"] in owned_links],
        files,
        nets,
        ipvs,
        notes,
    )


def _owned_or_error(paths: NodePaths, owners: frozenset[Owner], nets: list[str] | None) -> Owned:
    try:
        return read_owned(paths, owners, flannel_networks=nets)
    except fw.NodeToolError as e:
        raise AgentError(f"node: {e}", exit_code=2) from e


def inspect(paths: NodePaths, owners: frozenset[Owner] = ALL_OWNERS) -> Report:
    owned = _owned_or_error(paths, owners, None)
    report = Report("inspect", sorted(o.value for o in owners), notes=owned.notes)
    report.changes = owned.changes("keep")
    report.found = {
        "iptables_backends": [b.label for b in owned.backends],
        "counts": {o.value: sum(1 for c in report.changes if c.owner == o.value) for o in sorted(owners, key=str)},
    }
    return report


# ---------------------------------------------------------------- backups


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _manifest_path(backup: Path) -> Path:
    return backup / "manifest.json"


def _write_manifest(backup: Path, manifest: dict[str, Any]) -> None:
    tmp = backup / "manifest.json.tmp"
    _write(tmp, json.dumps(manifest, indent=2, sort_keys=True))
    tmp.replace(_manifest_path(backup))


def list_backups(paths: NodePaths) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    if paths.backup_dir.is_dir():
        for d in sorted(paths.backup_dir.iterdir()):
            if d.is_dir() and not d.name.endswith(".tmp") and _manifest_path(d).is_file():
                with contextlib.suppress(ValueError, OSError):
                    out.append((d, json.loads(_manifest_path(d).read_text())))
    return out


def take_backup(paths: NodePaths, owned: Owned, purpose: str) -> Path:
    """Write a complete, checksummed backup of the owned state (and the full firewall/netlink state for the
    record) to a new directory; it appears under its final name only once complete."""
    try:
        paths.backup_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AgentError(f"node: cannot create the backup directory {paths.backup_dir}: {e.strerror}") from e
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    final = paths.backup_dir / stamp
    tmp = paths.backup_dir / f"{stamp}.tmp"
    try:
        tmp.mkdir()
        for label, text in owned.saves.items():
            _write(tmp / "iptables" / f"{label.replace(' ', '-')}.save", text)
        _write(tmp / "ipset.save", owned.ipsets_save)
        for family, name, _ in owned.nft:
            _write(tmp / "nft" / f"{family}-{name}.nft", fw.nft_table_text(family, name))
        if owned.ipvs:
            _write(tmp / "ipvs.save", owned.ipvs)
        _write(tmp / "netlink.json", json.dumps(owned.netlink, indent=1, sort_keys=True))
        files = []
        for p, o in owned.files:
            dest = tmp / "files" / p.relative_to(paths.root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if p.is_dir():
                shutil.copytree(p, dest, symlinks=True)
            else:
                shutil.copy2(p, dest, follow_symlinks=False)
            files.append({"path": str(p.relative_to(paths.root)), "owner": o.value, "dir": p.is_dir()})
        owned_doc = {
            "iptables": [fw.owned_to_json(t) for t in owned.iptables],
            "ipsets": {
                n: {"lines": s.lines, "owner": s.owner.value if s.owner else None} for n, s in owned.ipsets.items()
            },
            "nft": [{"family": f, "name": n, "owner": o.value} for f, n, o in owned.nft],
            "links": owned.links,
            "addresses": [a for a in owned.netlink["addresses"] if a["link"] in {x["name"] for x in owned.links}],
            "routes": owned.routes,
            "neighbours": owned.neighbours,
            "fdb": owned.fdb,
            "files": files,
            "flannel_networks": owned.flannel_networks,
        }
        _write(tmp / "owned.json", json.dumps(owned_doc, indent=1, sort_keys=True))
        sums = {
            str(f.relative_to(tmp)): _sha256(f) for f in sorted(tmp.rglob("*")) if f.is_file() and not f.is_symlink()
        }
        manifest = {
            "id": stamp,
            "purpose": purpose,
            "owners": sorted(o.value for o in owned.owners),
            "state": "taken",
            "node_root": str(paths.root),
            "sha256": sums,
        }
        _write_manifest(tmp, manifest)
        tmp.rename(final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AgentError(f"node: cannot write the backup {final}: {e}") from e
    return final


def verify_backup(backup: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads(_manifest_path(backup).read_text())
    except (OSError, ValueError) as e:
        raise AgentError(f"node: backup {backup}: manifest.json unreadable: {e}", exit_code=2) from e
    for rel, digest in manifest.get("sha256", {}).items():
        f = backup / rel
        if not f.is_file():
            raise AgentError(f"node: backup {backup}: {rel} is missing (the manifest lists it)", exit_code=2)
        if _sha256(f) != digest:
            raise AgentError(f"node: backup {backup}: {rel} does not match its sha256 in manifest.json", exit_code=2)
    return manifest


def backup(paths: NodePaths, owners: frozenset[Owner] = ALL_OWNERS) -> Report:
    owned = _owned_or_error(paths, owners, None)
    path = take_backup(paths, owned, "backup")
    report = Report("backup", sorted(o.value for o in owners), backup=str(path), notes=owned.notes)
    report.changes = owned.changes("keep")
    return report


# ---------------------------------------------------------------- clean


def _copy_file(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)


def _pause(stage: str) -> None:
    if os.environ.get(PAUSE_ENV) == stage:
        print(f"cni-migrate node: paused after {stage} ({PAUSE_ENV})", file=sys.stderr, flush=True)
        time.sleep(3600)


def clean(
    paths: NodePaths, owners: frozenset[Owner], *, dry_run: bool = False, flannel_networks: list[str] | None = None
) -> Report:
    if not owners:
        raise AgentError("node clean: nothing selected: give --old-cni calico|flannel and/or --kube-proxy", 2)
    owned = _owned_or_error(paths, owners, flannel_networks)
    report = Report("clean", sorted(o.value for o in owners), dry_run=dry_run, notes=owned.notes)
    report.changes = owned.changes()
    if dry_run or owned.empty():
        if owned.empty():
            report.notes.append(f"nothing of {names(owners)} on this node: nothing to do")
        return report
    path = take_backup(paths, owned, "clean")
    report.backup = str(path)
    manifest = verify_backup(path)
    manifest["state"] = "cleaning"
    _write_manifest(path, manifest)
    _apply_clean(paths, owned, path)
    manifest["state"] = "cleaned"
    _write_manifest(path, manifest)
    return report


def _step(what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except fw.NodeToolError as e:
        raise AgentError(f"node clean: {what}: {e}") from e
    except nl.NodeNetlinkError as e:
        raise AgentError(f"node clean: {what}: {e}") from e


def _apply_clean(paths: NodePaths, owned: Owned, backup_path: Path) -> None:
    by_backend: dict[str, list[fw.OwnedTable]] = {}
    for t in owned.iptables:
        by_backend.setdefault(t.backend, []).append(t)
    for b in owned.backends:
        if b.label in by_backend:
            script = fw.clean_script(by_backend[b.label])
            _step(b.label, partial(fw.run_tool, [b.restore, "--noflush"], stdin=script))
    _pause("iptables")
    for name in owned.ipsets:
        _step(f"ipset {name}", partial(fw.run_tool, ["ipset", "destroy", name]))
    for family, name, _ in owned.nft:
        _step(f"nft table {family} {name}", partial(fw.run_tool, ["nft", "delete", "table", family, name]))
    if owned.ipvs:
        _step("ipvs", lambda: fw.run_tool(["ipvsadm", "-C"]))
    _pause("firewall")
    for r in owned.routes:
        if not r["via_link"]:
            _step("routes", partial(nl.delete_route, r))
    for x in owned.links:
        _step("links", partial(nl.delete_link, x["name"]))
    _pause("netlink")
    for p, _ in owned.files:
        copy = backup_path / "files" / p.relative_to(paths.root)
        if not copy.exists():
            raise AgentError(f"node clean: {p} is not in the backup {backup_path}; not removing it")
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except OSError as e:
            raise AgentError(
                f"node clean: cannot move {p} to the backup: {e.strerror} (the backup {backup_path} is intact; "
                "fix this and run clean again)"
            ) from e
    _pause("files")


# ---------------------------------------------------------------- restore


def _restore_source(paths: NodePaths, backup_id: str | None) -> tuple[Path, dict[str, Any]]:
    backups = list_backups(paths)
    if backup_id:
        for d, m in backups:
            if d.name == backup_id:
                return d, m
        raise AgentError(f"node restore: --backup {backup_id}: no such backup in {paths.backup_dir}", 2)
    pending = [(d, m) for d, m in backups if m.get("purpose") == "clean" and m.get("state") != "restored"]
    if not pending:
        raise AgentError(f"node restore: no clean to undo: no unrestored backup in {paths.backup_dir}", 2)
    return pending[0]


def restore(paths: NodePaths, *, backup_id: str | None = None, dry_run: bool = False) -> Report:
    src, _ = _restore_source(paths, backup_id)
    manifest = verify_backup(src)
    owned = json.loads((src / "owned.json").read_text())
    owners = frozenset(Owner(o) for o in manifest["owners"])
    report = Report("restore", sorted(o.value for o in owners), dry_run=dry_run, backup=str(src))
    try:
        backends = {b.label: b for b in fw.detect_backends()}
    except fw.NodeToolError as e:
        raise AgentError(f"node: {e}", exit_code=2) from e
    current = nl.read_state()
    have_links = {x["name"] for x in current["links"]}
    actions: list[Callable[[], Any]] = []

    for x in owned["links"]:
        if x["name"] in have_links:
            continue
        if x["kind"] not in nl.RECREATABLE_KINDS:
            report.not_restorable.append(
                f"link {x['name']} ({x['kind']}): its peer was in a pod's network namespace; restart that pod"
            )
            continue
        addrs = [a for a in owned["addresses"] if a["link"] == x["name"]]
        report.changes.append(Change("link", "add", f"{x['name']} ({x['kind']})", x["owner"]))
        actions.append(partial(nl.recreate_link, x, addrs))
    gone = {line.split(" ")[1] for line in report.not_restorable}
    cur_routes = {nl.route_text(r) for r in current["routes"]}
    for r in owned["routes"]:
        if r["proto"] == nl.RTPROT_KERNEL or r["oif"] in gone or nl.route_text(r) in cur_routes:
            continue
        report.changes.append(Change("route", "add", nl.route_text(r), r["owner"]))
        actions.append(partial(nl.add_route, r))
    for n in owned["neighbours"]:
        if n["link"] not in gone:
            actions.append(partial(nl.add_neighbour, n))
    for f in owned["fdb"]:
        if f["link"] not in gone:
            actions.append(partial(nl.add_fdb, f))
    if owned["ipsets"]:
        have = fw.parse_ipsets(fw.save_ipsets())
        lines = []
        for name, s in owned["ipsets"].items():
            if name not in have:
                report.changes.append(Change("ipset", "add", name, s["owner"]))
                lines += s["lines"]
        if lines:
            text = "\n".join(lines) + "\n"
            actions.append(partial(fw.run_tool, ["ipset", "restore", "-exist"], stdin=text))
    saved_tables: dict[str, list[fw.OwnedTable]] = {}
    for t in owned["iptables"]:
        saved_tables.setdefault(t["backend"], []).append(fw.owned_from_json(t))
    for label, tables in saved_tables.items():
        if label not in backends:
            raise AgentError(f"node restore: the backup has {label} state but this node has no {label} binaries", 2)
        b = backends[label]
        script, n = fw.restore_script(tables, fw.parse_save(fw.run_tool([b.save])))
        if script:
            report.changes.append(Change(label, "add", f"{n} chains/jumps", None))
            actions.append(partial(fw.run_tool, [b.restore, "--noflush"], stdin=script))
    have_nft = set(fw.nft_tables())
    for t in owned["nft"]:
        if (t["family"], t["name"]) not in have_nft:
            report.changes.append(Change("nftables", "add", f"table {t['family']} {t['name']}", t["owner"]))
            f = src / "nft" / f"{t['family']}-{t['name']}.nft"
            actions.append(partial(fw.run_tool, ["nft", "-f", str(f)]))
    if (src / "ipvs.save").is_file():
        report.changes.append(Change("ipvs", "add", "IPVS virtual services", Owner.kube_proxy.value))
        actions.append(lambda: fw.run_tool(["ipvsadm", "-R"], stdin=(src / "ipvs.save").read_text()))
    for entry in owned["files"]:
        dest = paths.root / entry["path"]
        copy = src / "files" / entry["path"]
        if dest.exists():
            continue
        report.changes.append(Change("file", "add", str(dest), entry["owner"]))
        if entry["dir"]:
            actions.append(partial(shutil.copytree, copy, dest, symlinks=True))
        else:
            actions.append(partial(_copy_file, copy, dest))
    if dry_run:
        return report
    for act in actions:
        try:
            act()
        except (fw.NodeToolError, nl.NodeNetlinkError, OSError) as e:
            raise AgentError(f"node restore: {e} (the backup {src} is unchanged; run restore again)") from e
    for d, m in list_backups(paths):
        if m.get("purpose") == "clean" and m.get("state") != "restored":
            m["state"] = "restored"
            _write_manifest(d, m)
    return report
