"""A drafted data group from the files in a folder: `python -m ctrpipe infer`.

Reads every CSV, Parquet and JSON-lines file under the folder (the first SAMPLE_ROWS rows
of a big one, with pyarrow), and proposes what a person would first write: each table's
columns with types, nullability and the null tokens seen; unique columns (or pairs) as
its key; joins where a column's values fall inside another table's key, under the same
name or another, one column or two; the table the others join to as the base; a timestamp, date or
year column as time, else a split by hash; low-cardinality text as categorical features,
numbers as numeric ones. Files of one folder with one extension and one header are one
table (`folder/*.csv`), as logs a file per day are.

What it cannot decide, it asks: the label, and which columns are known only after the
label (they leak it). Those are values starting with QUESTION, which `make params`
refuses (ctrpipe/params.py) until a person has replaced them.

Anchor: TensorFlow Data Validation's infer_schema, which proposes types and presence per
feature of one table; this goes on to the relations between tables.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from ctrpipe.data.settings import joined_name
from ctrpipe.errors import DataError
from ctrpipe.fileio import FORMATS
from ctrpipe.params import QUESTION

SAMPLE_ROWS = 200_000
NULL_TOKENS = ("", "NA", "N/A", "n/a", "na", "null", "NULL", "None", "none", "\\N", "nan", "NaN")
MOSTLY = 0.99  # share of values that must parse as a type, or be unique for a key
NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
CATEGORICAL_MAX = 1000  # distinct values for a text column to be a categorical feature
# Share of a column's values found in a key for a join to be proposed: a dimension often
# lacks a few (a store hour without weather), which a join leaves as nulls.
CONTAINED = 0.9
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SUFFIXES = {**FORMATS, ".txt": "csv", ".tsv": "csv", ".data": "csv"}


@dataclass
class Column:
    type: str
    nullable: bool
    distinct: int
    values: pa.Array = field(repr=False)  # the sample's values, typed, row for row


@dataclass
class Table:
    name: str
    path: str  # relative to the folder: a file or a glob
    format: str
    rows: int  # in the sample
    columns: dict[str, Column]
    sep: str = ","
    nulls: list[str] = field(default_factory=list)  # null tokens seen (text formats)
    key: list[str] = field(default_factory=list)


def draft(folder: Path) -> str:
    """The commented YAML of a data group for the files under `folder`."""
    tables = read_tables(folder)
    for table in tables.values():
        table.key = find_key(table)
    # The base is the table the others hang off: one with a time, the most joins from it,
    # then the most rows (a table of outcomes, one row per example, joins back to it too).
    joins = {name: find_joins(t, tables) for name, t in tables.items()}
    base = max(
        tables.values(),
        key=lambda t: (time_column(t)[0] is not None, len(joins[t.name]), t.rows, t.name),
    )
    joins = joins[base.name]
    return render(folder, base, tables, joins)


# --- reading ----------------------------------------------------------------------------


def read_tables(folder: Path) -> dict[str, Table]:
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith((".", "_"))
    )
    if not files:
        raise DataError(f"{folder}: no CSV, Parquet or JSON-lines file in it; nothing to infer")
    groups: dict[tuple, list[Path]] = {}
    for path in files:
        groups.setdefault((path.parent, path.suffix.lower()), []).append(path)
    tables = {}
    for (parent, suffix), paths in sorted(groups.items()):
        # Files of one folder and one header are one table, drafted from a sample of them.
        read = []
        if len(paths) > 1 and len({tuple(names_of(p)) for p in paths}) == 1:
            read = sampled(paths, folder)
            if all(t.columns.keys() == read[0].columns.keys() for t in read):
                rel = (parent / f"*{suffix}").relative_to(folder).as_posix()
                read = [merge(read, name_of(parent.relative_to(folder).as_posix() or "table"), rel)]
            else:
                read = []
        read = read or [read_file(p, folder) for p in paths]
        for table in read:
            name = table.name
            while name in tables:
                name += "_"
            tables[name] = table
            table.name = name
    return tables


def sampled(paths: list[Path], folder: Path) -> list[Table]:
    """The files of a folder read in order until the sample holds SAMPLE_ROWS rows (a
    year of daily logs is not read whole to draft a group)."""
    read = []
    for path in paths:
        read.append(read_file(path, folder))
        if sum(t.rows for t in read) >= SAMPLE_ROWS:
            break
    return read


def names_of(path: Path) -> list[str]:
    """A file's column names, from its header or footer alone (JSON lines: none)."""
    fmt = SUFFIXES[path.suffix.lower()]
    try:
        if fmt == "parquet":
            return pq.read_schema(path).names
        if fmt == "json":
            return []
        with path.open(encoding="utf-8", newline="") as f:
            return f.readline().strip().split(",")
    except (OSError, UnicodeDecodeError, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot read ({str(exc).splitlines()[0]})") from None


def name_of(stem: str) -> str:
    return re.sub(r"\W+", "_", stem.lower()).strip("_") or "table"


def read_file(path: Path, folder: Path) -> Table:
    fmt = SUFFIXES[path.suffix.lower()]
    where = path.relative_to(folder).as_posix()
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file; nothing to infer from it")
    try:
        if fmt == "parquet":
            raw, sep = parquet_sample(path), ","
        elif fmt == "json":
            raw, sep = text_columns(json_rows(path)), ","
        else:
            raw, sep = csv_sample(path)
    except (OSError, UnicodeDecodeError, ValueError, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot read ({str(exc).splitlines()[0]})") from None
    columns, seen = {}, set()
    for name, values in raw.items():
        column, tokens = profile(values)
        columns[name] = column
        seen |= tokens
    rows = len(next(iter(raw.values()))) if raw else 0
    if rows == 0:
        raise DataError(f"{path}: no records; nothing to infer from it")
    table = Table(name_of(path.stem), where, fmt, rows, columns, sep)
    table.nulls = [t for t in NULL_TOKENS if t in seen] if fmt != "parquet" else []
    return table


def merge(parts: list[Table], name: str, path: str) -> Table:
    """Files of one table: columns as the first file has them, rows counted together."""
    first = parts[0]
    columns = {}
    for col, c in first.columns.items():
        types = {p.columns[col].type for p in parts}
        kind = c.type if len(types) == 1 else "string"
        values = pa.chunked_array(
            [
                p.columns[col].values.cast(pa.string())
                if kind == "string"
                else p.columns[col].values
                for p in parts
            ]
        ).combine_chunks()
        columns[col] = Column(
            kind,
            any(p.columns[col].nullable for p in parts),
            len(pc.unique(pc.drop_null(values))),
            values,
        )
    nulls = sorted({t for p in parts for t in p.nulls}, key=NULL_TOKENS.index)
    return Table(name, path, first.format, sum(p.rows for p in parts), columns, first.sep, nulls)


def parquet_sample(path: Path) -> dict[str, pa.Array]:
    batches = pq.ParquetFile(path).iter_batches(batch_size=SAMPLE_ROWS)
    batch = next(batches, None)
    if batch is None:
        return {}
    return {name: batch.column(i) for i, name in enumerate(batch.schema.names)}


def json_rows(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in itertools.islice(f, SAMPLE_ROWS):
            if line.strip():
                rows.append(json.loads(line))
    return rows


def text_columns(rows: list[dict]) -> dict[str, pa.Array]:
    names = list(dict.fromkeys(k for row in rows for k in row))
    return {
        n: pa.array([None if r.get(n) is None else str(r.get(n)) for r in rows], pa.string())
        for n in names
    }


def csv_sample(path: Path) -> tuple[dict[str, pa.Array], str]:
    """The first rows as text columns, and the separator; DataError without a header."""
    with path.open(encoding="utf-8", newline="") as f:
        head = "".join(itertools.islice(f, SAMPLE_ROWS + 1))
    lines = head.splitlines()
    sep = sniff_separator(lines[:50])
    rows = [split(line, sep) for line in lines if line.strip()]
    header, body = rows[0], rows[1:]
    if not has_header(header, body):
        raise DataError(
            f"{path}: its first line ({lines[0][:60]}) reads as data, not column names; "
            f"write the table's group by hand with header: false and its columns in order"
        )
    width = len(header)
    body = [r for r in body if len(r) == width]  # a malformed line is generate's to judge
    return {name: pa.array([r[i] for r in body], pa.string()) for i, name in enumerate(header)}, sep


def sniff_separator(lines: list[str]) -> str:
    try:
        sep = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv.Error:
        sep = ","
    # ", " as the separator: every separator in the sample is followed by a space.
    if all(line.count(sep + " ") == line.count(sep) > 0 for line in lines if line.strip()):
        return sep + " "
    return sep


def split(line: str, sep: str) -> list[str]:
    if len(sep) == 1:
        return next(csv.reader(io.StringIO(line), delimiter=sep))
    return line.split(sep)


def has_header(header: list[str], body: list[list[str]]) -> bool:
    """A header names columns: none of its fields parses as the numbers or times that
    fill that column below it, and no two are the same."""
    if len(set(header)) != len(header) or not body:
        return False
    for i, name in enumerate(header):
        below = [r[i] for r in body[:100] if i < len(r) and r[i] not in NULL_TOKENS]
        if (
            below
            and parse_type(pa.array(below)) != "string"
            and parse_type(pa.array([name])) != "string"
        ):
            return False
    return True


# --- profiling ----------------------------------------------------------------------------


def profile(values: pa.Array) -> tuple[Column, set[str]]:
    """A column's type, nullability and distinct count; the null tokens it holds."""
    tokens: set[str] = set()
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        text = pc.utf8_trim_whitespace(values)
        is_token = pc.fill_null(pc.is_in(text, pa.array(NULL_TOKENS)), False)
        tokens = set(pc.unique(pc.filter(text, is_token)).to_pylist())
        clean = pc.if_else(is_token, pa.scalar(None, pa.string()), text)
        kind = parse_type(pc.drop_null(clean))
        typed = cast(clean, kind)
    else:
        kind, typed = arrow_type(values.type), values
    present = pc.drop_null(typed)
    return Column(kind, typed.null_count > 0, len(pc.unique(present)), typed), tokens


def parse_type(text: pa.Array) -> str:
    """The narrowest of int, long, double, boolean, timestamp, date and string that all
    but MOSTLY of the values parse as (the rest are generate's to quarantine)."""
    if len(text) == 0:
        return "string"
    lower = pc.utf8_lower(text)
    if share(pc.is_in(lower, pa.array(["true", "false"]))) >= MOSTLY:
        return "boolean"
    if share(pc.match_substring_regex(text, r"^[+-]?\d+$")) >= MOSTLY:
        ints = pc.cast(
            pc.filter(text, pc.match_substring_regex(text, r"^[+-]?\d{1,18}$")), pa.int64()
        )
        big = max(abs(pc.min(ints).as_py() or 0), abs(pc.max(ints).as_py() or 0))
        return "int" if big < 2**31 else "long"
    if share(pc.match_substring_regex(text, NUMBER)) >= MOSTLY:
        return "double"
    if share(pc.match_substring_regex(text, DATE.pattern)) >= MOSTLY:
        return "date"
    if share(pc.match_substring_regex(text, TIMESTAMP.pattern)) >= MOSTLY:
        return "timestamp"
    return "string"


def share(hits: pa.Array) -> float:
    return pc.sum(hits).as_py() / len(hits) if len(hits) else 0.0


def arrow_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "long" if t.bit_width > 32 else "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "double"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    return "string"


def cast(text: pa.Array, kind: str) -> pa.Array:
    """Text as `kind`; a value that does not parse becomes null."""
    pattern = {"int": r"^[+-]?\d{1,18}$", "long": r"^[+-]?\d{1,18}$", "double": NUMBER}.get(kind)
    if pattern is None:
        return text
    ok = pc.fill_null(pc.match_substring_regex(text, pattern), False)
    target = pa.float64() if kind == "double" else pa.int64()
    return pc.cast(pc.if_else(ok, text, pa.scalar(None, pa.string())), target)


# --- keys and joins -------------------------------------------------------------------------


def find_key(table: Table) -> list[str]:
    """A column whose values are unique and present (or, failing that, a pair of them);
    [] when there is none."""
    candidates = [
        n
        for n, c in table.columns.items()
        if not c.nullable and c.type not in ("double", "boolean")
    ]
    unique = [n for n in candidates if table.columns[n].distinct >= MOSTLY * table.rows]
    if unique:
        return [min(unique, key=lambda n: (not n.lower().endswith("id"), candidates.index(n)))]
    for a, b in itertools.combinations(candidates, 2):
        pairs = pa.table({"a": table.columns[a].values, "b": table.columns[b].values})
        if pairs.group_by(["a", "b"]).aggregate([]).num_rows >= MOSTLY * table.rows:
            return [a, b]
    return []


@dataclass(frozen=True)
class Join:
    table: str
    key: list[str]
    base_key: list[str]


def find_joins(base: Table, tables: dict[str, Table]) -> list[Join]:
    """Each other keyed table whose key holds the values of base columns (by the same
    name first, else any column of a fitting type)."""
    joins = []
    for other in tables.values():
        if other is base or not other.key:
            continue
        match = [matching_column(base, other, k) for k in other.key]
        if None in match or len(set(match)) != len(match) or match == base.key:
            continue  # keyed by the base's own key: one row per example, as labels are
        if len(match) > 1 and not tuples_contained(base, match, other):
            continue
        joins.append(Join(other.name, list(other.key), match))
    return joins


def matching_column(base: Table, other: Table, key: str) -> str | None:
    wanted = other.columns[key]
    keys = pc.unique(pc.drop_null(wanted.values))
    names = [key] + [n for n in base.columns if n != key]
    for name in names:
        column = base.columns.get(name)
        if column is None or column.type != wanted.type:
            continue
        present = pc.drop_null(column.values)
        if len(present) and pc.sum(pc.is_in(present, keys)).as_py() >= CONTAINED * len(present):
            return name
    return None


def tuples_contained(base: Table, columns: list[str], other: Table) -> bool:
    probe = pa.table({k: base.columns[c].values for k, c in zip(other.key, columns, strict=True)})
    probe = probe.drop_null()
    keys = pa.table({k: other.columns[k].values for k in other.key}).drop_null()
    keys = keys.group_by(other.key).aggregate([])
    keys = keys.append_column("_hit", pa.array([True] * keys.num_rows))
    joined = probe.join(keys, other.key, join_type="left outer")
    return probe.num_rows > 0 and joined["_hit"].null_count <= (1 - CONTAINED) * probe.num_rows


# --- the draft ------------------------------------------------------------------------------


def render(folder: Path, base: Table, tables: dict[str, Table], joins: list[Join]) -> str:
    """The group as YAML, with a comment where a choice was made and a QUESTION where
    none could be."""
    joined = {j.table for j in joins}
    time, unit = time_column(base)
    binary = [n for n, c in base.columns.items() if c.distinct == 2 and n not in base.key]
    lookups = [
        (t, n)
        for t in tables.values()
        if t.name not in joined and t is not base and keyed_by_base(t, base)
        for n, c in t.columns.items()
        if c.distinct == 2
    ]
    lines = [
        f"# Drafted by `python -m ctrpipe infer --input {folder}` from up to "
        f"{SAMPLE_ROWS:,} rows of each file.",
        "# Check every line. Replace each value that starts with '??': `make params` refuses",
        "# the group until none is left.",
        "source: files",
        f"input_dir: {dump(str(folder))}",
        "tables:",
    ]
    for table in sorted(tables.values(), key=lambda t: t is not base):
        lines += table_lines(table)
    lines += [f"base: {dump(base.name)}  # one row per example: the table the others join to"]
    if time:
        others = [n for n, c in base.columns.items() if c.type in ("timestamp", "date")]
        lines += [f"time: {time}  # time candidates: {', '.join(others) or time}"]
        if unit:
            lines += [f"time_unit: {unit}"]
    else:
        lines += ["# No timestamp, date or year column: split by a hash of the id."]
    if joins:
        lines += ["# Where a column's values fall inside another table's key:", "joins:"]
        for j in joins:
            spec = {"table": j.table, "key": one(j.key)}
            if j.base_key != j.key:
                spec["base_key"] = one(j.base_key)
            lines.append(f"  - {dump(spec)}")
    candidates = [*binary, *(f"{n} of table {t.name} (add table: {t.name})" for t, n in lookups)]
    question = (
        f"{QUESTION}which column is the label (two values: which is positive)? "
        f"candidates: {', '.join(candidates) or 'none with two values'}"
    )
    lines += ["label:", f"  column: {dump(question)}", "  positive: [1]"]
    skip = {*binary, *base.key, *([time] if time else [])}
    categorical, numeric = feature_columns(base, tables, joins, skip)
    leak = f"{QUESTION}remove every column known only after the label (it leaks), then this line"
    lines += [
        "features:",
        f"  categorical: {dump([leak, *categorical])}",
        f"  numeric: {dump(numeric)}",
        "slices: []  # feature columns to report by, e.g. a region",
    ]
    lines += split_lines(base, time)
    return "\n".join(lines) + "\n"


def table_lines(table: Table) -> list[str]:
    out = [f"  {dump(table.name)}:", f"    path: {dump(table.path)}"]
    if table.format == "csv" and table.sep != ",":
        out.append(f"    sep: {dump(table.sep)}")
    if table.key:
        out.append(
            f"    key: {dump(one(table.key))}  # unique in the sample (a repeat is quarantined)"
        )
    if table.nulls and table.nulls != [""]:
        out.append(f"    null_values: {dump(table.nulls)}  # seen in the sample")
    out.append("    columns:")
    for name, c in table.columns.items():
        spec = {"type": c.type} if c.nullable else {"type": c.type, "nullable": False}
        out.append(f"      {dump(name)}: {dump(spec)}")
    return out


def keyed_by_base(table: Table, base: Table) -> bool:
    """A table of one row per base record (most of its key's values are the base's key):
    where labels live when they arrive apart."""
    if len(table.key) != 1 or len(base.key) != 1:
        return False
    mine = pc.drop_null(table.columns[table.key[0]].values)
    theirs = pc.unique(pc.drop_null(base.columns[base.key[0]].values))
    return len(mine) > 0 and share(pc.is_in(mine, theirs)) >= CONTAINED


def time_column(base: Table) -> tuple[str | None, str | None]:
    for kind in ("timestamp", "date"):
        for name, c in base.columns.items():
            if c.type == kind and not c.nullable:
                return name, None
    for name, c in base.columns.items():
        years = c.values
        if (
            c.type == "int"
            and "year" in name.lower()
            and len(pc.drop_null(years))
            and 1900 <= pc.min(years).as_py()
            and pc.max(years).as_py() <= 2100
        ):
            return name, "year"
    return None, None


def feature_columns(
    base: Table, tables: dict[str, Table], joins: list[Join], skip: set[str]
) -> tuple[list[str], list[str]]:
    """Low-cardinality text as categorical, numbers as numeric: the base's columns, then
    each join's (renamed <table>_<column> where the name is taken, as generate does)."""
    taken = set(base.columns)
    named = [(n, c) for n, c in base.columns.items() if n not in skip]
    for j in joins:
        other = tables[j.table]
        for column, c in other.columns.items():
            if column in j.key:
                continue
            name = joined_name(j.table, column, taken)
            taken.add(name)
            named.append((name, c))
    categorical = [
        n for n, c in named if c.type in ("string", "boolean") and c.distinct <= CATEGORICAL_MAX
    ]
    numeric = [n for n, c in named if c.type in ("int", "long", "double")]
    return categorical, numeric


def split_lines(base: Table, time: str | None) -> list[str]:
    if time is None:
        return ["split: {by: hash, validation_fraction: 0.2, golden_fraction: 0.1, seed: 1}"]
    values = base.columns[time].values
    if base.columns[time].type == "int":  # years
        years = sorted(set(pc.drop_null(values).to_pylist()))
        cut = years[max(1, int(len(years) * 0.7)) - 1] + 1
        start, end = years[-1], years[-1] + 1
        valid, golden = f"{cut}-01-01", {"start": f"{start}-01-01", "end": f"{end}-01-01"}
    else:
        stamps = (
            pc.cast(pc.drop_null(values), pa.timestamp("s"))
            if values.type != pa.timestamp("s")
            else pc.drop_null(values)
        )
        q = pc.quantile(pc.cast(stamps, pa.int64()), q=[0.7, 0.9]).to_pylist()
        top = pc.max(pc.cast(stamps, pa.int64())).as_py()
        day = 86400
        valid_s, golden_s = int(q[0]) // day * day, int(q[1]) // day * day
        valid = iso(valid_s)
        golden = {"start": iso(golden_s), "end": iso((top // day + 1) * day)}
    return [
        "# By time, from the sample: validation from its 70th percentile, a golden window",
        "# from the 90th; move them to where your data has a boundary.",
        "split:",
        "  by: time",
        f"  validation_start: {dump(valid)}",
        f"  golden: {dump(golden)}",
    ]


def iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d")


def one(keys: list[str]):
    return keys[0] if len(keys) == 1 else keys


def dump(value) -> str:
    """A value as one line of flow-style YAML."""
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
        .strip()
        .removesuffix("\n...")
        .removesuffix("...")
        .strip()
    )
