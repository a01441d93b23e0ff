"""Issue 16 items 1 and 3: the runbook's blocks run as written. Node checks go through ``ssh "$NODE" ...``; here
ssh is replaced by what ssh does (join the arguments with spaces, hand the string to the remote shell: ``sh -c
"$*"``) and sudo by ``exec "$@"``, and the rendered blocks run in a real bash, inside a network namespace for the
interface check."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from plan_helpers_shim import lossy_plan

from cni_migrate.analysis.plan import Plan, render_runbook
from cni_migrate.analysis.plan.model import Check, CommandCheck, ObjectCheck
from cni_migrate.analysis.plan.runbook import check_lines, pin_lines, pins, remote

SSH = '#!/bin/sh\n# what ssh does with its arguments: join them, run the string in the remote shell\nshift\nexec sh -c "$*"\n'
SUDO = '#!/bin/sh\nexec "$@"\n'


@pytest.fixture(scope="module")
def plan() -> Plan:
    return lossy_plan()


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    b = tmp_path / "bin"
    b.mkdir()
    for name, text in (("ssh", SSH), ("sudo", SUDO)):
        (b / name).write_text(text)
        (b / name).chmod(0o755)
    return b


def _check(plan: Plan, step_id: str, description: str) -> Check:
    step = plan.step(step_id)
    for c in [*step.preconditions, *step.success]:
        if c.description == description:
            return c
    raise AssertionError(f"no check {description!r} in {step_id}")


def _run_block(lines: list[str], fake_bin: Path, *, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    script = "\n".join(["(", "set -euo pipefail", *lines, ")"]) + "\n"
    argv = ["bash", "-c", script]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    env = {"PATH": f"{fake_bin}:/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_remote_quotes_the_command_once(fake_bin: Path) -> None:
    script = "printf '[%s]' \"a  b\" 'c d' && test -n \"$HOME\" && echo ok"
    r = subprocess.run(
        ["sh", "-c", "NODE=n1; " + remote(script)],
        capture_output=True,
        text=True,
        env={"PATH": f"{fake_bin}:/usr/bin:/bin", "HOME": "/root"},
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[a  b][c d]ok\n"


def test_node_backup_check_passes_only_when_the_backup_exists(plan: Plan, fake_bin: Path, tmp_path: Path) -> None:
    check = _check(plan, "backup-nodes", "the node backup exists")
    node_dir = tmp_path / "node-backup"
    lines = [line.replace(plan.node_backup_dir, str(node_dir)) for line in check_lines(check, plan)]
    missing = _run_block(lines, fake_bin)
    assert missing.returncode != 0 and "FAILED: the node backup exists" in missing.stderr
    (node_dir / "cni-net.d").mkdir(parents=True)
    (node_dir / "iptables.rules").write_text("*filter\nCOMMIT\n")
    present = _run_block(lines, fake_bin)
    assert present.returncode == 0, present.stderr


@pytest.fixture
def netns() -> Iterator[str]:
    if (
        shutil.which("ip") is None
        or subprocess.run(["ip", "netns", "list"], capture_output=True, check=False).returncode != 0
    ):
        pytest.skip("needs ip netns (root)")
    name = f"cnim-rb-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.mark.netns
def test_no_old_cni_interface_check_fails_while_one_is_left(
    plan: Plan, fake_bin: Path, netns: str, tmp_path: Path
) -> None:
    step = next(s for s in plan.steps() if s.id.startswith("clean-nodes"))
    check = next(c for c in step.success if c.description == "no old CNI interface is left")
    lines = check_lines(check, plan)
    clean = _run_block(lines, fake_bin, netns=netns)
    assert clean.returncode == 0, clean.stderr
    subprocess.run(
        ["ip", "netns", "exec", netns, "ip", "link", "add", "cali0a1b2c3d", "type", "veth", "peer", "name", "peer0"],
        check=True,
    )
    left = _run_block(lines, fake_bin, netns=netns)
    assert left.returncode != 0 and "FAILED: no old CNI interface is left" in left.stderr
    assert "cali0a1b2c3d" in left.stdout


def test_checks_never_exit_the_shell(plan: Plan) -> None:
    md = render_runbook(plan)
    body = [line for line in md.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in body if " exit " in f" {line} " or line.strip().startswith("exit")]


def test_absent_check_fails_the_block_without_exit(plan: Plan, fake_bin: Path, tmp_path: Path) -> None:
    """An ObjectCheck "absent" runs kubectl; a kubectl that prints the object makes the block fail, and the
    calling shell carries on."""
    check = next(c for s in plan.steps() for c in s.success if isinstance(c, ObjectCheck) and c.state == "absent")
    kubectl = fake_bin / "kubectl"
    kubectl.write_text('#!/bin/sh\necho "$@" >> "$(dirname "$0")/calls"\necho daemonset.apps/still-here\n')
    kubectl.chmod(0o755)
    lines = pin_lines(check_lines(check, plan), pins(plan))
    r = subprocess.run(
        ["bash", "-c", "(\nset -euo pipefail\n" + "\n".join(lines) + "\n)\necho shell-still-open"],
        capture_output=True,
        text=True,
        env={"PATH": f"{fake_bin}:/usr/bin:/bin", "KUBE_CONTEXT": "planned"},
        check=False,
    )
    assert "shell-still-open" in r.stdout and "FAILED" in r.stderr
    assert "--context planned" in (fake_bin / "calls").read_text()


def test_command_check_with_expect_fails_on_mismatch(plan: Plan, fake_bin: Path) -> None:
    check = _check(plan, "preflight", "helm is installed")
    assert isinstance(check, CommandCheck)
    nodes = next(c for c in plan.step("preflight").preconditions if isinstance(c, CommandCheck) and c.shell)
    kubectl = fake_bin / "kubectl"
    kubectl.write_text("#!/bin/sh\necho node/some-other-node\n")
    kubectl.chmod(0o755)
    lines = pin_lines(check_lines(nodes, plan), pins(plan))
    r = subprocess.run(
        ["bash", "-c", "(\nset -euo pipefail\n" + "\n".join(lines) + "\n)"],
        capture_output=True,
        text=True,
        env={"PATH": f"{fake_bin}:/usr/bin:/bin", "KUBE_CONTEXT": "planned"},
        check=False,
    )
    assert r.returncode != 0 and "FAILED" in r.stderr
