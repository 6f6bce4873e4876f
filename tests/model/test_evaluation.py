"""The evaluate stage: metric functions on hand-computed cases, slices, and the stage end
to end on a tiny model (reports written through dvclive, byte-identical on a rerun)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xgboost as xgb
import yaml

from ctrpipe.errors import DataError
from ctrpipe.model import encoding, evaluation, metrics
from stages import evaluate
from tests.conftest import params_dict
from tests.support.project import folder_files

pytestmark = pytest.mark.unit

ROLES = {
    "id": "event_id",
    "time": "ts",
    "label": "label",
    "weight": "weight",
    "categorical": ["device", "country"],
    "numeric": ["floor_price", "position"],
}
SLICES = ["device", "position"]

# y, p with known answers: AUC 3/4 (one of four positive-negative pairs misordered).
Y = np.array([0, 0, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8])


def test_metrics_on_a_hand_computed_example():
    assert metrics.roc_auc(Y, P) == pytest.approx(0.75)
    # Precision at each positive's rank: 0.8 -> 1/1, 0.35 -> 2/3; AP = (1 + 2/3) / 2.
    assert metrics.pr_auc(Y, P) == pytest.approx(5 / 6)
    expected = -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    assert metrics.logloss(Y, P) == pytest.approx(expected)
    # Two bins: [0, .5) holds .1, .4, .35 with one positive; [.5, 1] holds .8, positive.
    table = metrics.reliability(Y, P, bins=2)
    assert [row["weight"] for row in table] == [3, 1]
    assert table[0]["mean_predicted"] == pytest.approx(0.85 / 3)
    assert table[0]["observed_rate"] == pytest.approx(1 / 3)
    assert metrics.ece(table) == pytest.approx(3 / 4 * (1 / 3 - 0.85 / 3) + 1 / 4 * 0.2)


def test_a_calibrated_model_has_no_calibration_error():
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    p = np.array([0.25] * 4 + [0.75] * 4)  # observed rates 1/4 and 3/4: exact
    assert metrics.ece(metrics.reliability(y, p, bins=10)) == pytest.approx(0, abs=1e-12)
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 20_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(int)
    assert metrics.ece(metrics.reliability(y, p, bins=10)) < 0.02


def test_reliability_puts_probability_one_in_the_last_bin_and_skips_empty_bins():
    table = metrics.reliability(np.array([0, 1]), np.array([0.05, 1.0]), bins=10)
    assert [row["bin"] for row in table] == [0, 9]


def test_weights_count_like_repeated_rows():
    w = np.array([1, 3, 2, 1])
    y, p = np.repeat(Y, w), np.repeat(P, w)
    for name in ("roc_auc", "pr_auc", "logloss"):
        fn = getattr(metrics, name)
        assert fn(Y, P, w) == pytest.approx(fn(y, p)), name
    assert metrics.ece(metrics.reliability(Y, P, 2, w)) == pytest.approx(
        metrics.ece(metrics.reliability(y, p, 2))
    )


def test_curves_are_thinned_but_keep_their_ends():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 5_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(int)
    for curve in (metrics.roc_points(y, p), metrics.pr_points(y, p)):
        assert 2 < len(curve) <= metrics.MAX_CURVE_POINTS
    roc = metrics.roc_points(y, p)
    assert (roc[0]["fpr"], roc[0]["tpr"], roc[-1]["fpr"], roc[-1]["tpr"]) == (0, 0, 1, 1)
    assert all(0 <= point["threshold"] <= 1 for point in roc)  # no infinity in the file


def test_slices_respect_min_slice_rows():
    # a: 60 rows, both classes; b: 40 rows; c: 60 rows, no positive; 5 rows without a value;
    # d: 50 rows (exactly the minimum), both classes.
    values = ["a"] * 60 + ["d"] * 50 + ["b"] * 40 + ["c"] * 60 + [None] * 5
    y = np.array([i % 2 for i in range(150)] + [0] * 65)
    p = np.linspace(0.1, 0.9, len(y))
    scored = evaluation.Scored(pa.table({"device": values}), y, np.ones(len(y)), p)
    out = evaluation.by_slice(scored, "device", min_rows=50)
    assert list(out) == ["a", "d", evaluation.TOO_SMALL]
    assert set(out["a"]) == {"rows", "roc_auc", "logloss"} and out["a"]["rows"] == 60
    assert out["d"]["rows"] == 50
    assert out[evaluation.TOO_SMALL] == {"values": 3, "rows": 40 + 60 + 5}
    a = slice(0, 60)
    assert out["a"]["roc_auc"] == round(metrics.roc_auc(y[a], p[a]), metrics.DIGITS)


def test_missing_values_form_their_own_slice():
    scored = evaluation.Scored(
        pa.table({"device": ["m", None, "m", None]}),
        np.array([0, 1, 1, 0]),
        np.ones(4),
        np.array([0.2, 0.6, 0.7, 0.1]),
    )
    out = evaluation.by_slice(scored, "device", min_rows=2)
    assert list(out) == ["m", evaluation.MISSING] and out[evaluation.MISSING]["roc_auc"] == 1


def test_numeric_slices_read_as_numbers_in_order():
    position = [10.0, 2.0, 1.5] * 2
    scored = evaluation.Scored(
        pa.table({"position": position}), np.array([0, 1, 0, 1, 0, 1]), np.ones(6), np.full(6, 0.5)
    )
    assert list(evaluation.by_slice(scored, "position", min_rows=1)) == ["1.5", "2", "10"]


# --- the stage on a tiny model ---------------------------------------------------------


def ad_table(rows: int, seed: int, single_class: bool = False) -> pa.Table:
    """Impressions whose click rate depends on device and position, as the real ones do."""
    rng = np.random.default_rng(seed)
    device = rng.choice(["mobile", "desktop", "tablet", "ctv"], rows, p=[0.5, 0.3, 0.15, 0.05])
    position = rng.integers(1, 7, rows).astype(float)
    logit = -2.0 + 1.2 * (device == "mobile") - 0.3 * position
    label = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(np.int32)
    if single_class:
        label[:] = 0
    return pa.table(
        {
            "event_id": [f"e{seed}-{i}" for i in range(rows)],
            "ts": pa.array(np.arange(rows) * 1_000_000, pa.timestamp("us", tz="UTC")),
            "label": label,
            "device": device,
            "country": rng.choice(["US", "DE", "FR"], rows),
            "floor_price": rng.uniform(0, 5, rows),
            "position": position,
            "weight": np.ones(rows),
        }
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A trained tiny model, its schema, validation and golden files and a params.yaml."""
    root = tmp_path_factory.mktemp("evaluate")
    train = ad_table(3000, seed=1)
    # Consumers read the schema back from JSON; train in that column order, as train does.
    schema = encoding.FeatureSchema.from_json(encoding.fit(train, ROLES, 10, 1).to_json())
    dtrain = xgb.DMatrix(
        schema.encode(train), label=train["label"].to_numpy(), feature_names=schema.names
    )
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": 0},
        dtrain,
        num_boost_round=20,
    )
    booster.save_model(root / "model.ubj")
    (root / "schema.json").write_text(schema.to_json())
    (root / "data").mkdir()
    pq.write_table(ad_table(1500, seed=2), root / "data" / "validation.parquet")
    pq.write_table(ad_table(800, seed=3), root / "data" / "golden.parquet")
    write_params(root / "params.yaml", slices=SLICES)
    return root


