"""A lean HTTP/1.1 client for the IPAM operator's API traffic (:mod:`cni_migrate.kube.ipam`).

Keep-alive connections on asyncio transports (uvloop's when installed), responses parsed by httptools (llhttp, the
parser of Node.js, also used by uvicorn). It does what an API client needs and no more: a bounded pool of
connections to one server, TLS with the kubeconfig's context, buffered requests with a total timeout, and streamed
responses for watches with a read timeout and flow control. No proxies, redirects, cookies or compression (the
client never asks for them).

Why not aiohttp: measured against the real API server with uvloop, aiohttp spends ~350 us of client CPU on a small
PATCH, this ~120 us (benchmark notes in docs/ipam-operator.md). The operator writes hundreds of nodes per second
next to its API server, where that CPU is taken from the API server itself.

Errors say whether the request can have reached the server: :class:`ConnectFailed` (it cannot: no connection)
and :class:`TransportFailed` (it may have: the connection broke or timed out after sending began).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import httptools

#: Read from the socket stops while this many bytes of a streamed response wait for the reader (and resumes below
#: a quarter of it): a slow watch consumer holds the server back instead of growing without bound.
STREAM_HIGH_WATER = 4 * 1024 * 1024


class HTTPError(Exception):
    """A request failed in transport (not an HTTP status)."""


class ConnectFailed(HTTPError):
    """No connection to the server (refused, unreachable, TLS handshake failed, connect timeout): nothing was sent."""


class TransportFailed(HTTPError):
    """The exchange broke after the request may have reached the server (closed, reset, timed out, bad answer)."""


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: scheme, host and port, and a path prefix (``https://host/prefix`` kubeconfigs)."""

    scheme: str
    host: str
    port: int
    prefix: str
    host_header: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"server {url!r}: expected http(s)://host[:port][/path]")
        port = u.port or (443 if u.scheme == "https" else 80)
        return cls(u.scheme, u.hostname, port, u.path.rstrip("/"), u.netloc.rpartition("@")[2])


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: Mapping[str, str]  # names in lower case
    body: bytes


