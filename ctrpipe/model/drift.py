"""Population stability: how far a column's distribution moved from a reference.

The reference is a profile.py-style entry (quantile edges of a numeric feature, the top
values of a categorical one); `fractions` bins any column by it, with missing values as a
bin of their own, and `psi` compares two such fraction vectors. The gate bins validation
and golden by an entry built from validation; monitoring bins logged traffic by the
entries of the package's profile.json (`reference` reads their fractions back).

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

Common reading: below 0.1 stable, 0.1 to 0.2 a moderate shift, above 0.2 a large one.
Categorical features are judged by the Jensen-Shannon distance instead (`js`): PSI is
unbounded and, with many small categories, dominated by the EPSILON of empty ones.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.spatial import distance

from ctrpipe.model import metrics, profile
from ctrpipe.model.encoding import FeatureSchema

EPSILON = 1e-4  # stands in for an empty bin's fraction: ln(0) has no value


def entry(
    column: pa.ChunkedArray, weights: np.ndarray, categorical: bool, bins: int, top_categories: int
) -> dict:
    """The reference bins of one column, as profile.json describes a feature."""
    if categorical:
        return profile.categorical(column, weights, top_categories)
    return profile.numeric(profile.floats(column), weights, bins)


def reference(e: dict) -> np.ndarray:
    """An entry's own fractions, missing last: the `expected` side of `psi`."""
    return np.array([*e["fractions"], e["missing"]], np.float64)


def fractions(e: dict, column: pa.ChunkedArray, weights: np.ndarray) -> np.ndarray:
    """The weighted fraction of `column` in each bin of entry `e`, missing last, in the
    order of `reference(e)`. Values the entry never saw go to the categorical `other` bin
    or to the outer numeric bins."""
    weights = np.asarray(weights, np.float64)
    return counts(e, column, weights) / weights.sum()


def counts(
    e: dict, column: pa.Array | pa.ChunkedArray, weights: np.ndarray | None = None
) -> np.ndarray:
    """The weight (or, without weights, the number of rows) in each bin of entry `e`,
    missing last, as `fractions` bins them."""
    if e["kind"] == "categorical":
        text = column.cast(pa.string())
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        known = [v for v in e["values"] if v != profile.OTHER]
        index = (
            pc.fill_null(pc.index_in(text, value_set=pa.array(known, pa.string())), len(known))
            .to_numpy(zero_copy_only=False)
            .astype(np.int64)
        )
        missing = text.is_null().to_numpy(zero_copy_only=False)
        size = len(known) + 1
    else:
        values = profile.floats(column)
        missing = np.isnan(values)
        index = np.searchsorted(np.asarray(e["edges"], np.float64), values, side="left")
        size = len(e["edges"]) + 1
    index = np.where(missing, size, index)  # the missing bin comes last
    return np.bincount(index, weights=weights, minlength=size + 1)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    expected = np.maximum(np.asarray(expected, np.float64), EPSILON)
    actual = np.maximum(np.asarray(actual, np.float64), EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def js(expected: np.ndarray, actual: np.ndarray) -> float:
    """Jensen-Shannon distance in base 2: 0 for the same distribution, 1 for disjoint."""
    expected, actual = np.asarray(expected, np.float64), np.asarray(actual, np.float64)
    if not expected.sum() > 0 or not actual.sum() > 0:
        return float("nan")
    return float(distance.jensenshannon(expected, actual, base=2))


def compare(
    expected: pa.Table, actual: pa.Table, schema: FeatureSchema, bins: int, top_categories: int
) -> dict[str, float]:
    """PSI of each of the schema's features, `actual` against bins fitted on `expected`,
    both weighted by the schema's weight column."""
    w_expected = profile.floats(expected.column(schema.weight))
    w_actual = profile.floats(actual.column(schema.weight))
    out = {}
    for name in schema.names:
        e = entry(
            expected.column(name), w_expected, name in schema.categorical, bins, top_categories
        )
        out[name] = round(
            psi(reference(e), fractions(e, actual.column(name), w_actual)), metrics.DIGITS
        )
    return out
