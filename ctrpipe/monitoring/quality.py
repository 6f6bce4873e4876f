"""Quality of the served model on the labelled rows, from traffic.buckets' counts.

ROC AUC from log-odds buckets counts two rows in one bucket as a tie; a bucket is 0.004
wide in log-odds, so the AUC differs from the exact one by far less than the drops
monitoring judges (tests compare both). Log loss and the calibration ratio are exact
sums.

Each AUC carries its standard error (Hanley and McNeil, 1982): with a click rate of a
few percent, a slice of a thousand rows has about 35 clicks and an AUC that is only
known to about ±0.09, so checks.py judges a drop by its lower confidence bound.
"""

from __future__ import annotations

import numpy as np

from ctrpipe.model import metrics

RELIABILITY_BINS = 10


def summarize(buckets: list[dict], min_rows: int) -> dict:
    """{"overall": figures, "reliability": bins, "slices": {slice: {value: figures}}},
    where figures are rows, clicks, positive_rate, mean_prediction, calibration (mean
    prediction / click rate), logloss and roc_auc (None below `min_rows` rows or with
    one class only)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for b in buckets:
        groups.setdefault((b["slice"], b["value"]), []).append(b)
    overall = groups.pop(("", ""), [])
    slices: dict[str, dict] = {}
    for (name, value), rows in sorted(groups.items()):
        slices.setdefault(name, {})[value] = figures(rows, min_rows)
    return {"overall": figures(overall, 1), "reliability": reliability(overall), "slices": slices}


def figures(rows: list[dict], min_rows: int) -> dict:
    n = sum(r["rows"] for r in rows)
    clicks = sum(r["clicks"] for r in rows)
    if n == 0:
        return {"rows": 0, "clicks": 0}
    predicted = sum(r["sum_prediction"] for r in rows) / n
    rate = clicks / n
    out = {
        "rows": n,
        "clicks": int(clicks),
        "positive_rate": _r(rate),
        "mean_prediction": _r(predicted),
        "calibration": _r(predicted / rate) if rate > 0 else None,
        "logloss": _r(sum(r["sum_logloss"] for r in rows) / n),
        "roc_auc": None,
        "roc_auc_se": None,
    }
    if n >= min_rows and 0 < clicks < n:
        area = auc(rows)
        out["roc_auc"], out["roc_auc_se"] = _r(area), _r(auc_se(area, clicks, n - clicks))
    return out


def auc_se(area: float, positives: float, negatives: float) -> float:
    """Hanley-McNeil standard error of an AUC from its class counts."""
    q1, q2 = area / (2 - area), 2 * area**2 / (1 + area)
    variance = (
        area * (1 - area) + (positives - 1) * (q1 - area**2) + (negatives - 1) * (q2 - area**2)
    ) / (positives * negatives)
    return float(np.sqrt(max(variance, 0.0)))


def auc(rows: list[dict]) -> float:
    """ROC AUC of bucketed rows: each bucket's clicks and non-clicks as weighted rows
    at the bucket's probability."""
    bucket = np.array([r["bucket"] for r in rows])
    clicks = np.array([r["clicks"] for r in rows], np.float64)
    others = np.array([r["rows"] for r in rows], np.float64) - clicks
    p = np.concatenate([bucket, bucket])
    y = np.concatenate([np.ones(len(rows)), np.zeros(len(rows))])
    w = np.concatenate([clicks, others])
    keep = w > 0
    return metrics.roc_auc(y[keep], p[keep], w[keep])


def reliability(rows: list[dict]) -> list[dict]:
    """metrics.reliability over the buckets: each bucket is its rows' weight at its mean
    prediction and click rate, so the bins hold what the rows would give."""
    if not rows:
        return []
    n = np.array([r["rows"] for r in rows], np.float64)
    clicks = np.array([r["clicks"] for r in rows], np.float64)
    predicted = np.array([r["sum_prediction"] for r in rows], np.float64)
    bins = metrics.reliability(clicks / n, predicted / n, RELIABILITY_BINS, n)
    return [{k: _r(v) if isinstance(v, float) else v for k, v in b.items()} for b in bins]


def _r(x: float) -> float:
    return round(float(x), metrics.DIGITS)
