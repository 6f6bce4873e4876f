"""`dvc repro` end to end, in a temp git repository holding a copy of the project.

The tests share one repository and run in file order; each `dvc exp run` composes its
params from conf/ plus its own override, relative to the state the previous test left.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from ctrpipe import paths
from ctrpipe.model import package
from ctrpipe.online import store
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


def lock_hashes(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {
        out["path"]: out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = copy_project(tmp_path_factory.mktemp("project"))
    # The tiny preset keeps the whole run under a minute.
    edit_conf(repo, {**SMALL, "config.yaml": ("data: synthetic", "data: tiny")})
    commit_project(repo, "tiny")
    return repo


STAGES = [
    "ingest",
    "generate",
    "train",
    "evaluate",
    "package",
    "release/dvc.yaml:production",
    "gate",
]
MODEL_STAGES = ["train", "evaluate", "package", "gate"]
# Reads git tags, which DVC cannot see: it runs on every repro, from a file of its own.
ALWAYS = "release/dvc.yaml:production"


def reran(output: str) -> list[str]:
    """The stages that ran because something they depend on changed."""
    return [s for s in stage_runs(output) if s != ALWAYS]


def test_repro_builds_every_output(repo):
    out = run(["dvc", "repro"], repo)
    assert sorted(stage_runs(out)) == sorted(STAGES)
    for split in ("train", "validation", "golden"):
        table = pq.read_table(
            repo
            / {"train": paths.TRAIN, "validation": paths.VALIDATION, "golden": paths.GOLDEN}[split]
        )
        assert table.num_rows > 500
        assert set(table.column("label").to_pylist()) == {0, 1}
    assert (repo / paths.QUARANTINE / "impressions.parquet").is_file()
    assert (
        yaml.safe_load((repo / paths.DATA_METRICS).read_text())["tables"]["impressions"]["bad"] > 0
    )

    # The model beats a constant predictor (the validation base rate) on validation.
    labels = np.array(pq.read_table(repo / paths.VALIDATION).column("label"))
    rate = labels.mean()
    constant = -np.mean(labels * np.log(rate) + (1 - labels) * np.log(1 - rate))
    metrics = json.loads((repo / paths.EVALUATE_METRICS).read_text())
    assert metrics["validation"]["logloss"] < constant
    assert metrics["validation"]["roc_auc"] > 0.6
    assert set(metrics["golden"]["slices"]["device"]) >= {"mobile"}
    trials = (repo / "reports/train/trials.csv").read_text().splitlines()
    assert len(trials) == 1 + 12  # header and one row per trial of the default sweep
    for plot in ("roc/golden.json", "calibration/validation.json", "feature_importance.json"):
        assert (repo / paths.EVALUATE_PLOTS / plot).is_file()
    loaded = package.load(repo / paths.PACKAGE)  # checks the manifest
    # Golden rows served from their raw records equal generate's, bit for bit.
    skew = json.loads((repo / paths.SKEW).read_text())
    golden_rows = pq.read_metadata(repo / paths.GOLDEN).num_rows
    assert skew["rows_checked"] == min(1000, golden_rows) > 100
    assert (skew["rows_different"], skew["features_different"]) == (0, {}), skew
    card = (repo / paths.PACKAGE / "model_card.md").read_text()  # the card states them
    assert f"**0 of {skew['rows_checked']} differ**" in card
    assert f"`{skew['snapshot'][:12]}`" in card
    assert loaded.schema.names == json.loads((repo / "models/schema.json").read_text())[
        "numeric"
    ] + list(json.loads((repo / "models/schema.json").read_text())["categorical"])

    again = run(["dvc", "repro"], repo)
    assert stage_runs(again) == [ALWAYS]
    assert json.loads(run(["dvc", "status", "--json"], repo)) == {ALWAYS: ["always changed"]}


def test_features_refresh_makes_the_stages_snapshot_again_and_newer_ones(repo):
    """The same raw data and cut give the bytes of generate's snapshot; an earlier cut another
    snapshot beside it; a changed feature config no snapshot at all."""
    refresh = [sys.executable, "-m", "ctrpipe", "features", "refresh"]
    run(refresh, repo)
    stage = store.load(repo / paths.SNAPSHOT)
    (made,) = (repo / paths.SNAPSHOTS).iterdir()
    assert made.name == stage.digest == store.load(made).digest

    earlier = stage.cut - dt.timedelta(days=1)
    run([*refresh, "--cut", earlier.isoformat()], repo)
    cuts = sorted(store.load(p).cut for p in (repo / paths.SNAPSHOTS).iterdir())
    assert cuts == [earlier, stage.cut]

    params = (repo / "params.yaml").read_text()
    changed = yaml.safe_load(params)
    changed["data"]["history"]["lag_seconds"] += 60
    (repo / "params.yaml").write_text(yaml.safe_dump(changed))
    try:
        refused = attempt(refresh, repo)
    finally:
        (repo / "params.yaml").write_text(params)
    assert refused.returncode == 1 and "retrain instead of refreshing" in refused.stderr
    assert len(list((repo / paths.SNAPSHOTS).iterdir())) == 2


def test_changed_train_param_reruns_only_the_model_stages(repo):
    before = lock_hashes(repo)
    out = run(["dvc", "exp", "run", "-S", "model.params.max_bin=64"], repo)
    assert reran(out) == MODEL_STAGES
    after = lock_hashes(repo)
    assert after["models/model.ubj"] != before["models/model.ubj"]
    for data in (paths.RAW, paths.TRAIN, paths.GOLDEN):
        assert after[data] == before[data]


def test_the_engine_switch_changes_only_the_model_stages_outputs(repo):
    """`model.engine: spark` re-runs train on Spark and what reads its model; the data is
    untouched, the encoding (fitted by Spark now) is the same file, and switching back
    brings back every local output's bytes."""
    run(["dvc", "exp", "run"], repo)  # conf/ alone (an experiment composes params from it)
    before = lock_hashes(repo)
    out = run(["dvc", "exp", "run", "-S", "model.engine=spark"], repo)
    assert reran(out) == MODEL_STAGES
    on_spark = lock_hashes(repo)
    changed = {path for path in before if on_spark[path] != before[path]}
    assert paths.MODEL in changed and paths.PACKAGE in changed
    assert not changed & {paths.RAW, paths.TRAIN, paths.VALIDATION, paths.GOLDEN, paths.SNAPSHOT}
    assert on_spark[paths.MODEL_SCHEMA] == before[paths.MODEL_SCHEMA]
    assert json.loads((repo / paths.MODEL_PARAMS).read_text())["trees"] > 0

    back = run(["dvc", "exp", "run", "-S", "model.engine=local"], repo)
    # train, evaluate and package come back from the run cache; the gate, whose outputs
    # are not cached, runs again to the same verdict.
    assert reran(back) == ["gate"]
    assert lock_hashes(repo) == before


