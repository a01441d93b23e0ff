"""Error paths of the node transports (the local transport runs for real in tests/netns)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cni_migrate.actions.nodes.transport import LocalTransport, SshTransport, TransportError, make_transport
from cni_migrate.kube.nodepods import node_pod


def fake_ssh(tmp_path: Path, body: str) -> str:
    p = tmp_path / "ssh"
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return str(p)


def test_ssh_passes_the_script_on_stdin_and_returns_its_exit_code(tmp_path: Path) -> None:
    # A stand-in for ssh that runs the remote command locally: the script arrives on stdin, unquoted.
    ssh = fake_ssh(tmp_path, 'while [ "$1" != "--" ]; do shift; done; shift; shift; exec "$@"\n')
    t = SshTransport(sudo=False, ssh_binary=ssh)
    r = t.run("node-1", 'echo "it\'s $((1 + 2))"; exit 3', timeout=10)
    assert (r.exit_code, r.stdout) == (3, "it's 3\n")
    assert t.argv("node-1")[-4:] == ["--", "node-1", "sh", "-s"]
    assert SshTransport(user="ops", host_for={"n": "10.0.0.5"}).argv("n")[-8:] == [
        "-l",
        "ops",
        "--",
        "10.0.0.5",
        "sudo",
        "-n",
        "sh",
        "-s",
    ]


def test_ssh_failure_is_a_transport_error(tmp_path: Path) -> None:
    ssh = fake_ssh(tmp_path, "echo 'ssh: connect to host n1 port 22: No route to host' >&2; exit 255\n")
    with pytest.raises(TransportError, match="No route to host"):
        SshTransport(ssh_binary=ssh).run("n1", "true", timeout=10)


def test_local_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    t0 = time.monotonic()
    with pytest.raises(TransportError, match="timed out"):
        LocalTransport().run("n", f"(sleep 3; touch {marker}) & sleep 30", timeout=1)
    assert time.monotonic() - t0 < 10
    time.sleep(3.5)
    assert not marker.exists()  # the background child died with the group


def test_make_transport() -> None:
    assert make_transport("local").name == "local"
    assert make_transport("ssh", user="root").name == "ssh"
    with pytest.raises(ValueError, match="needs cluster, namespace, image"):
        make_transport("pod")
    with pytest.raises(ValueError, match="expected pod, ssh or local"):
        make_transport("telnet")


def test_node_pod_for_plain_host_shell_enters_the_hosts_mount_namespace() -> None:
    pod = node_pod("p", "ns", "node-1", "img", "ip route", "sa", host_mounts=True)
    c = pod.spec.containers[0]
    assert c.command == ["nsenter", "-t", "1", "-m", "-n", "--", "sh", "-c", "ip route"]
    assert not c.volumeMounts and pod.spec.nodeName == "node-1" and c.securityContext.privileged
