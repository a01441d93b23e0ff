"""AsyncKube's error paths against a scripted server: retries, re-authentication, uncertain writes, watch framing.
(Its normal paths run against the real API server in the IPAM integration tests.)"""

from __future__ import annotations

import asyncio
import base64
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from loopback import CHUNKED_HEAD, LAST_CHUNK, Request, Server, answer, chunk

from cni_migrate.kube import ClusterUnreachable, Forbidden
from cni_migrate.kube.ipam import AsyncKube, Gone, RequestUncertain, _Auth


def user(**kw: Any) -> Any:
    fields = {"token": None, "token_file": None, "exec": None, "username": None, "password": None}
    return SimpleNamespace(auth_provider=None, **{**fields, **kw})


def kube_for(url: str, auth_user: Any = None, **kw: Any) -> AsyncKube:
    return AsyncKube(url, None, _Auth(auth_user), qps=0, burst=1, field_manager="test", **kw)


def test_throttling_is_retried() -> None:
    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        if len(srv.requests) == 1:
            w.write(answer(429, b'{"message": "slow down"}', "Retry-After: 0\r\n"))
        else:
            w.write(answer(200, b'{"kind": "Node"}'))
        return True

    srv = Server(handler)

    async def go() -> None:
        async with srv:
            kube = kube_for(srv.url)
            assert await kube.request("GET", "/api/v1/nodes/n", what="get node n") == {"kind": "Node"}
            assert kube.stats.by_key == {("get", "429"): 1, ("get", "200"): 1}
            await kube.close()

    asyncio.run(go())


def test_a_refused_token_is_read_again_once(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("old\n")

    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        if req.headers.get("authorization") == "Bearer new":
            w.write(answer(200, b"{}"))
        else:
            token.write_text("new\n")  # rotated while the client held the old one
            w.write(answer(401, b'{"message": "Unauthorized"}'))
        return True

    async def go() -> None:
        async with Server(handler) as srv:
            kube = kube_for(srv.url, user(token_file=str(token)))
            await kube.request("GET", "/api/v1/nodes", what="list nodes")
            assert [r.headers["authorization"] for r in srv.requests] == ["Bearer old", "Bearer new"]
            await kube.close()

    asyncio.run(go())


def test_basic_auth_header() -> None:
    async def go() -> None:
        header = await _Auth(user(username="admin", password="p:w")).header()
        assert header == "Basic " + base64.b64encode(b"admin:p:w").decode()

    asyncio.run(go())


def test_a_write_without_answer_is_uncertain_and_not_repeated() -> None:
    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        return False  # read the request, close without a word

    async def go() -> None:
        async with Server(handler) as srv:
            kube = kube_for(srv.url)
            with pytest.raises(RequestUncertain, match="patch node n: no answer"):
                await kube.patch_node("n", [{"op": "test", "path": "/metadata/uid", "value": "u"}])
            assert [r.method for r in srv.requests] == ["PATCH"]
            assert kube.stats.by_key == {("patch", "transport-error"): 1}
            await kube.close()

    asyncio.run(go())


def test_no_server_is_unreachable() -> None:
    async def go() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            kube = kube_for(f"http://127.0.0.1:{s.getsockname()[1]}", retries=1, backoff=0.01)
            with pytest.raises(ClusterUnreachable, match="cannot reach the API server"):
                await kube.get_node("n")
            assert kube.stats.by_key == {("get", "connect-error"): 2}

    asyncio.run(go())


def _event(type_: str, name: str, rv: str) -> bytes:
    return orjson.dumps({"type": type_, "object": {"metadata": {"name": name, "resourceVersion": rv}}}) + b"\n"


def test_watch_events_split_anywhere_across_chunks() -> None:
    stream = _event("ADDED", "a", "1") + _event("BOOKMARK", "", "2") + b"\n" + _event("MODIFIED", "b" * 5000, "3")
    stream += _event("DELETED", "a", "4")

    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        assert "watch=true" in req.target and "resourceVersion=7" in req.target
        w.write(CHUNKED_HEAD)
        for i in range(0, len(stream), 7):  # 7-byte chunks: lines break everywhere
            part = stream[i : i + 7]
            w.write(chunk(part))
        w.write(LAST_CHUNK)
        return True

    async def go() -> None:
        async with Server(handler) as srv:
            kube = kube_for(srv.url)
            got = [(ev.type, ev.object["metadata"]["name"]) async for ev in kube.watch_nodes("7")]
            assert got == [("ADDED", "a"), ("BOOKMARK", ""), ("MODIFIED", "b" * 5000), ("DELETED", "a")]
            await kube.close()

    asyncio.run(go())


@pytest.mark.parametrize(
    ("status", "body", "error", "match"),
    [
        (200, b'{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old resource version"}}\n',
         Gone, "too old resource version"),
        (403, b'{"kind":"Status","code":403,"message":"nodes is forbidden"}', Forbidden, "nodes is forbidden"),
    ],
)  # fmt: skip
def test_watch_errors(status: int, body: bytes, error: type[Exception], match: str) -> None:
    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        w.write(answer(status, body))
        return True

    async def go() -> None:
        async with Server(handler) as srv:
            kube = kube_for(srv.url)
            with pytest.raises(error, match=match):
                async for _ev in kube.watch_nodes("1"):
                    pass
            await kube.close()

    asyncio.run(go())


def test_a_watch_cut_off_is_unreachable() -> None:
    async def handler(req: Request, w: asyncio.StreamWriter) -> bool:
        w.write(CHUNKED_HEAD)
        part = _event("ADDED", "a", "1")
        w.write(chunk(part))
        return False  # closed mid-stream

    async def go() -> None:
        async with Server(handler) as srv:
            kube = kube_for(srv.url)
            seen = []
            with pytest.raises(ClusterUnreachable, match="watch nodes: watch interrupted"):
                async for ev in kube.watch_nodes("1"):
                    seen.append(ev.type)
            assert seen == ["ADDED"]
            await kube.close()

    asyncio.run(go())
