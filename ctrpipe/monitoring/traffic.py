"""The request log and the delayed labels on Spark, reduced to small tables of counts.

`models` counts the rows of each served package. `histograms` bins every feature and the
prediction by the package's reference profile (profile.py: right-closed numeric bins
over `edges`, categorical `values` with `__other__`, missing last), in one pass over
the rows. Both run in one Spark task per log file, which pyarrow reads and numpy bins.
`buckets` has Spark join the delayed labels to the rows, then groups the labelled rows
by slice value and by a fine bucket of the prediction's log-odds, which is all ROC AUC,
log loss and calibration need (quality.py), with numpy over Arrow batches (mapInArrow).

Every task returns small counts that the driver or Spark adds up: vectorised, and
spread over a cluster's executors all the same. Binning with Spark expressions instead
(a CASE per feature, a conditional sum per bin) took ten times as long here: a plan of
hundreds of such sums is too big for Spark's code generation, and exploding (feature,
bin) pairs multiplies the rows by 25.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ctrpipe.errors import DataError
from ctrpipe.fileio import FORMATS
from ctrpipe.model import drift, profile
from ctrpipe.model.evaluation import MISSING, slice_key
from ctrpipe.serving.request_log import PATTERN

REQUIRED = ("ts", "digest", "prediction")  # columns of every request log file
ARROW_BATCH = 100_000  # rows per batch handed to numpy
LOGIT = 16.0  # log-odds are clipped to [-LOGIT, LOGIT] before bucketing
BUCKETS = 8192  # log-odds buckets: 0.004 wide, far finer than any AUC difference we judge
EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] for log loss, as metrics.py does
SUMS = ("rows", "clicks", "sum_prediction", "sum_logloss")
BUCKET_SCHEMA = pa.schema(
    [
        ("slice", pa.string()),
        ("value", pa.string()),
        ("bucket", pa.int64()),
        ("rows", pa.int64()),
        ("clicks", pa.float64()),
        ("sum_prediction", pa.float64()),
        ("sum_logloss", pa.float64()),
    ]
)
BUCKET_DDL = (
    "slice string, value string, bucket long, rows long, clicks double, "
    "sum_prediction double, sum_logloss double"
)


def log_files(folder: str | Path) -> list[Path]:
    """The request log's files, sorted; a DataError when there are none or one is not a
    request log (its footer lacks a column every logged row has)."""
    files = sorted(Path(folder).glob(PATTERN))
    if not files:
        raise DataError(
            f"{folder}: no request log files ({PATTERN}); is `serve` logging "
            f"there (serve.log.dir, serve.log.sample_rate > 0)?"
        )
    for path in files:
        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
        for column in REQUIRED:
            if column not in names:
                raise DataError(
                    f"{path}: the request log has no '{column}' column; is it a request log?"
                )
    return files


def read_logs(
    spark: SparkSession, files: list[Path], since: dt.datetime | None = None
) -> DataFrame:
    """The logged rows from `since` on, as a DataFrame (for the label join). Files
    written under another model's schema are merged by column name; a feature a file
    lacks reads as missing."""
    rows = spark.read.option("mergeSchema", "true").parquet(*map(str, files))
    return rows if since is None else rows.where(F.col("ts") >= F.lit(since))


def models(spark: SparkSession, files: list[Path], since: dt.datetime | None = None) -> list[dict]:
    """Each served package in the rows: digest, version, rows, last time; newest first."""

    def per_file(path: str) -> list[dict]:
        table = pq.read_table(
            path,
            columns=[c for c in ("ts", "digest", "version") if c in pq.read_schema(path).names],
        )
        if "version" not in table.column_names:
            table = table.append_column("version", pa.nulls(table.num_rows, pa.string()))
        grouped = (
            _selected(table, since)
            .group_by(["digest", "version"])
            .aggregate([("digest", "count", pc.CountOptions(mode="all")), ("ts", "max")])
        )
        return grouped.to_pylist()

    found: dict[tuple, dict] = {}
    for part in _per_file(spark, files, per_file):
        for g in part:
            m = found.setdefault(
                (g["digest"], g["version"]),
                {"digest": g["digest"], "version": g["version"], "rows": 0, "last": None},
            )
            m["rows"] += g["digest_count"]
            if g["ts_max"] is not None and (m["last"] is None or g["ts_max"] > m["last"]):
                m["last"] = g["ts_max"]
    return sorted(
        found.values(),
        key=lambda m: (m["last"] is not None, m["last"] or 0, m["digest"]),
        reverse=True,
    )


def histograms(
    spark: SparkSession,
    files: list[Path],
    entries: dict[str, dict],
    digest: str | None = None,
    since: dt.datetime | None = None,
) -> dict[str, np.ndarray]:
    """Row counts per bin of each entry (profile.py entries by column name; the
    prediction's under "prediction"), in drift.reference's order: bins, then missing,
    over the rows of package `digest` from `since` on. A column a file lacks counts its
    rows as missing. Each file is binned in a task of its own, batch by batch, with
    drift.counts, the function the gate bins with."""

    def per_file(path: str) -> dict[str, np.ndarray]:
        log = pq.ParquetFile(path)
        present = [n for n in entries if n in log.schema_arrow.names]
        totals = {n: np.zeros(size(e) + 1, np.int64) for n, e in entries.items()}
        for batch in log.iter_batches(ARROW_BATCH, columns=[*present, "ts", "digest"]):
            batch = _selected(batch, since, digest)
            for name in entries:
                if name in present:
                    totals[name] += drift.counts(entries[name], batch.column(name)).astype(np.int64)
                else:
                    totals[name][-1] += batch.num_rows
        return totals

    out = {n: np.zeros(size(e) + 1, np.int64) for n, e in entries.items()}
    for totals in _per_file(spark, files, per_file):
        for name, counts in totals.items():
            out[name] += counts
    return out


def _selected(
    rows: pa.Table | pa.RecordBatch, since: dt.datetime | None, digest: str | None = None
) -> pa.Table | pa.RecordBatch:
    """The rows of package `digest` (any, if None) logged from `since` on (any time, if
    None); as Spark's filter, a null time or digest is not selected by a condition."""
    if since is not None:
        rows = rows.filter(pc.greater_equal(rows.column("ts"), pa.scalar(since)))
    if digest is not None:
        rows = rows.filter(pc.equal(rows.column("digest"), digest))
    return rows


def _per_file(spark: SparkSession, files: list[Path], task) -> list:
    """task(path) for each file, each in a Spark task of its own; the results in file
    order. The files are read by pyarrow in the task, not by Spark: handing Spark's rows
    to Python as Arrow (mapInArrow) took four times as long as Spark's read itself, and
    a request log is Parquet written by pyarrow in the first place. A file that cannot
    be read is a DataError naming it."""

    def guarded(path: str) -> tuple[str | None, object]:
        try:
            return None, task(path)
        except (OSError, pa.ArrowException) as exc:
            return f"{path}: cannot read it as a request log ({exc})", None

    paths = [str(f) for f in files]
    results = spark.sparkContext.parallelize(paths, len(paths)).map(guarded).collect()
    for problem, _ in results:
        if problem:
            raise DataError(problem)
    return [value for _, value in results]


def size(e: dict) -> int:
    """Bins of an entry, without the missing one."""
    return len(e["edges"]) + 1 if e["kind"] == "numeric" else len(e["values"])


def read_labels(
    spark: SparkSession, path: str | Path, id_column: str, label_column: str
) -> DataFrame:
    """(id, label) of the delayed labels, one row per id (a click is a click: the
    largest label wins); a DataError naming the file and column when they are unusable."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: labels not found")
    kind = "parquet" if path.is_dir() else FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: cannot tell the labels' format from the extension; "
            f"use .parquet, .csv or .jsonl"
        )
    reader = spark.read.option("header", "true").option("inferSchema", "true")
    labels = getattr(reader, kind)(str(path))
    for column in (id_column, label_column):
        if column not in labels.columns:
            raise DataError(
                f"{path}: column '{column}' missing (monitor.id_column and "
                f"monitor.label_column name the labels' columns)"
            )
    label = F.col(label_column).cast("double")
    labels = labels.select(F.col(id_column).cast("string").alias("id"), label.alias("label"))
    bad = (
        labels.where(F.col("id").isNull() | label.isNull() | ~label.isin(0.0, 1.0))
        .limit(1)
        .collect()
    )
    if bad:
        raise DataError(
            f"{path}: column '{label_column}' must be 0 or 1 and "
            f"'{id_column}' present on every row (first bad row: "
            f"{bad[0].asDict()})"
        )
    return labels.groupBy("id").agg(F.max("label").alias("label"))


def buckets(rows: DataFrame, labels: DataFrame, slices: list[str]) -> list[dict]:
    """Labelled rows grouped by (slice, value, bucket of the prediction's log-odds):
    rows, clicks, sum of predictions, sum of log loss. Slice "" is every row. Spark
    joins the labels; each task groups its batches with numpy (bucket_sums)."""
    present = [s for s in slices if s in rows.columns]
    joined = (
        rows.where(F.col("id").isNotNull())
        .join(labels, "id")
        .select("prediction", "label", *present)
    )

    def group(batches):
        totals: dict[tuple[str, str], np.ndarray] = {}
        for batch in batches:
            add_bucket_sums(totals, batch, present)
        parts = [
            {
                "slice": name,
                "value": value,
                "bucket": int(b),
                "rows": int(sums[0, b]),
                "clicks": float(sums[1, b]),
                "sum_prediction": float(sums[2, b]),
                "sum_logloss": float(sums[3, b]),
            }
            for (name, value), sums in totals.items()
            for b in np.flatnonzero(sums[0])
        ]
        yield pa.RecordBatch.from_pylist(parts, schema=BUCKET_SCHEMA)

    grouped = (
        joined.mapInArrow(group, BUCKET_DDL)
        .groupBy("slice", "value", "bucket")
        .agg(*(F.sum(c).alias(c) for c in SUMS))
        .collect()
    )
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
        sums = np.stack(
            [
                np.bincount(index, weights=w, minlength=len(keys) * BUCKETS)
                for w in (None, y, p, loss)
            ]
        ).reshape(4, len(keys), BUCKETS)
        for code, key in enumerate(keys):
            if sums[0, code].any():
                if (name, key) not in totals:
                    totals[name, key] = np.zeros((4, BUCKETS))
                totals[name, key] += sums[:, code]
