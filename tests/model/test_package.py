"""The model package: ONNX parity, byte-stable rebuilds, a manifest checked on every load,
the reference profile, the model card and the stage as a user runs it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xgboost as xgb
import yaml

from ctrpipe import paths
from ctrpipe.errors import DataError
from ctrpipe.model import card, onnx_export, package, profile
from ctrpipe.online import store
from stages import package as package_stage
from tests.conftest import params_dict, stage_args
from tests.support import snapshots
from tests.support.models import SETTINGS, inputs

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def built(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("pkg") / "package"
    package.write(path, package.build(inputs(tiny), SETTINGS))
    return path


def test_onnx_matches_xgboost_on_missing_and_other_codes(tiny):
    schema, _, validation, model = tiny
    booster = package.load_booster(model, "model.ubj")
    x = schema.encode(validation)
    device = schema.names.index("device")
    assert np.isnan(x[:, device]).any() and (x[:, device] == schema.other_code("device")).any()
    onnx_bytes = onnx_export.convert(booster, len(schema.names))
    assert onnx_bytes == onnx_export.convert(booster, len(schema.names))  # deterministic
    probes = onnx_export.probe_rows(x, {device: schema.other_code("device")})
    assert onnx_export.check_parity(booster, onnx_bytes, probes, "m") <= onnx_export.TOLERANCE

    other = xgb.train(
        {"objective": "binary:logistic", "nthread": 1},
        xgb.DMatrix(x[:200], (validation.column("label").to_numpy()[:200])),
        num_boost_round=3,
    )
    with pytest.raises(DataError, match=r"^m: ONNX and XGBoost predictions differ by"):
        onnx_export.check_parity(other, onnx_bytes, probes, "m")


def test_intercept_is_exact_when_the_first_tree_is_a_zero_leaf():
    """onnxmltools reads base_score as a margin when tree 0 is a single zero leaf."""
    x = np.random.default_rng(3).normal(size=(500, 3)).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "eta": 0.0, "min_split_loss": 1e9, "nthread": 1},
        xgb.DMatrix(x, (x[:, 0] > 1).astype(int)),
        2,
    )
    assert json.loads(booster.get_dump(dump_format="json")[0]) == {"nodeid": 0, "leaf": 0}
    onnx_export.check_parity(booster, onnx_export.convert(booster, 3), x, "m")


def test_rebuild_is_byte_identical(tiny, built, tmp_path):
    again = tmp_path / "again"
    digest = package.write(again, package.build(inputs(tiny), SETTINGS))
    names = sorted(p.name for p in built.iterdir())
    assert names == [
        "manifest.json",
        "model.onnx",
        "model.ubj",
        "model_card.md",
        "profile.json",
        "schema.json",
    ]
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (built / name).read_bytes() == (again / name).read_bytes(), name
    assert digest == package.digest(built) == package.load(again).digest


def test_load_gives_the_session_schema_and_predictions(tiny, built):
    schema, _, validation, model = tiny
    loaded = package.load(built)
    expected = package.load_booster(model, "m").inplace_predict(schema.encode(validation))
    np.testing.assert_allclose(loaded.predict(validation), expected, atol=1e-6)
    assert loaded.schema == schema and loaded.schema.names == schema.names  # order too
    assert loaded.session.get_session_options().intra_op_num_threads == 1
    assert loaded.spec["output"] == {
        "name": "probabilities",
        "column": 1,
        "meaning": "click probability",
    }


def test_a_schema_in_another_column_order_is_refused(tiny):
    schema = tiny[0]
    reordered = dataclasses.replace(schema, categorical=dict(reversed(schema.categorical.items())))
    with pytest.raises(
        DataError,
        match=r"^model.ubj: the model's features are floor_price, "
        r"position, device, campaign_id; the schema's",
    ):
        package.build(inputs(tiny, schema=reordered), SETTINGS)


def damage(path: Path, how: str) -> str:
    if how == "deleted":
        (path / "profile.json").unlink()
        return "profile.json: missing"
    if how == "altered":
        data = bytearray((path / "model.onnx").read_bytes())
        data[len(data) // 2] ^= 1
        (path / "model.onnx").write_bytes(bytes(data))
        return r"model.onnx: sha256 mismatch \(manifest [0-9a-f]{12}…, file [0-9a-f]{12}…\)"
    (path / "notes.txt").write_text("hi")
    return "notes.txt: extra file"


@pytest.mark.parametrize("how", ["deleted", "altered", "extra"])
def test_load_refuses_a_changed_package(tiny, tmp_path, how):
    path = tmp_path / "package"
    package.write(path, package.build(inputs(tiny), SETTINGS))
    message = damage(path, how)
    with pytest.raises(DataError, match=f"^{path}/{message}"):
        package.load(path)


def test_profile_fractions_are_weighted_and_sum_to_one(tiny, built):
    numeric = profile.numeric(np.array([1.0, 2, 3, 4, np.nan]), np.array([3.0, 1, 1, 1, 2]), 2)
    # The weighted median is 1 (weight 3 of 6); unweighted it would be 2.
    assert numeric == {
        "kind": "numeric",
        "edges": [1.0],
        "fractions": [0.375, 0.375],
        "missing": 0.25,
    }
    cat = profile.categorical(
        pa.chunked_array([["a", "a", "b", "c", None]]), np.array([1.0, 1, 4, 1, 1]), top=1
    )
    assert cat == {
        "kind": "categorical",
        "values": ["b", "__other__"],
        "fractions": [0.5, 0.375],
        "missing": 0.125,
    }

    doc = json.loads((built / "profile.json").read_text())
    train = tiny[1]
    for name, entry in [*doc["features"].items(), ("prediction", doc["prediction"])]:
        assert sum(entry["fractions"]) + entry["missing"] == pytest.approx(1, abs=1e-6), name
    weight, label = train.column("weight").to_numpy(), train.column("label").to_numpy()
    assert doc["label_rate"] == pytest.approx(np.dot(weight, label) / weight.sum(), rel=1e-6)
    assert doc["label_rate"] < label.mean()  # the sampled file has more clicks than traffic
    assert doc["features"]["device"]["values"] == ["mobile", "desktop", "tablet", "__other__"]


def test_model_card_names_commit_data_hashes_and_metrics(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("dvc.lock").write_text(
        yaml.safe_dump(
            {
                "schema": "2.0",
                "stages": {
                    "generate": {
                        "cmd": "python -m stages.generate",
                        "outs": [
                            {
                                "path": f"data/processed/{s}.parquet",
                                "hash": "md5",
                                "md5": f"{s[:4]}" * 8,
                            }
                            for s in ("train", "validation", "golden")
                        ],
                    }
                },
            }
        )
    )
    hashes = card.lock_hashes(
        "dvc.lock",
        {role: f"data/processed/{role}.parquet" for role in ("train", "validation", "golden")},
    )
    text = package.build(
        inputs(tiny, data_hashes=hashes, commit="1234abcd", metrics={"validation": {"auc": 0.71}}),
        SETTINGS,
    )["model_card.md"].decode()
    for expected in (
        "`1234abcd`",
        "trai" * 8,
        "vali" * 8,
        "gold" * 8,
        "| validation.auc | 0.71 |",
        "| trees | 30 |",
        "| params.max_depth | 4 |",
    ):
        assert expected in text, expected
    missing = package.build(inputs(tiny), SETTINGS)["model_card.md"].decode()
    assert "Not available: metrics.json" in missing
    assert "not recorded" in missing


def stage_files(tiny, root: Path) -> list[str]:
    """The stage's inputs where dvc.yaml puts them; returns its arguments."""
    schema, train, validation, model = tiny
    for path in (paths.MODEL, paths.TRAIN):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / paths.MODEL).write_bytes(model)
    # Not schema.to_json(): it sorts keys, which reorders the categorical features.
    (root / paths.MODEL_SCHEMA).write_text(json.dumps(dataclasses.asdict(schema)))
    (root / paths.MODEL_PARAMS).write_text(json.dumps({"params": {"max_depth": 4}}))
    pq.write_table(train, root / paths.TRAIN)
    pq.write_table(validation, root / paths.VALIDATION)
    (root / "params.yaml").write_text(yaml.safe_dump(params_dict()))
    snapshots.tiny(root / paths.SNAPSHOT)
    pq.write_table(snapshots.SKEW_SAMPLE, root / paths.SKEW_SAMPLE)
    pq.write_table(snapshots.SKEW_GOLDEN, root / paths.GOLDEN)
    return [*stage_args("package"), "--params", "params.yaml", "--commit", "feedbeef"]


