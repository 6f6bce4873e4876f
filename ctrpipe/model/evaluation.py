"""The evaluate stage's library: score the model on a split, overall and per slice.

Every check (model, schema, split files, columns, classes) runs before anything is
written, and the reports land in one atomic move, so a bad input leaves no output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xgboost as xgb
from dvclive import Live

from ctrpipe import fileio
from ctrpipe.errors import DataError
from ctrpipe.model import labelled, metrics
from ctrpipe.model.encoding import FeatureSchema
from ctrpipe.model.settings import Evaluate

MISSING = "(missing)"  # the slice key of rows whose slice column is null
TOO_SMALL = "too_small"  # the count of slice values too small to score
# Each plot table's x and y columns (the evaluate stage's plots entries in dvc.yaml match).
PLOTS = {
    "roc": ("fpr", "tpr"),
    "precision_recall": ("recall", "precision"),
    "calibration": ("mean_predicted", "observed_rate"),
}


@dataclass(frozen=True)
class Model:
    booster: xgb.Booster
    schema: FeatureSchema


@dataclass(frozen=True)
class Scored:
    """One split with its labels, weights and predictions."""

    table: pa.Table
    y: np.ndarray
    w: np.ndarray
    p: np.ndarray


def load_model(model_path: str | Path, schema_path: str | Path) -> Model:
    for path, what in ((model_path, "model"), (schema_path, "feature schema")):
        if not Path(path).is_file():
            raise DataError(f"{path}: {what} file not found; run the train stage first")
    try:
        booster = xgb.Booster(model_file=str(model_path))
    except xgb.core.XGBoostError as exc:
        raise DataError(f"{model_path}: not an XGBoost model ({first_line(exc)})") from None
    schema = FeatureSchema.load(schema_path)
    if booster.num_features() != len(schema.names):
        raise DataError(
            f"{model_path}: the model takes {booster.num_features()} features "
            f"but {schema_path} lists {len(schema.names)}"
        )
    # Serving feeds columns in schema order, so a model that learned another order must
    # fail here rather than be scored (and later served) on shuffled columns.
    for i, (model_name, schema_name) in enumerate(zip(booster.feature_names or [], schema.names)):
        if model_name != schema_name:
            raise DataError(
                f"{model_path}: feature {i} is '{model_name}' but {schema_path} has '{schema_name}'"
            )
    return Model(booster, schema)


def read_split(path: str | Path, schema: FeatureSchema, slices: list[str]) -> pa.Table:
    """The columns evaluation needs, checked (see ctrpipe/model/labelled.py); a slice column
    the split lacks is named with the key that asked for it."""
    path = Path(path)
    if path.is_file():
        names = pq.read_schema(path).names
        for name in slices:
            if name not in names:
                raise DataError(f"{path}: no column '{name}' to slice by (data.slices)")
    return labelled.read(
        path, [schema.label, schema.weight, *schema.names, *slices], schema.label, schema.weight
    )


def score(model: Model, table: pa.Table, source: str) -> Scored:
    x = model.schema.encode(table, source=source)
    # A booster trained with feature names refuses an unnamed matrix.
    p = model.booster.predict(xgb.DMatrix(x, feature_names=model.booster.feature_names))
    y = table.column(model.schema.label).to_numpy().astype(np.int64)
    w = table.column(model.schema.weight).to_numpy().astype(np.float64)
    return Scored(table, y, w, p.astype(np.float64))


def overall(s: Scored, bins: int) -> dict:
    calibration = metrics.reliability(s.y, s.p, bins, s.w)
    values = {
        "rows": len(s.y),
        "positive_rate": np.average(s.y, weights=s.w),
        "mean_prediction": np.average(s.p, weights=s.w),
        "roc_auc": metrics.roc_auc(s.y, s.p, s.w),
        "pr_auc": metrics.pr_auc(s.y, s.p, s.w),
        "logloss": metrics.logloss(s.y, s.p, s.w),
        "ece": metrics.ece(calibration),
    }
    return metrics.rounded(values)


def by_slice(s: Scored, column: str, min_rows: int) -> dict:
    """Per value of `column`: rows, ROC AUC and log loss. Values with fewer than `min_rows`
    rows or a single class (AUC noisy or undefined) are only counted, under TOO_SMALL, so
    a column with thousands of rare values still gives a short report."""
    codes, values = slice_codes(s.table.column(column))
    # One sort groups each value's rows together: no pass over all rows per value.
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(values)))])
    out, small = {}, {"values": 0, "rows": 0}
    for code in sorted(range(len(values)), key=lambda c: sort_key(values[c])):
        rows = order[bounds[code] : bounds[code + 1]]
        y, p, w = s.y[rows], s.p[rows], s.w[rows]
        if len(rows) < min_rows or y.min() == y.max():
            small = {"values": small["values"] + 1, "rows": small["rows"] + len(rows)}
            continue
        out[slice_key(values[code])] = {
            "rows": len(rows),
            **metrics.rounded(
                {"roc_auc": metrics.roc_auc(y, p, w), "logloss": metrics.logloss(y, p, w)}
            ),
        }
    if small["values"]:
        out[TOO_SMALL] = small
    return out


def slice_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list]:
    """A code per row and the distinct values; nulls get the code past the last value."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    values = encoded.dictionary.to_pylist()
    codes = pc.fill_null(encoded.indices, len(values)).to_numpy()
    if column.null_count:
        values.append(None)
    return codes, values


def sort_key(value) -> tuple:
    # Numbers in numeric order, strings in text order, the missing value last.
    if value is None:
        return (2, 0, "")
    if isinstance(value, int | float):
        return (0, value, "")
    return (1, 0, str(value))


def slice_key(value) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # position 3.0 reads as "3"
    return str(value)


def evaluate(
    model: Model, table: pa.Table, settings: Evaluate, slices: list[str], source: str
) -> dict:
    """Metrics, per-slice metrics (for each column in `slices`) and plot tables for one
    split."""
    s = score(model, table, source)
    report = overall(s, settings.calibration_bins)
    report["slices"] = {c: by_slice(s, c, settings.min_slice_rows) for c in slices}
    plots = {
        "roc": metrics.roc_points(s.y, s.p, s.w),
        "precision_recall": metrics.pr_points(s.y, s.p, s.w),
        "calibration": [
            metrics.rounded(row)
            for row in metrics.reliability(s.y, s.p, settings.calibration_bins, s.w)
        ],
    }
    return {"metrics": report, "plots": plots}


def importance(model: Model) -> list[dict]:
    """Total gain per feature in schema order; a feature never split on has gain 0."""
    gains = model.booster.get_score(importance_type="gain")
    if model.booster.feature_names is None:
        # Without stored names XGBoost calls the columns f0, f1, ... in schema order.
        gains = {model.schema.names[int(k[1:])]: g for k, g in gains.items()}
    return [
        {"feature": name, "gain": round(float(gains.get(name, 0.0)), metrics.DIGITS)}
        for name in model.schema.names
    ]


def write_reports(out_dir: str | Path, results: dict[str, dict], gains: list[dict]) -> None:
    """Metrics and plot tables through dvclive, into a temporary folder moved into place
    at the end. No dvc.yaml (the stage owns its entries), no experiment, no step and no
    timestamps: the same inputs give the same bytes."""
    with fileio.atomic_path(out_dir) as tmp:
        with open_live(tmp) as live:
            for split, result in results.items():
                live.summary[split] = result["metrics"]
                for kind, (x, y) in PLOTS.items():
                    live.log_plot(
                        f"{kind}/{split}",
                        result["plots"][kind],
                        x=x,
                        y=y,
                        template="simple",
                        title=f"{kind} ({split})",
                    )
            live.log_plot(
                "feature_importance",
                gains,
                x="gain",
                y="feature",
                template="bar_horizontal",
                title="feature importance (gain)",
            )


def open_live(folder: Path) -> Live:
    from scmrepo.exceptions import SCMError

    try:
        return Live(dir=str(folder), save_dvc_exp=False, dvcyaml=None, report=None)
    except SCMError as exc:  # dvclive reads HEAD, which a repository without commits lacks
        raise DataError(
            f"evaluate: dvclive cannot read the git repository ({exc}); "
            f"make a first commit, then run again"
        ) from None


def first_line(exc: Exception) -> str:
    """XGBoost's message without its "[time] source.cc:line:" prefix and stack trace."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^\[[^\]]*\]\s+\S+:\d+:\s*", "", text)
