"""Run the executor in a child process, as `cni-migrate apply` would, with the test's node sandboxes: the crash
tests SIGKILL this process at chosen points. Usage: python harness.py CONFIG.json (apply|rollback).

Events are printed as JSON lines on stdout, flushed one by one, so the parent knows where the run is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.integration.apply.support import NodeSandbox

from cni_migrate.actions.executor.planfile import load_plan
from cni_migrate.actions.executor.run import Executor, RunOptions
from cni_migrate.actions.executor.tools import Tools
from cni_migrate.facts import extract_facts
from cni_migrate.facts.live import read_cluster
from cni_migrate.kube.client import Cluster


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text())
    mode = sys.argv[2]
    cluster = Cluster.connect(config["kubeconfig"])
    sandbox = NodeSandbox.attach(config["netns"], {k: Path(v) for k, v in config["roots"].items()})

    def emit(event: str, **fields: Any) -> None:
        sys.stdout.write(json.dumps({"event": event, **fields}, default=str) + "\n")
        sys.stdout.flush()

    options = RunOptions(
        **{**config["options"], "resume": mode == "resume", "skip_checks": frozenset(config["options"]["skip_checks"])}
    )
    ex = Executor(
        cluster.rest(),
        load_plan(config["plan"]),
        Tools(config["kubeconfig"], None, kubectl=config["kubectl"], helm=config["helm"]),
        transport=sandbox,
        options=options,
        emit=emit,
        facts=lambda: extract_facts(read_cluster(cluster), kind="live"),
    )
    summary = ex.rollback() if mode == "rollback" else ex.apply()
    emit("summary", state=summary.state, message=summary.message)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
