"""The request log and the delayed labels on Spark, reduced to small tables of counts.

`histograms` bins every feature and the prediction by the package's reference profile
(profile.py: right-closed numeric bins over `edges`, categorical `values` with
`__other__`, missing last), in one pass over the rows. `buckets` groups labelled rows by
slice value and by a fine bucket of the prediction's log-odds, which is all ROC AUC,
log loss and calibration need (quality.py).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from ctrpipe import profile
from ctrpipe.config import FORMATS
from ctrpipe.evaluation import MISSING
from ctrpipe.errors import DataError
from ctrpipe.request_log import PATTERN

KEY = 4096  # bins per feature in the packed (feature, bin) key; profiles have far fewer
LOGIT = 16.0  # log-odds are clipped to [-LOGIT, LOGIT] before bucketing
BUCKETS = 8192  # log-odds buckets: 0.004 wide, far finer than any AUC difference we judge
EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] for log loss, as metrics.py does


def read_logs(spark: SparkSession, folder: str | Path,
              since: dt.datetime | None = None) -> DataFrame:
    """The logged rows, from `since` on. Files written under another model's schema are
    merged by column name; a feature a file lacks reads as missing."""
    files = sorted(Path(folder).glob(PATTERN))
    if not files:
        raise DataError(f"{folder}: no request log files ({PATTERN}); is `serve` logging "
                        f"there (serve.log.dir, serve.log.sample_rate > 0)?")
    rows = spark.read.option("mergeSchema", "true").parquet(*map(str, files))
    for column in ("ts", "digest", "prediction"):
        if column not in rows.columns:
            raise DataError(f"{folder}: the request log has no '{column}' column; "
                            f"is it a request log?")
    if since is not None:
        rows = rows.where(F.col("ts") >= F.lit(since))
    return rows


def models(rows: DataFrame) -> list[dict]:
    """Each served package in the rows: digest, version, rows, last time; newest first."""
    found = (rows.groupBy("digest", "version")
             .agg(F.count(F.lit(1)).alias("rows"), F.max("ts").alias("last"))
             .collect())
    out = [{"digest": r["digest"], "version": r["version"], "rows": r["rows"],
            "last": r["last"]} for r in found]
    return sorted(out, key=lambda m: (m["last"], m["digest"]), reverse=True)


def histograms(rows: DataFrame, entries: dict[str, dict]) -> dict[str, np.ndarray]:
    """Row counts per bin of each entry (profile.py entries by column name; the
    prediction's under "prediction"), in drift.reference's order: bins, then missing.
    A column the rows lack counts every row as missing."""
    names = list(entries)
    keys = [F.lit(i * KEY) + _bin(rows, name, entries[name]) for i, name in enumerate(names)]
    counted = (rows.select(F.explode(F.array(*keys)).alias("key"))
               .groupBy("key").count().collect())
    out = {name: np.zeros(size(entries[name]) + 1, np.int64) for name in names}
    for r in counted:
        out[names[r["key"] // KEY]][r["key"] % KEY] = r["count"]
    return out


def size(e: dict) -> int:
    """Bins of an entry, without the missing one."""
    return len(e["edges"]) + 1 if e["kind"] == "numeric" else len(e["values"])


def _bin(rows: DataFrame, name: str, e: dict):
    missing = size(e)
    if name not in rows.columns:
        return F.lit(missing)
    column = F.col(name)
    if e["kind"] == "numeric":
        # right-closed bins: the index is the number of edges below the value
        index = sum((column > F.lit(float(edge))).cast("int") for edge in e["edges"]) \
            if e["edges"] else F.lit(0)
        return F.when(column.isNull() | F.isnan(column), missing).otherwise(index)
    known = [v for v in e["values"] if v != profile.OTHER]
    position = F.array_position(F.array(*map(F.lit, known)), column.cast("string")) \
        if known else F.lit(0)
    # array_position is 1-based and 0 when absent: absent values go to `__other__`
    return F.when(column.isNull(), missing).when(position == 0, len(known)) \
        .otherwise(position - 1)


def read_labels(spark: SparkSession, path: str | Path, id_column: str,
                label_column: str) -> DataFrame:
    """(id, label) of the delayed labels, one row per id (a click is a click: the
    largest label wins); a DataError naming the file and column when they are unusable."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: labels not found")
    kind = "parquet" if path.is_dir() else FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: cannot tell the labels' format from the extension; "
                        f"use .parquet, .csv or .jsonl")
    reader = spark.read.option("header", "true").option("inferSchema", "true")
    labels = getattr(reader, kind)(str(path))
    for column in (id_column, label_column):
        if column not in labels.columns:
            raise DataError(f"{path}: column '{column}' missing (monitor.id_column and "
                            f"monitor.label_column name the labels' columns)")
    label = F.col(label_column).cast("double")
    labels = labels.select(F.col(id_column).cast("string").alias("id"), label.alias("label"))
    bad = labels.where(F.col("id").isNull() | label.isNull() | ~label.isin(0.0, 1.0)).limit(1) \
        .collect()
    if bad:
        raise DataError(f"{path}: column '{label_column}' must be 0 or 1 and "
                        f"'{id_column}' present on every row (first bad row: "
                        f"{bad[0].asDict()})")
    return labels.groupBy("id").agg(F.max("label").alias("label"))


