"""Build the online snapshot on Spark, with generate's own functions.

From the labelled base records (dataset.label, as generate starts): each join's table as
features.dimension gives it to the join, and each history key's aggregates as of the
cut from features.history_at, the function that runs add_history itself. Nothing here
computes a feature; it only asks generate's code for the values at a time.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ctrpipe import fileio
from ctrpipe.data import features
from ctrpipe.data.dataset import Labelled
from ctrpipe.data.raw import SPARK_TYPES
from ctrpipe.data.settings import Data, joined_columns
from ctrpipe.online import store


def request_columns(data: Data) -> list[str]:
    """The base columns a raw request carries: the time, the keys of the joins and the
    history (those in the base table) and the base table's own features."""
    base = data.tables[data.base].columns
    used = [
        data.time,
        *(k for j in data.joins for k in j.base_keys),
        *data.history.keys,
        *data.features.categorical,
        *data.features.numeric,
    ]
    return [c for c in dict.fromkeys(used) if c in base]


def spec(data: Data) -> dict:
    """What the service needs of the data config to serve raw records, as plain data."""
    base = data.tables[data.base]
    joined = joined_columns(data)
    return {
        "base": data.base,
        "time": data.time,
        "time_unit": data.time_unit,
        "fields": {
            name: {"type": c.type, "nullable": c.nullable} for name, c in base.columns.items()
        },
        "request": request_columns(data),
        "joins": [
            {
                "table": j.table,
                "file": store.dimension_file(j.table),
                "base_keys": j.base_keys,
                "columns": [c.name for c in joined if c.table == j.table],
            }
            for j in data.joins
        ],
        "history": {
            "keys": data.history.keys,
            "columns": {k: features.key_history_columns(k) for k in data.history.keys},
            "prior_alpha": data.history.prior_alpha,
            "prior_beta": data.history.prior_beta,
        },
        "features": {**features.feature_names(data), "time": list(data.features.time)},
    }


def config_of(data: Data) -> str:
    """The digest of the features `data` builds: a snapshot's `config`."""
    return store.digest_of(spec(data))


def build(
    labelled: Labelled,
    data: Data,
    cut: dt.datetime | None,
    history: dict[str, pa.Table] | None = None,
) -> dict[str, bytes]:
    """The snapshot's files as of `cut` (see ctrpipe/online/store.py), manifest excluded:
    a dimension per join, a history per key. `history`: the keys' tables at `cut` where
    the caller has them already (generate's probes, dataset.build); else history_at
    computes them here."""
    frames = {
        store.dimension_file(j.table): features.dimension(labelled.good, data, j)
        for j in data.joins
    }
    if history is None and data.history.keys:
        keyed = labelled.with_history_keys(data)
        rows = keyed.select(data.time, features.LABEL, *data.history.keys)
        for key, df in features.history_at(rows, data, cut).items():
            frames[store.history_file(key)] = df
    arrow = to_arrow(frames, {name: key_of(name, data) for name in frames})
    arrow |= {store.history_file(k): table for k, table in (history or {}).items()}
    return store.files(arrow, spec(data), cut)


def key_of(name: str, data: Data) -> list[str]:
    """The columns a snapshot table is keyed (and sorted) by."""
    for join in data.joins:
        if name == store.dimension_file(join.table):
            return join.base_keys
    return [next(k for k in data.history.keys if name == store.history_file(k))]


def skew_sample(labelled: Labelled, data: Data, golden: pa.Table, n: int) -> pa.Table:
    """`n` golden rows, evenly spaced through the file (sorted by time, then id), as the
    skew check serves them: the id, the request's fields as the raw records hold them,
    every history key, and the golden row's own aggregates (add_history's at the row's
    time: what a snapshot cut there serves, as a probe there sees what the row saw)."""
    key, keys = labelled.key, data.history.keys
    ids = golden[key].to_pylist()
    picks = np.unique(np.linspace(0, len(ids) - 1, min(n, len(ids))).astype(int))
    chosen = [ids[i] for i in picks]
    rows = rows_of(labelled.with_history_keys(data, labelled.records), key, chosen)
    columns = [raw_time(data) if c == data.time else c for c in request_columns(data)]
    columns += [k for k in keys if k not in request_columns(data)]
    (records,) = to_arrow({"sample": rows.select(key, *columns)}, {"sample": [key]}).values()
    aggregates = golden.select([key, *features.history_columns(data)])
    joined = records.join(aggregates, key, join_type="left outer")
    return joined.sort_by([(key, "ascending", "at_start")]).combine_chunks()


def raw_records(labelled: Labelled, data: Data, ids: list[str]) -> DataFrame:
    """The base records of rows `ids` as a client sends them: the id (as text), then
    the request's fields, the time as the raw table holds it."""
    key = labelled.key
    return rows_of(labelled.records, key, ids).select(
        key, *(raw_time(data) if c == data.time else c for c in request_columns(data))
    )


def rows_of(rows: DataFrame, key: str, ids: list[str]) -> DataFrame:
    """The rows whose id is one of `ids`, the id as text (as the splits hold it)."""
    wanted = rows.sparkSession.createDataFrame([(i,) for i in ids], f"{key} string")
    return rows.withColumn(key, F.col(key).cast("string")).join(F.broadcast(wanted), key)


def raw_time(data: Data):
    """The time column as the raw table holds it, as a raw request sends it: the inverse
    of features.as_timestamp (a year, epoch seconds, a date or a timestamp)."""
    declared = data.tables[data.base].columns[data.time].type
    t = F.col(data.time)
    if data.time_unit == "year":
        t = F.year(t)
    elif data.time_unit == "seconds":
        t = F.unix_timestamp(t)
    elif declared == "date":
        t = F.to_date(t)
    return t.cast(SPARK_TYPES[declared]).alias(data.time)


def to_arrow(frames: dict[str, DataFrame], order: dict[str, list[str]]) -> dict[str, pa.Table]:
    """Each frame collected through a staged Parquet write and sorted by `order[name]`:
    the same rows give the same table, whatever Spark's partitioning."""
    out = {}
    with tempfile.TemporaryDirectory(prefix=".snapshot.") as tmp:
        for name, df in frames.items():
            staged = Path(tmp) / name
            df.write.options(**fileio.STAGED_PARQUET).parquet(str(staged))
            parts = sorted(staged.glob("part-*.parquet"))
            table = pa.concat_tables(pq.read_table(p).replace_schema_metadata(None) for p in parts)
            out[name] = table.sort_by([(c, "ascending", "at_start") for c in order[name]])
    return out
