"""The prober in-process, on loopback: its protocol, its outage accounting and its answers to bad requests."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from cni_migrate.actions.verify.agents import AgentUnreachable, SocketChannel, parse_http_response
from cni_migrate.actions.verify.prober import Agent, Identity, StreamStats, run_probe, validate_targets


def test_outage_accounting_takes_results_in_send_order() -> None:
    s = StreamStats("x", "h", 1)
    # Requests 0..5 sent 10 ms apart; 2 and 3 fail (their timeouts end after 4 and 5 have succeeded).
    s.resolve(0, 0.00, True)
    s.resolve(1, 0.01, True)
    s.resolve(4, 0.04, True)
    s.resolve(5, 0.05, True)
    assert (s.ok, s.failed, s.gaps) == (2, 0, [])  # 4 and 5 wait for 2 and 3
    s.resolve(3, 0.03, False)
    s.resolve(2, 0.02, False)
    assert (s.ok, s.failed) == (4, 2)
    assert s.gaps == [pytest.approx(0.02)] and s.outage_start is None
    s.resolve(6, 0.06, False)
    assert s.report(now=0.5)["outage_for"] == pytest.approx(0.44)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ("x", "targets: expected a list"),
        ([{"host": "a"}], "targets[0]: expected an object with id and host"),
        ([{"id": 1, "host": "a", "kind": "sctp", "port": 1}], "targets[0].kind: expected one of"),
        ([{"id": 1, "host": "a", "port": 70000}], "targets[0].port: expected an integer 1-65535"),
        ([{"id": 1, "host": "a", "port": "80"}], "targets[0].port"),
    ],
)
def test_bad_targets_are_named(targets: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_targets(targets)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_probe_results_on_loopback(tmp_path: Path) -> None:
    async def main() -> None:
        a = Agent(Identity("p1", "n1", "127.0.0.1"))
        await a.start(probe_host="127.0.0.1", probe_port=0, control=f"unix:{tmp_path / 'c.sock'}")
        try:
            assert a.probe_server._server is not None
            port = int(a.probe_server._server.sockets[0].getsockname()[1])
            ch = SocketChannel(f"unix:{tmp_path / 'c.sock'}")
            health = await ch.call("GET", "/healthz")
            assert health == {"ok": True, "pod": "p1", "node": "n1", "ip": "127.0.0.1"}
            closed = _free_port()
            answer = await ch.call("POST", "/probe", {"timeout": 1.0, "targets": [
                {"id": "up", "host": "127.0.0.1", "port": port},
                {"id": "down", "host": "127.0.0.1", "port": closed},
                {"id": "dns", "kind": "dns", "host": "localhost"},
                {"id": "tls", "kind": "tls", "host": "127.0.0.1", "port": port},
            ]})  # fmt: skip
            r = {x["id"]: x for x in answer["results"]}
            assert r["up"]["ok"] and r["up"]["seen_source"] == "127.0.0.1" and r["up"]["server"]["pod"] == "p1"
            assert r["up"]["latency_ms"] > 0
            assert not r["down"]["ok"] and "Connection refused" in r["down"]["error"]
            assert r["dns"]["ok"] and "127.0.0.1" in r["dns"]["addresses"]
            assert not r["tls"]["ok"]  # the probe port speaks no TLS: a handshake failure, reported
            # Bad control requests: 400/404 with the reason, never a dropped connection.
            with pytest.raises(AgentUnreachable, match=r"HTTP 400: targets\[0\].port"):
                await ch.call("POST", "/probe", {"targets": [{"id": 1, "host": "x", "port": 0}]})
            with pytest.raises(AgentUnreachable, match="HTTP 404"):
                await ch.call("GET", "/nope")
            with pytest.raises(AgentUnreachable, match="no monitor running"):
                await ch.call("GET", "/monitor/poll")
            with pytest.raises(AgentUnreachable, match="rate: expected a number"):
                await ch.call("POST", "/monitor/start", {"config": {"rate": -1}})
            # A short monitor on loopback: requests flow, nothing fails.
            await ch.call("POST", "/monitor/start", {"config": {"rate": 50, "heartbeat_interval": 0.02},
                                                     "streams": [{"id": "s", "host": "127.0.0.1", "port": port}],
                                                     "held": [{"id": "h", "host": "127.0.0.1", "port": port}]})  # fmt: skip
            await asyncio.sleep(0.4)
            final = await ch.call("POST", "/monitor/stop")
            assert final["streams"][0]["ok"] >= 10 and final["streams"][0]["failed"] == 0
            assert final["held"][0]["opened"] == 1 and final["held"][0]["broken"] == 0
            assert final["held"][0]["heartbeats"] >= 5
        finally:
            await a.close()

    asyncio.run(main())


def test_unreachable_control_socket(tmp_path: Path) -> None:
    ch = SocketChannel(f"unix:{tmp_path / 'none.sock'}")
    with pytest.raises(AgentUnreachable, match="No such file"):
        asyncio.run(ch.call("GET", "/healthz", timeout=1))


def test_unprobeable_kind_and_garbage_answers() -> None:
    assert asyncio.run(run_probe({"id": 1, "kind": "udp", "host": "x"}, 1))["error"] == "unknown probe kind 'udp'"
    with pytest.raises(AgentUnreachable, match="truncated"):
        parse_http_response(b"HTTP/1.1 200 OK\r\n", "x")
    with pytest.raises(AgentUnreachable, match="not JSON"):
        parse_http_response(b"HTTP/1.1 200 OK\r\n\r\n<html>", "x")


def test_icmp_echo_or_a_clear_refusal() -> None:
    lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    r = asyncio.run(run_probe({"id": "p", "kind": "icmp", "host": "127.0.0.1"}, 1.0))
    if lo <= os.getgid() <= hi:
        assert r["ok"] and r["latency_ms"] > 0
    else:  # this machine's own namespace keeps ICMP sockets closed: the error says why
        assert not r["ok"] and "ping_group_range" in r["error"]
