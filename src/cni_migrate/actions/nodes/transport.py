"""How the executor reaches a node: one interface, several transports (a privileged pod, ssh, this machine).

The executor only ever calls :meth:`NodeTransport.run` with a complete shell script and a timeout; a transport
never interprets the script. A transport that cannot start the script (no route to the node, pod refused by
PodSecurity, ssh authentication) raises :class:`TransportError`; a script that ran and failed is a
:class:`CommandResult` with a non-zero ``exit_code``, so the two are never confused.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


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
