"""Split into train / validation / golden, and negative subsampling of train.

By time (validation from a date on, a fixed golden window) or, for data without time, by
a hash of the row's id (deterministic on any cluster). Golden is carved out first and
never subsampled, so its rows depend only on the raw data, the features and its own
settings: changing the validation split or the sampling rate leaves the golden file byte
for byte the same.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ctrpipe.data.features import LABEL, PROBE, WEIGHT
from ctrpipe.data.settings import Data

SPLIT = "_split"
SPLITS = ("train", "validation", "golden")
PROBES = "probe."  # + a history key: its probes at the snapshot's cut
HASH_BUCKETS = 1_000_000


def _at(when: dt.datetime):
    # A string literal is read in the session's zone (UTC); a datetime would be shifted
    # by the driver's local zone.
    return F.to_timestamp(F.lit(when.strftime("%Y-%m-%d %H:%M:%S")))


def assign(rows: DataFrame, data: Data, key: str) -> DataFrame:
    """Tag each row with its split, drop sampled-out negatives of train, add weights.
    A probe row (features.with_probes) goes to its key's PROBES split, never sampled."""
    split = by_time(data) if data.split.by == "time" else by_hash(data, key)
    if PROBE in rows.columns:
        split = F.when(F.col(PROBE).isNull(), split).otherwise(F.concat(F.lit(PROBES), PROBE))
        rows = rows.withColumn(SPLIT, split).drop(PROBE)
    else:
        rows = rows.withColumn(SPLIT, split)
    rate = data.sample.negative_rate
    # A hash of the row's id, not a random draw: the same rows are kept whatever the
    # partitioning, on a laptop or a cluster.
    sampled = (F.col(SPLIT) == "train") & (F.col(LABEL) == 0)
    keep = ~sampled | (bucket(key, data.sample.seed) < F.lit(int(rate * HASH_BUCKETS)))
    weight = F.when(sampled, F.lit(1.0 / rate)).otherwise(F.lit(1.0))
    return rows.where(keep).withColumn(WEIGHT, weight)


def bucket(key: str, seed: int):
    """A row's place in [0, HASH_BUCKETS), from a hash of its id and a seed."""
    return F.pmod(F.xxhash64(F.col(key).cast("string"), F.lit(seed)), F.lit(HASH_BUCKETS))


def by_time(data: Data):
    t, split = F.col(data.time), data.split
    golden = (t >= _at(split.golden.start)) & (t < _at(split.golden.end))
    return (
        F.when(golden, "golden")
        .when(t < _at(split.validation_start), "train")
        .otherwise("validation")
    )


def by_hash(data: Data, key: str):
    """Golden first, then validation, from the low end of the id's hash: changing the
    validation fraction leaves the golden rows as they are."""
    split, b = data.split, bucket(key, data.split.seed)
    golden = int(split.golden_fraction * HASH_BUCKETS)
    validation = golden + int(split.validation_fraction * HASH_BUCKETS)
    return F.when(b < golden, "golden").when(b < validation, "validation").otherwise("train")