def test_stage_writes_a_package_that_loads(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    package_stage.main(stage_files(tiny, tmp_path))
    loaded = package.load(paths.PACKAGE)
    assert loaded.digest in capsys.readouterr().out
    card = (tmp_path / paths.PACKAGE / "model_card.md").read_text()
    assert "`feedbeef`" in card
    # The skew check ran on the package before it was written; its card states it.
    figures = json.loads((tmp_path / paths.SKEW).read_text())
    assert (figures["rows_checked"], figures["rows_different"]) == (3, 0)
    assert "**0 of 3 differ**" in card
    # The snapshot goes in whole, its own manifest too: the package's manifest covers it.
    inside = store.load(tmp_path / paths.PACKAGE / store.FOLDER)
    assert inside.digest == store.load(tmp_path / paths.SNAPSHOT).digest


def test_stage_failure_leaves_no_package(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = stage_files(tiny, tmp_path)
    (tmp_path / paths.MODEL).unlink()
    with pytest.raises(SystemExit) as exit_info:
        package_stage.main(args)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {paths.MODEL}: cannot read (No such file or directory)"
    ]
    assert not (tmp_path / paths.PACKAGE).exists()

    (tmp_path / paths.MODEL).write_bytes(b"not a model")
    with pytest.raises(SystemExit):
        package_stage.main(args)
    assert capsys.readouterr().err.startswith(f"error: {paths.MODEL}: not an XGBoost model")
    assert not (tmp_path / paths.PACKAGE).exists()
