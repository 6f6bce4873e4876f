"""From validated tables to one feature row per base record.

Joins the dimension tables, derives the label, adds time-of-day features and historical
aggregates per key. A historical aggregate of a row only sees records older than the row
by at least `history.lag_seconds`: their labels were final by then, so nothing from the
row's future leaks into it.
"""

from __future__ import annotations

from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ctrpipe.data.settings import Data, Join, as_list, joined_columns

LABEL = "label"
PROBE = "_probe"  # a probe row's history key (with_probes); null on records
WEIGHT = "weight"
TIME_FEATURES = {"hour": F.hour, "day_of_week": F.dayofweek}


def base_columns(data: Data, key: str) -> list[str]:
    """The base table's columns that any later step reads; the rest are dropped early."""
    declared = data.tables[data.base].columns
    used = [
        key,
        data.time,
        *label_base_columns(data),
        *data.history.keys,
        *(k for j in data.joins for k in j.base_keys),
        *data.features.categorical,
        *data.features.numeric,
    ]
    return [c for c in dict.fromkeys(used) if c in declared or c == key]


def label_base_columns(data: Data) -> list[str]:
    """The base columns the label is read from or looked up by."""
    label = data.label
    if label.kind == "column":
        return [label.column]
    if label.kind == "event":
        return [label.key]
    return as_list(label.base_key) or data.tables[label.table].keys


def as_timestamp(rows: DataFrame, data: Data) -> DataFrame:
    """The time column as a UTC timestamp, whatever the data gives: a timestamp, a date,
    an int year (its 1 January) or epoch seconds."""
    if data.time is None:
        return rows
    t = F.col(data.time)
    if data.time_unit == "year":
        t = F.make_timestamp(t, F.lit(1), F.lit(1), F.lit(0), F.lit(0), F.lit(0))
    elif data.time_unit == "seconds":
        t = F.timestamp_seconds(t)
    return rows.withColumn(data.time, t.cast("timestamp"))


def join_dimensions(
    rows: DataFrame, dims: dict[str, DataFrame], data: Data, small: set[str]
) -> DataFrame:
    """Each join's columns, by its key and base_key, renamed as joined_columns says.
    Keys are unique per table (duplicates were quarantined): a join adds no rows."""
    for join in data.joins:
        dim = dimension(dims, data, join)
        rows = rows.join(F.broadcast(dim) if join.table in small else dim, join.base_keys, "left")
    return rows


def dimension(dims: dict[str, DataFrame], data: Data, join: Join) -> DataFrame:
    """A join's table as the join reads it: its key under the base's names, its other
    columns under their joined names (the online snapshot stores exactly this)."""
    return dims[join.table].select(
        *[F.col(k).alias(b) for k, b in zip(join.keys, join.base_keys, strict=True)],
        *[F.col(j.column).alias(j.name) for j in joined_columns(data) if j.table == join.table],
    )


def add_label(
    rows: DataFrame, good: dict[str, DataFrame], data: Data, small: set[str]
) -> DataFrame:
    label = data.label
    if label.kind == "column":
        return rows.withColumn(LABEL, _label_from(F.col(label.column), data))
    if label.kind == "lookup":
        # Every base record has its label row: those without one were quarantined.
        table = data.tables[label.table]
        base_keys = as_list(label.base_key) or table.keys
        values = good[label.table].select(
            *[F.col(k).alias(b) for k, b in zip(table.keys, base_keys, strict=True)],
            F.col(label.column).alias("_label_value"),
        )
        values = F.broadcast(values) if label.table in small else values
        rows = rows.join(values, base_keys, "left")
        return rows.withColumn(LABEL, _label_from(F.col("_label_value"), data)).drop("_label_value")
    # An event counts when it arrives within the window after the base record. Events
    # are few next to base records (clicks next to impressions): grouped by key and
    # broadcast, they label the rows without shuffling them.
    events = good[label.table]
    times = events.groupBy(label.key).agg(F.collect_list(label.time).alias("_event_times"))
    start = F.col(data.time)
    end = start + F.make_interval(secs=F.lit(label.window_seconds))
    hit = F.exists(F.col("_event_times"), lambda t: (t >= start) & (t <= end))
    rows = rows.join(F.broadcast(times), label.key, "left")
    return rows.withColumn(LABEL, F.coalesce(hit, F.lit(False)).cast("int")).drop("_event_times")


