"""A fault-injecting HTTPS proxy on loopback between the executor and the API server.

It terminates TLS with the test control plane's serving certificate, forwards each request (Authorization header
included: clients authenticate with a bearer token) and, decided per request by a seeded random generator:

* ``reset-before``: closes the connection without forwarding (the write did not happen);
* ``reset-after``: forwards, then closes without answering (the write happened, the client cannot know);
* ``429``: answers Too Many Requests with Retry-After without forwarding;
* ``500``: answers Internal Server Error without forwarding;
* ``slow``: forwards after a delay.

Every decision is logged in :attr:`log` (method, path, fault), so a test can prove faults hit writes.
"""

from __future__ import annotations

import http.client
import random
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

FAULTS = ("reset-before", "reset-after", "429", "500", "slow")


class FaultProxy:
    def __init__(self, upstream: str, ca: Path, cert: Path, key: Path, *, seed: int, rate: float) -> None:
        self.upstream = urlparse(upstream)
        self.rate = rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, str]] = []
        self.enabled = True
        self.client_ctx = ssl.create_default_context(cafile=str(ca))
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(str(cert), str(key))
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy.decide(self.command, self.path)
                if fault == "reset-before":
                    self._reset()
                    return
                if fault in ("429", "500"):
                    text = (
                        b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected","code":'
                        + fault.encode()
                        + b"}"
                    )
                    self.send_response(int(fault))
                    if fault == "429":
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                    return
                if fault == "slow":
                    time.sleep(0.4)
                conn = http.client.HTTPSConnection(
                    proxy.upstream.hostname or "127.0.0.1", proxy.upstream.port, context=proxy.client_ctx, timeout=60
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if fault == "reset-after":
                    self._reset()
                    return
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _reset(self) -> None:
                self.close_connection = True
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                except OSError:
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = server_ctx.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def decide(self, method: str, path: str) -> str:
        with self.lock:
            if not self.enabled or self.rng.random() >= self.rate:
                return "none"
            fault = self.rng.choice(FAULTS)
            self.log.append((method, path.split("?", maxsplit=1)[0], fault))
            return fault

    def start(self) -> FaultProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
