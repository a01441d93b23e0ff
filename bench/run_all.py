#!/usr/bin/env python3
"""Run every benchmark in bench/ (each prints one JSON line per measurement) and collect the results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = 0
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"# {script.name}", flush=True)
        proc = subprocess.run([sys.executable, str(script)], cwd=HERE, check=False)
        failed += proc.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
