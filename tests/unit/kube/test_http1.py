"""The operator's HTTP/1.1 pool against a scripted server on loopback: keep-alive, framing, timeouts, broken
connections, streamed bodies. (The real API server exercises it in every IPAM integration test.)"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable

import pytest
from loopback import CHUNKED_HEAD, LAST_CHUNK, Request, Server, answer, chunk, chunked

from cni_migrate.kube.http1 import (
    STREAM_HIGH_WATER,
    ConnectFailed,
    Endpoint,
    HTTP1Pool,
    ResponseTimeout,
    TransportFailed,
)


async def ok(req: Request, w: asyncio.StreamWriter) -> bool:
    w.write(answer(body=b'{"echo": "%s"}' % req.target.encode()))
    return True


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


def test_requests_reuse_one_keep_alive_connection_and_send_what_was_asked() -> None:
    async def go() -> None:
        async with Server(ok) as srv:
            pool = HTTP1Pool(srv.url + "/prefix/", None, limit=4, user_agent="ua/1")
            for i in range(5):
                target = pool.target("/api/v1/nodes/n", {"fieldManager": "fm", "x": f"a b&{i}"})
                resp = await pool.request(
                    "PATCH", target, headers={"Content-Type": "application/json"}, body=b"[1]", timeout=5
                )
                assert resp.status == 200 and resp.reason == "OK"
                assert resp.headers["content-length"] == str(len(resp.body))
            await pool.close()
        assert srv.connections == 1 and [r.number for r in srv.requests] == [1, 2, 3, 4, 5]
        first = srv.requests[0]
        assert first.method == "PATCH" and first.body == b"[1]"
        assert first.target == "/prefix/api/v1/nodes/n?fieldManager=fm&x=a%20b%260"
        assert first.headers["host"] == f"127.0.0.1:{srv.port}" and first.headers["user-agent"] == "ua/1"
        assert first.headers["content-type"] == "application/json" and first.headers["content-length"] == "3"

    run(go())


def test_connections_idle_too_long_are_not_reused() -> None:
    async def go() -> None:
        async with Server(ok) as srv:
            pool = HTTP1Pool(srv.url, None, idle_timeout=0.2)
            await pool.request("GET", "/a", headers={}, timeout=5)
            await pool.request("GET", "/b", headers={}, timeout=5)
            await asyncio.sleep(0.3)  # past the idle timeout: the server might close it any moment now
            await pool.request("GET", "/c", headers={}, timeout=5)
            await pool.close()
        assert [(r.connection, r.number) for r in srv.requests] == [(1, 1), (1, 2), (2, 1)]

    run(go())


def test_chunked_bodies_and_connection_close_are_honoured() -> None:
    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        if req.target == "/chunked":
            w.write(chunked(b'{"a":', b" 1", b"}"))
            return True
        w.write(answer(body=b"bye", extra="Connection: close\r\n"))
        return False

    async def go() -> None:
        async with Server(handler) as srv:
            pool = HTTP1Pool(srv.url, None)
            assert (await pool.request("GET", "/chunked", headers={}, timeout=5)).body == b'{"a": 1}'
            assert (await pool.request("GET", "/close", headers={}, timeout=5)).body == b"bye"
            assert (await pool.request("GET", "/chunked", headers={}, timeout=5)).body == b'{"a": 1}'
            await pool.close()
        assert srv.connections == 2  # the server said close: a new connection after it

    run(go())


def test_a_body_delimited_by_the_end_of_the_connection_is_complete() -> None:
    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        return False

    async def go() -> None:
        async with Server(handler) as srv:
            pool = HTTP1Pool(srv.url, None)
            assert (await pool.request("GET", "/", headers={}, timeout=5)).body == b"until the end"
            await pool.close()

    run(go())


def test_a_get_on_a_connection_the_server_dropped_is_retried_a_write_is_not() -> None:
    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        if req.number > 1:  # the server drops a kept-alive connection as the next request arrives
            return False
        w.write(answer())
        return True

    async def go() -> None:
        async with Server(handler) as srv:
            pool = HTTP1Pool(srv.url, None)
            await pool.request("GET", "/a", headers={}, timeout=5)
            assert (await pool.request("GET", "/b", headers={}, timeout=5)).status == 200
            assert srv.connections == 2  # /b went again on a new connection
            with pytest.raises(TransportFailed, match="connection lost"):
                await pool.request("PATCH", "/c", headers={}, body=b"{}", timeout=5)
            assert [r.target for r in srv.requests] == ["/a", "/b", "/b", "/c"]  # /c sent once only
            await pool.close()

    run(go())


def test_the_retried_get_goes_on_a_new_connection_not_another_idle_one() -> None:
    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        if req.number > 1:  # every kept-alive connection is dropped as its next request arrives
            return False
        await asyncio.sleep(0.05)
        w.write(answer())
        return True

    async def go() -> None:
        async with Server(handler) as srv:
            pool = HTTP1Pool(srv.url, None, limit=2)
            await asyncio.gather(*(pool.request("GET", f"/{i}", headers={}, timeout=5) for i in range(2)))
            assert srv.connections == 2  # both now idle, both stale
            assert (await pool.request("GET", "/b", headers={}, timeout=5)).status == 200
            assert srv.connections == 3
            await pool.close()

    run(go())


def test_no_answer_in_time_is_a_timeout_and_the_connection_is_not_reused() -> None:
    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        if req.target == "/slow":
            await asyncio.sleep(1.0)
        w.write(answer())
        return True

    async def go() -> None:
        async with Server(handler) as srv:
            pool = HTTP1Pool(srv.url, None)
            with pytest.raises(ResponseTimeout, match=r"within 0\.2 s"):
                await pool.request("GET", "/slow", headers={}, timeout=0.2)
            assert pool.open_connections == 0  # its late answer must not be read as the next one's
            assert (await pool.request("GET", "/fast", headers={}, timeout=5)).status == 200
            assert srv.connections == 2
            await pool.close()

    run(go())


def test_a_cancelled_request_closes_its_connection() -> None:
    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.5 if req.target == "/slow" else 0)
        w.write(answer())
        return True

    async def go() -> None:
        async with Server(handler) as srv:
            pool = HTTP1Pool(srv.url, None, limit=1)
            task = asyncio.create_task(pool.request("GET", "/slow", headers={}, timeout=5))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert pool.open_connections == 0
            assert (await pool.request("GET", "/fast", headers={}, timeout=5)).status == 200  # its slot came back
            await pool.close()

    run(go())


def test_no_server_is_a_connect_failure() -> None:
    async def go() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # bound, not listening: connection refused
            pool = HTTP1Pool(f"http://127.0.0.1:{port}", None)
            with pytest.raises(ConnectFailed, match="cannot connect"):
                await pool.request("PATCH", "/", headers={}, body=b"{}", timeout=5)

    run(go())


def test_at_most_limit_connections_are_open() -> None:
    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.05)
        w.write(answer())
        return True

    async def go() -> None:
        async with Server(handler) as srv:
            pool = HTTP1Pool(srv.url, None, limit=3)
            await asyncio.gather(*(pool.request("GET", f"/{i}", headers={}, timeout=5) for i in range(12)))
            await pool.close()
        assert srv.connections == 3 and len(srv.requests) == 12

    run(go())


def test_a_full_pool_times_out_as_a_connect_failure() -> None:
    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(1.0)
        w.write(answer())
        return True

    async def go() -> None:
        async with Server(handler) as srv:
            pool = HTTP1Pool(srv.url, None, limit=1)
            busy = asyncio.create_task(pool.request("GET", "/busy", headers={}, timeout=5))
            await asyncio.sleep(0.05)
            with pytest.raises(ConnectFailed, match="no free connection"):  # never sent
                await pool.request("PATCH", "/w", headers={}, body=b"{}", timeout=0.2)
            assert (await busy).status == 200
            assert [r.target for r in srv.requests] == ["/busy"]
            await pool.close()

    run(go())


def test_streamed_body_arrives_in_pieces_and_a_silent_stream_times_out() -> None:
    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        w.write(CHUNKED_HEAD)
        for part in (b"one\n", b"two\n"):
            w.write(chunk(part))
            await w.drain()
            await asyncio.sleep(0.05)
        if req.target == "/ends":
            w.write(LAST_CHUNK)
            return True
        await asyncio.sleep(5)  # silent
        return False

    async def go() -> None:
        async with Server(handler) as srv:
            pool = HTTP1Pool(srv.url, None)
            async with pool.stream("GET", "/ends", headers={}, connect_timeout=5, read_timeout=5) as resp:
                assert resp.status == 200
                assert [c async for c in resp.chunks()] == [b"one\n", b"two\n"]
            got: list[bytes] = []
            with pytest.raises(TransportFailed, match=r"no data for 0\.3 s"):
                async with pool.stream("GET", "/silent", headers={}, connect_timeout=5, read_timeout=0.3) as resp:
                    async for c in resp.chunks():
                        got.append(c)
            assert got == [b"one\n", b"two\n"]
            assert srv.connections == 1  # the finished stream's connection was reused for the second
            assert pool.open_connections == 0  # and closed when that one broke off
            await pool.close()

    run(go())


def test_a_slow_stream_reader_pauses_the_socket() -> None:
    big = b"x" * (1024 * 1024)

    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        w.write(CHUNKED_HEAD)
        for _ in range(12):
            w.write(chunk(big))
            await w.drain()
        w.write(LAST_CHUNK)
        return True

    async def go() -> None:
        async with Server(handler) as srv:
            pool = HTTP1Pool(srv.url, None)
            async with pool.stream("GET", "/", headers={}, connect_timeout=5, read_timeout=5) as resp:
                await asyncio.sleep(0.5)  # the server keeps sending; nobody reads
                conn = resp._conn
                assert conn._paused and resp._ex.buffered <= STREAM_HIGH_WATER + 2 * len(big)
                total = sum([len(c) async for c in resp.chunks()])
                assert total == 12 * len(big) and not conn._paused
            await pool.close()

    run(go())


def test_header_values_with_line_breaks_are_refused() -> None:
    async def go() -> None:
        async with Server(ok) as srv:
            pool = HTTP1Pool(srv.url, None)
            with pytest.raises(ValueError, match="line break"):
                await pool.request("GET", "/", headers={"Authorization": "Bearer x\r\nEvil: 1"}, timeout=5)
            with pytest.raises(ValueError, match="request target"):
                await pool.request("GET", "/a b", headers={}, timeout=5)
            assert srv.requests == []
            await pool.close()

    run(go())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://10.0.0.1:6443", Endpoint("https", "10.0.0.1", 6443, "", "10.0.0.1:6443")),
        ("https://api.example:443/k8s/clusters/c-1/", Endpoint("https", "api.example", 443, "/k8s/clusters/c-1", "api.example:443")),
        ("https://[fd00::1]:6443", Endpoint("https", "fd00::1", 6443, "", "[fd00::1]:6443")),
        ("http://localhost", Endpoint("http", "localhost", 80, "", "localhost")),
    ],
)  # fmt: skip
def test_endpoints(url: str, expected: Endpoint) -> None:
    assert Endpoint.parse(url) == expected


def test_a_bad_server_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="expected http"):
        Endpoint.parse("unix:///var/run/k8s.sock")
