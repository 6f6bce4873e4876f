"""Read a raw table against its declared schema and tell good records from bad.

Whole-file problems (missing, empty, a missing column, a Parquet column of the wrong type)
raise DataError. Record problems (a malformed line, a value that does not parse, a null
where none is allowed, a value out of range, a duplicate key) mark the record with one
reason, the first that applies, so it can be quarantined and counted.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ctrpipe.data.settings import Column, Table
from ctrpipe.errors import DataError

CORRUPT = "_record"  # the raw text of a line Spark could not parse
REASON = "reason"
SPARK_TYPES = {
    "string": T.StringType(),
    "int": T.IntegerType(),
    "long": T.LongType(),
    "double": T.DoubleType(),
    "boolean": T.BooleanType(),
    "timestamp": T.TimestampType(),
}


def inspect_file(path: Path, table: Table) -> list[str]:
    """Whole-file checks, cheap enough to run before Spark starts; the file's columns."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file, expected records")
    fmt = table.file_format
    if fmt == "json":
        return list(table.columns)  # JSON lines name their fields per record
    names = _parquet_columns(path, table) if fmt == "parquet" else _csv_header(path, table.sep)
    missing = [c for c in table.columns if c not in names]
    if missing:
        where = "file has" if fmt == "parquet" else "header has"
        raise DataError(f"{path}: column '{missing[0]}' missing ({where}: {', '.join(names)})")
    return names


def _csv_header(path: Path, sep: str) -> list[str]:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            first = f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    return [name.strip().strip('"') for name in first.split(sep)]


def _parquet_columns(path: Path, table: Table) -> list[str]:
    try:
        found = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for a bad footer
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    for name, col in table.columns.items():
        if name in found.names and not _compatible(found.field(name).type, col.type):
            raise DataError(
                f"{path}: column '{name}' has type {found.field(name).type}, expected {col.type}"
            )
    return found.names


def _compatible(found: pa.DataType, wanted: str) -> bool:
    if wanted == "string" or pa.types.is_null(found):
        return True
    if wanted in ("int", "long", "double"):
        return (
            pa.types.is_integer(found) or pa.types.is_floating(found) or pa.types.is_decimal(found)
        )
    if wanted == "timestamp":
        return pa.types.is_timestamp(found) or pa.types.is_date(found)
    return pa.types.is_boolean(found)


def read(spark: SparkSession, path: Path, table: Table) -> DataFrame:
    """Declared columns as raw strings (native types for Parquet), plus the corrupt text."""
    names = inspect_file(path, table)
    fmt = table.file_format
    if fmt == "parquet":
        df = spark.read.parquet(str(path))
        return df.select(*table.columns, F.lit(None).cast("string").alias(CORRUPT))
    schema = T.StructType(
        [T.StructField(n, T.StringType()) for n in names] + [T.StructField(CORRUPT, T.StringType())]
    )
    reader = spark.read.schema(schema).option("mode", "PERMISSIVE")
    reader = reader.option("columnNameOfCorruptRecord", CORRUPT)
    if fmt == "csv":
        df = reader.csv(str(path), header=True, sep=table.sep, enforceSchema=True)
    else:
        df = reader.json(str(path))
    return df.select(*table.columns, CORRUPT)


def check(raw: DataFrame, table: Table) -> DataFrame:
    """The declared columns as raw text, the corrupt text, and `reason` (null when good).

    Only text is kept: it is what the quarantine shows, and it keeps the rows narrow
    through the shuffle that finds duplicate keys. `good()` types the values.
    """
    reasons = [F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed_record"))]
    for name, col in table.columns.items():
        reasons += _column_reasons(name, col, F.col(name), _typed(name, col))
    checked = raw.select(
        *[F.col(n).cast("string") for n in table.columns],
        F.col(CORRUPT),
        F.coalesce(*reasons).alias(REASON),
    )
    if table.key is None:
        return checked
    # Among records good so far, a repeated key keeps one (the smallest record) only.
    order = [F.col(REASON).isNotNull()] + [F.col(n).asc_nulls_first() for n in table.columns]
    rank = F.row_number().over(Window.partitionBy(table.key).orderBy(*order))
    dup = F.when(F.col(REASON).isNull() & (rank > 1), F.lit(f"duplicate_key:{table.key}"))
    return checked.withColumn(REASON, F.coalesce(F.col(REASON), dup))


def _typed(name: str, col: Column) -> SparkColumn:
    return F.col(name).try_cast(SPARK_TYPES[col.type])


def _column_reasons(name: str, col: Column, raw: SparkColumn, value: SparkColumn) -> list:
    missing = raw.isNull() | (F.trim(raw.cast("string")) == "")
    out = [F.when(~missing & value.isNull(), F.lit(f"bad_type:{name}"))]
    if not col.nullable:
        out.append(F.when(missing, F.lit(f"null:{name}")))
    if col.min is not None:
        out.append(F.when(value < col.min, F.lit(f"out_of_range:{name}")))
    if col.max is not None:
        out.append(F.when(value > col.max, F.lit(f"out_of_range:{name}")))
    if col.values is not None:
        out.append(F.when(~missing & ~value.isin(col.values), F.lit(f"unknown_value:{name}")))
    return out


def good(checked: DataFrame, table: Table) -> DataFrame:
    """Good records with their declared types."""
    typed = [_typed(n, c).alias(n) for n, c in table.columns.items()]
    return checked.where(F.col(REASON).isNull()).select(*typed)


def bad(checked: DataFrame, table: Table) -> DataFrame:
    """Bad records as they came in (raw text), with their reason, in a stable order.

    They go to one file, so they are sorted in one partition: a global orderBy would
    first run a sampling pass over the whole table to find its range bounds.
    """
    out = checked.where(F.col(REASON).isNotNull()).repartition(1)
    return out.sortWithinPartitions(
        REASON, *[F.col(n).asc_nulls_first() for n in table.columns], CORRUPT
    )
