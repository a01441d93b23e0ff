#!/usr/bin/env python3
"""The PodCIDRPool IPAM operator vs kube-controller-manager's range allocator, on the real test control plane.

Two control planes of the testbed, identical but for kube-controller-manager's ``--allocate-node-cidrs`` (a
start-up flag, hence two instances), both up for the whole run so the machine's load is the same for both; the
measurements alternate between them. Our operator runs as a process with leader election, as deployed: installed
with ``helm install`` (its CRD and RBAC), authenticated as the chart's ServiceAccount, with the chart's defaults but
the *same client QPS/burst* as kube-controller-manager (read from its command line), and a pool that is the same
range and block size as KCM's ``--cluster-cidr``/``--node-cidr-mask-size``.

* **Burst**: N nodes (1,000 and 5,000) are created at once (64 concurrent creates); the time until every one of
  them has ``spec.podCIDR`` (seen by a watch) is measured from the first create. Also reported: the lag after the
  last create returned, which isolates the allocator from the creation speed.
* **Churn**: nodes are created at a steady rate and deleted after a while; the latency from a node's create
  returning to its ``podCIDR`` being seen, p50/p99.

Target: our time <= 1.0x kube-controller-manager's. Prints one JSON object per measurement and a summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from cni_migrate.kube import KubeError
from cni_migrate.kube.ipam import NODES_PATH, AsyncKube
from cni_migrate_testbed import ControlPlane, find_binary

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "cni-migrate-ipam"
OPERATOR_NAMESPACE = "cni-migrate-ipam"
CLUSTER_CIDR = "100.64.0.0/10"
MASK = 24
LABEL = "bench.cni-migrate.io/run"
COOL_DOWN = 10.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(side: Side) -> dict[str, float]:
    pids = {k: v for k, v in side.cp.pids.items() if k in ("kube-apiserver", "etcd", "kube-controller-manager")}
    if side.proc is not None:
        pids["ipam-operator"] = side.proc.pid
    out = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            out[name] = cpu_seconds(pid)
    out["bench-client"] = time.process_time()
    return out


def operator_requests(side: Side) -> dict[str, float]:
    """The operator's API requests so far, by verb and code (from its metrics)."""
    if side.proc is None:
        return {}
    out: dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{side.metrics_port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("cni_migrate_ipam_api_requests_total{"):
                key, _, value = line.rpartition(" ")
                out[key.partition("{")[2].rstrip("}")] = float(value)
    return out


def apf_wait(cp: ControlPlane) -> dict[str, float]:
    """Seconds requests waited in API Priority and Fairness queues so far, by priority level (the operator's
    ServiceAccount lands in workload-low unless a FlowSchema says otherwise, kube-controller-manager in
    workload-high, the admin in exempt)."""
    out: dict[str, float] = {}
    for line in cp.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        if line.startswith("apiserver_flowcontrol_request_wait_duration_seconds_sum{"):
            labels, _, value = line.rpartition(" ")
            level = labels.partition('priority_level="')[2].partition('"')[0]
            out[level] = out.get(level, 0.0) + float(value)
    return out


def server_node_patches(cp: ControlPlane) -> tuple[float, float]:
    """The API server's own count and total seconds of PATCH requests on nodes (apiserver_request_duration_seconds)."""
    count = total = 0.0
    for line in cp.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        wanted = ('resource="nodes"', 'subresource=""', 'verb="PATCH"')
        if line.startswith("apiserver_request_duration_seconds_") and all(w in line for w in wanted):
            name, _, value = line.rpartition(" ")
            if name.startswith("apiserver_request_duration_seconds_count"):
                count += float(value)
            elif name.startswith("apiserver_request_duration_seconds_sum"):
                total += float(value)
    return count, total


def kcm_rate_limits(cp: ControlPlane) -> tuple[float, int]:
    """kube-controller-manager's --kube-api-qps/--kube-api-burst (its defaults, 20/30, when not given)."""
    argv = Path(f"/proc/{cp.pids['kube-controller-manager']}/cmdline").read_bytes().split(b"\0")
    flags = dict(a.decode().lstrip("-").split("=", 1) for a in argv if a.startswith(b"--") and b"=" in a)
    return float(flags.get("kube-api-qps", 20)), int(flags.get("kube-api-burst", 30))


class Side:
    """One allocator under test: a control plane, and for ours the operator process."""

    def __init__(self, name: str, cp: ControlPlane) -> None:
        self.name = name
        self.cp = cp
        self.kube: AsyncKube | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0

    async def connect(self) -> AsyncKube:
        self.kube = AsyncKube.connect(str(self.cp.admin_kubeconfig), qps=0, burst=1, max_connections=96)
        return self.kube


def install_chart(cp: ControlPlane) -> Path:
    """``helm install`` the operator's chart (RBAC, CRD; no pods: the operator runs as a local process) and return a
    kubeconfig of its ServiceAccount: the operator then runs with exactly the identity and rights it has when deployed
    (the API server's priority and fairness treats it as a ServiceAccount, not as the cluster admin)."""
    env = {
        **os.environ,
        **{f"HELM_{k}_HOME": str(cp.workdir / f"helm-{k.lower()}") for k in ("CACHE", "CONFIG", "DATA")},
    }
    subprocess.run(
        [str(find_binary("helm", cp.cache)), f"--kubeconfig={cp.admin_kubeconfig}", "install", "cni-migrate-ipam",
         str(CHART), "--namespace", OPERATOR_NAMESPACE, "--create-namespace", "--set", "replicaCount=0",
         "--set", "webhook.enabled=false", "--wait", "--timeout", "60s"],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    return cp.kubeconfig_for_service_account(OPERATOR_NAMESPACE, "cni-migrate-ipam")


def start_operator(side: Side, qps: float, burst: int, extra: list[str]) -> None:
    cp = side.cp
    kubeconfig = install_chart(cp)
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/podcidrpools.ipam.cni-migrate.io")
    pool = {
        "apiVersion": "ipam.cni-migrate.io/v1alpha1",
        "kind": "PodCIDRPool",
        "metadata": {"name": "bench"},
        "spec": {"cidrs": [CLUSTER_CIDR], "blockSize": {"ipv4": MASK}, "nodeSelector": {"matchExpressions": [
            {"key": LABEL, "operator": "Exists"}]}},
    }  # fmt: skip
    kubectl = cp.bin_dir / "kubectl"
    subprocess.run(
        [str(kubectl), f"--kubeconfig={cp.admin_kubeconfig}", "apply", "-f", "-"],
        input=yaml.safe_dump(pool), text=True, check=True, capture_output=True,
    )  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        side.metrics_port = int(s.getsockname()[1])
    log = (cp.workdir / "ipam-operator.log").open("ab")
    profile = ["-m", "cProfile", "-o", os.environ["IPAM_BENCH_PROFILE"]] if os.environ.get("IPAM_BENCH_PROFILE") else []
    side.proc = subprocess.Popen(
        [
            sys.executable, *profile, "-m", "cni_migrate.actions.ipam_operator",
            f"--kubeconfig={kubeconfig}", f"--lease-namespace={OPERATOR_NAMESPACE}", "--identity=bench",
            f"--qps={qps:g}", f"--burst={burst}",
            f"--metrics-bind-address=127.0.0.1:{side.metrics_port}", "--health-bind-address=0", *extra,
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{side.metrics_port}/metrics", timeout=2) as r:
                if "cni_migrate_ipam_leader 1.0" in r.read().decode():
                    return
        except OSError:
            pass
        if side.proc.poll() is not None:
            raise SystemExit(f"operator exited: {(cp.workdir / 'ipam-operator.log').read_text()[-2000:]}")
        time.sleep(0.2)
    raise SystemExit("operator did not become leader in 60 s")


class Observer:
    """Watches all nodes; records when each first has spec.podCIDR (monotonic time of this process)."""

    def __init__(self, kube: AsyncKube) -> None:
        self.kube = kube
        self.allocated: dict[str, float] = {}
        self.present: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def _see(self, obj: dict[str, Any], deleted: bool = False) -> None:
        name = obj["metadata"]["name"]
        if deleted:
            self.present.discard(name)  # names are unique per run: keep its allocation time
        else:
            self.present.add(name)
            if (obj.get("spec") or {}).get("podCIDR") and name not in self.allocated:
                self.allocated[name] = time.monotonic()
        self._changed.set()

    async def start(self) -> None:
        items, rv = await self.kube.list_nodes()
        for obj in items:
            self._see(obj)
        self._task = asyncio.create_task(self._run(rv))

    async def _run(self, rv: str) -> None:
        while True:
            async for ev in self.kube.watch_nodes(rv, timeout_seconds=600):
                rv = ev.object.get("metadata", {}).get("resourceVersion", rv)
                if ev.type != "BOOKMARK":
                    self._see(ev.object, deleted=ev.type == "DELETED")

    async def wait(self, done: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


def node_body(name: str, run: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {LABEL: run, "kubernetes.io/hostname": name}},
        "spec": {},
    }


async def delete_run(kube: AsyncKube, obs: Observer, run: str, names: list[str]) -> None:
    """Delete a run's nodes (a collection delete can outlast the API server's request timeout: then again)."""
    gone = set(names)
    for _attempt in range(5):
        with contextlib.suppress(KubeError):
            await kube.request(
                "DELETE", NODES_PATH, what="delete nodes", params={"labelSelector": f"{LABEL}={run}"}, timeout=120
            )
        with contextlib.suppress(TimeoutError):
            await obs.wait(lambda: not (gone & obs.present), timeout=120)
            return
    raise TimeoutError(f"nodes of run {run} not deleted")


async def burst(side: Side, obs: Observer, n: int, tag: str) -> dict[str, Any]:
    kube = side.kube
    assert kube is not None
    run = f"{tag}-{os.urandom(3).hex()}"
    names = [f"bench-{run}-{i}" for i in range(n)]
    sem = asyncio.Semaphore(64)

    async def create(name: str) -> None:
        async with sem:
            await kube.request("POST", NODES_PATH, what=f"create node {name}", body=node_body(name, run))

    cpu0 = cpu_snapshot(side)
    req0 = operator_requests(side)
    apf0 = apf_wait(side.cp)
    t0 = time.monotonic()
    await asyncio.gather(*(create(name) for name in names))
    created = time.monotonic() - t0
    await obs.wait(lambda: all(nm in obs.allocated for nm in names), timeout=600)
    done = max(obs.allocated[nm] for nm in names) - t0
    cpu1 = cpu_snapshot(side)
    req1 = operator_requests(side)
    apf1 = apf_wait(side.cp)
    await delete_run(kube, obs, run, names)
    await asyncio.sleep(COOL_DOWN)  # let the API servers and controllers finish with the deletions
    cpu = {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1 if k in cpu0}
    times = sorted(obs.allocated[nm] - t0 for nm in names)
    timeline = {f"{q}%": round(times[min(n - 1, n * q // 100)], 3) for q in (10, 25, 50, 75, 90)}
    out = {"nodes": n, "seconds": round(done, 3), "allocated_by": timeline, "create_seconds": round(created, 3),
           "lag_after_last_create_seconds": round(max(0.0, done - created), 3), "cpu_seconds": cpu}  # fmt: skip
    out["apf_wait_seconds"] = {k: round(v - apf0.get(k, 0.0), 3) for k, v in apf1.items() if v - apf0.get(k, 0.0) > 0}
    if req1:
        out["operator_requests"] = {k: v - req0.get(k, 0.0) for k, v in req1.items() if v != req0.get(k, 0.0)}
    return out


async def churn(side: Side, obs: Observer, seconds: float, rate: float, lifetime: float) -> dict[str, Any]:
    kube = side.kube
    assert kube is not None
    run = f"churn-{side.name}-{os.urandom(3).hex()}"
    created_at: dict[str, float] = {}
    tasks: list[asyncio.Task[None]] = []

    async def one(name: str) -> None:
        await kube.request("POST", NODES_PATH, what=f"create node {name}", body=node_body(name, run))
        created_at[name] = time.monotonic()
        await asyncio.sleep(lifetime)
        await kube.request("DELETE", f"{NODES_PATH}/{name}", what=f"delete node {name}")

    patches0 = server_node_patches(side.cp)
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < seconds:
        tasks.append(asyncio.create_task(one(f"bench-{run}-{i}")))
        i += 1
        await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
    lat: list[float] = []
    await asyncio.sleep(2.0)
    for name, t in created_at.items():
        if name in obs.allocated:
            lat.append(obs.allocated[name] - t)
    await asyncio.gather(*tasks, return_exceptions=True)
    patches1 = server_node_patches(side.cp)
    n_patch = patches1[0] - patches0[0]
    server_ms = round(1000 * (patches1[1] - patches0[1]) / n_patch, 2) if n_patch else None
    lat.sort()
    missing = len(created_at) - len(lat)

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 4) if lat else float("nan")

    mean = round(statistics.fmean(lat), 4) if lat else None
    return {"nodes": len(created_at), "rate_per_s": rate, "p50_seconds": pct(0.50), "p99_seconds": pct(0.99),
            "mean_seconds": mean, "not_allocated_in_time": missing,
            "server_node_patch_ms_mean": server_ms, "server_node_patches": n_patch}  # fmt: skip


async def run(args: argparse.Namespace) -> dict[str, Any]:
    cps = {
        "ours": ControlPlane(quiet=True).start(
            allocate_node_cidrs=False, cluster_cidr=CLUSTER_CIDR, node_cidr_mask=MASK
        ),
        "kcm": ControlPlane(quiet=True).start(allocate_node_cidrs=True, cluster_cidr=CLUSTER_CIDR, node_cidr_mask=MASK),
    }
    sides = {k: Side(k, cp) for k, cp in cps.items()}
    try:
        qps, burst_ = kcm_rate_limits(cps["kcm"])
        start_operator(sides["ours"], qps, burst_, args.operator_arg)
        observers = {}
        for k, side in sides.items():
            observers[k] = Observer(await side.connect())
            await observers[k].start()
        results: dict[str, Any] = {"qps": qps, "burst": burst_, "burst_runs": {}, "churn": {}}
        order = ["kcm", "ours"]
        for n in args.sizes:
            per: dict[str, list[dict[str, Any]]] = {"ours": [], "kcm": []}
            for rep in range(args.repeat):
                for k in order if rep % 2 == 0 else list(reversed(order)):
                    r = await burst(sides[k], observers[k], n, f"{k}{n}r{rep}")
                    per[k].append(r)
                    print(json.dumps({"bench": "ipam_operator_burst", "allocator": k, **r}), flush=True)
            med = {k: statistics.median(x["seconds"] for x in v) for k, v in per.items()}
            lag = {k: statistics.median(x["lag_after_last_create_seconds"] for x in v) for k, v in per.items()}
            results["burst_runs"][str(n)] = {
                "ours_seconds": med["ours"], "kcm_seconds": med["kcm"], "ratio": round(med["ours"] / med["kcm"], 3),
                "ours_lag_seconds": lag["ours"], "kcm_lag_seconds": lag["kcm"], "runs": per,
            }  # fmt: skip
        for k in order:
            c = await churn(sides[k], observers[k], args.churn_seconds, args.churn_rate, args.churn_lifetime)
            results["churn"][k] = c
            print(json.dumps({"bench": "ipam_operator_churn", "allocator": k, **c}), flush=True)
        ch = results["churn"]
        results["churn"]["p50_ratio"] = round(ch["ours"]["p50_seconds"] / ch["kcm"]["p50_seconds"], 3)
        results["churn"]["p99_ratio"] = round(ch["ours"]["p99_seconds"] / ch["kcm"]["p99_seconds"], 3)
        results["target"] = "ours <= 1.0x kube-controller-manager"
        results["target_met"] = all(v["ratio"] <= 1.0 for v in results["burst_runs"].values())
        for obs in observers.values():
            obs.stop()
        for side in sides.values():
            if side.kube is not None:
                await side.kube.close()
        return results
    finally:
        p = sides["ours"].proc
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        for cp in cps.values():
            cp.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",") if x], default=[1000, 5000])
    ap.add_argument("--repeat", type=int, default=4, help="bursts per size and allocator (alternating order)")
    ap.add_argument("--churn-seconds", type=float, default=60.0)
    ap.add_argument("--churn-rate", type=float, default=20.0, help="nodes created per second during churn")
    ap.add_argument("--churn-lifetime", type=float, default=10.0, help="seconds a churn node lives")
    ap.add_argument("--operator-arg", action="append", default=[], help="extra operator flag (repeatable)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "ipam_operator.json")
    args = ap.parse_args()
    results = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    summary = {k: v for k, v in results.items() if k != "burst_runs"}
    summary["burst"] = {n: {k: v for k, v in r.items() if k != "runs"} for n, r in results["burst_runs"].items()}
    print(json.dumps({"bench": "ipam_operator_summary", **summary}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
