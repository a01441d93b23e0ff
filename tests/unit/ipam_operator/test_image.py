"""The operator's container image (Dockerfile): the wheel builds from the image's build context alone, and the image
runs what the chart runs, as the user the chart expects. (No container engine runs on the test machines: the image
itself is not built here, its build steps are.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"
CHART = ROOT / "charts" / "cni-migrate-ipam"


def _instructions() -> list[tuple[str, str]]:
    out = []
    for raw in DOCKERFILE.read_text().replace("\\\n", " ").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _build_stage_sources() -> list[str]:
    """The COPY sources of the first (build) stage."""
    sources: list[str] = []
    stages = 0
    for word, rest in _instructions():
        if word == "FROM":
            stages += 1
        elif word == "COPY" and stages == 1 and not rest.startswith("--from"):
            sources += rest.split()[:-1]
    return sources


def test_dockerignore_lets_every_copied_path_through() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    assert "*" in lines  # everything else (venv, tests, bench output) stays out of the context
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    sources = _build_stage_sources()
    assert sources, "no COPY in the build stage"
    for src in sources:
        assert src.rstrip("/") in allowed, f".dockerignore excludes {src}, which the Dockerfile copies"


def test_wheel_builds_from_the_build_context_alone(tmp_path: Path) -> None:
    ctx = tmp_path / "context"
    ctx.mkdir()
    for src in _build_stage_sources():
        path = ROOT / src
        if path.is_dir():
            shutil.copytree(path, ctx / src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, ctx / src)
    wheels = tmp_path / "wheels"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--wheel-dir", str(wheels), str(ctx)],
        check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = wheels.glob("cni_migrate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "cni_migrate/actions/ipam_operator/__main__.py",
        "cni_migrate/kube/ipam.py",
        "cni_migrate/kube/http1.py",
        "cni_migrate/py.typed",
    ):
        assert needed in names, f"{needed} missing from the wheel the image installs"
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        ln for ln in zipfile.ZipFile(wheel).read(metadata).decode().splitlines() if ln.startswith("Requires-Dist")
    ]
    assert any("httptools" in r for r in requires) and any("uvloop" in r for r in requires)


def test_image_runs_the_charts_command_as_the_charts_user() -> None:
    instructions = _instructions()
    final = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
    cmd = json.loads(next(rest for w, rest in final if w == "CMD"))
    template = (CHART / "templates" / "deployment.yaml").read_text()
    command_line = next(ln for ln in template.splitlines() if ln.strip().startswith("command:"))
    assert yaml.safe_load(command_line.strip())["command"] == cmd
    user, _, group = next(rest for w, rest in final if w == "USER").partition(":")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(user)
    assert values["podSecurityContext"]["runAsGroup"] == int(group)
    assert values["podSecurityContext"]["runAsNonRoot"] is True and int(user) != 0


def test_the_module_the_image_runs_starts(tmp_path: Path) -> None:
    """`python -m cni_migrate.actions.ipam_operator` (the image's CMD) parses its flags and exits cleanly."""
    proc = subprocess.run(
        [sys.executable, "-m", "cni_migrate.actions.ipam_operator", "--help"],
        check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "--webhook-bind-address" in proc.stdout and "--event-loop" in proc.stdout