def write_params(path: Path, slices: list[str]) -> Path:
    settings = {"min_slice_rows": 50, "calibration_bins": 10}
    path.write_text(yaml.safe_dump(params_dict(evaluate=settings, data={"slices": slices})))
    return path


def run(ws: Path, out: Path, **paths) -> None:
    args = {
        "params": ws / "params.yaml",
        "model": ws / "model.ubj",
        "schema": ws / "schema.json",
        "validation": ws / "data" / "validation.parquet",
        "golden": ws / "data" / "golden.parquet",
        **paths,
    }
    evaluate.main([f"--{k}={v}" for k, v in args.items()] + [f"--out={out}"])


def test_stage_writes_metrics_and_plots_byte_identical_on_rerun(workspace, tmp_path):
    run(workspace, tmp_path / "one")
    run(workspace, tmp_path / "two")
    first = folder_files(tmp_path / "one")
    assert first == folder_files(tmp_path / "two")
    plots = [
        f"plots/custom/{kind}/{split}.json"
        for kind in ("roc", "precision_recall", "calibration")
        for split in ("validation", "golden")
    ]
    assert sorted(first) == sorted(["metrics.json", "plots/custom/feature_importance.json", *plots])

    report = json.loads(first["metrics.json"])
    for split, rows in (("validation", 1500), ("golden", 800)):
        m = report[split]
        assert m["rows"] == rows and 0.6 < m["roc_auc"] < 1 and 0 < m["pr_auc"] < 1
        assert m["logloss"] > 0 and 0 <= m["ece"] < 0.1 and 0 < m["positive_rate"] < 1
        assert m["roc_auc"] == round(m["roc_auc"], metrics.DIGITS)
        assert set(m["slices"]) == set(SLICES)
    device = report["validation"]["slices"]["device"]
    assert set(device["mobile"]) == {"rows", "roc_auc", "logloss"}
    assert sum(v["rows"] for v in device.values()) == 1500
    # ctv is about 5% of 800 golden rows: under min_slice_rows, so only counted.
    golden = report["golden"]["slices"]["device"]
    assert "ctv" not in golden and golden[evaluation.TOO_SMALL]["values"] == 1
    assert list(report["validation"]["slices"]["position"]) == ["1", "2", "3", "4", "5", "6"]

    gains = json.loads(first["plots/custom/feature_importance.json"])
    schema = encoding.FeatureSchema.load(workspace / "schema.json")
    assert [g["feature"] for g in gains] == schema.names
    assert max(gains, key=lambda g: g["gain"])["feature"] in ("device", "position")
    gain = {g["feature"]: g["gain"] for g in gains}
    assert gain["country"] < gain["device"] / 5  # country does not drive the clicks
    for name in plots:
        assert 0 < len(json.loads(first[name])) <= metrics.MAX_CURVE_POINTS


