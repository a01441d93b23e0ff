"""How a controller reaches probers: the agents it knows, and the control channel to each.

A channel sends one control request (method, path, JSON body) and returns the JSON answer, or raises
:class:`AgentUnreachable`. Two channels: :class:`SocketChannel` (HTTP over a Unix socket or TCP, used in network
namespaces and by the benchmark) and, in a cluster, the API server's pod proxy (see ``cni_migrate.kube.probes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Json = dict[str, Any]


class AgentUnreachable(Exception):
    """The control request did not get an answer (prober not running, not reachable, bad answer)."""


class Channel(Protocol):
    async def call(self, method: str, path: str, body: Json | None = None, *, timeout: float = 30.0) -> Json: ...


@dataclass(frozen=True)
class AgentInfo:
    """One prober: a probe pod (``role="pod"``) or a host-network probe (``role="node"``).

    ``ip``/``port``: where other probers reach its probe server. ``cni``: which CNI gave the pod its address
    ("" when unknown), used to label the matrix during a rolling migration.
    """

    name: str
    node: str
    ip: str
    port: int
    channel: Channel
    role: Literal["pod", "node"] = "pod"
    cni: str = ""


def parse_http_response(raw: bytes, what: str) -> Json:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise AgentUnreachable(f"{what}: truncated HTTP answer")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise AgentUnreachable(f"{what}: bad HTTP status line {status_line[:80]!r}")
    status = int(parts[1])
    try:
        answer = json.loads(body) if body else {}
    except ValueError as e:
        raise AgentUnreachable(f"{what}: HTTP {status}, answer is not JSON") from e
    if status != 200:
        message = answer.get("error") if isinstance(answer, dict) else None
        raise AgentUnreachable(f"{what}: HTTP {status}: {message if message else repr(body[:200])}")
    if not isinstance(answer, dict):
        raise AgentUnreachable(f"{what}: answer is not a JSON object")
    return answer


class SocketChannel:
    """HTTP/1.1 (one request per connection) to a prober's control server on ``unix:PATH`` or ``HOST:PORT``."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.address.startswith("unix:"):
            return await asyncio.open_unix_connection(self.address.removeprefix("unix:"))
        host, _, port = self.address.rpartition(":")
        return await asyncio.open_connection(host, int(port))

    async def call(self, method: str, path: str, body: Json | None = None, *, timeout: float = 30.0) -> Json:
        what = f"prober {self.address} {method} {path}"
        payload = json.dumps(body or {}, separators=(",", ":")).encode() if body is not None else b""
        request = (
            f"{method} {path} HTTP/1.1\r\nHost: prober\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        ).encode() + payload
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await self._open()
                try:
                    writer.write(request)
                    await writer.drain()
                    raw = await reader.read()
                finally:
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()
        except TimeoutError as e:
            raise AgentUnreachable(f"{what}: no answer within {timeout:.0f} s") from e
        except OSError as e:
            raise AgentUnreachable(f"{what}: {e.strerror or e}") from e
        return parse_http_response(raw, what)


class CallbackChannel:
    """A channel over a synchronous function (the pod proxy of ``cni_migrate.kube.probes``), run in a thread."""

    def __init__(self, fn: Callable[[str, str, Json | None, float], Json], what: str) -> None:
        self._fn = fn
        self.what = what

    async def call(self, method: str, path: str, body: Json | None = None, *, timeout: float = 30.0) -> Json:
        try:
            return await asyncio.to_thread(self._fn, method, path, body, timeout)
        except AgentUnreachable:
            raise
        except Exception as e:  # the kube layer's errors, translated for the caller
            raise AgentUnreachable(f"{self.what} {method} {path}: {e}") from e


async def gather_calls(calls: list[Awaitable[Json]]) -> list[Json | AgentUnreachable]:
    """Run control calls concurrently; an unreachable agent is returned as its error, not raised."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    out: list[Json | AgentUnreachable] = []
    for r in results:
        if isinstance(r, AgentUnreachable):
            out.append(r)
        elif isinstance(r, BaseException):
            raise r
        else:
            out.append(r)
    return out
