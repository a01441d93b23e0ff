"""How the executor reaches a node: one interface, several transports (a privileged pod, ssh, this machine).

The executor only ever calls :meth:`NodeTransport.run` with a complete shell script and a timeout; a transport
never interprets the script. A transport that cannot start the script (no route to the node, pod refused by
PodSecurity, ssh authentication) raises :class:`TransportError`; a script that ran and failed is a
:class:`CommandResult` with a non-zero ``exit_code``, so the two are never confused.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cni_migrate.kube.client import Cluster


@dataclass(frozen=True)
class CommandResult:
    node: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class TransportError(Exception):
    """The script could not be run on the node at all (as opposed to a script that ran and failed)."""


class NodeTransport(Protocol):
    name: str

    def run(self, node: str, script: str, *, timeout: float) -> CommandResult:
        """Run ``script`` with ``sh -c`` as root on ``node``; return its exit code and output."""
        ...

    def close(self) -> None: ...


class LocalTransport:
    """Run on this machine: in the network namespace mapped to the node (tests, one netns per simulated node),
    or directly when no mapping is given (an SRE running the agent on the node itself).

    ``node_env`` adds environment variables per node (tests give each simulated node its own file-system root
    with ``CNI_MIGRATE_NODE_ROOT``). The script runs in its own process group; on timeout the whole group is
    killed, so nothing of it outlives the call."""

    name = "local"

    def __init__(
        self, node_netns: Mapping[str, str] | None = None, node_env: Mapping[str, Mapping[str, str]] | None = None
    ) -> None:
        self._netns = dict(node_netns or {})
        self._env = {k: dict(v) for k, v in (node_env or {}).items()}

    def run(self, node: str, script: str, *, timeout: float) -> CommandResult:
        argv = ["sh", "-c", script]
        if self._netns:
            if node not in self._netns:
                raise TransportError(f"local transport: node {node!r} has no network namespace mapped")
            argv = ["ip", "netns", "exec", self._netns[node], *argv]
        env = {**os.environ, **self._env.get(node, {})}
        try:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                start_new_session=True,
            )
        except OSError as e:
            raise TransportError(f"local transport: node {node}: cannot start {argv[0]}: {e}") from e
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise TransportError(f"local transport: node {node}: script timed out after {timeout:.0f} s") from e
        return CommandResult(node, proc.returncode, out, err)

    def close(self) -> None:
        return None


def _run_process(argv: list[str], node: str, what: str, timeout: float, stdin: str | None = None) -> CommandResult:
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as e:
        raise TransportError(f"{what} transport: node {node}: cannot start {argv[0]}: {e}") from e
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise TransportError(f"{what} transport: node {node}: no result after {timeout:.0f} s") from e
    return CommandResult(node, proc.returncode, out, err)


class SshTransport:
    """Run through the ``ssh`` binary with the user's ssh configuration (hosts, keys, jump hosts, known_hosts):
    ``ssh -o BatchMode=yes NODE sudo -n sh -s`` with the script on stdin, so it is never re-quoted. ssh's own
    failures (exit 255: unreachable, authentication) are transport errors; the script's exit code is returned."""

    name = "ssh"

    def __init__(
        self,
        *,
        user: str | None = None,
        config: str | None = None,
        sudo: bool = True,
        host_for: Mapping[str, str] | None = None,
        ssh_binary: str = "ssh",
    ) -> None:
        self._user = user
        self._config = config
        self._sudo = sudo
        self._hosts = dict(host_for or {})
        self._ssh = ssh_binary

    def argv(self, node: str) -> list[str]:
        host = self._hosts.get(node, node)
        argv = [self._ssh, "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]
        if self._config:
            argv += ["-F", self._config]
        if self._user:
            argv += ["-l", self._user]
        return [*argv, "--", host, *(["sudo", "-n", "sh", "-s"] if self._sudo else ["sh", "-s"])]

    def run(self, node: str, script: str, *, timeout: float) -> CommandResult:
        result = _run_process(self.argv(node), node, "ssh", timeout, stdin=script)
        if result.exit_code == 255:
            last = result.stderr.strip().splitlines()
            raise TransportError(f"ssh transport: node {node}: {last[-1] if last else 'ssh failed (exit 255)'}")
        return result

    def close(self) -> None:
        return None


class PodTransport:
    """A short-lived privileged pod pinned to the node (hostNetwork, hostPID), running the project's own image;
    created and deleted per script. By default the script runs in the container with the host's root at /host
    (``CNI_MIGRATE_NODE_ROOT=/host``: what the node agent needs); ``host_mounts=True`` enters the host's mount
    namespace instead (``nsenter -t 1 -m -n``) for plain shell with the host's binaries. The namespace and
    ServiceAccount (with the PodSecurity ``privileged`` label) are made by the plan's node-access step."""

    name = "pod"

    def __init__(
        self,
        cluster: Cluster,
        *,
        namespace: str,
        image: str,
        service_account: str = "default",
        host_mounts: bool = False,
    ) -> None:
        self._cluster = cluster
        self._host_mounts = host_mounts
        self._namespace = namespace
        self._image = image
        self._sa = service_account
        self._seq = 0

    def run(self, node: str, script: str, *, timeout: float) -> CommandResult:
        from cni_migrate.kube import KubeError  # noqa: PLC0415 - the client library loads only for this transport
        from cni_migrate.kube.nodepods import run_node_pod  # noqa: PLC0415

        self._seq += 1
        name = f"cni-migrate-node-{secrets.token_hex(3)}-{self._seq}"
        try:
            run = run_node_pod(
                self._cluster,
                name=name,
                namespace=self._namespace,
                node=node,
                image=self._image,
                script=script,
                service_account=self._sa,
                timeout=timeout,
                host_mounts=self._host_mounts,
            )
        except KubeError as e:
            raise TransportError(f"pod transport: {e}") from e
        if run.exit_code is None:
            raise TransportError(f"pod transport: node {node}: pod {name} {run.phase}: {run.reason or 'no exit code'}")
        return CommandResult(node, run.exit_code, run.logs, "")

    def close(self) -> None:
        return None


def make_transport(kind: str, **options: Any) -> NodeTransport:
    """``pod`` (needs ``cluster``, ``namespace``, ``image``), ``ssh`` (``user``, ``config``, ``sudo``,
    ``host_for``) or ``local`` (``node_netns``, ``node_env``)."""
    if kind == "local":
        return LocalTransport(options.get("node_netns"), options.get("node_env"))
    if kind == "ssh":
        return SshTransport(**options)
    if kind == "pod":
        missing = [k for k in ("cluster", "namespace", "image") if options.get(k) is None]
        if missing:
            raise ValueError(f"--node-transport pod needs {', '.join(missing)}")
        return PodTransport(**options)
    raise ValueError(f"--node-transport: expected pod, ssh or local, got {kind!r}")
