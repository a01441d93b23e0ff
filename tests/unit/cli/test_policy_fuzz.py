"""A seeded fuzz of the Calico policy input: every field of the documentation cases' policies and tiers replaced
by junk of another type or a bad value; ``policy translate`` and ``policy check`` answer 0, 1 or 2, never a
traceback. The seed and case count are fixed; a failure names the case (reproduce with the same seed)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from cni_migrate.cli.main import app

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "tests" / "data" / "policy" / "calico-docs"
SEED = 1414
CASES = 60
JUNK: list[Any] = [
    None,
    True,
    -1,
    3.5,
    "banana",
    "",
    "a == ",
    "!!!",
    "10.0.0.0/33",
    "70000",
    [],
    ["x", 1],
    {},
    {"unknown": 1},
    [[[]]],
    "(" * 200 + "all()" + ")" * 200,
]


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def test_junk_policies_never_crash(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    docs = {f.name: yaml.safe_load(f.read_text()) for f in sorted(DOCS.glob("policies-*.yaml"))}
    exits: dict[int, int] = {}
    runner = CliRunner()
    for case in range(CASES):
        mutated = json.loads(json.dumps(docs))
        changes = []
        for _ in range(rng.randint(1, 2)):
            name = rng.choice(sorted(mutated))
            item = rng.choice(mutated[name]["items"])
            path = rng.choice([p for p in _paths(item) if p[0] != "apiVersion"])
            value = rng.choice(JUNK)
            _set(item, path, value)
            changes.append(
                f"{name} {item.get('metadata', {}).get('name') if isinstance(item.get('metadata'), dict) else '?'}"
                f" {'.'.join(map(str, path))}={value!r:.40}"
            )
        snap = tmp_path / f"case{case}"
        snap.mkdir()
        for f in DOCS.glob("*.yaml"):
            (snap / f.name).write_text(yaml.safe_dump(mutated[f.name]) if f.name in mutated else f.read_text())
        for cmd in (["policy", "translate", "-o", "json"], ["policy", "check"]):
            r = runner.invoke(app, ["--snapshot", str(snap), *cmd, "--cilium-version", "1.16.5"])
            assert isinstance(r.exception, SystemExit) or r.exception is None, (case, changes, cmd, repr(r.exception))
            assert r.exit_code in (0, 1, 2), (case, changes, cmd, r.output[-500:])
            assert "Traceback" not in r.output, (case, changes, cmd)
            exits[r.exit_code] = exits.get(r.exit_code, 0) + 1
    assert exits.get(2, 0) > 0 and exits.get(1, 0) + exits.get(0, 0) > 0, exits  # junk refused, harmless changes pass