def error_of(capsys, ws: Path, out: Path, **paths) -> str:
    with pytest.raises(SystemExit) as exc:
        run(ws, out, **paths)
    assert exc.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert not out.exists()
    return lines[0]


def test_single_class_validation_is_a_named_error(workspace, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    pq.write_table(
        ad_table(300, seed=4, single_class=True), tmp_path / "data" / "validation.parquet"
    )
    pq.write_table(ad_table(300, seed=5), tmp_path / "data" / "golden.parquet")
    line = error_of(
        capsys,
        workspace,
        tmp_path / "out",
        validation=tmp_path / "data" / "validation.parquet",
        golden=tmp_path / "data" / "golden.parquet",
    )
    assert "validation.parquet: column 'label': only the class 0; expected both 0 and 1" in line


def test_unknown_slice_column_names_the_key(workspace, tmp_path, capsys):
    params = write_params(tmp_path / "params.yaml", slices=["device", "browser"])
    line = error_of(capsys, workspace, tmp_path / "out", params=params)
    assert "no column 'browser'" in line and "data.slices" in line


@pytest.mark.parametrize(
    "which, message",
    [
        ("model", "model.ubj: model file not found"),
        ("validation", "validation.parquet: not found; run `dvc repro generate` first"),
    ],
)
def test_missing_inputs_are_named(workspace, tmp_path, capsys, which, message):
    missing = {
        "model": tmp_path / "model.ubj",
        "validation": tmp_path / "nodata" / "validation.parquet",
    }[which]
    assert message in error_of(capsys, workspace, tmp_path / "out", **{which: missing})


def test_a_schema_in_another_column_order_is_refused(workspace, tmp_path):
    # Scoring would work by name, but serving feeds columns in schema order: fail loudly.
    schema = encoding.FeatureSchema.load(workspace / "schema.json")
    swapped = encoding.FeatureSchema(**{**schema.__dict__, "numeric": schema.numeric[::-1]})
    (tmp_path / "schema.json").write_text(swapped.to_json())
    with pytest.raises(DataError, match="feature 0 is 'floor_price' but .* has 'position'"):
        evaluation.load_model(workspace / "model.ubj", tmp_path / "schema.json")
