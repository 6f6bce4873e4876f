"""The generate stage's library: raw tables in, feature rows and quarantine out."""

from __future__ import annotations

import datetime as dt
import functools
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_type

from ctrpipe import fileio
from ctrpipe.data import features, raw, split
from ctrpipe.data.settings import Column, Data, Table, as_list
from ctrpipe.errors import DataError

ROW_ID = "row_id"


@dataclass
class Dataset:
    rows: DataFrame  # feature rows tagged with split.SPLIT (and the probes, if asked)
    quarantine: dict[str, DataFrame]  # bad records per table, raw text and reason
    key: str
    stats: dict = field(default_factory=dict)
    labelled: Labelled | None = None
    cut: dt.datetime | None = None  # the probes' time: the online snapshot's cut


@dataclass
class Labelled:
    """The good base records, labelled, before any feature: what generate and the
    online snapshot both start from."""

    rows: DataFrame  # `records` with the label
    good: dict[str, DataFrame]  # every table's good records (the dimensions)
    small: set[str]  # tables small enough to broadcast to a join
    quarantine: dict[str, DataFrame]
    key: str
    stats: dict
    # features.base_columns of the good base records, the time as a timestamp: what
    # needs no label reads these, since labelling joins the label table (a job of its own)
    records: DataFrame

    def with_history_keys(self, data: Data, rows: DataFrame | None = None) -> DataFrame:
        """The rows (or `rows`, of `records`' columns) with every history key: joined
        first where a key is a dimension's."""
        rows = self.rows if rows is None else rows
        if set(data.history.keys) <= set(rows.columns):
            return rows
        return features.join_dimensions(rows, self.good, data, self.small)

    def newest(self, data: Data) -> dt.datetime | None:
        """The time of the newest good base record, the online snapshot's default cut
        (None: the data has no time, hence no history)."""
        if data.time is None:
            return None
        (value,) = self.records.agg(F.max(data.time)).first()
        return value.replace(tzinfo=None)  # the session's zone is UTC


def build(
    spark: SparkSession,
    data: Data,
    raw_dir: Path,
    broadcast_max_rows: int = 1_000_000,
    probe: bool = False,
    cut: dt.datetime | None = None,
) -> Dataset:
    """One feature row per good base record, tagged with its split. With `probe`, each
    history key's values at `cut` (None: the newest record's time) too, in the key's
    split.PROBES split: the online snapshot's aggregates, from the same window pass as
    the rows' own."""
    labelled = label(spark, data, raw_dir, broadcast_max_rows)
    if probe:
        cut = cut or labelled.newest(data)
    probing = probe and cut is not None and bool(data.history.keys)
    if probing:
        probes = features.probes_at(labelled.with_history_keys(data), data, cut)
    rows = features.add_time_features(labelled.rows, data)

    def history(rows: DataFrame) -> DataFrame:
        if probing:
            rows = features.with_probes(rows, data, probes)
        return features.add_history(rows, data)

    # History shuffles the rows once per key: do it while they are narrow, before the
    # dimension tables widen them, unless a key comes from a dimension table.
    early = set(data.history.keys) <= set(rows.columns)
    if early:
        rows = history(rows)
    rows = features.join_dimensions(rows, labelled.good, data, labelled.small)
    if not early:
        rows = history(rows)
    rows = features.select_features(rows, data, labelled.key)
    rows = split.assign(rows, data, labelled.key)
    return Dataset(rows, labelled.quarantine, labelled.key, labelled.stats, labelled, cut)


def label(
    spark: SparkSession, data: Data, raw_dir: Path, broadcast_max_rows: int = 1_000_000
) -> Labelled:
    """Check every table, then label each good base record. A dimension table of at
    most `broadcast_max_rows` good rows is broadcast to the joins; a larger one is left
    to Spark's own choice."""
    tables, key = with_row_id(data)
    raws = {n: raw.read(spark, raw_dir, t) for n, t in data.tables.items()}
    if key == ROW_ID:
        raws[data.base] = raws[data.base].withColumn(ROW_ID, row_id(data.tables[data.base]))
    checked = {n: raw.check(raws[n], t) for n, t in tables.items()}
    checked = check_relations(checked, tables, data)
    checked = {n: c.persist(StorageLevel.MEMORY_AND_DISK) for n, c in checked.items()}
    stats = {"tables": reason_counts(checked, tables, raw_dir)}
    enforce_quality(stats["tables"], tables, data, raw_dir)

    good = {n: raw.good(checked[n], t) for n, t in tables.items()}
    small = {n for n, c in stats["tables"].items() if c["records"] - c["bad"] <= broadcast_max_rows}
    rows = good[data.base].select(*features.base_columns(data, key))
    records = features.as_timestamp(rows, data)
    rows = features.add_label(records, good, data, small)
    quarantine = {n: raw.bad(checked[n], t) for n, t in tables.items()}
    return Labelled(rows, good, small, quarantine, key, stats, records)


def with_row_id(data: Data) -> tuple[dict[str, Table], str]:
    """The tables as checked, and the id column of the feature rows: the base's key, or
    ROW_ID where the base has no key (a hash of the record, so exact copies collapse) or
    a key of several columns (their values joined)."""
    tables = dict(data.tables)
    base = tables[data.base]
    if len(base.keys) == 1:
        return tables, base.keys[0]
    columns = {**base.columns, ROW_ID: Column(type="string", nullable=False)}
    tables[data.base] = base.model_copy(update={"key": base.key or ROW_ID, "columns": columns})
    return tables, ROW_ID


def row_id(base: Table):
    if not base.keys:  # with trim, records equal once trimmed are copies too
        values = [F.trim(F.col(c)) if base.trim else F.col(c) for c in base.columns]
        return F.xxhash64(*values).cast("string")
    return F.concat_ws("\u001f", *base.keys)  # a separator no key value holds


def check_relations(
    checked: dict[str, DataFrame], tables: dict[str, Table], data: Data
) -> dict[str, DataFrame]:
    """Base records with no match in a required join or no label in the label table;
    events matching no base record."""
    checked = dict(checked)
    base = tables[data.base]
    lookups = [
        (j.table, j.keys, j.base_keys, f"unmatched:{j.table}") for j in data.joins if j.required
    ]
    label = data.label
    if label.kind == "lookup":
        keys = tables[label.table].keys
        lookups.append((label.table, keys, as_list(label.base_key) or keys, "unlabelled"))
    for name, keys, base_keys, reason in lookups:
        found = raw.good(checked[name], tables[name]).select(*keys)
        probe = [raw.typed(k, base.columns[k], base) for k in base_keys]
        checked[data.base] = _mark_unmatched(checked[data.base], probe, found, reason)
    if label.kind == "event":
        events = tables[label.table]
        found = raw.good(checked[data.base], base).select(label.key).distinct()
        probe = [raw.typed(label.key, events.columns[label.key], events)]
        checked[label.table] = _mark_unmatched(
            checked[label.table], probe, found, f"orphan:{data.base}"
        )
    return checked


def _mark_unmatched(checked: DataFrame, probe: list, found: DataFrame, reason: str) -> DataFrame:
    """`reason` on the good records whose typed `probe` values match no row of `found`."""
    names = [f"_key{i}" for i in range(len(probe))]
    found = found.toDF(*names).dropna(subset=names).withColumn("_match", F.lit(True))
    on = functools.reduce(
        lambda a, b: a & b, [p == F.col(n) for p, n in zip(probe, names, strict=True)]
    )
    joined = checked.join(found, on, "left")
    unmatched = F.when(F.col(raw.REASON).isNull() & F.col("_match").isNull(), F.lit(reason))
    out = joined.withColumn(raw.REASON, F.coalesce(F.col(raw.REASON), unmatched))
    return out.select(*checked.columns)


def reason_counts(
    checked: dict[str, DataFrame], tables: dict[str, Table], raw_dir: Path
) -> dict[str, dict]:
    """Per table: records, bad records by reason; a JSON column no record has is missing.

    All tables are counted in one query: a query of its own per table costs more in
    planning and job start-up than counting the small tables does.
    """
    # Only JSON lines name their fields per record; CSV and Parquet columns were checked
    # against the file's header or footer, so counting their values would be wasted work.
    present = [(n, c) for n, t in tables.items() if t.file_format == "json" for c in t.columns]
    parts = [
        checked[n].select(
            F.lit(n).alias("_table"),
            F.col(raw.REASON),
            *[
                F.col(c).isNotNull().cast("long").alias(f"_has{i}")
                for i, (owner, c) in enumerate(present)
                if owner == n
            ],
        )
        for n in tables
    ]
    union = functools.reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)
    found = (
        union.groupBy("_table", raw.REASON)
        .agg(
            F.count(F.lit(1)).alias("n"),
            *[F.sum(f"_has{i}").alias(f"_has{i}") for i in range(len(present))],
        )
        .collect()
    )
    counts = {}
    for name, table in tables.items():
        rows = [r for r in found if r["_table"] == name]
        path = raw_dir / table.path
        records = sum(r["n"] for r in rows)
        if records == 0:
            raise DataError(f"{path}: no records (only a header or nothing), expected data")
        for i, (owner, c) in enumerate(present):
            if owner == name and not sum(r[f"_has{i}"] or 0 for r in rows):
                raise DataError(f"{path}: column '{c}' missing (no record has it)")
        reasons = {r[raw.REASON]: r["n"] for r in rows if r[raw.REASON] is not None}
        counts[name] = {
            "records": records,
            "bad": sum(reasons.values()),
            "reasons": dict(sorted(reasons.items())),
        }
    return counts


