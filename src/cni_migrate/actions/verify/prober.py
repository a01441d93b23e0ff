"""The prober: one small asyncio program, run by every probe pod (``python -m cni_migrate.actions.verify.prober``).

It has three parts, all on one event loop:

* the **probe server** (TCP, default port 7310) answers the line protocol below; it is what the matrix and the
  monitor connect to, directly, through the probe Service (ClusterIP) or a NodePort;
* the **probe client** runs the probes a controller asks for (``POST /probe``): TCP request/response to another
  prober (latency, and the source address that server saw: SNAT shows here), a TLS handshake (the API server
  through the ``kubernetes`` Service), a DNS lookup and an ICMP echo (an unprivileged ICMP socket);
* the **monitor** (``POST /monitor/start``, ``GET /monitor/poll``, ``POST /monitor/stop``): long-lived TCP
  connections with heartbeats, and a steady stream of short requests (a new connection each, so a Service's load
  balancing and conntrack are exercised every time); it counts broken connections, failed requests and outages.

The controller (``cni-migrate verify``/``monitor``, or a test) talks HTTP to the **control server**: a TCP port
(default 7311; in a cluster reached through the API server's pod proxy) or a Unix socket (tests in network
namespaces: the socket lives in the file system, which network namespaces do not separate).

Line protocol of the probe server, one request per line, one answer per line:

* ``I <token>`` -> a JSON object: ``pod``, ``node``, ``ip`` (the server's own identity), ``peer`` (the source address
  the server saw), ``token``;
* ``H <n>`` -> ``h <n>`` (heartbeat of a held connection).

Only the standard library (plus uvloop when present) is imported: the probe pods start fast and small.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import ssl
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

PROBE_PORT = 7310
CONTROL_PORT = 7311
MAX_LINE = 4096
MAX_BODY = 8 * 1024 * 1024
MAX_TARGETS = 20_000
KINDS = frozenset({"tcp", "tls", "dns", "connect", "icmp"})
PORTLESS = frozenset({"dns", "icmp"})

Json = dict[str, Any]


@dataclass(frozen=True)
class Identity:
    pod: str
    node: str
    ip: str


# ---------------------------------------------------------------------------------------------------------------
# Probe server


class ProbeServer:
    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.requests = 0
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        # Every other prober may connect at once (the matrix of a large cluster): a deep accept queue.
        self._server = await asyncio.start_server(
            self._serve, host, port, limit=MAX_LINE, reuse_address=True, backlog=4096
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer_ip = str(peer[0]) if peer else ""
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                self.requests += 1
                cmd, _, arg = line.decode("ascii", "replace").strip().partition(" ")
                if cmd == "H":
                    writer.write(b"h " + arg.encode("ascii", "replace") + b"\n")
                elif cmd == "I":
                    answer = {
                        "pod": self.identity.pod,
                        "node": self.identity.node,
                        "ip": self.identity.ip,
                        "peer": peer_ip,
                        "token": arg[:64],
                    }
                    writer.write(json.dumps(answer, separators=(",", ":")).encode() + b"\n")
                else:
                    writer.write(b"? unknown command\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError, OSError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


# ---------------------------------------------------------------------------------------------------------------
# Probe client


def _error_text(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "timeout"
    if isinstance(e, OSError) and e.errno is not None:
        return f"{type(e).__name__}: {os.strerror(e.errno)}"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


async def tcp_identity(host: str, port: int, token: str, timeout: float) -> tuple[float, Json]:
    """Connect, ask the server who it is and whom it saw; return (seconds, answer). Raises on failure."""
    t0 = time.perf_counter()
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_LINE)
        try:
            writer.write(f"I {token}\n".encode())
            line = await reader.readline()
        finally:
            await _close(writer)
    elapsed = time.perf_counter() - t0
    if not line:
        raise ConnectionResetError("connection closed without an answer")
    answer = json.loads(line)
    if not isinstance(answer, dict):
        raise ValueError("answer is not a JSON object")
    return elapsed, answer


_icmp_seq = itertools.count(1)


async def icmp_echo(host: str, timeout: float) -> float:
    """One ICMP echo over an unprivileged ICMP socket (needs the process's group in net.ipv4.ping_group_range,
    which container runtimes open for pods); the seconds until the reply."""
    loop = asyncio.get_running_loop()
    seq = next(_icmp_seq) & 0xFFFF
    async with asyncio.timeout(timeout):
        infos = await loop.getaddrinfo(host, None, family=socket.AF_INET, type=socket.SOCK_DGRAM)
        addr = infos[0][4][0]
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        except PermissionError as e:
            raise PermissionError("ICMP sockets not permitted (net.ipv4.ping_group_range)") from e
        try:
            sock.setblocking(False)
            t0 = time.perf_counter()
            # type 8 (echo request); the kernel sets the identifier and the checksum of an ICMP socket's packets
            # One small datagram on a fresh socket never blocks (and uvloop has no sock_sendto).
            sock.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, seq) + b"cni-migrate", (addr, 0))
            while True:
                data = await loop.sock_recv(sock, 2048)
                if len(data) >= 8 and data[0] == 0 and struct.unpack("!H", data[6:8])[0] == seq:
                    return time.perf_counter() - t0
        finally:
            sock.close()


_TLS = ssl.create_default_context()
_TLS.check_hostname = False
_TLS.verify_mode = ssl.CERT_NONE  # reachability of the API server's TLS endpoint, not its identity


async def run_probe(target: Json, timeout: float) -> Json:
    """One probe. ``target``: ``id``, ``kind`` (tcp|tls|connect|dns), ``host``, ``port`` (not for dns)."""
    kind = target["kind"]
    host = str(target["host"])
    result: Json = {"id": target["id"], "ok": False}
    t0 = time.perf_counter()
    try:
        if kind == "tcp":
            elapsed, answer = await tcp_identity(host, int(target["port"]), str(target["id"]), timeout)
            result.update(ok=True, latency_ms=round(elapsed * 1000, 3), seen_source=answer.get("peer"))
            result["server"] = {k: answer.get(k) for k in ("pod", "node", "ip")}
        elif kind in ("tls", "connect"):
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(
                    host, int(target["port"]), ssl=_TLS if kind == "tls" else None
                )
            result.update(ok=True, latency_ms=round((time.perf_counter() - t0) * 1000, 3))
            await _close(writer)
        elif kind == "icmp":
            elapsed = await icmp_echo(host, timeout)
            result.update(ok=True, latency_ms=round(elapsed * 1000, 3))
        elif kind == "dns":
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            addrs = sorted({str(i[4][0]) for i in infos})
            result.update(ok=True, latency_ms=round((time.perf_counter() - t0) * 1000, 3), addresses=addrs)
        else:
            result["error"] = f"unknown probe kind {kind!r}"
    except (OSError, TimeoutError, ValueError, ssl.SSLError, UnicodeError) as e:
        result["error"] = _error_text(e)
        result["latency_ms"] = round((time.perf_counter() - t0) * 1000, 3)
    return result


async def run_probes(targets: list[Json], *, timeout: float, concurrency: int) -> list[Json]:
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(t: Json) -> Json:
        async with sem:
            return await run_probe(t, timeout)

    return list(await asyncio.gather(*(one(t) for t in targets)))


def validate_targets(raw: Any) -> list[Json]:
    """The targets of a request, checked; raises ValueError with what is wrong."""
    if not isinstance(raw, list):
        raise ValueError("targets: expected a list")
    if len(raw) > MAX_TARGETS:
        raise ValueError(f"targets: at most {MAX_TARGETS}")
    out = []
    for i, t in enumerate(raw):
        if not isinstance(t, dict) or not t.get("host") or "id" not in t:
            raise ValueError(f"targets[{i}]: expected an object with id and host")
        kind = t.get("kind", "tcp")
        if kind not in KINDS:
            raise ValueError(f"targets[{i}].kind: expected one of {', '.join(sorted(KINDS))}")
        if kind not in PORTLESS:
            port = t.get("port")
            if not isinstance(port, int) or not 0 < port < 65536:
                raise ValueError(f"targets[{i}].port: expected an integer 1-65535")
        out.append({**t, "kind": kind})
    return out


# ---------------------------------------------------------------------------------------------------------------
# Monitor


@dataclass
class StreamStats:
    """A steady stream of requests to one target; each request on a new connection.

    An outage starts at the send time of the first failed request and ends at the send time of the first request
    that succeeds after it; results are taken in send order (a reorder buffer), since a failure is known only when
    its timeout expires while later requests may already have succeeded or failed faster.
    """

    id: str
    host: str
    port: int
    sent: int = 0
    ok: int = 0
    failed: int = 0
    gaps: list[float] = field(default_factory=list)
    outage_start: float | None = None
    last_error: str = ""
    _results: dict[int, tuple[float, bool]] = field(default_factory=dict)
    _next: int = 0

    def resolve(self, seq: int, sent_at: float, ok: bool) -> None:
        self._results[seq] = (sent_at, ok)
        while self._next in self._results:
            t, good = self._results.pop(self._next)
            self._next += 1
            if good:
                self.ok += 1
                if self.outage_start is not None:
                    self.gaps.append(t - self.outage_start)
                    self.outage_start = None
            else:
                self.failed += 1
                if self.outage_start is None:
                    self.outage_start = t

    def report(self, now: float) -> Json:
        return {
            "id": self.id,
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "in_flight": self.sent - self.ok - self.failed,
            "gaps": [round(g, 4) for g in self.gaps],
            "outage_for": None if self.outage_start is None else round(now - self.outage_start, 4),
            "last_error": self.last_error,
        }


@dataclass
class HeldStats:
    """One long-lived connection (re-opened when it breaks) with a heartbeat.

    Broken: the connection failed (reset, closed, error) or a heartbeat went unanswered for ``break_timeout``.
    """

    id: str
    host: str
    port: int
    opened: int = 0
    broken: int = 0
    heartbeats: int = 0
    max_wait: float = 0.0
    down_since: float | None = None
    downtimes: list[float] = field(default_factory=list)
    last_error: str = ""

    def report(self, now: float) -> Json:
        return {
            "id": self.id,
            "opened": self.opened,
            "broken": self.broken,
            "heartbeats": self.heartbeats,
            "max_wait": round(self.max_wait, 4),
            "downtimes": [round(d, 4) for d in self.downtimes],
            "down_for": None if self.down_since is None else round(now - self.down_since, 4),
            "last_error": self.last_error,
        }


@dataclass(frozen=True)
class MonitorConfig:
    rate: float = 20.0  # requests per second per stream target
    request_timeout: float = 0.5
    heartbeat_interval: float = 0.1
    break_timeout: float = 1.0
    reconnect_interval: float = 0.05

    @classmethod
    def from_json(cls, raw: Json) -> MonitorConfig:
        values = {}
        for name, lo, hi in (
            ("rate", 0.1, 10_000.0),
            ("request_timeout", 0.01, 60.0),
            ("heartbeat_interval", 0.005, 60.0),
            ("break_timeout", 0.01, 600.0),
            ("reconnect_interval", 0.005, 60.0),
        ):
            if name in raw:
                v = raw[name]
                if not isinstance(v, int | float) or isinstance(v, bool) or not lo <= v <= hi:
                    raise ValueError(f"{name}: expected a number from {lo} to {hi}")
                values[name] = float(v)
        return cls(**values)


class Monitor:
    def __init__(self, config: MonitorConfig, streams: list[Json], held: list[Json]) -> None:
        self.config = config
        self.streams = [StreamStats(str(t["id"]), str(t["host"]), int(t["port"])) for t in streams]
        self.held = [HeldStats(str(t["id"]), str(t["host"]), int(t["port"])) for t in held]
        self.started = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        self._requests: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._stream(s)) for s in self.streams]
        self._tasks += [asyncio.create_task(self._hold(h)) for h in self.held]

    async def stop(self) -> None:
        for t in [*self._tasks, *self._requests]:
            t.cancel()
        await asyncio.gather(*self._tasks, *self._requests, return_exceptions=True)

    def report(self) -> Json:
        now = time.monotonic()
        return {
            "elapsed": round(now - self.started, 4),
            "streams": [s.report(now) for s in self.streams],
            "held": [h.report(now) for h in self.held],
        }

    async def _stream(self, s: StreamStats) -> None:
        interval = 1.0 / self.config.rate
        # Spread the streams' phases so that all targets are not hit in the same millisecond.
        next_t = time.monotonic() + (hash(s.id) % 1000) / 1000 * interval
        seq = 0
        while True:
            delay = next_t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            if now - next_t > interval:  # the loop fell behind (CPU starvation): don't fire a burst
                next_t = now
            task = asyncio.create_task(self._request(s, seq, now))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)
            s.sent += 1
            seq += 1
            next_t += interval

    async def _request(self, s: StreamStats, seq: int, sent_at: float) -> None:
        try:
            await tcp_identity(s.host, s.port, "m", self.config.request_timeout)
            ok = True
        except (OSError, TimeoutError, ValueError, UnicodeError) as e:
            s.last_error = _error_text(e)
            ok = False
        s.resolve(seq, sent_at, ok)

    async def _hold(self, h: HeldStats) -> None:
        cfg = self.config
        while True:
            writer: asyncio.StreamWriter | None = None
            try:
                async with asyncio.timeout(cfg.break_timeout):
                    reader, writer = await asyncio.open_connection(h.host, h.port, limit=MAX_LINE)
                h.opened += 1
                n = 0
                while True:
                    t0 = time.monotonic()
                    writer.write(f"H {n}\n".encode())
                    async with asyncio.timeout(cfg.break_timeout):
                        await writer.drain()
                        line = await reader.readline()
                    if not line:
                        raise ConnectionResetError("closed by the server")
                    wait = time.monotonic() - t0
                    h.max_wait = max(h.max_wait, wait)
                    h.heartbeats += 1
                    if h.down_since is not None:
                        h.downtimes.append(time.monotonic() - h.down_since)
                        h.down_since = None
                    n += 1
                    await asyncio.sleep(max(0.0, cfg.heartbeat_interval - wait))
            except (OSError, TimeoutError, ValueError) as e:
                h.last_error = _error_text(e)
                if writer is not None:  # it was open: this connection broke
                    h.broken += 1
                if h.down_since is None:
                    h.down_since = time.monotonic() - (cfg.break_timeout if isinstance(e, TimeoutError) else 0.0)
            finally:
                if writer is not None:
                    writer.close()
            await asyncio.sleep(cfg.reconnect_interval)


# ---------------------------------------------------------------------------------------------------------------
# Control server (HTTP)


class ProbeError(Exception):
    """A bad control request: answered with 400 and this message."""


class Agent:
    """The prober process: probe server, control server and at most one monitor."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.probe_server = ProbeServer(identity)
        self.monitor: Monitor | None = None
        self._control: asyncio.Server | None = None
        self.stopped = asyncio.Event()
        self.routes: dict[tuple[str, str], Callable[[Json], Awaitable[Json]]] = {
            ("GET", "/healthz"): self._healthz,
            ("POST", "/probe"): self._probe,
            ("POST", "/monitor/start"): self._monitor_start,
            ("GET", "/monitor/poll"): self._monitor_poll,
            ("POST", "/monitor/stop"): self._monitor_stop,
        }

    async def start(self, *, probe_host: str, probe_port: int, control: str) -> None:
        await self.probe_server.start(probe_host, probe_port)
        if control.startswith("unix:"):
            path = control.removeprefix("unix:")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            self._control = await asyncio.start_unix_server(self._serve_control, path, limit=MAX_LINE)
        else:
            host, _, port = control.rpartition(":")
            self._control = await asyncio.start_server(
                self._serve_control, host or "0.0.0.0", int(port), limit=MAX_LINE, reuse_address=True
            )

    async def close(self) -> None:
        if self.monitor is not None:
            await self.monitor.stop()
        if self._control is not None:
            self._control.close()
        await self.probe_server.close()

    async def _healthz(self, _body: Json) -> Json:
        return {"ok": True, "pod": self.identity.pod, "node": self.identity.node, "ip": self.identity.ip}

    async def _probe(self, body: Json) -> Json:
        targets = validate_targets(body.get("targets"))
        timeout = float(body.get("timeout", 2.0))
        concurrency = int(body.get("concurrency", 64))
        if not 0 < timeout <= 60:
            raise ValueError("timeout: expected seconds in (0, 60]")
        t0 = time.perf_counter()
        results = await run_probes(targets, timeout=timeout, concurrency=concurrency)
        return {"source": await self._healthz({}), "elapsed": time.perf_counter() - t0, "results": results}

    async def _monitor_start(self, body: Json) -> Json:
        if self.monitor is not None:
            await self.monitor.stop()
        config = MonitorConfig.from_json(body.get("config") or {})
        streams = validate_targets(body.get("streams") or [])
        held = validate_targets(body.get("held") or [])
        if any(t["kind"] != "tcp" for t in [*streams, *held]):
            raise ValueError("monitor targets must be of kind tcp")
        self.monitor = Monitor(config, streams, held)
        self.monitor.start()
        return {"started": True, "streams": len(streams), "held": len(held)}

    async def _monitor_poll(self, _body: Json) -> Json:
        if self.monitor is None:
            raise ProbeError("no monitor running")
        return self.monitor.report()

    async def _monitor_stop(self, _body: Json) -> Json:
        if self.monitor is None:
            raise ProbeError("no monitor running")
        await self.monitor.stop()
        report = self.monitor.report()
        self.monitor = None
        return report

    async def _serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, answer = await self._handle(reader)
            body = json.dumps(answer, separators=(",", ":")).encode()
            head = (
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            await _close(writer)

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[int, Json]:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 30.0)
            parts = request_line.decode("latin-1").split()
            if len(parts) != 3:
                return 400, {"error": "bad request line"}
            method, target = parts[0].upper(), parts[1]
            headers: dict[str, str] = {}
            for _ in range(100):
                raw = await reader.readline()
                text = raw.decode("latin-1").strip()
                if not text:
                    break
                key, _, value = text.partition(":")
                headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if length > MAX_BODY:
                return 413, {"error": "body too large"}
            raw_body = await reader.readexactly(length) if length else b""
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return 400, {"error": "bad request"}
        route = self.routes.get((method, target.partition("?")[0]))
        if route is None:
            return 404, {"error": f"no route {method} {target}"}
        try:
            body = json.loads(raw_body) if raw_body else {}
            if not isinstance(body, dict):
                raise ValueError("body: expected a JSON object")
            return 200, await route(body)
        except (ValueError, TypeError, KeyError, ProbeError) as e:
            return 400, {"error": str(e)}
        except Exception as e:  # a bug must be an answer, not a dropped connection
            return 500, {"error": f"{type(e).__name__}: {e}"}


