"""The tree keeps its promises: each stage depends on exactly the code it runs, imports
point down the layers, and every path is declared once."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ctrpipe import paths
from tests.conftest import ROOT
from tests.support import stagedeps

pytestmark = pytest.mark.unit

CODE_DIRS = ("ctrpipe", "stages", "bench")


HINT = "`python -m tests.support.stagedeps` prints the lists the pipeline files should have"


@pytest.mark.parametrize("stage", list(stagedeps.stages()))
def test_each_stage_depends_on_exactly_the_code_it_runs(stage):
    found = stagedeps.problems()[stage]
    assert not found["missing"], f"{stage} runs {found['missing']}, not in its deps; {HINT}"
    assert not found["stale"], f"{stage} lists {found['stale']}, which it does not run; {HINT}"


def copy_code(dest: Path) -> Path:
    for folder in ("ctrpipe", "stages", "tests/support"):
        shutil.copytree(ROOT / folder, dest / folder)
    for name in (*paths.PIPELINE_FILES, paths.PATHS_FILE, "pyproject.toml", "tests/__init__.py"):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    return dest


def test_an_import_added_without_its_dep_is_caught(tmp_path):
    repo = copy_code(tmp_path)
    with (repo / "stages" / "train.py").open("a") as f:
        f.write("\nfrom ctrpipe.release import registry  # noqa: E402,F401\n")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.stagedeps"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    found = json.loads(proc.stdout.splitlines()[-1])
    assert found == {"train": {"missing": ["ctrpipe/release/registry.py"], "stale": []}}


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).parent / "lint-imports"
    return subprocess.run(
        [str(lint), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )


def test_imports_point_down_the_layers():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_an_import_pointing_up_breaks_the_contract(tmp_path):
    copy_code(tmp_path)
    with (tmp_path / "ctrpipe" / "model" / "metrics.py").open("a") as f:
        f.write("\nfrom ctrpipe.serving.rest import server  # noqa: E402,F401\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "ctrpipe.model.metrics -> ctrpipe.serving.rest.server" in proc.stdout


def string_constants(path: Path) -> list[tuple[int, str]]:
    """The strings the code uses, docstrings (which may name paths) excepted."""
    tree = ast.parse(path.read_text(), str(path))
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and ast.get_docstring(node) is not None
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    ]


def test_every_path_is_declared_once():
    """paths.yaml is the only place a stage path is spelled: not in code, not in the
    pipeline files."""
    spelled = [
        re.compile(rf"(?<![\w./]){re.escape(v)}(?![\w.])") for v in paths.declared().values()
    ]
    found = []
    for folder in CODE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, text in string_constants(path):
                found += [
                    f"{path.relative_to(ROOT)}:{line}: {p.pattern!r}"
                    for p in spelled
                    if p.search(text)
                ]
    assert not found, "path strings outside paths.yaml: " + "; ".join(found)
    for name in paths.PIPELINE_FILES:
        dvc = yaml.safe_load((ROOT / name).read_text())
        body = json.dumps({k: v for k, v in dvc.items() if k != "vars"})
        assert not [p.pattern for p in spelled if p.search(body)], name


def test_code_passes_ruff_lint_and_format():
    ruff = Path(sys.executable).parent / "ruff"
    for args in (["check"], ["format", "--check"]):
        proc = subprocess.run(
            [str(ruff), *args, "."], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, f"ruff {' '.join(args)}:\n{proc.stdout[-3000:]}"
