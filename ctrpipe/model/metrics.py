"""Metrics of predicted click probabilities against 0/1 labels, each optionally weighted.

Pure functions on numpy arrays. Ranking and loss come from scikit-learn; calibration is
computed here because sklearn's `calibration_curve` takes no sample weights. A caller
makes sure both classes are present: AUCs are undefined otherwise.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

DIGITS = 6  # reports keep this many decimals so that diffs are readable and stable
MAX_CURVE_POINTS = 200


def roc_auc(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> float:
    return float(skm.roc_auc_score(y, p, sample_weight=w))


def pr_auc(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> float:
    """Average precision: the step-wise area under the precision-recall curve."""
    return float(skm.average_precision_score(y, p, sample_weight=w))


def logloss(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> float:
    # float64: float32 probabilities of exactly 0 or 1 would be clipped too coarsely.
    return float(skm.log_loss(y, np.asarray(p, np.float64), sample_weight=w, labels=[0, 1]))


def reliability(y: np.ndarray, p: np.ndarray, bins: int, w: np.ndarray | None = None) -> list[dict]:
    """Equal-width probability bins over [0, 1]: per non-empty bin its edges, weight,
    mean predicted probability and observed positive rate (all weighted)."""
    w = np.ones(len(y)) if w is None else np.asarray(w, np.float64)
    p = np.asarray(p, np.float64)
    # A probability of exactly 1 belongs to the last bin, not to a bin of its own.
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    weight = np.bincount(index, weights=w, minlength=bins)
    predicted = np.bincount(index, weights=w * p, minlength=bins)
    observed = np.bincount(index, weights=w * y, minlength=bins)
    return [
        {
            "bin": b,
            "lower": b / bins,
            "upper": (b + 1) / bins,
            "weight": weight[b],
            "mean_predicted": predicted[b] / weight[b],
            "observed_rate": observed[b] / weight[b],
        }
        for b in range(bins)
        if weight[b] > 0
    ]


def ece(table: list[dict]) -> float:
    """Expected calibration error: the weight-averaged |observed - predicted| over bins."""
    total = sum(row["weight"] for row in table)
    return float(
        sum(row["weight"] * abs(row["observed_rate"] - row["mean_predicted"]) for row in table)
        / total
    )


def roc_points(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> list[dict]:
    fpr, tpr, thresholds = skm.roc_curve(y, p, sample_weight=w, drop_intermediate=True)
    # The first threshold is +inf ("flag nothing"); 1 says the same for probabilities
    # and keeps the file valid JSON.
    return points(fpr=fpr, tpr=tpr, threshold=np.minimum(thresholds, 1.0))


def pr_points(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> list[dict]:
    precision, recall, thresholds = skm.precision_recall_curve(
        y, p, sample_weight=w, drop_intermediate=True
    )
    # The last point (recall 0, precision 1) has no threshold: reuse the highest one.
    thresholds = np.append(thresholds, thresholds[-1])
    return points(recall=recall, precision=precision, threshold=thresholds)


def rounded(values: dict) -> dict:
    """Floats to DIGITS decimals; counts stay integers."""
    return {k: v if isinstance(v, int) else round(float(v), DIGITS) for k, v in values.items()}


def points(**columns: np.ndarray) -> list[dict]:
    """Rows of a curve, thinned to MAX_CURVE_POINTS evenly spaced along its length (the
    first two columns are its x and y), so a plot keeps its shape and its file stays small."""
    x, y = list(columns.values())[:2]
    keep = thin(np.asarray(x, np.float64), np.asarray(y, np.float64), MAX_CURVE_POINTS)
    return [rounded({name: values[i] for name, values in columns.items()}) for i in keep]


def thin(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """Indices of at most n points at even arc-length steps, first and last included."""
    if len(x) <= n:
        return np.arange(len(x))
    length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    keep = np.searchsorted(length, np.linspace(0.0, length[-1], n))
    keep[-1] = len(x) - 1  # a flat tail would otherwise end the curve at its first point
    return np.unique(keep)
