"""A copy of the project in a temp folder, and running its commands there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from ctrpipe import paths
from tests.conftest import QUICK_JVM, ROOT


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command that must succeed; its stdout and stderr."""
    proc = attempt(cmd, cwd, env)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout + proc.stderr


def attempt(cmd: list[str], cwd: Path, env: dict[str, str] | None = None):
    """Run a command with the test interpreter's tools first on PATH; the finished process."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "SPARK_LOCAL_IP": "127.0.0.1",
        **(env or {}),
    }
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def copy_project(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (
            name.startswith("data/") or name == paths.DATA_METRICS
        ) and name != "data/external/README.md":
            continue
        if Path(name).name == paths.LOCK_FILE or not (ROOT / name).is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    return dest


Replacement = tuple[str, str]


def edit_conf(repo: Path, changes: dict[str, Replacement | list[Replacement]]) -> None:
    """Replace text in conf/ files: {"config.yaml": ("data: synthetic", "data: tiny")},
    or a list of such pairs for one file."""
    for name, change in changes.items():
        path = repo / "conf" / name
        text = path.read_text()
        for old, new in [change] if isinstance(change, tuple) else change:
            assert old in text, (name, old)
            text = text.replace(old, new)
        path.write_text(text)


# Spark for tiny data: less memory, and C1 only (tests/conftest.py says why).
SMALL = {
    "spark/local.yaml": [
        ("driver_memory: 4g", "driver_memory: 1g"),
        ("-XX:MetaspaceSize=256m", f"-XX:MetaspaceSize=256m {QUICK_JVM}"),
    ]
}

# The tiny preset at 60k rows (a golden day of about 4k rows, enough for the bootstrap to
# tell a real model from three shallow trees), a short sweep, floors such a model can
# meet, and room for the real model to be much bigger than the first, tiny one.
GATED = [
    "data.source.synthetic.rows=60000",
    "sweep.n_trials=2",
    "gate.floors.roc_auc=0.55",
    "gate.floors.logloss_gain=-0.05",
    "gate.floors.ece_of_rate=1",
    "gate.guards.size_ratio=50",
    "gate.guards.latency_ratio=3",
]
FEW_TREES = [
    "model.num_boost_round=3",
    "sweep.n_trials=1",
    "sweep.space.max_depth.low=2",
    "sweep.space.max_depth.high=2",
]


def select(repo: Path, group: str, name: str) -> None:
    """Choose conf/<group>/<name>.yaml in conf/config.yaml's defaults."""
    path = repo / "conf" / "config.yaml"
    text, n = re.subn(rf"(?m)^  - {group}: \S+$", f"  - {group}: {name}", path.read_text())
    assert n == 1, f"conf/config.yaml chooses no {group}"
    path.write_text(text)


def group_files(repo: Path, name: str, overrides: list[str]) -> None:
    """Overrides (`gate.floors.roc_auc=0.6`) as group files conf/<group>/<name>.yaml on top
    of each group's current choice, then chosen: values in conf/, as a project keeps them,
    and the shipped group files untouched."""
    chosen = dict(
        re.findall(r"(?m)^  - (\w+): (\S+)$", (repo / "conf" / "config.yaml").read_text())
    )
    values: dict[str, dict] = {}
    for override in overrides:
        key, value = override.split("=", 1)
        group, *path = key.split(".")
        node = values.setdefault(group, {})
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = yaml.safe_load(value)
    for group, tree in values.items():
        doc = {"defaults": [chosen[group], "_self_"], **tree}
        (repo / "conf" / group / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        select(repo, group, name)


def commit_project(repo: Path, message: str) -> None:
    """params.yaml composed from conf/, and everything committed in a new git repo."""
    run(["git", "init", "-q"], repo)
    run([sys.executable, "-m", "ctrpipe.params"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], repo)


def stage_runs(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def folder_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }
