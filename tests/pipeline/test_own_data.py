"""A user's own data through config alone: the retail tables in data/external and one
group file in conf/data/, then `dvc repro` to the gate and `simulate` on the package,
with every other group as it is."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import xgboost as xgb
import yaml

from ctrpipe import paths
from ctrpipe.model import metrics
from tests.support import retail
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


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = copy_project(tmp_path_factory.mktemp("own"))
    retail.write(repo / "data" / "external", orders=6000)
    group = retail.data_config(repo / "data" / "external")
    group["input_dir"] = "data/external"
    (repo / "conf" / "data" / "retail.yaml").write_text(yaml.safe_dump(group, sort_keys=False))
    edit_conf(
        repo,
        {
            **SMALL,
            "config.yaml": ("data: synthetic", "data: retail"),
            "sweep/tpe.yaml": ("n_trials: 12", "n_trials: 4"),
        },
    )
    commit_project(repo, "retail")
    return repo


def test_repro_runs_every_stage_and_the_gate_passes(repo):
    out = run(["dvc", "repro"], repo)
    assert set(stage_runs(out)) == {
        "ingest",
        "generate",
        "train",
        "evaluate",
        "package",
        "release/dvc.yaml:production",
        "gate",
    }
    skew = json.loads((repo / paths.SKEW).read_text())
    assert skew["rows_checked"] > 100 and skew["rows_different"] == 0, skew
    assert sorted(p.name for p in (repo / paths.RAW / "orders").iterdir()) == [
        f"day-{d:02d}.csv" for d in range(retail.DAYS)
    ]
    data = json.loads((repo / paths.DATA_METRICS).read_text())
    assert data["tables"]["orders"]["reasons"] == {
        "bad_type:discount": 1,
        "duplicate_key:order_id": 1,
        "malformed_record": 1,
    }
    train = pq.read_table(repo / paths.TRAIN)
    assert {"stores_region", "temp", "rain"} <= set(train.column_names)
    metrics = json.loads((repo / paths.EVALUATE_METRICS).read_text())
    assert metrics["validation"]["roc_auc"] > 0.65
    assert set(metrics["validation"]["slices"]) == {"region"}
    gate = json.loads((repo / paths.GATE_REPORT).read_text())
    assert gate["verdict"] == "pass", gate["reason"]
    assert gate["baseline"]["positive_rate"] > 0.15  # far above the ad data's 3%


def test_simulate_drifts_the_packages_own_features(repo):
    """No drift configured: simulate sends raw records and moves the first categorical
    feature and the numeric one the model leans on most that they carry, and the
    monitor sees it; every request is answered."""
    proc = attempt([sys.executable, "-m", "ctrpipe", "--repo", str(repo), "simulate"], repo)
    assert proc.returncode in (3, 4), proc.stderr[-3000:]
    fields = proc.stdout.split("raw requests (")[1].split(")")[0].split(", ")
    assert "shop" in fields and "stores_region" not in fields  # a joined column is looked up
    for phase in ("clean", "drifted"):
        replayed = proc.stdout.split(f"{phase}: replayed ")[1].splitlines()[0]
        assert re.search(r"; statuses \{200: \d+\}\)$", replayed), replayed  # 200s only
    drift = json.loads(proc.stdout.split("drifted phase: ")[1].splitlines()[0])
    numeric = retail.data_config(repo)["features"]["numeric"]
    assert "shop" in drift and len(drift) == 2 and set(drift) - {"shop"} <= set(numeric)
    drifted = proc.stdout.split("--- monitor after the drifted traffic ---")[1]
    assert drifted.lstrip().startswith("ALARM") and "shop js" in drifted


def test_the_config_only_model_is_as_good_as_one_built_by_hand(repo):
    """A careful person joins the same tables with pandas and fits XGBoost on the same
    time split, early-stopped on validation: the pipeline's validation ROC AUC is within
    0.01 of theirs (or better)."""
    ext = repo / "data" / "external"
    orders = pd.concat(
        [pd.read_csv(f, na_values=["NA"]) for f in sorted((ext / "orders").glob("*.csv"))]
    )
    orders = orders[
        pd.to_numeric(orders["discount"], errors="coerce").notna() | orders["discount"].isna()
    ]
    orders = orders.drop_duplicates("order_id").dropna(subset=["hour"])
    stores = pd.read_csv(ext / "stores.csv", na_values=["NA"]).rename(
        columns={"code": "shop", "region": "stores_region"}
    )
    weather = pd.read_csv(ext / "weather.csv", na_values=["NA"]).rename(
        columns={"store_id": "shop"}
    )
    products = pd.read_parquet(ext / "products.parquet").rename(columns={"sku": "product_sku"})
    rows = orders.merge(stores, on="shop", how="left").merge(products, on="product_sku", how="left")
    rows = rows.merge(weather, on=["shop", "hour"], how="left")
    for name in ("shop", "region", "stores_region", "category", "fragile"):
        rows[name] = rows[name].astype(str).astype("category")
    rows["discount"] = pd.to_numeric(rows["discount"])
    ts = pd.to_datetime(rows["ts"])
    features = [
        "shop",
        "region",
        "stores_region",
        "category",
        "fragile",
        "hour",
        "discount",
        "size",
        "weight_kg",
        "temp",
        "rain",
    ]
    train = rows[ts < "2026-03-07"]
    valid = rows[(ts >= "2026-03-07") & ~((ts >= "2026-03-09") & (ts < "2026-03-10"))]
    dtrain = xgb.DMatrix(train[features], train["late"], enable_categorical=True)
    dvalid = xgb.DMatrix(valid[features], valid["late"], enable_categorical=True)
    booster = xgb.train(
        {
            "objective": "binary:logistic",
            "eta": 0.05,
            "max_depth": 4,
            "eval_metric": "logloss",
            "tree_method": "hist",
            "seed": 0,
            "nthread": 2,
        },
        dtrain,
        num_boost_round=1000,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=50,
        verbose_eval=False,
    )
    p = booster.predict(dvalid, iteration_range=(0, booster.best_iteration + 1))
    by_hand = metrics.roc_auc(valid["late"].to_numpy(), p, np.ones(len(p)))
    ours = json.loads((repo / paths.EVALUATE_METRICS).read_text())["validation"]["roc_auc"]
    assert ours >= by_hand - 0.01, (ours, by_hand)
