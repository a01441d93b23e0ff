"""The fuzz loop of test_fuzz.py, run in a child process whose memory is capped.

Usage: python fuzz_worker.py SEED CASES BUDGET_SECONDS WORKDIR. Mutates fields of the bundled example snapshots (and
of a values file the planner renders) to wrong types and junk, runs discover and plan in-process on each, and
prints one JSON line per case that broke the contract (an exception escaped, an exit code outside 0/1/2, or
unbounded output), then a summary line.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from cni_migrate.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
MAX_OUTPUT = 5_000_000

JUNK: list[Any] = [
    None,
    "banana",
    "",
    -1,
    0,
    99999,
    2**40,
    3.5,
    True,
    False,
    [],
    {},
    ["x", 1],
    {"a": {"b": [1]}},
    "10.0.0.0/33",
    "::/0",
    "x" * 2000,
    [[[[[["deep"]]]]]],
    "${HOME}$(id)`id`'\"",
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value


def _docs(snap: Path) -> dict[str, Any]:
    return {f.name: yaml.safe_load(f.read_text()) for f in sorted(snap.glob("*.yaml"))}


def _embedded_junk(rng: random.Random, text: str) -> Any:
    """A ConfigMap value that is itself a document (kubeadm config, net-conf.json): mutate inside it."""
    try:
        inner = yaml.safe_load(text)
    except yaml.YAMLError:
        return rng.choice(JUNK)
    paths = _paths(inner)
    if not isinstance(inner, dict) or not paths:
        return rng.choice(JUNK)
    _set(inner, rng.choice(paths), rng.choice(JUNK))
    return json.dumps(inner) if text.lstrip().startswith("{") else yaml.safe_dump(inner)


def main() -> None:
    seed, cases, budget, workdir = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
    rng = random.Random(seed)
    runner = CliRunner()
    examples = [
        ("calico-bgp-lossy", "offline"),
        ("flannel-graceful", "rolling"),
        ("calico-operator-multipool", "rolling"),
    ]
    originals = {name: _docs(EXAMPLES / name) for name, _ in examples}
    fields = {
        name: [(f, p) for f, d in docs.items() for p in _paths(d) if (p and p[0] == "items") or f.startswith("cni-")]
        for name, docs in originals.items()
    }
    # A values file as the planner writes it, to mutate too.
    values_dir = workdir / "values-src"
    runner.invoke(
        app,
        [
            "--snapshot",
            str(EXAMPLES / "calico-bgp-lossy"),
            "plan",
            "--to",
            "cilium",
            "--cilium-version",
            "1.16.5",
            "--strategy",
            "offline",
            "--out",
            str(values_dir),
        ],
    )
    base_values = yaml.safe_load((values_dir / "values/install.yaml").read_text())
    start = time.monotonic()
    done = 0
    exits: dict[int, int] = {}
    for case in range(cases):
        if time.monotonic() - start > budget:
            break
        name, strategy = examples[case % len(examples)]
        snap = workdir / f"case-{case}"
        if snap.exists():
            shutil.rmtree(snap)
        snap.mkdir(parents=True)
        docs = json.loads(json.dumps(originals[name]))
        changes = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            file, path = rng.choice(fields[name])
            try:
                cur = docs[file]
                for p in path:
                    cur = cur[p]
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change in this case replaced a parent
            value = _embedded_junk(rng, cur) if isinstance(cur, str) and "\n" in cur else rng.choice(JUNK)
            _set(docs[file], path, value)
            changes.append(f"{file}:{'.'.join(map(str, path))}={str(value)[:40]!r}")
        for file, doc in docs.items():
            (snap / file).write_text(yaml.safe_dump(doc))
        args_list = [["--snapshot", str(snap), "discover"]]
        plan = ["--snapshot", str(snap), "plan", "--to", "cilium", "--cilium-version", "1.16.5", "--strategy", strategy]
        args_list.append(plan)
        if case % 4 == 0:  # the values file too
            values = json.loads(json.dumps(base_values))
            vpath = rng.choice(_paths(values))
            _set(values, vpath, rng.choice(JUNK))
            vfile = snap / "values.yaml"
            vfile.write_text(yaml.safe_dump(values))
            changes.append(f"values:{'.'.join(map(str, vpath))}")
            args_list.append(
                [
                    "--snapshot",
                    str(EXAMPLES / "calico-bgp-lossy"),
                    *plan[2:],
                    "--strategy",
                    "offline",
                    "--values",
                    str(vfile),
                ]
            )
        for args in args_list:
            t0 = time.monotonic()
            r = runner.invoke(app, args)
            took = time.monotonic() - t0
            exits[r.exit_code] = exits.get(r.exit_code, 0) + 1
            bad = None
            if r.exception is not None and not isinstance(r.exception, SystemExit):
                frames = traceback.format_exception(r.exception)
                bad = "".join(frames[-3:])[-1500:]
            elif r.exit_code not in (0, 1, 2):
                bad = f"exit code {r.exit_code}"
            elif len(r.output) > MAX_OUTPUT:
                bad = f"output of {len(r.output)} bytes"
            elif took > 20:
                bad = f"took {took:.1f}s"
            if bad:
                print(json.dumps({"case": case, "example": name, "args": args[2:4], "changes": changes, "error": bad}))
        shutil.rmtree(snap)
        done += 1
    print(json.dumps({"summary": True, "cases": done, "exits": exits, "seconds": round(time.monotonic() - start, 1)}))


if __name__ == "__main__":
    main()
