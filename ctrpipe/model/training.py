"""Train one XGBoost booster on the encoded splits, stopping early on validation.

The train stage reads and checks the splits, encodes them into DMatrix objects, trains
(once per sweep trial on a sample, then once on all of train) and keeps the booster cut to
its best iteration. Every check runs before training, so bad input fails in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import xgboost as xgb

from ctrpipe.errors import ConfigError, DataError
from ctrpipe.model import labelled, metrics
from ctrpipe.model.encoding import FeatureSchema
from ctrpipe.model.settings import Model

VALIDATION = "validation"  # the eval set's name in XGBoost's evaluation log
METRIC = "logloss"  # what early stopping and the sweep minimise
ROLES = ("id", "time", "label", "weight", "categorical", "numeric")


def read_roles(path: str | Path) -> dict:
    """features.json from generate: which column is the label, the weight, each feature."""
    path = Path(path)
    try:
        roles = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found; run `dvc repro generate` first") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc})") from None
    missing = [key for key in ROLES if key not in roles]
    if missing:
        raise DataError(f"{path}: no '{missing[0]}' key (expected {', '.join(ROLES)})")
    return roles


def split_columns(roles: dict) -> list[str]:
    """What training reads of a split: the label, the weight, the features."""
    return [roles["label"], roles["weight"], *roles["numeric"], *roles["categorical"]]


def read_split(path: str | Path, roles: dict) -> pa.Table:
    """The label, weight and feature columns of one split, checked for training."""
    return labelled.read(
        path,
        split_columns(roles),
        roles["label"],
        roles["weight"],
        needed_by="features.json lists it",
    )


def to_dmatrix(
    table: pa.Table, schema: FeatureSchema, source: str | Path, nthread: int = -1
) -> xgb.DMatrix:
    """The encoded features with label and weight, columns named as in the schema."""

    def column(name):
        return table.column(name).cast(pa.float32()).to_numpy()

    return xgb.DMatrix(
        schema.encode(table, source=str(source)),
        label=column(schema.label),
        weight=column(schema.weight),
        feature_names=schema.names,
        nthread=nthread,
    )


def booster_params(model: Model, overrides: dict | None = None) -> dict:
    """The model's fixed params with a trial's (or the best trial's) params on top."""
    metric = model.params.get("eval_metric", METRIC)
    if metric != METRIC:
        raise ConfigError(
            f"model.params.eval_metric: must be '{METRIC}' (early stopping and "
            f"the sweep minimise validation logloss; got {metric!r})"
        )
    return {**model.params, "eval_metric": METRIC, **(overrides or {})}


def train(
    params: dict,
    dtrain: xgb.DMatrix,
    dvalid: xgb.DMatrix,
    model: Model,
    callbacks: list | tuple = (),
) -> xgb.Booster:
    """Up to `num_boost_round` rounds, stopping when validation logloss has not improved
    for `early_stopping_rounds`; the booster keeps every round and knows its best one."""
    # Early stopping first: XGBoost stops asking callbacks once one says stop, and the
    # best iteration must count every round that was evaluated.
    stopping = xgb.callback.EarlyStopping(
        rounds=model.early_stopping_rounds, metric_name=METRIC, data_name=VALIDATION
    )
    try:
        return xgb.train(
            params,
            dtrain,
            num_boost_round=model.num_boost_round,
            evals=[(dvalid, VALIDATION)],
            callbacks=[stopping, *callbacks],
            verbose_eval=False,
        )
    except xgb.core.XGBoostError as exc:
        # XGBoost appends a native stack trace; its first line names the param.
        reason = str(exc).strip().splitlines()[0]
        raise ConfigError(f"model.params / sweep.space: XGBoost rejected {reason!r}") from None


def best_model(booster: xgb.Booster) -> xgb.Booster:
    """The booster cut to its best iteration: whoever loads it predicts the same without
    knowing the iteration. Slicing drops the feature names, so they are put back."""
    best = booster[: booster.best_iteration + 1]
    best.feature_names = booster.feature_names
    best.feature_types = booster.feature_types
    return best


def evaluate(booster: xgb.Booster, dmatrix: xgb.DMatrix) -> dict[str, float]:
    """Weighted logloss and AUC of the booster's predictions on `dmatrix`."""
    label, weight = dmatrix.get_label(), dmatrix.get_weight()
    prob = booster.predict(dmatrix).astype(np.float64)
    return {
        "logloss": metrics.logloss(label, prob, weight),
        "auc": metrics.roc_auc(label, prob, weight),
    }


def summary(
    booster: xgb.Booster, best: xgb.Booster, params: dict, metrics: dict[str, float]
) -> dict:
    """What models/params.json records about the final model."""
    return {
        "params": params,
        "best_iteration": booster.best_iteration,
        "rounds_trained": booster.num_boosted_rounds(),
        "trees": len(best.get_dump()),
        "validation": {name: round(value, 6) for name, value in metrics.items()},
    }
