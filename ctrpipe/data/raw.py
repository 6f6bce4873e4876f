"""Read a raw table against its declared schema and tell good records from bad.

A table is one file, a folder or a glob of them, read as one table in name order (raw
logs arrive a file per day). Whole-file problems (no file, an empty one, a missing column,
a Parquet column of the wrong type) raise DataError. Record problems (a malformed line, a
value that does not parse, a null where none is allowed, a value out of range, a
duplicate key) mark the record with one reason, the first that applies, so that it can be
quarantined, with the file it came from, and counted. A value among the table's
`null_values` (after trimming spaces) is a null.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ctrpipe.data.locate import files_of
from ctrpipe.data.settings import Column, Table
from ctrpipe.errors import DataError

CORRUPT = "_record"  # the raw text of a line Spark could not parse
FILE = "_file"  # the file a record came from, relative to the raw folder
REASON = "reason"
SPARK_TYPES = {
    "string": T.StringType(),
    "int": T.IntegerType(),
    "long": T.LongType(),
    "double": T.DoubleType(),
    "boolean": T.BooleanType(),
    "timestamp": T.TimestampType(),
    "date": T.DateType(),
}


def inspect(folder: Path, table: Table) -> list[str]:
    """Whole-file checks of every file of the table, cheap enough to run before Spark
    starts; the columns its files hold, in order (CSV files must agree)."""
    files = files_of(folder, table)
    names = [inspect_file(path, table) for path in files]
    for path, found in zip(files[1:], names[1:], strict=True):
        if table.file_format == "csv" and found != names[0]:
            raise DataError(
                f"{path}: header ({', '.join(found)}) differs from that of {files[0]} "
                f"({', '.join(names[0])})"
            )
    return names[0]


def inspect_file(path: Path, table: Table) -> list[str]:
    """One file's checks; its columns."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file, expected records")
    fmt = table.file_format
    if fmt == "json" or (fmt == "csv" and not table.header):
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
    if wanted in ("timestamp", "date"):
        return pa.types.is_timestamp(found) or pa.types.is_date(found)
    return pa.types.is_boolean(found)


def read(spark: SparkSession, folder: Path, table: Table) -> DataFrame:
    """Declared columns as raw strings (native types for Parquet), the corrupt text and
    the file of each record."""
    files = [str(p) for p in files_of(folder, table)]
    names = inspect(folder, table)
    fmt = table.file_format
    if fmt == "parquet":
        df = spark.read.parquet(*files).withColumn(CORRUPT, F.lit(None).cast("string"))
    else:
        schema = T.StructType(
            [T.StructField(n, T.StringType()) for n in names]
            + [T.StructField(CORRUPT, T.StringType())]
        )
        reader = spark.read.schema(schema).option("mode", "PERMISSIVE")
        reader = reader.option("columnNameOfCorruptRecord", CORRUPT)
        if fmt == "csv":
            df = reader.csv(files, header=table.header, sep=table.sep, enforceSchema=True)
        else:
            df = reader.json(files)
    return df.select(*table.columns, CORRUPT, _relative(F.col("_metadata.file_path"), folder))


def _relative(uri: SparkColumn, folder: Path) -> SparkColumn:
    """A file's path relative to `folder`, from the URI Spark records for it."""
    path = F.url_decode(F.regexp_replace(uri, "^file:(//)?", ""))
    return F.substring(path, len(str(folder.resolve())) + 2, 4096).alias(FILE)


def check(raw: DataFrame, table: Table) -> DataFrame:
    """The declared columns as raw text, the corrupt text, the file, and `reason` (null
    when good).

    Only text is kept: it is what the quarantine shows, and it keeps the rows narrow
    through the shuffle that finds duplicate keys. `good()` types the values.
    """
    # Each column's missing flag and typed value once, in a projection of their own:
    # the reasons read them several times, and inlined they grew the generated code past
    # what Spark compiles well (generate took 30% longer at 1M rows).
    names = list(table.columns)
    flags = raw.select(
        *names,
        CORRUPT,
        FILE,
        *[_missing(n, table).alias(f"_missing{i}") for i, n in enumerate(names)],
        *[typed(n, table.columns[n], table).alias(f"_value{i}") for i, n in enumerate(names)],
    )
    reasons = [F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed_record"))]
    for i, (name, col) in enumerate(table.columns.items()):
        reasons += _column_reasons(name, col, F.col(f"_missing{i}"), F.col(f"_value{i}"))
    # Keys are compared as the joins see them, typed (and trimmed): " a" and "a" are one.
    keys = [f"_value{names.index(k)}" for k in table.keys]
    checked = flags.select(
        *[F.col(n).cast("string") for n in names],
        F.col(CORRUPT),
        F.col(FILE),
        F.coalesce(*reasons).alias(REASON),
        *keys,
    )
    if not table.keys:
        return checked
    # Among records good so far, a repeated key keeps one (the smallest record) only.
    order = [F.col(REASON).isNotNull()] + [F.col(n).asc_nulls_first() for n in table.columns]
    rank = F.row_number().over(Window.partitionBy(*keys).orderBy(*order, FILE))
    reason = f"duplicate_key:{'+'.join(table.keys)}"
    dup = F.when(F.col(REASON).isNull() & (rank > 1), F.lit(reason))
    return checked.withColumn(REASON, F.coalesce(F.col(REASON), dup)).drop(*keys)


def _missing(name: str, table: Table) -> SparkColumn:
    raw = F.col(name)
    if not table.nulls:
        return raw.isNull()
    return raw.isNull() | F.trim(raw.cast("string")).isin(table.nulls)


def typed(name: str, col: Column, table: Table) -> SparkColumn:
    """The value with its declared type: null for a null token or a value that does not
    parse (which check() has marked bad)."""
    raw = F.col(name)
    text = F.trim(raw.cast("string")) if table.trim else raw
    return F.when(_missing(name, table), None).otherwise(text).try_cast(SPARK_TYPES[col.type])


def _column_reasons(name: str, col: Column, missing: SparkColumn, value: SparkColumn) -> list:
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
    columns = [typed(n, c, table).alias(n) for n, c in table.columns.items()]
    return checked.where(F.col(REASON).isNull()).select(*columns)


def bad(checked: DataFrame, table: Table) -> DataFrame:
    """Bad records as they came in (raw text), with their file and reason, in a stable
    order.

    They go to one file, so they are sorted in one partition: a global orderBy would
    first run a sampling pass over the whole table to find its range bounds.
    """
    out = checked.where(F.col(REASON).isNotNull()).repartition(1)
    return out.sortWithinPartitions(
        REASON, FILE, *[F.col(n).asc_nulls_first() for n in table.columns], CORRUPT
    )
