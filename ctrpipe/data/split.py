"""Time split into train / validation, a fixed golden window, negative subsampling.

The golden window is carved out first and never subsampled, so its rows depend only on
the raw data, the features and `data.golden`: changing the split or the sampling rate
leaves the golden file byte for byte the same.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ctrpipe.data.features import LABEL, WEIGHT
from ctrpipe.data.settings import Data

SPLIT = "_split"
SPLITS = ("train", "validation", "golden")
HASH_BUCKETS = 1_000_000


def _at(when: dt.datetime):
    # A string literal is read in the session's zone (UTC); a datetime would be shifted
    # by the driver's local zone.
    return F.to_timestamp(F.lit(when.strftime("%Y-%m-%d %H:%M:%S")))


def assign(rows: DataFrame, data: Data, key: str) -> DataFrame:
    """Tag each row with its split, drop sampled-out negatives of train, add weights."""
    t = F.col(data.time)
    golden = (t >= _at(data.golden.start)) & (t < _at(data.golden.end))
    split = (
        F.when(golden, "golden")
        .when(t < _at(data.split.validation_start), "train")
        .otherwise("validation")
    )
    rows = rows.withColumn(SPLIT, split)
    rate = data.sample.negative_rate
    # A hash of the row's id, not a random draw: the same rows are kept whatever the
    # partitioning, on a laptop or a cluster.
    bucket = F.pmod(
        F.xxhash64(F.col(key).cast("string"), F.lit(data.sample.seed)), F.lit(HASH_BUCKETS)
    )
    sampled = (F.col(SPLIT) == "train") & (F.col(LABEL) == 0)
    keep = ~sampled | (bucket < F.lit(int(rate * HASH_BUCKETS)))
    weight = F.when(sampled, F.lit(1.0 / rate)).otherwise(F.lit(1.0))
    return rows.where(keep).withColumn(WEIGHT, weight)
