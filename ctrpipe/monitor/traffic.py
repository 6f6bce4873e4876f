"""The request log and the delayed labels on Spark, reduced to small tables of counts.

`histograms` bins every feature and the prediction by the package's reference profile
(profile.py: right-closed numeric bins over `edges`, categorical `values` with
`__other__`, missing last), in one pass over the rows. `buckets` groups labelled rows by
slice value and by a fine bucket of the prediction's log-odds, which is all ROC AUC,
log loss and calibration need (quality.py).

Both run numpy over Arrow batches inside Spark tasks (mapInArrow), and Spark adds up
what the tasks return: vectorised, and spread over a cluster's executors all the same.
Binning with Spark expressions instead (a CASE per feature, a conditional sum per bin)
took ten times as long here: a plan of hundreds of such sums is too big for Spark's
code generation, and exploding (feature, bin) pairs multiplies the rows by 25.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ctrpipe import drift, profile
from ctrpipe.config import FORMATS
from ctrpipe.errors import DataError
from ctrpipe.evaluation import MISSING, slice_key
from ctrpipe.request_log import PATTERN

KEY = 4096  # bins per feature in the packed (feature, bin) key; profiles have far fewer
ROWS_KEY = -1  # the key of the row count, in the same result
LOGIT = 16.0  # log-odds are clipped to [-LOGIT, LOGIT] before bucketing
BUCKETS = 8192  # log-odds buckets: 0.004 wide, far finer than any AUC difference we judge
EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] for log loss, as metrics.py does
SUMS = ("rows", "clicks", "sum_prediction", "sum_logloss")
BUCKET_SCHEMA = pa.schema([("slice", pa.string()), ("value", pa.string()),
                           ("bucket", pa.int64()), ("rows", pa.int64()),
                           ("clicks", pa.float64()), ("sum_prediction", pa.float64()),
                           ("sum_logloss", pa.float64())])
BUCKET_DDL = ("slice string, value string, bucket long, rows long, clicks double, "
              "sum_prediction double, sum_logloss double")


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
    A column the rows lack counts every row as missing. Each task bins its batches
    with drift.counts, the function the gate bins with."""
    names = [n for n in entries if n in rows.columns]

    def count(batches):
        totals = {n: np.zeros(size(entries[n]) + 1, np.int64) for n in names}
        n_rows = 0
        for batch in batches:
            n_rows += batch.num_rows
            for name in names:
                totals[name] += drift.counts(entries[name], batch.column(name)).astype(np.int64)
        keys = [ROWS_KEY, *(i * KEY + b for i, n in enumerate(names)
                            for b in range(len(totals[n])))]
        values = [n_rows, *(int(v) for n in names for v in totals[n])]
        yield pa.RecordBatch.from_pydict({"key": keys, "count": values})

    summed = (rows.select(*names).mapInArrow(count, "key long, count long")
              .groupBy("key").agg(F.sum("count").alias("count")).collect())
    by_key = {r["key"]: r["count"] for r in summed}
    out = {}
    for name, entry in entries.items():
        counts = np.zeros(size(entry) + 1, np.int64)
        if name in names:
            i = names.index(name)
            counts[:] = [by_key.get(i * KEY + b, 0) for b in range(len(counts))]
        else:
            counts[-1] = by_key.get(ROWS_KEY, 0)
        out[name] = counts
    return out


def size(e: dict) -> int:
    """Bins of an entry, without the missing one."""
    return len(e["edges"]) + 1 if e["kind"] == "numeric" else len(e["values"])


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
    rows, clicks, sum of predictions, sum of log loss. Slice "" is every row. Spark
    joins the labels; each task groups its batches with numpy (bucket_sums)."""
    present = [s for s in slices if s in rows.columns]
    joined = rows.where(F.col("id").isNotNull()).join(labels, "id") \
        .select("prediction", "label", *present)

    def group(batches):
        totals: dict[tuple[str, str], np.ndarray] = {}
        for batch in batches:
            add_bucket_sums(totals, batch, present)
        parts = [{"slice": name, "value": value, "bucket": int(b), "rows": int(sums[0, b]),
                  "clicks": float(sums[1, b]), "sum_prediction": float(sums[2, b]),
                  "sum_logloss": float(sums[3, b])}
                 for (name, value), sums in totals.items() for b in np.flatnonzero(sums[0])]
        yield pa.RecordBatch.from_pylist(parts, schema=BUCKET_SCHEMA)

    grouped = (joined.mapInArrow(group, BUCKET_DDL)
               .groupBy("slice", "value", "bucket")
               .agg(*(F.sum(c).alias(c) for c in SUMS)).collect())
    return [r.asDict() for r in grouped]


def add_bucket_sums(totals: dict, batch: pa.RecordBatch, slices: list[str]) -> None:
    """Add one batch's rows, clicks, sum of predictions and sum of log loss per bucket
    to totals[(slice, value)], a [4, BUCKETS] array; slice values keyed as
    evaluation.slice_key keys them, so that each finds its validation AUC."""
    p = np.clip(profile.floats(batch.column("prediction")), EPS, 1 - EPS)
    y = profile.floats(batch.column("label"))
    logit = np.clip(np.log(p / (1 - p)), -LOGIT, LOGIT)
    bucket = np.minimum((logit + LOGIT) / (2 * LOGIT) * BUCKETS, BUCKETS - 1).astype(np.int64)
    loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    groups = [("", np.zeros(len(p), np.int64), [""])]
    for name in slices:
        encoded = pc.dictionary_encode(batch.column(name))
        codes = pc.fill_null(encoded.indices, len(encoded.dictionary))
        keys = [slice_key(v) for v in encoded.dictionary.to_pylist()] + [MISSING]
        groups.append((name, codes.to_numpy(zero_copy_only=False).astype(np.int64), keys))
    for name, codes, keys in groups:
        index = codes * BUCKETS + bucket
        sums = np.stack([np.bincount(index, weights=w, minlength=len(keys) * BUCKETS)
                         for w in (None, y, p, loss)]).reshape(4, len(keys), BUCKETS)
        for code, key in enumerate(keys):
            if sums[0, code].any():
                if (name, key) not in totals:
                    totals[name, key] = np.zeros((4, BUCKETS))
                totals[name, key] += sums[:, code]


def bucket_probability(bucket: np.ndarray) -> np.ndarray:
    """The probability at the middle of each log-odds bucket."""
    logit = (np.asarray(bucket, np.float64) + 0.5) / BUCKETS * 2 * LOGIT - LOGIT
    return 1 / (1 + np.exp(-logit))
