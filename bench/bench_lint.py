#!/usr/bin/env python3
"""Wall time of linting one values file against a snapshot, interpreter start included.

Measures ``cni-migrate lint values.yaml --cilium-version 1.16.5 --snapshot examples/flannel-graceful`` as a child
process (median of several runs after one warm-up), and in the same run ``python -c "import yaml"`` as the
reference for interpreter start on this machine. Target: median <= 0.5 s. Prints one JSON line; with --check
exits 1 when the target is missed.

Children run as after a normal install: with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` removed) and the
cache kept under a private ``PYTHONPYCACHEPREFIX`` (nothing is written into the source tree). The figure without
any bytecode cache (every module compiled on each start, as in a sandbox that sets PYTHONDONTWRITEBYTECODE) is
reported too, as ``lint_no_bytecode_cache_s``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _harness import PYTHON, ROOT, run_once

# Seed 003's values file (Flannel -> Cilium), with the VXLAN tunnel that clashes with Flannel.
VALUES = """tunnel: vxlan

ipam:
  mode: cluster-pool
  operator:
    clusterPoolIPv4PodCIDRList:
    - "172.20.0.0/16"

hubble:
  enabled: false
"""
BUDGET_S = 0.5


def command() -> list[str]:
    script = Path(PYTHON).parent / "cni-migrate"
    return [str(script)] if script.exists() else [PYTHON, "-m", "cni_migrate"]


def median_wall(cmd: list[str], repeat: int, env: dict[str, str]) -> tuple[float, list[float]]:
    run_once(cmd, env=env)  # warm the page cache and the bytecode cache
    walls = [run_once(cmd, env=env).wall_s for _ in range(repeat)]
    return statistics.median(walls), walls


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--check", action="store_true", help="exit 1 when the median exceeds the budget")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        # no bytecode for the project's modules (installed libraries keep their own __pycache__)
        uncached = {k: v for k, v in cached.items() if k != "PYTHONPYCACHEPREFIX"} | {"PYTHONDONTWRITEBYTECODE": "1"}
        values = Path(tmp) / "values.yaml"
        values.write_text(VALUES)
        lint_cmd = [
            *command(),
            "lint",
            str(values),
            "--cilium-version",
            "1.16.5",
            "--snapshot",
            str(ROOT / "examples" / "flannel-graceful"),
        ]
        ref_s, _ = median_wall([PYTHON, "-c", "import yaml"], args.repeat, cached)
        lint_s, walls = median_wall(lint_cmd, args.repeat, cached)
        cold_s, _ = median_wall(lint_cmd, max(3, args.repeat // 3), uncached)
    ok = lint_s <= BUDGET_S
    print(
        json.dumps(
            {
                "bench": "lint",
                "lint_s": round(lint_s, 3),
                "lint_min_s": round(min(walls), 3),
                "lint_max_s": round(max(walls), 3),
                "python_import_yaml_s": round(ref_s, 3),
                "ratio": round(lint_s / ref_s, 2),
                "lint_no_bytecode_cache_s": round(cold_s, 3),
                "runs": args.repeat,
                "budget_s": BUDGET_S,
                "within_budget": ok,
                "target": "median wall time <= 0.5 s including interpreter start",
            }
        )
    )
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