def _label_from(col, data: Data):
    """1 where the label column's value is positive (or above the threshold), else 0."""
    label = data.label
    if label.threshold is not None:
        return F.when(col.try_cast("double") > label.threshold, 1).otherwise(0)
    positive = F.lower(col.cast("string")).isin([str(v).lower() for v in label.positive])
    numbers = [
        float(v) for v in label.positive if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    if numbers:  # 1 matches 1.0 in a double column
        positive = positive | col.try_cast("double").isin(numbers)
    return F.when(positive, 1).otherwise(0)


def add_time_features(rows: DataFrame, data: Data) -> DataFrame:
    for name in data.features.time:
        rows = rows.withColumn(name, TIME_FEATURES[name](F.col(data.time)).cast("double"))
    return rows


def key_history_columns(key: str) -> list[str]:
    return [f"hist_{key}_{kind}" for kind in ("n", "ctr", "recent")]


def history_columns(data: Data) -> list[str]:
    return [c for key in data.history.keys for c in key_history_columns(key)]


def add_history(rows: DataFrame, data: Data) -> DataFrame:
    """Per key: labelled records seen, their smoothed click rate, and recent volume.
    Only labelled rows count (every row generate passes has a label), so unlabelled
    probe rows (history_of) can sit among them without counting one another."""
    h = data.history
    if not h.keys:
        return rows
    rows = rows.withColumn("_t", F.col(data.time).cast("long"))
    for key in h.keys:
        ordered = Window.partitionBy(key).orderBy("_t")

        def before(seconds: int):
            return ordered.rangeBetween(Window.unboundedPreceding, -seconds)

        known = before(max(h.lag_seconds, 1))
        seen = F.count(LABEL).over(known)
        clicks = F.coalesce(F.sum(LABEL).over(known), F.lit(0))
        # Recent volume as a difference of two running counts: Spark recomputes a
        # sliding frame's aggregate on every row, a running one incrementally.
        recent = F.count(LABEL).over(before(1)) - F.count(LABEL).over(before(h.recent_seconds + 1))
        has_key = F.col(key).isNotNull()
        rows = (
            rows.withColumn(f"hist_{key}_n", F.when(has_key, seen.cast("double")))
            .withColumn(
                f"hist_{key}_ctr",
                F.when(has_key, (clicks + h.prior_alpha) / (seen + h.prior_alpha + h.prior_beta)),
            )
            .withColumn(f"hist_{key}_recent", F.when(has_key, recent.cast("double")))
        )
    return rows.drop("_t")


def history_at(rows: DataFrame, data: Data, cut) -> dict[str, DataFrame]:
    """Per history key, each of its values with the aggregates add_history gives a row of
    that value at time `cut` (a datetime, UTC): what an online lookup serves, from the
    same code as training."""
    probes = probes_at(rows, data, cut)
    return {key: df.drop(data.time) for key, df in history_of(rows, data, probes).items()}


def probes_at(rows: DataFrame, data: Data, cut) -> dict[str, DataFrame]:
    """Per history key, one probe (the value and the time) per value `rows` hold, at
    `cut` (a datetime, UTC)."""
    time = F.lit(cut).cast(rows.schema[data.time].dataType).alias(data.time)
    return {
        key: rows.where(F.col(key).isNotNull()).select(key).distinct().select(key, time)
        for key in data.history.keys
    }


def with_probes(rows: DataFrame, data: Data, probes: dict[str, DataFrame]) -> DataFrame:
    """`rows` (labelled, with time) and the probes (rows of a key's value and a time, no
    label) stacked, for add_history: windows end before a row's own time and count
    labelled rows only, so a probe sees exactly what a training row at its time saw, and
    no other probe. PROBE holds a probe's key, and is null on `rows`."""
    keys = data.history.keys

    def padded(key: str) -> DataFrame:
        others = [F.lit(None).cast(rows.schema[k].dataType).alias(k) for k in keys if k != key]
        return probes[key].select(key, data.time, *others, F.lit(key).alias(PROBE))

    stacked = reduce(DataFrame.unionByName, [padded(key) for key in keys])
    return rows.withColumn(PROBE, F.lit(None).cast("string")).unionByName(
        stacked, allowMissingColumns=True
    )


def history_of(rows: DataFrame, data: Data, probes: dict[str, DataFrame]) -> dict[str, DataFrame]:
    """Per history key, its probes (with_probes) with the aggregates add_history gives a
    row of that value at that time."""
    keys = data.history.keys
    if not keys:
        return {}
    both = with_probes(rows, data, probes)
    # Kept: each key's table reads it, and computing it again means every window again.
    probed = add_history(both, data).where(F.col(PROBE).isNotNull())
    probed = probed.persist(StorageLevel.MEMORY_AND_DISK)
    return {
        key: probed.where(F.col(PROBE) == key).select(key, data.time, *key_history_columns(key))
        for key in keys
    }


def feature_names(data: Data) -> dict[str, list[str]]:
    numeric = list(data.features.numeric) + list(data.features.time) + history_columns(data)
    return {"categorical": list(data.features.categorical), "numeric": numeric}


def select_features(rows: DataFrame, data: Data, key: str) -> DataFrame:
    """The feature rows' columns; probe rows (with_probes) keep PROBE, with their key's
    value as their id."""
    names = feature_names(data)
    probed = PROBE in rows.columns
    ident, label = F.col(key).cast("string"), F.col(LABEL).cast("int")
    if probed:
        value = F.coalesce(*[F.col(k).cast("string") for k in data.history.keys])
        ident = F.when(F.col(PROBE).isNotNull(), value).otherwise(ident)
        # Every record has a label; a probe's 0 keeps the column non-null in the splits'
        # schema (probes never reach a split, and their history is already computed).
        label = F.coalesce(label, F.lit(0))
    return rows.select(
        ident.alias(key),
        *([F.col(data.time)] if data.time else []),
        label.alias(LABEL),
        *[as_feature(c, data) for c in names["categorical"] + names["numeric"]],
        *([PROBE] if probed else []),
    )


def as_feature(column: str, data: Data):
    """A feature column as the feature rows hold it: text if categorical, else double."""
    kind = "string" if column in data.features.categorical else "double"
    return F.col(column).cast(kind).alias(column)
