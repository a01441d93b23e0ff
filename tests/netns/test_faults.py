"""Bad input and faults: no iptables binaries, an unknown iptables backend, a read-only /etc/cni/net.d, the agent
killed in the middle of a clean. Each gives a clear one-line error, leaves the backup intact, and a second run
completes (restore then brings back the state of before the first clean)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni_migrate.actions.nodes.agent import PAUSE_ENV, NodePaths, list_backups, verify_backup
from cni_migrate.actions.nodes.transport import TransportError
from cni_migrate_testbed.netns import NetnsLab, node_snapshot, snapshot_diff

from .agent_helpers import agent, transport_for
from .node_state import calico_state, host_state

VETH = "cali1a2b3c4d5e6"


@pytest.fixture
def lab(name_prefix: str) -> Iterator[NetnsLab]:
    with NetnsLab(name_prefix, nodes=1) as lab:
        host_state(lab, lab.nodes[0])
        calico_state(lab, lab.nodes[0], backend="nft")
        yield lab
    assert lab.leftovers() == []


def without_veth(snap: dict) -> dict:
    out = dict(snap)
    for key in ("links", "addresses"):
        out[key] = {k: v for k, v in snap[key].items() if k != VETH}
    for key in ("routes4", "routes6", "fdb"):
        out[key] = [r for r in snap[key] if VETH not in r]
    return out


def tool_dir(tmp_path: Path, tools: list[str]) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    for t in tools:
        found = shutil.which(t)
        assert found, t
        (d / t).symlink_to(found)
    return d


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [x for x in stderr.strip().splitlines() if x.strip()]
    assert len(lines) >= 1 and lines[0].startswith("error:"), stderr
    return " ".join(lines)


def test_no_iptables_binaries(lab: NetnsLab, tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path, ["ip", "ipset", "nft", "sh"])
    r = agent(lab, 0, "clean", "--old-cni", "calico", env=f"PATH={bin_dir}")
    assert r.exit_code == 2
    assert "no iptables binaries in PATH" in one_line_error(r.stderr)
    assert list_backups(NodePaths.at(lab.nodes[0].root)) == []  # nothing started, nothing written


def test_unknown_iptables_backend(lab: NetnsLab, tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path, ["ip", "ipset", "nft", "sh"])
    fake = bin_dir / "iptables-save"  # a node whose only iptables-save says neither legacy nor nf_tables
    fake.write_text("#!/bin/sh\necho 'iptables-save v1.4.21'\n")
    fake.chmod(0o755)
    r = agent(lab, 0, "inspect", env=f"PATH={bin_dir}")
    assert r.exit_code == 2
    msg = one_line_error(r.stderr)
    assert "unknown iptables backend" in msg and "v1.4.21" in msg


def test_read_only_cni_dir_then_second_run(lab: NetnsLab) -> None:
    node = lab.nodes[0]
    with_cni = node_snapshot(lab, node)
    conf = node.root / "etc/cni/net.d"
    inner = (
        f"mount --bind {conf} {conf} && mount -o remount,bind,ro {conf} && "
        f"exec {shlex.quote(sys.executable)} -m cni_migrate -o json node clean --old-cni calico"
    )
    r = transport_for(lab).run(node.name, f"unshare -m sh -c {shlex.quote(inner)}", timeout=120)
    assert r.exit_code == 1
    msg = one_line_error(r.stderr)
    assert "10-calico.conflist" in msg and "Read-only file system" in msg and "intact" in msg
    [(backup, _)] = list_backups(NodePaths.at(node.root))
    verify_backup(backup)  # every checksum still matches
    assert (conf / "10-calico.conflist").exists()

    second = agent(lab, 0, "clean", "--old-cni", "calico")
    assert second.ok, second.stderr
    assert not (conf / "10-calico.conflist").exists()
    assert json.loads(agent(lab, 0, "inspect", "--old-cni", "calico").stdout)["changes"] == []

    restored = agent(lab, 0, "restore")
    assert restored.ok, restored.stderr
    diff = snapshot_diff(without_veth(with_cni), without_veth(node_snapshot(lab, node)))
    assert diff == [], "\n".join(diff)


def test_agent_killed_mid_clean(lab: NetnsLab) -> None:
    node = lab.nodes[0]
    with_cni = node_snapshot(lab, node)
    script = f"{PAUSE_ENV}=firewall {shlex.quote(sys.executable)} -m cni_migrate node clean --old-cni calico"
    with pytest.raises(TransportError, match=r"timed out"):
        transport_for(lab).run(node.name, script, timeout=8)  # the transport gives up and kills the agent
    state = lab.run(node, ["iptables-nft-save"]).stdout
    assert "cali-" not in state  # the firewall part was done ...
    assert "vxlan.calico" in lab.run(node, ["ip", "link"]).stdout  # ... the links were not
    [(backup, manifest)] = list_backups(NodePaths.at(node.root))
    assert manifest["state"] == "cleaning"
    verify_backup(backup)
    assert not any(p.name.endswith(".tmp") for p in backup.parent.iterdir())

    second = agent(lab, 0, "clean", "--old-cni", "calico")
    assert second.ok, second.stderr
    assert "vxlan.calico" not in lab.run(node, ["ip", "link"]).stdout
    assert json.loads(agent(lab, 0, "inspect", "--old-cni", "calico").stdout)["changes"] == []

    # restore takes the first backup (the state before the interrupted clean), not the second one
    restored = agent(lab, 0, "restore")
    assert restored.ok, restored.stderr
    assert json.loads(restored.stdout)["backup"] == str(backup)
    diff = snapshot_diff(without_veth(with_cni), without_veth(node_snapshot(lab, node)))
    assert diff == [], "\n".join(diff)
    assert all(m["state"] == "restored" for _, m in list_backups(NodePaths.at(node.root)))
    assert os.environ.get(PAUSE_ENV) is None
