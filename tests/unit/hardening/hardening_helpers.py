"""Copy a bundled example snapshot, change one field of one object, and run the CLI on it in-process."""

from __future__ import annotations

import shutil
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner, Result

from cni_migrate.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
runner = CliRunner()


def copy_example(name: str, dest: Path) -> Path:
    out = dest / name
    shutil.copytree(EXAMPLES / name, out)
    return out


def objects_of(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    return list(doc["items"]) if doc.get("kind") == "List" else [doc]


def mutate(snap: Path, file: str, kind: str, name: str | None, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the first object of ``kind`` (named ``name``, or any) in ``snap/file``."""
    path = snap / file
    doc = yaml.safe_load(path.read_text())
    items = doc["items"] if doc.get("kind") == "List" else [doc]
    for obj in items:
        if obj.get("kind") == kind and (name is None or obj["metadata"].get("name") == name):
            change(obj)
            break
    else:
        raise AssertionError(f"no {kind} {name} in {path}")
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def no_traceback(r: Result) -> None:
    """The exit code is one of the documented ones and nothing escaped as an exception."""
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        tb = "".join(traceback.format_exception(r.exception))
        raise AssertionError(f"uncaught {type(r.exception).__name__} (exit {r.exit_code}):\n{tb}")
    assert r.exit_code in (0, 1, 2), r.output


def error_line(r: Result) -> str:
    """The one error line (stderr)."""
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def plan_args(snap: Path, *extra: str, strategy: str = "offline") -> list[str]:
    return [
        "--snapshot",
        str(snap),
        "plan",
        "--to",
        "cilium",
        "--cilium-version",
        "1.16.5",
        "--strategy",
        strategy,
        *extra,
    ]


def error_output(r: Result) -> str:
    """Everything printed on stderr, the error and its listed reasons."""
    assert "error:" in r.stderr, r.output
    return " ".join(r.stderr.split())