def _identity(args: argparse.Namespace) -> Identity:
    pod = args.pod or os.environ.get("POD_NAME") or socket.gethostname()
    node = args.node or os.environ.get("NODE_NAME") or ""
    ip = args.ip or os.environ.get("POD_IP") or ""
    return Identity(pod=pod, node=node, ip=ip)


async def serve(args: argparse.Namespace) -> None:
    agent = Agent(_identity(args))
    await agent.start(probe_host=args.probe_host, probe_port=args.probe_port, control=args.control)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stopped.set)
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
    await agent.stopped.wait()
    await agent.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cni_migrate.actions.verify.prober", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the probe server and the control server")
    s.add_argument("--probe-host", default="0.0.0.0")
    s.add_argument("--probe-port", type=int, default=PROBE_PORT)
    s.add_argument("--control", default=f"0.0.0.0:{CONTROL_PORT}", help="HOST:PORT or unix:PATH")
    s.add_argument("--pod", default="", help="identity (default $POD_NAME, then the host name)")
    s.add_argument("--node", default="", help="identity (default $NODE_NAME)")
    s.add_argument("--ip", default="", help="identity (default $POD_IP)")
    s.add_argument("--ready-file", default="", help="written once both servers listen")
    args = ap.parse_args(argv)
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        runner: Callable[[Awaitable[None]], None] = uvloop.run  # type: ignore[assignment]
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        runner = asyncio.run  # type: ignore[assignment]
    try:
        runner(serve(args))
    except OSError as e:
        print(f"prober: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
