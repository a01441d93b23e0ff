"""How the executor reaches a node: one interface, several transports (a privileged pod, ssh, this machine).

The executor only ever calls :meth:`NodeTransport.run` with a complete shell script and a timeout; a transport
never interprets the script. A transport that cannot start the script (no route to the node, pod refused by
PodSecurity, ssh authentication) raises :class:`TransportError`; a script that ran and failed is a
:class:`CommandResult` with a non-zero ``exit_code``, so the two are never confused.
"""

from __future__ import annotations

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
    or directly when no mapping is given (an SRE running the agent on the node itself)."""

    name = "local"

    def __init__(self, node_netns: Mapping[str, str] | None = None) -> None:
        self._netns = dict(node_netns or {})

    def run(self, node: str, script: str, *, timeout: float) -> CommandResult:
        argv = ["sh", "-c", script]
        if self._netns:
            if node not in self._netns:
                raise TransportError(f"local transport: node {node!r} has no network namespace mapped")
            argv = ["ip", "netns", "exec", self._netns[node], *argv]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise TransportError(f"local transport: node {node}: script timed out after {timeout:.0f} s") from e
        except OSError as e:
            raise TransportError(f"local transport: node {node}: cannot start {argv[0]}: {e}") from e
        return CommandResult(node, proc.returncode, proc.stdout, proc.stderr)

    def close(self) -> None:
        return None