def buckets(rows: DataFrame, labels: DataFrame, slices: list[str]) -> list[dict]:
    """Labelled rows grouped by (slice, value, bucket of the prediction's log-odds):
    rows, clicks, sum of predictions, sum of log loss. Slice "" is every row."""
    p = F.least(F.greatest(F.col("prediction"), F.lit(EPS)), F.lit(1 - EPS))
    logit = F.least(F.greatest(F.log(p / (1 - p)), F.lit(-LOGIT)), F.lit(LOGIT))
    bucket = F.least(F.floor((logit + LOGIT) / (2 * LOGIT) * BUCKETS), F.lit(BUCKETS - 1))
    y = F.col("label")
    loss = -(y * F.log(p) + (1 - y) * F.log(1 - p))
    present = [s for s in slices if s in rows.columns]
    groups = F.array(F.struct(F.lit("").alias("slice"), F.lit("").alias("value")),
                     *(F.struct(F.lit(s).alias("slice"), _slice_key(rows, s).alias("value"))
                       for s in present))
    joined = rows.where(F.col("id").isNotNull()).join(labels, "id")
    grouped = (joined.select(F.explode(groups).alias("g"), bucket.cast("int").alias("bucket"),
                             y.alias("y"), F.col("prediction").alias("p"), loss.alias("loss"))
               .groupBy("g.slice", "g.value", "bucket")
               .agg(F.count(F.lit(1)).alias("rows"), F.sum("y").alias("clicks"),
                    F.sum("p").alias("sum_prediction"), F.sum("loss").alias("sum_logloss")))
    return [r.asDict() for r in grouped.collect()]


def _slice_key(rows: DataFrame, name: str):
    """A slice value as evaluation.slice_key writes it, so that it finds its validation
    AUC: a whole number without ".0" (position 3.0 is "3"), missing as "(missing)"."""
    column = F.col(name)
    text = column.cast("string")
    if isinstance(rows.schema[name].dataType, NumericType):
        text = F.when(column == F.floor(column), column.cast("long").cast("string")) \
            .otherwise(text)
    return F.coalesce(text, F.lit(MISSING))


def bucket_probability(bucket: np.ndarray) -> np.ndarray:
    """The probability at the middle of each log-odds bucket."""
    logit = (np.asarray(bucket, np.float64) + 0.5) / BUCKETS * 2 * LOGIT - LOGIT
    return 1 / (1 + np.exp(-logit))
