"""A fast, seeded, paired bootstrap of the gain of one model over another.

Paired: every resample draws the same golden rows for both models, so the noise both
share (which rows happen to be in the set) cancels out of the gain, and a small real gain
is not lost in it.

Fast: a resample is a vector of row counts, never a copied table. ROC AUC then takes
O(rows) with two `np.bincount` calls over each model's tie groups (rows with equal
scores), found once by one sort; log loss is a dot product with per-row losses computed
once. The arrays of one resample fit in the CPU cache, so 1,000 resamples of 70k rows
take about 1.5 s for ROC AUC and 0.6 s for log loss (bench/gate.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctrpipe.model import metrics

METRICS = ("roc_auc", "logloss")
DRAW_CELLS = 8_000_000  # row draws made at once: 32 MB of int32
EPS = 1e-15  # sklearn's log_loss clips probabilities to [eps, 1 - eps] too


@dataclass(frozen=True)
class Ranked:
    """One model's scores as tie groups: equal scores share a group, and groups rise with
    the score. Rows are ordered positives first (see `paired_gain`), so a resample's
    weights split into the two classes by slicing, without a copy."""

    groups: int
    positive: np.ndarray  # group of each positive row
    negative: np.ndarray  # group of each negative row


def rank(y: np.ndarray, p: np.ndarray) -> Ranked:
    """Tie groups of rows already ordered positives first."""
    _, group = np.unique(np.asarray(p, np.float64), return_inverse=True)
    group = group.ravel()
    positives = int(np.sum(np.asarray(y) == 1))
    return Ranked(int(group.max()) + 1, group[:positives], group[positives:])


def auc(r: Ranked, w_pos: np.ndarray, w_neg: np.ndarray) -> float:
    """Weighted ROC AUC: a positive beats every negative in a lower group and ties half
    of those in its own group, the trapezoid sklearn integrates. NaN without both classes."""
    pos = np.bincount(r.positive, weights=w_pos, minlength=r.groups)
    neg = np.bincount(r.negative, weights=w_neg, minlength=r.groups)
    pairs = pos.sum() * neg.sum()
    if not pairs > 0:
        return float("nan")
    return float(pos @ (np.cumsum(neg) - 0.5 * neg) / pairs)


def weighted_auc(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    """`auc` of one weighted set: the number sklearn's roc_auc_score gives."""
    order = _positives_first(y)
    y, p, w = np.asarray(y)[order], np.asarray(p)[order], np.asarray(w, np.float64)[order]
    positives = int(np.sum(y == 1))
    return auc(rank(y, p), w[:positives], w[positives:])


def row_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return -np.where(np.asarray(y) == 1, np.log(p), np.log1p(-p))


@dataclass(frozen=True)
class Interval:
    metric: str
    resamples: int
    confidence: float
    seed: int
    mean: float | None  # mean gain over the resamples where the metric is defined
    low: float | None  # None when no resample gave a defined gain
    high: float | None
    undefined: int  # resamples without both classes (AUC undefined), left out

    def as_dict(self) -> dict:
        def r(x):
            return None if x is None else round(x, metrics.DIGITS)

        return {
            "metric": self.metric,
            "resamples": self.resamples,
            "confidence": self.confidence,
            "seed": self.seed,
            "mean_gain": r(self.mean),
            "low": r(self.low),
            "high": r(self.high),
            "undefined": self.undefined,
        }


def paired_gain(
    metric: str,
    y: np.ndarray,
    w: np.ndarray,
    candidate: np.ndarray,
    production: np.ndarray,
    resamples: int,
    confidence: float,
    seed: int,
) -> Interval:
    """The candidate's gain over production on `metric` (positive = better, whatever the
    metric's direction) on `resamples` resampled row sets, and its percentile interval."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    order = _positives_first(y)
    y = np.asarray(y)[order]
    w = np.asarray(w, np.float64)[order]
    scores = [np.asarray(candidate)[order], np.asarray(production)[order]]
    gain = _auc_gain(y, scores) if metric == "roc_auc" else _logloss_gain(y, scores)
    gains = np.array([gain(counts * w) for counts in _counts(len(y), resamples, seed)])
    defined = gains[~np.isnan(gains)]
    if len(defined) == 0:
        return Interval(metric, resamples, confidence, seed, None, None, None, resamples)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail])
    return Interval(
        metric,
        resamples,
        confidence,
        seed,
        float(defined.mean()),
        float(low),
        float(high),
        resamples - len(defined),
    )


def _auc_gain(y: np.ndarray, scores: list[np.ndarray]):
    positives = int(np.sum(y == 1))
    candidate, production = (rank(y, p) for p in scores)

    def gain(w: np.ndarray) -> float:
        w_pos, w_neg = w[:positives], w[positives:]
        return auc(candidate, w_pos, w_neg) - auc(production, w_pos, w_neg)

    return gain


def _logloss_gain(y: np.ndarray, scores: list[np.ndarray]):
    losses = np.stack([row_losses(y, p) for p in scores], axis=1)  # (rows, 2)

    def gain(w: np.ndarray) -> float:
        candidate, production = (w @ losses) / w.sum()
        return production - candidate  # a lower loss is the better one

    return gain


def _counts(n: int, resamples: int, seed: int):
    """Per resample, how often each of n rows is drawn (n draws with replacement). Draws
    are made in blocks for speed; the block size does not change them."""
    rng = np.random.default_rng(seed)
    block = max(1, DRAW_CELLS // max(n, 1))
    for start in range(0, resamples, block):
        draws = rng.integers(0, n, size=(min(block, resamples - start), n), dtype=np.int32)
        for row in draws:
            yield np.bincount(row, minlength=n).astype(np.float64)


def _positives_first(y: np.ndarray) -> np.ndarray:
    return np.argsort(np.asarray(y) != 1, kind="stable")
