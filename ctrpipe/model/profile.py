"""The reference profile: what the model's inputs and outputs looked like in training.

Monitoring bins logged traffic the same way and compares the fractions (PSI,
Jensen-Shannon). Train negatives were subsampled with weight 1/rate, so every count here
is a sum of row weights: the fractions describe real traffic, not the sampled file.

profile.json (keys sorted; every float rounded to 8 significant digits for stable bytes):

    {"format": 1,
     "rows": <training rows read>, "weighted_rows": <sum of weights>,
     "label_rate": <weighted click rate>,
     "features": {<name>: <entry>, ...},   # one per model feature
     "prediction": <numeric entry>}        # the model's click probability on those rows

    numeric entry:     {"kind": "numeric", "edges": [e0, ..., ek-2],
                        "fractions": [f0, ..., fk-1], "missing": m}
    categorical entry: {"kind": "categorical", "values": [v0, ..., "__other__"],
                        "fractions": [f0, ..., f_other], "missing": m}

Numeric bins are right-closed: bin 0 is (-inf, e0], bin i is (e(i-1), ei], the last
(ek-2, inf); a value v falls in bin `numpy.searchsorted(edges, v, side="left")`. Edges are
weighted quantiles at 1/k, ..., (k-1)/k, deduplicated (a discrete feature gets fewer
bins), and no bin of the training rows is empty. Categorical values are the most
frequent raw values (as strings, most frequent first, ties by value); any other value
counts as "__other__". In each entry sum(fractions) + missing = 1; missing means null/NaN.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ctrpipe.errors import DataError
from ctrpipe.model.encoding import FeatureSchema

FORMAT = 1
OTHER = "__other__"


def build(
    train: pa.Table,
    schema: FeatureSchema,
    predictions: np.ndarray,
    bins: int,
    top_categories: int,
    source: str = "train",
) -> dict:
    weights = _weights(train, schema.weight, source)
    features = {name: numeric(floats(train.column(name)), weights, bins) for name in schema.numeric}
    features |= {
        name: categorical(train.column(name), weights, top_categories)
        for name in schema.categorical
    }
    label = floats(_column(train, schema.label, source))
    return {
        "format": FORMAT,
        "rows": train.num_rows,
        "weighted_rows": _round(weights.sum()),
        "label_rate": _round(np.dot(label, weights) / weights.sum()),
        "features": features,
        "prediction": numeric(predictions.astype(np.float64), weights, bins),
    }


def numeric(values: np.ndarray, weights: np.ndarray, bins: int) -> dict:
    total = weights.sum()
    present = ~np.isnan(values)
    v, w = values[present], weights[present]
    edges = quantile_edges(v, w, bins)
    counts = np.bincount(
        np.searchsorted(edges, v, side="left"), weights=w, minlength=len(edges) + 1
    )
    return {
        "kind": "numeric",
        "edges": _round_list(edges),
        "fractions": _round_list(counts / total),
        "missing": _round(weights[~present].sum() / total),
    }


def quantile_edges(v: np.ndarray, w: np.ndarray, bins: int) -> np.ndarray:
    """Weighted quantiles at 1/bins .. (bins-1)/bins: the smallest value whose cumulative
    weight reaches each level. An edge at the maximum would leave the top bin empty."""
    if len(v) == 0:
        return np.empty(0)
    order = np.argsort(v, kind="stable")
    v, cum = v[order], np.cumsum(w[order])
    levels = np.arange(1, bins) / bins * cum[-1]
    index = np.minimum(np.searchsorted(cum, levels * (1 - 1e-12), side="left"), len(v) - 1)
    edges = np.unique(np.array(_round_list(v[index])))
    return edges[edges < v[-1]]


def categorical(column: pa.ChunkedArray, weights: np.ndarray, top: int) -> dict:
    total = weights.sum()
    encoded = pc.dictionary_encode(column.cast(pa.string()).combine_chunks())
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    missing = encoded.is_null().to_numpy(zero_copy_only=False)
    sums = np.bincount(
        indices[~missing].astype(np.int64),
        weights=weights[~missing],
        minlength=len(encoded.dictionary),
    )
    ranked = sorted(zip(encoded.dictionary.to_pylist(), sums), key=lambda p: (-p[1], p[0]))
    kept = ranked[:top]
    other = sum(s for _, s in ranked[top:])
    return {
        "kind": "categorical",
        "values": [value for value, _ in kept] + [OTHER],
        "fractions": _round_list(np.array([s for _, s in kept] + [other]) / total),
        "missing": _round(weights[missing].sum() / total),
    }


def _weights(train: pa.Table, name: str, source: str) -> np.ndarray:
    weights = floats(_column(train, name, source))
    if np.isnan(weights).any() or (weights < 0).any() or not weights.sum() > 0:
        raise DataError(f"{source}: column '{name}' must hold non-negative weights, not all zero")
    return weights


def _column(train: pa.Table, name: str, source: str) -> pa.ChunkedArray:
    if name not in train.column_names:
        raise DataError(f"{source}: column '{name}' missing")
    return train.column(name)


def floats(column: pa.ChunkedArray) -> np.ndarray:
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def _round(x: float) -> float:
    return float(f"{float(x):.8g}")


def _round_list(xs) -> list[float]:
    return [_round(x) for x in xs]
