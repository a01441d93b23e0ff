"""A small HTTP/1.1 server on asyncio streams, for /healthz, /readyz, /metrics and the admission webhook.

It runs on the operator's event loop, so handlers read the controller's state without locks. It speaks only
what its clients need: ``GET``/``POST`` with a ``Content-Length`` body (the API server and Prometheus send that),
keep-alive, optional TLS (the webhook) with the certificate reloaded when its files change (a renewed Secret).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("cni_migrate.ipam_operator.http")

MAX_BODY = 4 * 1024 * 1024
MAX_HEADER_LINES = 100


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
            413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


class TlsFiles:
    """A server-side TLS context from certificate and key files, reloaded when either file changes."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert = cert
        self.key = key
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._stamp: tuple[float, float] | None = None
        self.reload()

    def _mtimes(self) -> tuple[float, float]:
        return (os.stat(self.cert).st_mtime, os.stat(self.key).st_mtime)

    def reload(self) -> bool:
        stamp = self._mtimes()
        if stamp == self._stamp:
            return False
        self.context.load_cert_chain(str(self.cert), str(self.key))
        self._stamp = stamp
        return True

    async def watch(self, interval: float = 30.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if self.reload():
                    log.info("reloaded TLS certificate %s", self.cert)
            except (OSError, ssl.SSLError) as e:
                log.warning("TLS certificate %s not reloaded: %s", self.cert, e)


class HttpServer:
    def __init__(self, routes: dict[str, Handler], *, name: str) -> None:
        self.routes = routes
        self.name = name
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> int:
        self._server = await asyncio.start_server(self._serve, host, port, ssl=tls, limit=MAX_BODY)
        bound = int(self._server.sockets[0].getsockname()[1])
        log.info("%s listening on %s://%s:%d", self.name, "https" if tls else "http", host, bound)
        return bound

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await self._read(reader)
                if request is None:
                    return
                if isinstance(request, Response):
                    await self._write(writer, request, keep_alive=False)
                    return
                handler = self.routes.get(request.path)
                if handler is None:
                    response = Response(404, b"not found\n")
                else:
                    try:
                        response = await handler(request)
                    except Exception:
                        log.exception("%s: handler for %s failed", self.name, request.path)
                        response = Response(500, b"internal error\n")
                keep = request.headers.get("connection", "").lower() != "close"
                await self._write(writer, response, keep_alive=keep)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.LimitOverrunError, ValueError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Request | Response | None:
        try:
            line = await asyncio.wait_for(reader.readline(), 120.0)
        except TimeoutError:
            return None
        if not line:
            return None
        parts = line.decode("latin-1").strip().split(" ")
        if len(parts) != 3:
            return Response(400, b"bad request line\n")
        method, target, _version = parts
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            raw = await reader.readline()
            text = raw.decode("latin-1").strip()
            if not text:
                break
            key, _, value = text.partition(":")
            headers[key.strip().lower()] = value.strip()
        else:
            return Response(400, b"too many headers\n")
        body = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return Response(411, b"chunked bodies are not supported; send Content-Length\n")
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY:
            return Response(413, b"body too large\n")
        if length:
            body = await reader.readexactly(length)
        path, _, query = target.partition("?")
        return Request(method.upper(), path, query, headers, body)

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, response: Response, *, keep_alive: bool) -> None:
        reason = _REASONS.get(response.status, "")
        head = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
            *(f"{k}: {v}" for k, v in response.headers.items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
        await writer.drain()
