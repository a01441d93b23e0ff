"""``cni-migrate-testbed up``: run the test control plane in the foreground, for humans."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading
from types import FrameType

from cni_migrate_testbed.controlplane import ControlPlane
from cni_migrate_testbed.errors import TestbedError
from cni_migrate_testbed.nodes import FakeNodeSpec


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cni-migrate-testbed", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a control plane with fake nodes; Ctrl-C stops it")
    up.add_argument(
        "--allocate-node-cidrs",
        action="store_true",
        help="let kube-controller-manager allocate node podCIDRs (otherwise each node is created with one)",
    )
    up.add_argument("--nodes", type=int, default=3, metavar="N", help="fake nodes to create (default 3)")
    up.add_argument("--cluster-cidr", default="10.244.0.0/16")
    up.add_argument("--node-cidr-mask", type=int, default=24)
    return parser


def _up(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    cp = ControlPlane()
    try:
        cp.start(
            allocate_node_cidrs=args.allocate_node_cidrs,
            cluster_cidr=args.cluster_cidr,
            node_cidr_mask=args.node_cidr_mask,
        )
        if args.nodes > 0 and not stop.is_set():
            subnets = ipaddress.ip_network(args.cluster_cidr).subnets(new_prefix=args.node_cidr_mask)
            specs = []
            for i in range(args.nodes):
                cidr = None if args.allocate_node_cidrs else str(next(subnets))
                specs.append(FakeNodeSpec(name=f"fake-node-{i}", pod_cidr=cidr))
            cp.create_fake_nodes(specs)
        print(f"export KUBECONFIG={cp.admin_kubeconfig}")
        print(f"export PATH={cp.bin_dir}:$PATH")
        print(f"# {args.nodes} fake node(s) Ready; logs in {cp.workdir}; Ctrl-C to stop", flush=True)
        stop.wait()
    except TestbedError as err:
        print(f"cni-migrate-testbed: {err}", file=sys.stderr)
        return 1
    finally:
        cp.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    print("cni-migrate-testbed: stopped", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        return _up(args)
    return 2  # unreachable: argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
