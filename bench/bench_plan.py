#!/usr/bin/env python3
"""plan vs discover on the generated 5,000-node / 150,000-pod snapshot, in the same run.

Both read the snapshot and extract the facts; plan then builds, lints and checks the plan and writes it. Measured
for both strategies (rolling has a step per node batch), with ``-o json`` to stdout as discover, and with --out
(values, manifests, plan.json and the runbook written to a temporary directory).
Target: plan <= 2 x discover. Prints one JSON line per strategy.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _harness import PYTHON, bytecode_env, ensure_generated, median_run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=150000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cilium-version", default="1.16.5")
    args = ap.parse_args()
    snap = ensure_generated(args.nodes, args.pods)
    base = [PYTHON, "-m", "cni_migrate", "--snapshot", str(snap)]
    pycache = tempfile.TemporaryDirectory()
    env = bytecode_env(Path(pycache.name))
    discover = median_run([*base, "-o", "json", "discover"], args.repeat, env=env)
    for strategy in ("offline", "rolling"):
        plan_args = ["plan", "--to", "cilium", "--cilium-version", args.cilium_version, "--strategy", strategy]
        plan = median_run([*base, *plan_args, "-o", "json"], args.repeat, env=env)
        with tempfile.TemporaryDirectory() as out:
            written = median_run([*base, "-q", *plan_args, "--out", out, "-o", "text"], args.repeat, env=env)
        print(
            json.dumps(
                {
                    "bench": "plan",
                    "strategy": strategy,
                    "nodes": args.nodes,
                    "pods": args.pods,
                    "discover_s": round(discover.wall_s, 3),
                    "plan_s": round(plan.wall_s, 3),
                    "ratio": round(plan.wall_s / discover.wall_s, 3),
                    "plan_with_out_s": round(written.wall_s, 3),
                    "ratio_with_out": round(written.wall_s / discover.wall_s, 3),
                    "plan_peak_rss_mb": round(max(plan.peak_rss_mb, written.peak_rss_mb), 1),
                    "target": "plan <= 2 x discover",
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
