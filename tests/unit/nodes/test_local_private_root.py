"""The local transport's private node root: /etc, /var and /run as copy-on-write overlays whose writes land in the
node's own directory, never in this machine's files (needs root and overlayfs, as the netns tests do)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cni_migrate.actions.nodes.transport import LocalTransport, TransportError, make_transport, private_root

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")


@needs_root
def test_writes_land_in_the_private_root_and_never_in_this_machines_files(tmp_path: Path) -> None:
    root = tmp_path / "node1"
    root.mkdir()
    marker = f"cni-migrate-test-{os.getpid()}"
    t = LocalTransport(node_root={"n1": root})
    script = (
        f"mkdir -p /etc/cni/net.d /var/backups/{marker} /run/flannel && echo conf > /etc/cni/net.d/10-{marker}.conf"
        f" && echo saved > /var/backups/{marker}/f && echo 'FLANNEL_MTU=1450' > /run/flannel/{marker}.env"
        ' && grep -q ^root: /etc/passwd && echo "$0 $1"'  # this machine's files stay readable; no arguments leak
    )
    r = t.run("n1", script, timeout=30)
    assert r.ok, r.stderr
    assert r.stdout.strip() == "sh", r.stdout
    assert (root / f"etc/cni/net.d/10-{marker}.conf").read_text() == "conf\n"
    assert (root / f"var/backups/{marker}/f").read_text() == "saved\n"
    assert (root / f"run/flannel/{marker}.env").exists()
    for host_path in (f"/etc/cni/net.d/10-{marker}.conf", f"/var/backups/{marker}", f"/run/flannel/{marker}.env"):
        assert not Path(host_path).exists(), host_path
    # a later script sees what an earlier one wrote, and a delete is visible there and in the root only
    r = t.run("n1", f"cat /etc/cni/net.d/10-{marker}.conf && rm /etc/cni/net.d/10-{marker}.conf", timeout=30)
    assert (r.exit_code, r.stdout) == (0, "conf\n")
    assert not (root / f"etc/cni/net.d/10-{marker}.conf").exists()
    # a node without a private root runs in this machine's mount namespace as before
    assert LocalTransport(node_root={"n1": root}).argv("other", "true") == ["sh", "-c", "true"]


@needs_root
def test_a_root_that_cannot_be_mounted_is_a_transport_error(tmp_path: Path) -> None:
    # overlayfs needs the upper and work directories on one file system: a work directory elsewhere fails to mount
    shm = Path("/dev/shm") / f"cni-migrate-test-{os.getpid()}"
    shm.mkdir()
    try:
        root = tmp_path / "node1"
        root.mkdir()
        (tmp_path / "node1.overlay-work").symlink_to(shm)
        if os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same file system as the test's directory")
        with pytest.raises(TransportError, match="cannot mount its private root"):
            LocalTransport(node_root={"n1": root}).run("n1", "touch /etc/should-not-run", timeout=30)
        assert not (root / "etc/should-not-run").exists()
    finally:
        shutil.rmtree(shm)


def test_unsafe_roots_are_refused(tmp_path: Path) -> None:
    for bad, why in (
        ("relative/dir", "absolute"),
        (str(tmp_path / "missing"), "existing directory"),
        ("/", "must not be /"),
        ("/var/lib", "must not be /var"),
        ("/run", "must not be /run"),
    ):
        with pytest.raises(ValueError, match=why):
            private_root(bad)
    odd = tmp_path / "a,upperdir=x"
    odd.mkdir()
    with pytest.raises(ValueError, match="mount options"):
        make_transport("local", node_root={"n": str(odd)})
    quote = tmp_path / "a;b"
    quote.mkdir()
    with pytest.raises(ValueError, match="mount options"):
        LocalTransport(node_root={"n": quote})