def test_changed_generate_param_reruns_generate_and_what_follows(repo):
    before = lock_hashes(repo)
    out = run(["dvc", "exp", "run", "-S", "data.sample.negative_rate=0.5"], repo)
    assert reran(out) == ["generate", *MODEL_STAGES]
    assert (
        yaml.safe_load((repo / "params.yaml").read_text())["data"]["sample"]["negative_rate"] == 0.5
    )
    after = lock_hashes(repo)
    assert after["data/raw"] == before["data/raw"]
    assert after[paths.TRAIN] != before[paths.TRAIN]
    # The golden set depends on its own window, never on sampling.
    assert after[paths.GOLDEN] == before[paths.GOLDEN]
    assert after[paths.VALIDATION] == before[paths.VALIDATION]


def test_forced_rerun_reproduces_the_lock(repo):
    before = (repo / "dvc.lock").read_text()
    out = run(["dvc", "repro", "--force"], repo)
    assert sorted(stage_runs(out)) == sorted(STAGES)
    assert (repo / "dvc.lock").read_text() == before


def test_hydra_sweep_across_runs_through_the_queue(repo):
    """The recipe in docs/configuration.md: multi-value -S queues one experiment per value."""
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"], repo)
    run(["dvc", "exp", "run", "-S", "model.params.max_bin=32,64", "--queue"], repo)
    try:
        run(["dvc", "queue", "start", "-j", "1"], repo)
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            status = run(["dvc", "queue", "status"], repo)
            if not any(word in status for word in ("Queued", "Running")):
                break
            time.sleep(3)
    finally:
        run(["dvc", "queue", "stop"], repo)
    assert "Failed" not in status, status
    table = run(["dvc", "exp", "show", "--csv"], repo)
    rows = list(csv.DictReader(io.StringIO(table)))
    done = {
        r["model.params.max_bin"]: float(r["validation.roc_auc"])
        for r in rows
        if r["State"] == "Success"
    }
    assert set(done) == {"32", "64"} and min(done.values()) > 0.6, done
