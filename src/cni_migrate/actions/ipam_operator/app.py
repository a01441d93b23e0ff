"""Command line and wiring of the IPAM operator process (see docs/ipam-operator.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import ssl
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

try:
    import uvloop as _uvloop
except ImportError:  # a dependency, but not built for every platform
    _uvloop = None  # type: ignore[assignment]

from cni_migrate.actions.ipam_operator.admission import AdmissionLedger
from cni_migrate.actions.ipam_operator.controller import Controller, ControllerConfig
from cni_migrate.actions.ipam_operator.events import EventRecorder
from cni_migrate.actions.ipam_operator.httpserver import HttpServer, TlsFiles
from cni_migrate.actions.ipam_operator.leader import LeaderElector, LeaseConfig
from cni_migrate.actions.ipam_operator.metrics import Metrics
from cni_migrate.actions.ipam_operator.webhook import make_routes
from cni_migrate.kube import KubeConfigurationError, KubeError
from cni_migrate.kube.ipam import AsyncKube

log = logging.getLogger("cni_migrate.ipam_operator")

SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


MIN_WORKERS, MAX_WORKERS = 8, 256
# A node write takes 50-300 ms while the API server is busy with a burst of node registrations; with fewer writes
# in flight than qps x latency, the client-side token bucket refills faster than it is spent and a full bucket
# wastes tokens (measured at --qps 200: with 32 in flight 5,000-node bursts ended 7-13 % above the QPS floor, with
# qps/2 within 1.5 %).
WRITE_LATENCY_ALLOWANCE = 0.5
#: Allocations before a young-generation garbage collection (Python's default: 700).
GC_THRESHOLD = 20_000


def workers_for(qps: float, workers: int) -> int:
    """Writes in flight: as given, or enough to spend the QPS budget at WRITE_LATENCY_ALLOWANCE per write."""
    if workers > 0:
        return workers
    if qps <= 0:
        return MAX_WORKERS // 2
    return max(MIN_WORKERS, min(MAX_WORKERS, round(qps * WRITE_LATENCY_ALLOWANCE)))


def _default_namespace() -> str:
    env = os.environ.get("POD_NAMESPACE")
    if env:
        return env
    with contextlib.suppress(OSError):
        return SA_NAMESPACE_FILE.read_text().strip()
    return "kube-system"


def _default_identity() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _address(text: str, what: str) -> tuple[str, int] | None:
    """``host:port`` (``:port`` = all interfaces); ``0`` or empty disables."""
    if text in ("", "0"):
        return None
    host, _, port = text.rpartition(":")
    try:
        return (host.strip("[]") or "0.0.0.0", int(port))
    except ValueError:
        raise SystemExit(f"{what}: expected host:port, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cni_migrate.actions.ipam_operator",
        description="PodCIDRPool IPAM operator: gives each node a pod CIDR block from the pool its labels select.",
    )
    c = p.add_argument_group("cluster")
    c.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, else in-cluster)")
    c.add_argument("--context", help="kubeconfig context")
    c.add_argument("--qps", type=float, default=100.0, help="client-side API rate limit, requests/s (default 100)")
    c.add_argument("--burst", type=int, default=200, help="client-side API burst (default 200)")
    c.add_argument(
        "--workers",
        type=int,
        default=0,
        help="node writes in flight at once (default 0: enough to spend --qps at 0.5 s per write, "
        f"qps/2 within {MIN_WORKERS}-{MAX_WORKERS})",
    )
    c.add_argument(
        "--event-loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="auto: uvloop when installed (less CPU per request), else asyncio's own",
    )
    c.add_argument("--write-timeout", type=float, default=10.0, help="seconds per node write (default 10)")
    c.add_argument("--field-manager", default="cni-migrate-ipam", help="field manager of the writes")
    o = p.add_argument_group("allocation")
    o.add_argument("--mode", choices=("spec", "annotation"), default="spec",
                   help="spec: set spec.podCIDR(s) (default); annotation: Cilium's pod-CIDR annotations")  # fmt: skip
    o.add_argument("--no-legacy-annotation", dest="legacy_annotation", action="store_false",
                   help="annotation mode: do not also write io.cilium.network.ipv4/ipv6-pod-cidr")  # fmt: skip
    o.add_argument("--cilium-config", default="kube-system/cilium-config",
                   help="Cilium's ConfigMap (namespace/name), checked for annotate-k8s-node=true")  # fmt: skip
    o.add_argument("--cilium-check-interval", type=float, default=60.0, help="seconds between cilium-config checks")
    o.add_argument("--status-interval", type=float, default=1.0, help="seconds between pool status updates")
    o.add_argument("--audit-log", type=Path, help="append one JSON line per node write (intent and outcome)")
    e = p.add_argument_group("leader election")
    e.add_argument("--no-leader-elect", dest="leader_elect", action="store_false",
                   help="write without a Lease (one replica only!)")  # fmt: skip
    e.add_argument("--lease-namespace", default=None, help="namespace of the Lease (default: the pod's)")
    e.add_argument("--lease-name", default="cni-migrate-ipam")
    e.add_argument("--identity", default=None, help="holder identity (default: $POD_NAME, else host_random)")
    e.add_argument("--lease-duration", type=float, default=15.0)
    e.add_argument("--renew-deadline", type=float, default=10.0)
    e.add_argument("--retry-period", type=float, default=2.0)
    v = p.add_argument_group("events")
    v.add_argument("--events-namespace", default="default", help="namespace of node and pool events")
    v.add_argument("--event-qps", type=float, default=50.0, help="events per second at most (spare tokens only)")
    v.add_argument("--no-allocation-events", dest="allocation_events", action="store_false",
                   help="no Normal event per allocated node (warnings are always recorded)")  # fmt: skip
    s = p.add_argument_group("serving")
    s.add_argument("--metrics-bind-address", default="0.0.0.0:9977", help="/metrics (0 disables)")
    s.add_argument("--health-bind-address", default="0.0.0.0:9978", help="/healthz, /readyz (0 disables)")
    s.add_argument("--webhook-bind-address", default="", help="HTTPS admission webhook (empty disables)")
    s.add_argument("--webhook-cert-file", type=Path, help="webhook serving certificate (PEM)")
    s.add_argument("--webhook-key-file", type=Path, help="webhook serving key (PEM)")
    s.add_argument(
        "--admission-lease-name",
        default=None,
        help="Lease recording admitted pools, so concurrent admissions cannot overlap "
        "(default: <lease-name>-admission, in --lease-namespace)",
    )
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


async def run(args: argparse.Namespace) -> int:
    identity = args.identity or _default_identity()
    args.workers = workers_for(args.qps, args.workers)
    lease_namespace = args.lease_namespace or _default_namespace()
    kube = AsyncKube.connect(
        args.kubeconfig,
        args.context,
        qps=args.qps,
        burst=args.burst,
        field_manager=args.field_manager,
        max_connections=args.workers + 4,  # every writer its connection, plus the two watches and the Lease
    )
    metrics = Metrics()
    events = EventRecorder(kube, metrics, instance=identity, namespace=args.events_namespace, event_qps=args.event_qps)
    cilium_config = None
    if args.cilium_config:
        ns, _, name = args.cilium_config.partition("/")
        cilium_config = (ns, name) if name else ("kube-system", ns)
    config = ControllerConfig(
        identity=identity,
        mode=args.mode,
        legacy_annotation=args.legacy_annotation,
        workers=args.workers,
        field_manager=args.field_manager,
        write_timeout=args.write_timeout,
        cilium_config=cilium_config,
        cilium_check_interval=args.cilium_check_interval,
        status_interval=args.status_interval,
        allocation_events=args.allocation_events,
        audit_log=args.audit_log,
    )
    elector: LeaderElector | None = None
    if args.leader_elect:
        lease = LeaseConfig(
            namespace=lease_namespace,
            name=args.lease_name,
            identity=identity,
            lease_duration=args.lease_duration,
            renew_deadline=args.renew_deadline,
            retry_period=args.retry_period,
        )
        elector = LeaderElector(kube, lease)
    controller = Controller(kube, config, metrics, events, elector)
    events.busy = controller.busy
    if elector is not None:
        elector.on_started = controller.on_started_leading
        elector.on_lost = controller.on_stopped_leading
    else:
        controller.on_started_leading()

    ledger = AdmissionLedger(
        kube,
        lease_namespace,
        args.admission_lease_name or f"{args.lease_name}-admission",
    )
    routes = make_routes(controller, metrics, ledger)
    servers: list[HttpServer] = []
    background: list[asyncio.Task[None]] = []
    for flag, what in ((args.metrics_bind_address, "metrics"), (args.health_bind_address, "health")):
        addr = _address(flag, f"--{what}-bind-address")
        if addr is not None:
            server = HttpServer(routes, name=what)
            await server.start(*addr)
            servers.append(server)
    webhook_addr = _address(args.webhook_bind_address, "--webhook-bind-address")
    if webhook_addr is not None:
        if not (args.webhook_cert_file and args.webhook_key_file):
            raise SystemExit("--webhook-bind-address needs --webhook-cert-file and --webhook-key-file")
        tls = TlsFiles(args.webhook_cert_file, args.webhook_key_file)
        server = HttpServer(routes, name="webhook")
        await server.start(*webhook_addr, tls=tls.context)
        servers.append(server)
        background.append(asyncio.create_task(tls.watch()))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "%s: starting (mode %s, qps %g, burst %d, workers %d, event loop %s)",
        identity, args.mode, args.qps, args.burst, args.workers, type(loop).__module__.partition(".")[0],
    )  # fmt: skip
    main_task = asyncio.create_task(controller.run())
    elector_task = asyncio.create_task(elector.run()) if elector is not None else None
    stop_task = asyncio.create_task(stop.wait())
    watched: list[asyncio.Task[Any]] = [main_task, stop_task]
    if elector_task is not None:
        watched.append(elector_task)
    done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    for t in done:
        if t is not stop_task and t.exception() is not None:
            log.error("operator task failed", exc_info=t.exception())
            code = 1
    log.info("%s: shutting down", identity)
    if elector_task is not None:
        elector_task.cancel()
    await controller.shutdown()
    if elector is not None:
        await elector.release()
    main_task.cancel()
    for t in [*background, stop_task]:
        t.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await main_task
    for server in servers:
        await server.close()
    await kube.close()
    return code


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop (libuv): less CPU per API request than asyncio's own, CPU that the API server next to the
    operator gets back during a burst of node registrations. None: asyncio's default loop."""
    if choice == "asyncio":
        return None
    if _uvloop is None:
        if choice == "uvloop":
            raise SystemExit("--event-loop=uvloop: uvloop is not installed")
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = _uvloop.new_event_loop
    return factory


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Each watch event and API answer allocates thousands of short-lived containers: with Python's default
    # threshold (700) the collector ran every few nodes of a burst. Measured: ~6 % less CPU per 1,000-node burst.
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, getattr(logging, args.log_level.upper())))
    try:
        with asyncio.Runner(loop_factory=loop_factory(args.event_loop)) as runner:
            return runner.run(run(args))
    except KubeConfigurationError as e:
        log.error("%s", e)
        return 2
    except (KubeError, OSError, ssl.SSLError) as e:
        log.error("%s", e)
        return 1
