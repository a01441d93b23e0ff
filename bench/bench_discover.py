#!/usr/bin/env python3
"""discover on the generated 5,000-node / 150,000-pod snapshot vs only parsing the same files (orjson), same run.

Target: ratio <= 1.5 and peak RSS <= 2 GB. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _harness import PYTHON, bytecode_env, ensure_generated, median_run

# The reference parses as fast as Python can: orjson, PyYAML's C loader, and the cyclic GC off (discover pauses it
# while loading too, so the comparison is like for like).
PARSE_ONLY = """
import gc; gc.disable()
import sys, pathlib, orjson, yaml
loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
for f in sorted(pathlib.Path(sys.argv[1]).rglob("*")):
    if f.suffix == ".json":
        orjson.loads(f.read_bytes())
    elif f.suffix in (".yaml", ".yml"):
        list(yaml.load_all(f.read_bytes(), Loader=loader))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=150000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    snap = ensure_generated(args.nodes, args.pods)
    with tempfile.TemporaryDirectory() as tmp:
        env = bytecode_env(Path(tmp))
        parse = median_run([PYTHON, "-c", PARSE_ONLY, str(snap)], args.repeat, env=env)
        discover = median_run(
            [PYTHON, "-m", "cni_migrate", "--snapshot", str(snap), "-o", "json", "discover"], args.repeat, env=env
        )
    print(
        json.dumps(
            {
                "bench": "discover",
                "nodes": args.nodes,
                "pods": args.pods,
                "parse_only_s": round(parse.wall_s, 3),
                "discover_s": round(discover.wall_s, 3),
                "ratio": round(discover.wall_s / parse.wall_s, 3),
                "discover_peak_rss_mb": round(discover.peak_rss_mb, 1),
                "parse_peak_rss_mb": round(parse.peak_rss_mb, 1),
                "target": "ratio <= 1.5, peak RSS <= 2048 MB",
            }
        )
    )


if __name__ == "__main__":
    main()
