"""Issue 16: a seeded fuzz of every field of the bundled example snapshots (and of a rendered values file): wrong
types and junk values give exit 0, 1 or 2, never a traceback, in bounded time and memory.

The loop runs in a child process (fuzz_worker.py) with its address space capped, so a runaway allocation fails
the test instead of the machine. The seed is fixed: a failure names the case, the changed fields and the error,
and reproduces with ``python tests/unit/hardening/fuzz_worker.py SEED CASES BUDGET DIR``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

SEED = 16
CASES = 150
BUDGET_SECONDS = 40
MEMORY_LIMIT = 3 * 1024**3


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def test_fuzzed_snapshots_and_values_never_crash(tmp_path: Path) -> None:
    worker = Path(__file__).with_name("fuzz_worker.py")
    r = subprocess.run(
        [sys.executable, str(worker), str(SEED), str(CASES), str(BUDGET_SECONDS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=BUDGET_SECONDS + 60,
        preexec_fn=_limit_memory,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    failures = [d for d in lines if "summary" not in d]
    summary = next(d for d in lines if "summary" in d)
    assert not failures, "\n".join(f"{f['changes']} {f['args']}: {f['error']}" for f in failures[:5])
    assert summary["cases"] >= 50, summary  # the budget allowed a meaningful number of cases
    assert set(summary["exits"]) <= {"0", "1", "2"}
    assert summary["exits"].get("2", 0) > 0 and summary["exits"].get("0", 0) > 0  # junk refused, harmless changes pass
