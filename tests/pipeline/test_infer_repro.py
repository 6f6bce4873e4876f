"""`infer` on a user's folder, the questions answered, then `dvc repro` to the end."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from ctrpipe import params, paths
from tests.support import loans_by_year, retail
from tests.support.project import (
    SMALL,
    attempt,
    commit_project,
    copy_project,
    edit_conf,
    run,
    stage_runs,
)

pytestmark = pytest.mark.slow

FIXTURES = {
    "retail": (lambda f: retail.write(f, orders=4000), {"column": "late", "positive": [1]}),
    "loans": (loans_by_year.write, {"column": "repaid", "table": "outcomes", "positive": [False]}),
}


@pytest.mark.parametrize("name", list(FIXTURES))
def test_a_drafted_group_with_its_label_answered_runs_to_the_gate(name, tmp_path):
    write, label = FIXTURES[name]
    repo = copy_project(tmp_path / "repo")
    write(repo / "data" / "external")
    draft = repo / "conf" / "data" / "mine.yaml"
    run(
        [sys.executable, "-m", "ctrpipe", "infer", "--input", "data/external", "--out", str(draft)],
        repo,
    )
    edit_conf(
        repo,
        {
            **SMALL,
            "config.yaml": ("data: synthetic", "data: mine"),
            "sweep/tpe.yaml": ("n_trials: 12", "n_trials: 3"),
        },
    )
    refused = run_params(repo)
    assert refused.returncode == 1 and "is a question to answer" in refused.stderr
    group = yaml.safe_load(draft.read_text())
    group["label"] = label
    group["features"]["categorical"] = [
        c for c in group["features"]["categorical"] if not c.startswith(params.QUESTION)
    ]
    draft.write_text(yaml.safe_dump(group, sort_keys=False))
    commit_project(repo, name)
    out = run(["dvc", "repro"], repo)
    assert {"generate", "package", "gate"} <= set(stage_runs(out))
    skew = json.loads((repo / paths.SKEW).read_text())
    assert skew["rows_checked"] > 0 and skew["rows_different"] == 0, skew
    gate = json.loads((repo / paths.GATE_REPORT).read_text())
    assert gate["verdict"] == "pass", gate["reason"]


def run_params(repo):
    return attempt([sys.executable, "-m", "ctrpipe.params"], repo)
