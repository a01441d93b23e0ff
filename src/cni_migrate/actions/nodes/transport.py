"""How the executor reaches a node: one interface, several transports (a privileged pod, ssh, this machine).

The executor only ever calls :meth:`NodeTransport.run` with a complete shell script and a timeout; a transport
never interprets the script. A transport that cannot start the script (no route to the node, pod refused by
PodSecurity, ssh authentication) raises :class:`TransportError`; a script that ran and failed is a
:class:`CommandResult` with a non-zero ``exit_code``, so the two are never confused.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
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


#: The directories a private node root overlays (see :class:`LocalTransport`): what node scripts write.
OVERLAID_DIRS = ("etc", "var", "run")
# Exit code and marker of the overlay wrapper when a mount fails (the script itself never ran).
_OVERLAY_FAILED = 125
_OVERLAY_MARKER = "cni-migrate local transport: cannot set up the private node root"
# Characters a private root may have: none that mount options (",", ":", "=") or the shell treat specially.
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/+@-]+")


def private_root(root: str | os.PathLike[str]) -> Path:
    """Check a private node root for :class:`LocalTransport`: an absolute, existing directory outside the
    directories it overlays (an upper layer inside its own lower one is refused by the kernel, and would hide the
    node's files from it), with no character that mount options or the shell treat specially. Returns it resolved."""
    path = Path(root)
    if not path.is_absolute():
        raise ValueError(f"private node root {str(root)!r}: expected an absolute path")
    resolved = path.resolve()
    if not resolved.is_dir():
        raise ValueError(f"private node root {str(root)!r}: expected an existing directory")
    for d in ("", *OVERLAID_DIRS):
        lower = Path("/") / d
        if resolved == lower or (d and lower in resolved.parents):
            raise ValueError(f"private node root {str(root)!r}: must not be {lower} or inside it")
    if not _SAFE_PATH.fullmatch(str(resolved)):
        raise ValueError(
            f"private node root {str(root)!r}: expected only letters, digits and . _ / + @ - in it "
            "(it goes into mount options)"
        )
    return resolved


def _overlay_wrapper(root: Path) -> str:
    """``sh -c`` text that, in a fresh mount namespace, overlays /etc, /var and /run with ROOT/etc, ROOT/var,
    ROOT/run (upper layers; the work directories are in the sibling ``ROOT.overlay-work``) and then runs the
    script given as ``$1``, so the script is never re-quoted."""
    work = Path(f"{root}.overlay-work")
    mounts = " && ".join(
        f"mount -t overlay overlay -o lowerdir=/{d},upperdir={root}/{d},workdir={work}/{d} /{d}" for d in OVERLAID_DIRS
    )
    return f'{{ {mounts}; }} || {{ echo "{_OVERLAY_MARKER}" >&2; exit {_OVERLAY_FAILED}; }}; exec sh -c "$1"'


class LocalTransport:
    """Run on this machine: in the network namespace mapped to the node (tests, one netns per simulated node),
    or directly when no mapping is given (an SRE running the agent on the node itself).

    ``node_env`` adds environment variables per node (tests give each simulated node its own file-system root
    with ``CNI_MIGRATE_NODE_ROOT``, or the agent's directory on ``PATH``). The script runs in its own process
    group; on timeout the whole group is killed, so nothing of it outlives the call.

    ``node_root`` gives a node a *private root*: its script then runs in a new mount namespace (``unshare --mount
    --propagation private``, gone when the script ends) in which /etc, /var and /run are copy-on-write overlays of
    this machine's, with ROOT/etc, ROOT/var and ROOT/run as the upper layers. Whatever the script writes under
    them (``/etc/cni/net.d``, ``/run/flannel``, ``/var/backups/...``) lands in ROOT, what it deletes is hidden
    only there, and this machine's own files are never changed; the script sees the paths a real node has, so
    the plan's node commands and the agent (with its default root ``/``) run unchanged. Used by the tests that
    simulate several nodes on one machine; needs root and overlayfs. A root that cannot be mounted is a
    :class:`TransportError` (the script did not run)."""

    name = "local"

    def __init__(
        self,
        node_netns: Mapping[str, str] | None = None,
        node_env: Mapping[str, Mapping[str, str]] | None = None,
        node_root: Mapping[str, str | os.PathLike[str]] | None = None,
    ) -> None:
        self._netns = dict(node_netns or {})
        self._env = {k: dict(v) for k, v in (node_env or {}).items()}
        self._roots = {k: private_root(v) for k, v in (node_root or {}).items()}

    def argv(self, node: str, script: str) -> list[str]:
        """The command line that runs ``script`` for ``node``."""
        argv = ["sh", "-c", script]
        root = self._roots.get(node)
        if root is not None:
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _overlay_wrapper(root), "sh", script]
        if self._netns:
            if node not in self._netns:
                raise TransportError(f"local transport: node {node!r} has no network namespace mapped")
            argv = ["ip", "netns", "exec", self._netns[node], *argv]
        return argv

    def run(self, node: str, script: str, *, timeout: float) -> CommandResult:
        argv = self.argv(node, script)
        root = self._roots.get(node)
        if root is not None:
            try:
                for base in (root, Path(f"{root}.overlay-work")):
                    for d in OVERLAID_DIRS:
                        (base / d).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                msg = f"local transport: node {node}: cannot prepare its private root {root}: {e}"
                raise TransportError(msg) from e
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
        if root is not None and proc.returncode == _OVERLAY_FAILED and _OVERLAY_MARKER in err:
            detail = " ".join(line for line in err.strip().splitlines() if _OVERLAY_MARKER not in line)
            raise TransportError(f"local transport: node {node}: cannot mount its private root {root}: {detail}")
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
    ``host_for``) or ``local`` (``node_netns``, ``node_env``, ``node_root``)."""
    if kind == "local":
        return LocalTransport(options.get("node_netns"), options.get("node_env"), options.get("node_root"))
    if kind == "ssh":
        return SshTransport(**options)
    if kind == "pod":
        missing = [k for k in ("cluster", "namespace", "image") if options.get(k) is None]
        if missing:
            raise ValueError(f"--node-transport pod needs {', '.join(missing)}")
        return PodTransport(**options)
    raise ValueError(f"--node-transport: expected pod, ssh or local, got {kind!r}")
