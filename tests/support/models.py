"""Small real models and packages for the tests: traffic with a learnable click signal,
a tiny booster on it, and packages built by the project's own code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import xgboost as xgb

from ctrpipe.model import encoding, package
from ctrpipe.model.settings import Package as Settings
from ctrpipe.online import store
from tests.support import snapshots

ROLES = {
    "id": "event_id",
    "time": "ts",
    "label": "label",
    "weight": "weight",
    "categorical": ["device", "campaign_id"],
    "numeric": ["floor_price", "position"],
}
SETTINGS = Settings(profile_bins=5, profile_top_categories=3)
NEGATIVE_RATE = 0.25


def traffic(n: int, seed: int, sample: bool) -> pa.Table:
    """Impressions with a learnable click signal; rare and unseen values, nulls."""
    rng = np.random.default_rng(seed)
    device = rng.choice(
        ["mobile", "desktop", "tablet", "ctv", "watch"], n, p=[0.5, 0.3, 0.15, 0.045, 0.005]
    )
    campaign = np.array([f"c{k}" for k in rng.zipf(1.6, n) % (40 if sample else 60)])
    price = rng.gamma(2.0, 1.5, n)
    position = rng.integers(1, 6, n).astype(float)
    logit = (
        -3.0 + 0.8 * (device == "mobile") - 0.3 * position + 0.2 * price + 0.6 * (campaign == "c1")
    )
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int32)
    keep = (label == 1) | (rng.random(n) < (NEGATIVE_RATE if sample else 1.0))
    weight = np.where(label == 1, 1.0, 1 / NEGATIVE_RATE if sample else 1.0)
    price[rng.random(n) < 0.05] = np.nan
    device_col = pa.array(device.tolist(), mask=rng.random(n) < 0.03)
    table = pa.table(
        {
            "event_id": [f"e{seed}-{i}" for i in range(n)],
            "ts": pa.array(np.arange(n), pa.timestamp("s")),
            "label": label,
            "device": device_col,
            "campaign_id": campaign,
            "floor_price": pa.array(price, from_pandas=True),
            "position": position,
            "weight": weight,
        }
    )
    return table.filter(pa.array(keep))


def train_tiny() -> tuple:
    """A small model on `traffic`: (schema, train, validation, model bytes)."""
    train, validation = traffic(8000, 1, sample=True), traffic(3000, 2, sample=False)
    schema = encoding.fit(train, ROLES, max_categories=20, min_count=20)
    x = schema.encode(train)
    dtrain = xgb.DMatrix(
        x,
        train.column("label").to_numpy(),
        weight=train.column("weight").to_numpy(),
        feature_names=schema.names,
    )
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.2, "nthread": 1, "seed": 0},
        dtrain,
        num_boost_round=30,
    )
    return schema, train, validation, bytes(booster.save_raw("ubj"))


def inputs(tiny, **changes) -> package.Inputs:
    schema, train, validation, model = tiny
    fields = dict(
        model=model,
        schema=schema,
        train=train,
        validation=validation,
        train_params={"params": {"max_depth": 4, "eta": 0.2}, "best_iteration": 29},
        metrics=None,
        data_hashes={"train": "not recorded"},
        commit="c0ffee",
    )
    return package.Inputs(**(fields | changes))


def booster_bytes(schema, train, rounds: int, depth: int) -> bytes:
    dtrain = xgb.DMatrix(
        schema.encode(train),
        train.column("label").to_numpy(),
        weight=train.column("weight").to_numpy(),
        feature_names=schema.names,
    )
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": depth, "eta": 0.2, "nthread": 1, "seed": 0},
        dtrain,
        num_boost_round=rounds,
    )
    return bytes(booster.save_raw("ubj"))


def build_packages(root: Path) -> tuple[dict[str, Path], pa.Table]:
    """Two real packages with different vocabularies (so a swap also swaps the
    encoding), each with the tiny online snapshot (root/snapshot), and one whose
    model.ubj is not the model its ONNX was built from."""
    train, validation = traffic(8000, 1, sample=True), traffic(3000, 2, sample=False)
    folders, files = {}, {}
    online = store.packaged(snapshots.tiny(root / "snapshot"))
    for name, categories, rounds, depth in (("a", 20, 30, 4), ("b", 5, 12, 3)):
        schema = encoding.fit(train, ROLES, max_categories=categories, min_count=20)
        tiny = (schema, train, validation, booster_bytes(schema, train, rounds, depth))
        files[name] = package.build(inputs(tiny), SETTINGS) | online
        folders[name] = root / name
        package.write(folders[name], files[name])
    folders["broken"] = root / "broken"
    package.write(folders["broken"], files["a"] | {"model.ubj": files["b"]["model.ubj"]})
    return folders, validation


def expected(path: Path, rows: list[dict]) -> list[float]:
    """What XGBoost predicts for the rows, encoded as a table (the training path). The
    service answers through the compiled model or ONNX Runtime, each checked against
    XGBoost to 1e-6 at load: compare with `close`."""
    loaded = package.load(path)
    booster = package.load_booster((path / "model.ubj").read_bytes(), "model.ubj")
    x = loaded.schema.encode(pa.Table.from_pylist(rows))
    return booster.inplace_predict(x).tolist()


def close(expected_values: list[float]):
    return pytest.approx(expected_values, abs=1e-6, rel=0)


def request_rows(validation: pa.Table, schema, n: int) -> list[dict]:
    """Validation rows (nulls and campaigns unseen in training among them), plus
    unknown categories, nulls everywhere and integers where floats are usual."""
    rows = validation.select(schema.names).slice(0, n).to_pylist()
    rows[0] |= {"device": "never-seen-device", "campaign_id": "c-unknown"}
    rows[1] |= {"floor_price": None, "device": None}
    rows[2] |= {name: None for name in schema.names}
    rows[3] |= {"position": 3, "floor_price": 2}
    return rows
