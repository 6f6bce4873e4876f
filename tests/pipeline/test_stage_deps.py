"""DVC re-runs a stage when any file it runs changes: its deps list them all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ctrpipe import paths
from tests.conftest import ROOT
from tests.support import stagedeps
from tests.support.project import copy_project, run

pytestmark = pytest.mark.integration


def test_a_change_to_config_py_reruns_every_stage_that_imports_it(tmp_path):
    repo = copy_project(tmp_path / "repo")
    for pipeline in paths.PIPELINE_FILES:
        lock = Path(pipeline).with_name(paths.LOCK_FILE)
        shutil.copy2(ROOT / lock, repo / lock)
    run(["git", "init", "-q"], repo)
    with (repo / "ctrpipe" / "config.py").open("a") as f:
        f.write("\n# a change\n")
    status = json.loads(run(["dvc", "status", "--json"], repo).splitlines()[-1])
    rerun = {
        name
        for name, changes in status.items()
        for change in changes
        if isinstance(change, dict) and "ctrpipe/config.py" in change.get("changed deps", {})
    }
    importers = {
        name
        for name, spec in stagedeps.stages().items()
        if "ctrpipe/config.py" in stagedeps.runs(stagedeps.module_of(spec))
    }
    assert {"train", "gate", "release/dvc.yaml:production"} <= importers
    assert rerun == importers
