"""The monitor command's live loop (JSON lines, batches rolled by time) over real probers in namespaces."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cni_migrate.actions.verify.monitor import MonitorSession, MonitorSettings
from cni_migrate.cli.common import GlobalOptions, OutputFormat
from cni_migrate.cli.verify import _watch

from .topology import Topology


def test_monitor_json_lines(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topo = Topology(["flannel", "flannel"], 1, workdir).create()
    try:
        topo.start_all()
        session = MonitorSession(topo.agents(), settings=MonitorSettings(rate=50, poll_interval=0.2))
        opts = GlobalOptions(output=OutputFormat.json)
        batches = asyncio.run(_watch(opts, session, 2.0, 0.9, 0.01, None))
    finally:
        topo.destroy()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["type"] for line in lines} == {"update", "batch"}
    closed = [line for line in lines if line["type"] == "batch"]
    assert (
        [b["label"] for b in closed] == [b.label for b in batches] == ["baseline", "batch-1", "batch-2"][: len(closed)]
    )
    assert len(closed) >= 2
    assert sum(b.requests for b in batches) > 100 and all(b.failed == 0 for b in batches)
    assert all(b.connections == 2 and b.connections_broken == 0 for b in batches)
