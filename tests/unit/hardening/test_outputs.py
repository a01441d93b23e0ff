"""Issue 16 items 7 and 11: --out never mixes plans; text output never shows Python reprs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hardening_helpers import EXAMPLES, copy_example, error_line, no_traceback, plan_args, run

from cni_migrate.cli.textfmt import text

REPR = re.compile(r"\bNone\b|\bTrue\b|\bFalse\b|\['|'\]")


def test_out_holding_another_clusters_plan_is_refused_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run(*plan_args(EXAMPLES / "calico-bgp-lossy", "--out", str(out)))
    assert r.exit_code == 0, r.output
    first = json.loads((out / "plan.json").read_text())
    other = run(*plan_args(EXAMPLES / "flannel-graceful", "--out", str(out)))
    no_traceback(other)
    assert other.exit_code == 2
    assert "another cluster" in error_line(other) and first["inputs"]["facts_digest"][:16] in error_line(other)
    assert json.loads((out / "plan.json").read_text())["id"] == first["id"]  # untouched
    forced = run(*plan_args(EXAMPLES / "flannel-graceful", "--out", str(out), "--force"))
    assert forced.exit_code == 0, forced.output
    assert json.loads((out / "plan.json").read_text())["inputs"]["old_cni"] == "flannel"


def test_stale_files_of_an_earlier_plan_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    snap = copy_example("calico-bgp-lossy", tmp_path)
    r = run(*plan_args(snap, "--bgp", "kube-router", "--out", str(out)))
    assert r.exit_code == 0, r.output
    assert (out / "manifests/kube-router.yaml").is_file()
    (out / "notes.txt").write_text("mine")  # not the plan's: kept
    again = run(*plan_args(snap, "--bgp", "cilium", "--out", str(out)))
    assert again.exit_code == 0, again.output
    assert not (out / "manifests/kube-router.yaml").exists()
    assert (out / "manifests/cilium-bgp.yaml").is_file() and (out / "notes.txt").read_text() == "mine"
    recorded = {a["path"] for a in json.loads((out / "plan.json").read_text())["artifacts"]}
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.parent != out}
    assert on_disk == recorded


def test_text_values() -> None:
    assert [text(None), text(True), text(False), text(["10.0.0.0/8"]), text([]), text({"a": None})] == [
        "-",
        "true",
        "false",
        "10.0.0.0/8",
        "-",
        "a=-",
    ]


def test_text_outputs_have_no_python_reprs() -> None:
    for example in ("calico-bgp-lossy", "flannel-graceful", "calico-operator-multipool"):
        d = run("--snapshot", str(EXAMPLES / example), "discover")
        assert d.exit_code in (0, 1)
        assert not REPR.findall(d.stdout), (example, REPR.findall(d.stdout))
        strategy = "offline" if example == "calico-bgp-lossy" else "rolling"
        p = run(*plan_args(EXAMPLES / example, strategy=strategy))
        assert p.exit_code == 0, p.output
        assert not REPR.findall(p.stdout), (example, REPR.findall(p.stdout))