def enforce_quality(counts: dict, tables: dict[str, Table], data: Data, raw_dir: Path) -> None:
    limit = data.quality.max_bad_fraction
    for name, c in counts.items():
        c["bad_fraction"] = round(c["bad"] / c["records"], 6)
        if c["bad_fraction"] > limit:
            top, n = max(c["reasons"].items(), key=lambda kv: (kv[1], kv[0]))
            raise DataError(
                f"{raw_dir / tables[name].path}: {c['bad_fraction']:.2%} of {c['records']:,} "
                f"records are bad, over data.quality.max_bad_fraction={limit}; "
                f"top reason: {top} ({n:,} records)"
            )


def write_splits(
    built: Dataset, data: Data, outs: dict[str, Path]
) -> tuple[dict, dict[str, pa.Table]]:
    """Write train / validation / golden to `outs[name]`, each one file sorted by time and
    key; check them before they land. Returns their counts, and the probes' aggregates
    (build's `probe`) per history key, as probe_table gives them.

    Spark writes each split's rows in whatever order its tasks hold them; pyarrow then
    sorts each split in memory and writes it as one file, a thread per split. Sorting in
    Spark would cost one more shuffle and leave the largest split to a single task. The
    key is unique, so the order is total.
    """
    # Staged in the nearest folder that exists: nothing is created before the checks pass.
    scratch = next(p for p in Path(outs["train"]).resolve().parents if p.is_dir())
    with tempfile.TemporaryDirectory(prefix=".splits.", dir=scratch) as tmp:
        staged = Path(tmp) / "splits"
        built.rows.write.partitionBy(split.SPLIT).options(**fileio.STAGED_PARQUET).parquet(
            str(staged)
        )

        def files(name: str) -> list[Path]:  # a split with no rows has no folder
            return sorted((staged / f"{split.SPLIT}={name}").glob("part-*.parquet"))

        parts = {name: files(name) for name in split.SPLITS}
        counts = split_counts(parts)
        check_splits(counts, data)
        probes = {}
        if built.cut is not None and data.history.keys:
            keyed = built.labelled.with_history_keys(data).schema
            probes = {
                k: probe_table(files(split.PROBES + k), built.key, k, keyed[k].dataType)
                for k in data.history.keys
            }

        order = [c for c in (data.time, built.key) if c is not None]

        def land(name: str) -> None:
            with fileio.atomic_path(outs[name]) as dst:
                fileio.write_sorted_parquet(parts[name], dst, by=order)

        with ThreadPoolExecutor(len(parts)) as pool:  # pyarrow works without the GIL
            list(pool.map(land, parts))
    return counts, probes


def probe_table(files: list[Path], ident: str, key: str, kind) -> pa.Table:
    """A history key's probes as the snapshot holds them: the key's values (the probe
    rows' id, as text, back in the key's own type) with their aggregates, sorted."""
    columns = [ident, *features.key_history_columns(key)]
    table = pa.concat_tables(pq.read_table(f, columns=columns) for f in files)
    values = table[ident].cast(to_arrow_type(kind))
    table = table.drop_columns([ident]).add_column(0, pa.field(key, values.type), values)
    return table.replace_schema_metadata(None).sort_by([(key, "ascending", "at_start")])


def write_quarantine(built: Dataset, folder: Path) -> None:
    """Each table's bad records, as they came in and with their reason, to table.parquet."""
    for name, bad in built.quarantine.items():
        fileio.write_parquet(bad, folder / f"{name}.parquet")


def split_counts(parts: dict[str, list[Path]]) -> dict:
    """Rows and positives per split, from the label column of its files."""
    counts = {}
    for name, files in parts.items():
        labels = [pq.read_table(f, columns=[features.LABEL])[features.LABEL] for f in files]
        rows = sum(len(column) for column in labels)
        positives = sum(pc.sum(column).as_py() or 0 for column in labels)
        counts[name] = {
            "rows": rows,
            "positives": positives,
            "positive_rate": round(positives / rows, 6) if rows else 0.0,
        }
    return counts


def check_splits(counts: dict, data: Data) -> None:
    split = data.split
    if split.by == "time":
        where = {
            "train": f"before data.split.validation_start={split.validation_start}",
            "validation": f"from data.split.validation_start={split.validation_start}",
            "golden": f"in data.split.golden [{split.golden.start}, {split.golden.end})",
        }
    else:
        where = {name: "in its share of data.split (by: hash)" for name in counts}
    for name, c in counts.items():
        if c["rows"] == 0:
            raise DataError(f"{name} split is empty: no rows {where[name]}")
        if c["positives"] in (0, c["rows"]):
            only = 1 if c["positives"] else 0
            raise DataError(
                f"label: only one class ({only}) in the {name} split "
                f"({c['rows']:,} rows); a classifier needs both 0 and 1"
            )
