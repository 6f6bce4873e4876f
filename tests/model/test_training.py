"""The train stage on a tiny synthetic table: a model that learns, a sweep that prunes,
byte-identical outputs, a saved model that predicts like the trained one, bad input."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import xgboost as xgb
import yaml

from ctrpipe.model import encoding, sweep, training
from ctrpipe.model.settings import Model, Sweep
from stages import train
from tests.conftest import params_dict

pytestmark = pytest.mark.unit

ROLES = {
    "id": "id",
    "time": "ts",
    "label": "label",
    "weight": "weight",
    "categorical": ["device", "campaign"],
    "numeric": ["price", "hour", "noise"],
}
OUTPUTS = ("model.ubj", "schema.json", "params.json", "trials.csv")
SMALL = {
    "model": {
        "params": {"nthread": 1},
        "num_boost_round": 50,
        "early_stopping_rounds": 10,
        "encoding": {"max_categories": 20, "min_count": 5},
    },
    "sweep": {
        "n_trials": 6,
        "sample_rows": 2000,
        "pruner": {"startup_trials": 2, "warmup_rounds": 3},
    },
}


def table(rows: int, seed: int, negative_rate: float = 1.0) -> pa.Table:
    """Clicks driven by device, campaign and price; negatives kept at `negative_rate`
    with weight 1/rate, as generate does for train."""
    rng = np.random.default_rng(seed)
    device = rng.choice(["mobile", "desktop", "tablet"], rows)
    campaign = rng.integers(0, 30, rows)
    price = rng.gamma(2.0, 1.0, rows)
    logit = (
        -1.5
        + np.select([device == "mobile", device == "tablet"], [1.0, -0.5], 0.0)
        + np.linspace(-1.5, 1.5, 30)[campaign]
        + 0.4 * (price - 2)
    )
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int32)
    keep = (label == 1) | (rng.random(rows) < negative_rate)
    weight = np.where(label == 1, 1.0, 1.0 / negative_rate)
    return pa.table(
        {
            "id": [f"e{seed}-{i}" for i in range(rows)],
            "ts": np.arange(rows),
            "label": label,
            "device": device,
            "campaign": [f"c{c}" for c in campaign],
            "price": price,
            "hour": rng.integers(0, 24, rows).astype(float),
            "noise": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows)),
            "weight": weight,
        }
    ).filter(pa.array(keep))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("processed")
    pq.write_table(table(4500, seed=1, negative_rate=0.6), folder / "train.parquet")
    pq.write_table(table(1500, seed=2), folder / "validation.parquet")
    (folder / "features.json").write_text(json.dumps(ROLES))
    (folder / "params.yaml").write_text(yaml.safe_dump(params_dict(**SMALL)))
    return folder


def run(inputs: Path, out: Path, **paths) -> None:
    files = {
        "features": inputs / "features.json",
        "train": inputs / "train.parquet",
        "validation": inputs / "validation.parquet",
        **paths,
    }
    args = [f"--{key}={value}" for key, value in files.items()]
    outs = dict(zip(("model", "schema", "model-params", "trials"), OUTPUTS))
    train.main(
        [
            "--params",
            str(inputs / "params.yaml"),
            *args,
            *(f"--{key}={out / name}" for key, name in outs.items()),
        ]
    )


@pytest.fixture(scope="module")
def two_runs(inputs, tmp_path_factory) -> tuple[Path, Path]:
    first, second = tmp_path_factory.mktemp("run1"), tmp_path_factory.mktemp("run2")
    run(inputs, first)
    run(inputs, second)
    return first, second


def small_config(inputs: Path) -> tuple[Model, Sweep]:
    raw = yaml.safe_load((inputs / "params.yaml").read_text())
    return Model.model_validate(raw["model"]), Sweep.model_validate(raw["sweep"])


def dmatrices(inputs: Path, model: Model) -> tuple[xgb.DMatrix, xgb.DMatrix]:
    train_table = training.read_split(inputs / "train.parquet", ROLES)
    schema = encoding.fit(
        train_table, ROLES, model.encoding.max_categories, model.encoding.min_count
    )
    valid_table = training.read_split(inputs / "validation.parquet", ROLES)
    return (
        training.to_dmatrix(train_table, schema, "train", 1),
        training.to_dmatrix(valid_table, schema, "validation", 1),
    )


def test_model_beats_the_base_rate(inputs, two_runs):
    out = two_runs[0]
    train_table = pq.read_table(inputs / "train.parquet")
    weight = train_table["weight"].to_numpy()
    base_rate = np.average(train_table["label"].to_numpy(), weights=weight)
    valid = pq.read_table(inputs / "validation.parquet")
    y = valid["label"].to_numpy()
    constant = -np.mean(y * np.log(base_rate) + (1 - y) * np.log(1 - base_rate))

    summary = json.loads((out / "params.json").read_text())
    assert summary["validation"]["logloss"] < constant - 0.02
    assert summary["validation"]["auc"] > 0.6
    assert summary["trees"] == summary["best_iteration"] + 1

    # The saved model and schema alone reproduce the recorded metrics.
    booster = xgb.Booster(model_file=str(out / "model.ubj"))
    schema = encoding.FeatureSchema.load(out / "schema.json")
    assert booster.feature_names == schema.names
    prob = booster.predict(xgb.DMatrix(schema.encode(valid), feature_names=schema.names))
    logloss = -np.mean(y * np.log(prob) + (1 - y) * np.log(1 - prob))
    assert logloss == pytest.approx(summary["validation"]["logloss"], abs=1e-5)


def test_outputs_are_byte_identical_across_runs(two_runs):
    first, second = two_runs
    for name in OUTPUTS:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_trials_csv_has_one_row_per_trial(two_runs):
    rows = list(csv.DictReader((two_runs[0] / "trials.csv").read_text().splitlines()))
    assert list(rows[0]) == [
        "number",
        "state",
        "value",
        "colsample_bytree",
        "eta",
        "lambda",
        "max_depth",
        "min_child_weight",
        "subsample",
        "rounds",
        "best_iteration",
    ]
    assert [int(r["number"]) for r in rows] == list(range(SMALL["sweep"]["n_trials"]))
    assert {r["state"] for r in rows} <= {"COMPLETE", "PRUNED"}


def test_sweep_prunes_and_keeps_the_best_complete_trial(inputs):
    model, search = small_config(inputs)
    dtrain, dvalid = dmatrices(inputs, model)
    study = sweep.run(search, model, dtrain, dvalid)

    states = [t.state.name for t in study.trials]
    assert len(states) == search.n_trials and "PRUNED" in states and "COMPLETE" in states
    complete = [t.value for t in study.trials if t.state.name == "COMPLETE"]
    assert study.best_value == min(complete)
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert all(t.user_attrs["rounds"] < model.num_boost_round for t in pruned)


def test_saved_model_predicts_like_the_refit_model(inputs, tmp_path):
    model, _ = small_config(inputs)
    dtrain, dvalid = dmatrices(inputs, model)
    booster = training.train(training.booster_params(model), dtrain, dvalid, model)
    assert booster.best_iteration + 1 < booster.num_boosted_rounds()  # it did stop early
    best = training.best_model(booster)
    best.save_model(tmp_path / "model.ubj")
    loaded = xgb.Booster(model_file=str(tmp_path / "model.ubj"))

    expected = booster.predict(dvalid, iteration_range=(0, booster.best_iteration + 1))
    np.testing.assert_array_equal(loaded.predict(dvalid), expected)
    np.testing.assert_array_equal(best.predict(dvalid), expected)


def rewrite(inputs: Path, tmp: Path, split: str, change) -> Path:
    path = tmp / f"{split}.parquet"
    pq.write_table(change(pq.read_table(inputs / f"{split}.parquet")), path)
    return path


@pytest.mark.parametrize(
    "split, change, message",
    [
        (
            "validation",
            lambda t: t.filter(pc.equal(t["label"], 0)),
            r"validation.parquet: column 'label': only the class 0; expected both 0 and 1",
        ),
        (
            "train",
            lambda t: t.filter(pc.equal(t["label"], 1)),
            r"train.parquet: column 'label': only the class 1",
        ),
        ("train", lambda t: t.drop_columns(["price"]), r"train.parquet: column 'price' missing"),
        (
            "validation",
            lambda t: t.drop_columns(["weight"]),
            r"validation.parquet: column 'weight' missing",
        ),
        ("validation", lambda t: t.slice(0, 0), r"validation.parquet: no rows"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(inputs, tmp_path, capsys, split, change, message):
    bad = rewrite(inputs, tmp_path, split, change)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        run(inputs, out, **{split: bad})
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert re.search(message, err), err
    assert not out.exists()


def test_missing_input_file_names_it(inputs, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run(inputs, tmp_path / "out", features=tmp_path / "nowhere.json")
    assert "nowhere.json: not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