@dataclass
class _Exchange:
    """One request/response on a connection, as the protocol callbacks fill it in."""

    head: asyncio.Future[None]
    status: int = 0
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: collections.deque[bytes] = field(default_factory=collections.deque)
    buffered: int = 0
    complete: bool = False
    error: TransportFailed | None = None
    wakeup: asyncio.Future[None] | None = None
    answered: bool = False  # a byte of the response arrived

    def wake(self) -> None:
        w = self.wakeup
        if w is not None and not w.done():
            w.set_result(None)

    def fail(self, error: TransportFailed) -> None:
        if self.complete or self.error is not None:
            return
        self.error = error
        if not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved: nobody may be waiting on the head any more
        self.wake()


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: _Exchange | None = None
        self.closed = False
        self.reusable = True  # the last response allowed keep-alive
        self.idle_since = time.monotonic()
        self._paused = False

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport is not an asyncio.Transport subclass, but has its methods
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if ex is None:  # nothing asked: a server closing an idle connection may say 408 first
            self.close()
            return
        ex.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            ex.fail(TransportFailed(f"malformed HTTP response: {e}"))
            self.close()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost reports

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ex = self.exchange
        if ex is None or ex.complete:
            return
        if (
            ex.head.done()
            and "content-length" not in ex.headers
            and "chunked" not in ex.headers.get("transfer-encoding", "")
        ):
            self.on_message_complete()  # a body delimited by the end of the connection
            return
        why = f"{type(exc).__name__}: {exc}" if exc else "closed by the server"
        ex.fail(TransportFailed(f"connection lost ({why})"))

    def pause_writing(self) -> None:  # writes are small; the transport buffers them
        pass

    def resume_writing(self) -> None:
        pass

    # --- httptools callbacks

    def on_status(self, status: bytes) -> None:
        if self.exchange is not None:
            self.exchange.reason += status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.exchange is not None:
            self.exchange.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.status = self.parser.get_status_code()
            if not ex.head.done():
                ex.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if ex is None:
            return
        ex.chunks.append(body)
        ex.buffered += len(body)
        if ex.buffered > STREAM_HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        ex.wake()

    def on_message_complete(self) -> None:
        ex = self.exchange
        if ex is None or ex.complete:
            return
        ex.complete = True
        self.reusable = self.parser.should_keep_alive()
        if not ex.head.done():
            ex.head.set_result(None)
        ex.wake()

    # --- used by the pool

    def consumed(self, ex: _Exchange, n: int) -> None:
        ex.buffered -= n
        if self._paused and ex.buffered < STREAM_HIGH_WATER // 4 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class StreamedResponse:
    """A response whose body is read as it arrives (a watch)."""

    def __init__(self, conn: _Connection, ex: _Exchange, read_timeout: float | None) -> None:
        self._conn = conn
        self._ex = ex
        self._read_timeout = read_timeout
        self.status = ex.status
        self.reason = ex.reason
        self.headers: Mapping[str, str] = ex.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks until the response ends; :class:`TransportFailed` when the connection breaks or no byte
        arrives within the read timeout."""
        ex, conn = self._ex, self._conn
        while True:
            while ex.chunks:
                chunk = ex.chunks.popleft()
                conn.consumed(ex, len(chunk))
                yield chunk
            if ex.error is not None:
                raise ex.error
            if ex.complete:
                return
            ex.wakeup = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(self._read_timeout):
                    await ex.wakeup
            except TimeoutError:
                raise TransportFailed(f"no data for {self._read_timeout:g} s") from None
            finally:
                ex.wakeup = None

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])


class HTTP1Pool:
    """Up to ``limit`` keep-alive connections to one server; a request waits for a free one.

    Idle connections are reused newest first (the oldest then age out) and closed after ``idle_timeout`` seconds,
    before the API server would drop them: it closes idle connections after 90 s (``IdleTimeout`` in
    k8s.io/apiserver's secure serving, the keep-alive of Go's default transport). Keeping them that long matters:
    re-opening a hundred TLS connections at the start of a burst of new nodes costs both sides CPU when it is
    scarcest.
    """

    def __init__(
        self,
        url: str,
        ssl_context: ssl.SSLContext | None,
        *,
        limit: int = 16,
        idle_timeout: float = 75.0,
        user_agent: str = "cni-migrate",
    ) -> None:
        self.endpoint = Endpoint.parse(url)
        if self.endpoint.scheme == "https" and ssl_context is None:
            ssl_context = ssl.create_default_context()
        self._ssl = ssl_context if self.endpoint.scheme == "https" else None
        self._slots = asyncio.Semaphore(max(1, limit))
        self._idle: collections.deque[_Connection] = collections.deque()
        self._all: set[_Connection] = set()
        self.idle_timeout = idle_timeout
        self._fixed = f"Host: {self.endpoint.host_header}\r\nUser-Agent: {_checked(user_agent)}\r\n"

    def target(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """The request target for an API path (with the endpoint's prefix) and query parameters."""
        t = self.endpoint.prefix + path
        if params:
            t += "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        return t

    async def _connect(self, timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        ep = self.endpoint
        try:
            async with asyncio.timeout(timeout):
                _t, conn = await loop.create_connection(
                    _Connection, ep.host, ep.port, ssl=self._ssl, server_hostname=ep.host if self._ssl else None
                )
        except TimeoutError:
            raise ConnectFailed(f"connecting to {ep.host}:{ep.port} timed out after {timeout:g} s") from None
        except (OSError, ssl.SSLError) as e:  # refused, unreachable, DNS, certificate
            raise ConnectFailed(f"cannot connect to {ep.host}:{ep.port} ({type(e).__name__}: {e})") from e
        self._all.add(conn)
        return conn

    def _idle_connection(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.closed or not conn.reusable or now - conn.idle_since > self.idle_timeout:
                self._drop(conn)
                continue
            return conn
        return None

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        self._all.discard(conn)

    def _release(self, conn: _Connection, ex: _Exchange) -> None:
        conn.exchange = None
        if ex.complete and ex.error is None and conn.reusable and not conn.closed:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.abort()
            self._all.discard(conn)

    def _head(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
        if " " in target or "\r" in target or "\n" in target:
            raise ValueError(f"invalid request target {target!r}")
        lines = [f"{method} {target} HTTP/1.1\r\n", self._fixed]
        for k, v in headers.items():
            lines.append(f"{k}: {_checked(v)}\r\n")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    async def _start(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        connect_timeout: float | None,
        *,
        fresh: bool = False,
    ) -> tuple[_Connection, _Exchange, bool]:
        """Send a request on a connection (an idle one unless ``fresh``, else a new one); returns it, the exchange,
        and whether it was reused."""
        data = self._head(method, target, headers, body)
        if body:
            data += body
        conn = None if fresh else self._idle_connection()
        reused = conn is not None
        if conn is None:
            conn = await self._connect(connect_timeout)
        ex = _Exchange(asyncio.get_running_loop().create_future())
        conn.exchange = ex
        assert conn.transport is not None
        conn.transport.write(data)
        return conn, ex, reused

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeout: float | None = None,
    ) -> Response:
        """One buffered exchange within ``timeout`` seconds in all (waiting for a connection included).

        A GET that fails on a reused connection before any answer is tried once more on a new connection (the
        server may have closed the idle connection just as it was taken). Other methods never are: whether a
        write landed is for the caller to find out.
        """
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        for attempt in (0, 1):
            try:
                return await self._request_once(method, target, headers, body, deadline, timeout, fresh=attempt > 0)
            except _RetryOnNewConnection as e:
                if attempt == 1 or method != "GET":
                    raise e.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request_once(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        deadline: float | None,
        timeout: float | None,
        *,
        fresh: bool,
    ) -> Response:
        loop = asyncio.get_running_loop()
        if self._slots.locked():  # wait for a free connection within the deadline
            try:
                async with asyncio.timeout_at(deadline):
                    await self._slots.acquire()
            except TimeoutError:
                raise ConnectFailed(f"no free connection to the server within {timeout:g} s") from None
        else:
            await self._slots.acquire()  # returns at once
        try:
            left = None if deadline is None else max(0.001, deadline - loop.time())
            conn, ex, reused = await self._start(method, target, headers, body, left, fresh=fresh)
            # One timer rather than asyncio.timeout() around the wait: cheaper, and this runs for every request.
            expiry = None
            if deadline is not None:
                expiry = loop.call_at(deadline, ex.fail, ResponseTimeout(f"no complete answer within {timeout:g} s"))
            try:
                while not ex.complete:
                    if ex.error is not None:
                        if reused and not ex.answered and not isinstance(ex.error, ResponseTimeout):
                            raise _RetryOnNewConnection(ex.error)
                        raise ex.error
                    ex.wakeup = loop.create_future()
                    await ex.wakeup
                    ex.wakeup = None
            finally:
                if expiry is not None:
                    expiry.cancel()
                self._release(conn, ex)
        finally:
            self._slots.release()
        return Response(ex.status, ex.reason, ex.headers, b"".join(ex.chunks))

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str],
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> AsyncIterator[StreamedResponse]:
        """A request whose response body is read as it comes; the connection is kept for it until the block ends."""
        async with self._slots:
            conn, ex, _reused = await self._start(method, target, headers, None, connect_timeout)
            try:
                try:
                    async with asyncio.timeout(read_timeout):
                        await ex.head
                except TimeoutError:
                    raise TransportFailed(f"no answer within {read_timeout:g} s") from None
                yield StreamedResponse(conn, ex, read_timeout)
            finally:
                self._release(conn, ex)  # unfinished: aborted, the rest would arrive on a connection nobody reads

    async def close(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks

    @property
    def open_connections(self) -> int:
        return sum(1 for c in self._all if not c.closed)


class ResponseTimeout(TransportFailed):
    """The request was sent but its answer did not complete in time."""


class _RetryOnNewConnection(Exception):
    def __init__(self, error: TransportFailed) -> None:
        super().__init__(str(error))
        self.error = error


def _checked(value: Any) -> str:
    text = str(value)
    if "\r" in text or "\n" in text:
        raise ValueError("header value contains a line break")
    return text


__all__ = [
    "STREAM_HIGH_WATER",
    "ConnectFailed",
    "Endpoint",
    "HTTP1Pool",
    "HTTPError",
    "Response",
    "ResponseTimeout",
    "StreamedResponse",
    "TransportFailed",
]
