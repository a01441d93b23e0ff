"""Shared benchmark plumbing: run a command as a child process, measure wall time and the child's peak RSS."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


@dataclass
class Run:
    wall_s: float
    peak_rss_mb: float


def run_once(cmd: list[str], *, env: dict[str, str] | None = None) -> Run:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode not in (0, 1):
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return Run(wall_s=wall, peak_rss_mb=usage.ru_maxrss / 1024)


def bytecode_env(cache_dir: Path) -> dict[str, str]:
    """The environment of a normal install: bytecode cached (here under a private prefix, nothing written into
    the tree), even where the caller's environment sets PYTHONDONTWRITEBYTECODE, which would make every start
    recompile the project."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache_dir)
    return env


def median_run(cmd: list[str], repeat: int = 3, *, env: dict[str, str] | None = None) -> Run:
    run_once(cmd, env=env)  # warm-up: page cache and bytecode cache
    runs = [run_once(cmd, env=env) for _ in range(repeat)]
    return Run(
        wall_s=statistics.median(r.wall_s for r in runs),
        peak_rss_mb=max(r.peak_rss_mb for r in runs),
    )


def ensure_generated(nodes: int, pods: int) -> Path:
    out = ROOT / "bench" / "generated" / f"cluster-{nodes}n-{pods}p"
    if not (out / "pods.json").exists():
        subprocess.run(
            [
                PYTHON,
                str(ROOT / "bench" / "generate_cluster.py"),
                "--nodes",
                str(nodes),
                "--pods",
                str(pods),
                "--out",
                str(out),
            ],
            check=True,
        )
    return out
