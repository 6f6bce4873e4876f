"""The `data` group of params.yaml: the raw tables, how they relate, and what to make of
them. Read with ``config.load(path).section("data", Data)``.

Pydantic checks types and ranges; the cross-references (a feature naming a column no
table declares, a join on a missing table, key lists of different lengths) are checked
after. Either way the error is one line naming the key, e.g. ``params.yaml: data.joins.0.
base_key: 2 columns for the 1 of table 'stores' key``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ctrpipe.config import Strict
from ctrpipe.errors import ConfigError
from ctrpipe.fileio import FORMATS

# A key is one column or several; base_key lists the joined rows' columns in key's order.
Keys = str | list[str]
NUMBERS = ("int", "long", "double")
TIME_TYPES = ("timestamp", "date")


def as_list(keys: Keys | None) -> list[str]:
    return [] if keys is None else [keys] if isinstance(keys, str) else list(keys)


class Column(Strict):
    type: Literal["string", "int", "long", "double", "boolean", "timestamp", "date"]
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    values: list[str] | None = None


class Table(Strict):
    # A file, a folder or a glob (`impressions/*.csv`), relative to the source's folder:
    # a folder or a glob is one table, its files read in name order.
    path: str
    format: Literal["csv", "parquet", "json"] | None = None
    key: Keys | None = None
    header: bool = True  # CSV: False reads the declared columns, in order
    sep: str = Field(",", min_length=1)  # CSV; more than one character is fine
    trim: bool = False  # drop spaces around text values before reading them
    # Text values read as null (CSV and JSON lines); unset means [""]. Parquet has
    # nulls of its own, so it takes none.
    null_values: list[str] | None = None
    columns: dict[str, Column] = Field(min_length=1)

    @property
    def keys(self) -> list[str]:
        return as_list(self.key)

    @property
    def file_format(self) -> str:
        if self.format:
            return self.format
        suffix = Path(self.path).suffix.lower()
        if suffix not in FORMATS:
            raise ConfigError(
                f"table file '{self.path}': cannot tell its format from the extension; "
                f"set 'format' to csv, parquet or json"
            )
        return FORMATS[suffix]

    @property
    def nulls(self) -> list[str]:
        if self.file_format == "parquet":
            return []
        return [""] if self.null_values is None else list(self.null_values)

    @model_validator(mode="after")
    def _format_options(self):
        fmt = self.format or FORMATS.get(Path(self.path).suffix.lower())
        if fmt == "parquet" and self.null_values is not None:
            raise ValueError(
                "null_values: a Parquet table has nulls of its own; remove null_values"
            )
        if fmt != "csv" and fmt is not None and (not self.header or self.sep != ","):
            raise ValueError(f"header and sep apply to CSV tables, not {fmt}")
        missing = [k for k in self.keys if k not in self.columns]
        if missing:
            raise ValueError(f"key: no column '{missing[0]}' is declared")
        return self


class Join(Strict):
    # `key`, not `on`: YAML 1.1 reads a bare `on` as the boolean true.
    table: str
    key: Keys
    base_key: Keys | None = None  # the joined rows' columns, in key's order; default: key
    required: bool = False  # quarantine base rows with no match instead of leaving nulls

    @property
    def keys(self) -> list[str]:
        return as_list(self.key)

    @property
    def base_keys(self) -> list[str]:
        return as_list(self.base_key) or self.keys


class Label(Strict):
    """What the label is, one of three kinds:

    column    a column of the base table: `{column: clicked}`
    lookup    a column of a table keyed by the base record: `{column: repaid, table:
              outcomes}` (joined by the table's key and `base_key`, as a dimension is)
    event     a matching row of an event table within a window after the base record:
              `{table: clicks, key: event_id, time: click_ts, window_seconds: 3600}`
    """

    column: str | None = None
    positive: list[str | int | float | bool] = [1]
    threshold: float | None = None  # label = column > threshold, for numeric columns
    table: str | None = None
    base_key: Keys | None = None  # lookup: the base's columns for the table's key
    key: str | None = None  # event: the column both tables share
    time: str | None = None  # event: when the event happened
    window_seconds: int | None = Field(None, gt=0)  # event: how long after the record

    @property
    def kind(self) -> str:
        if self.table is None:
            return "column"
        return "lookup" if self.column is not None else "event"

    @model_validator(mode="after")
    def _one_kind(self):
        if self.column is None and self.table is None:
            raise ValueError(
                "set 'column' (a label column), 'column' and 'table' (a column of a "
                "table keyed by the record) or 'table' (label = a matching event)"
            )
        event = (self.key, self.time, self.window_seconds)
        if self.kind == "event" and None in event:
            raise ValueError("a label from events needs 'key', 'time' and 'window_seconds'")
        if self.kind != "event" and event != (None, None, None):
            raise ValueError("key, time and window_seconds belong to a label from events")
        if self.kind != "lookup" and self.base_key is not None:
            raise ValueError("base_key belongs to a label from a table's column")
        return self


class Features(Strict):
    categorical: list[str] = []
    numeric: list[str] = []
    time: list[Literal["hour", "day_of_week"]] = []


class History(Strict):
    keys: list[str] = []
    lag_seconds: int = Field(0, ge=0)
    recent_seconds: int = Field(86400, gt=0)
    prior_alpha: float = Field(1.0, gt=0)
    prior_beta: float = Field(30.0, gt=0)


class Quality(Strict):
    max_bad_fraction: float = Field(0.05, ge=0, le=1)


class Sample(Strict):
    negative_rate: float = Field(1.0, gt=0, le=1)
    seed: int = 0


class Golden(Strict):
    start: dt.datetime
    end: dt.datetime

    @model_validator(mode="after")
    def _ordered(self):
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("give times without a zone; all times are UTC")
        return self


class Split(Strict):
    """By time: validation from `validation_start` on, the `golden` window carved out
    first. By hash (for data without time): a hash of the record's id picks its split,
    the same on any machine or cluster; the golden fraction is carved out first."""

    by: Literal["time", "hash"]
    validation_start: dt.datetime | None = None
    golden: Golden | None = None
    validation_fraction: float | None = Field(None, gt=0, lt=1)
    golden_fraction: float | None = Field(None, gt=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _complete(self):
        time = {"validation_start": self.validation_start, "golden": self.golden}
        hashed = {
            "validation_fraction": self.validation_fraction,
            "golden_fraction": self.golden_fraction,
        }
        needed, foreign = (time, hashed) if self.by == "time" else (hashed, time)
        if missing := [k for k, v in needed.items() if v is None]:
            raise ValueError(f"a split by {self.by} needs {' and '.join(missing)}")
        if extra := [k for k, v in foreign.items() if v is not None]:
            raise ValueError(f"{', '.join(extra)}: not used by a split by {self.by}")
        if self.by == "hash" and self.validation_fraction + self.golden_fraction >= 1:
            raise ValueError("validation_fraction + golden_fraction must leave rows to train")
        if self.by == "time" and self.validation_start.tzinfo is not None:
            raise ValueError("validation_start: give a time without a zone; times are UTC")
        return self


class Synthetic(Strict):
    """The synthetic source's world (ctrpipe/data/sources/synthetic.py)."""

    rows: int = Field(gt=0)
    seed: int
    start: dt.date
    days: int = Field(gt=0)
    dirty_rate: float = Field(ge=0, lt=0.5)
    click_window_seconds: int = Field(gt=0)  # about 3% of clicks arrive later than this


class Source(Strict):
    """`files` (the user's tables from input_dir) or `{synthetic: {...}}`: a source's
    settings live under it, so ingest's params are the same key for every source."""

    synthetic: Synthetic | None = None

    @model_validator(mode="before")
    @classmethod
    def _named(cls, value):
        if value == "files":
            return {}
        if isinstance(value, dict) and set(value) == {"synthetic"}:
            return value
        raise ValueError(f"expected `files` or `{{synthetic: {{...}}}}` (got {value!r})")

    @property
    def name(self) -> str:
        return "files" if self.synthetic is None else "synthetic"


class Data(Strict):
    # Keys without a default are stage params in dvc.yaml, which DVC needs present.
    source: Source
    input_dir: str  # where the files source reads the user's tables (a dep of ingest)
    tables: dict[str, Table] = Field(min_length=1)
    base: str
    time: str | None = None  # no time: the split must be `by: hash`
    time_unit: Literal["year", "seconds"] | None = None  # for an int time column
    joins: list[Join] = []
    label: Label
    features: Features
    slices: list[str]  # feature columns evaluate, the gate and monitor slice by ([]: none)
    history: History = History()
    quality: Quality = Quality()
    sample: Sample = Sample()
    split: Split

    @model_validator(mode="after")
    def _references(self):
        check_references(self)
        return self


@dataclass(frozen=True)
class Joined:
    """One dimension column as the joined rows carry it."""

    table: str
    column: str  # as the table declares it
    name: str  # in the joined rows: the column, or <table>_<column> when taken


def joined_name(table: str, column: str, taken) -> str:
    """A dimension column's name in the joined rows: its own, or <table>_<column> where
    they have that name already (generate, the config check and infer all ask here)."""
    return column if column not in taken else f"{table}_{column}"


def joined_columns(data: Data) -> list[Joined]:
    """Every dimension column the joins add, in join order, renamed where the joined rows
    already have its name. Generate and the config check both read this."""
    names = set(data.tables[data.base].columns)
    out = []
    for join in data.joins:
        table = data.tables[join.table]
        for column in table.columns:
            if column in join.keys:
                continue
            name = joined_name(join.table, column, names)
            out.append(Joined(join.table, column, name))
            names.add(name)
    return out


def check_references(data: Data) -> None:
    """Every name the spec uses must be declared by a table, with a fitting type."""
    tables = data.tables

    def need_table(key: str, name: str) -> Table:
        if name not in tables:
            raise ValueError(f"{key}: unknown table '{name}'; declared: {', '.join(tables)}")
        return tables[name]

    def need_column(key: str, columns: dict, where: str, column: str) -> Column:
        if column not in columns:
            raise ValueError(f"{key}: {where} declares no column '{column}'")
        return columns[column]

    base = need_table("base", data.base)
    check_time(data, base)
    joined = dict(base.columns)
    joined_tables = set()
    for i, join in enumerate(data.joins):
        dim = need_table(f"joins.{i}.table", join.table)
        if join.table in joined_tables or join.table == data.base:
            raise ValueError(f"joins.{i}.table: table '{join.table}' is joined already")
        joined_tables.add(join.table)
        check_keys(f"joins.{i}", join.table, dim, join.keys, join.base_keys, joined)
        if join.required and not set(join.base_keys) <= set(base.columns):
            raise ValueError(
                f"joins.{i}.required: base_key must be columns of the base table "
                f"'{data.base}' for its records to be checked against '{join.table}'"
            )
        for column, declared in dim.columns.items():
            if column in join.keys:
                continue
            name = joined_name(join.table, column, joined)
            if name in joined:
                raise ValueError(
                    f"joins.{i}: column '{column}' of table '{join.table}' is taken, and "
                    f"so is '{name}'; rename one of them in its table"
                )
            joined[name] = declared

    check_label(data, base, joined)
    check_features(data, joined)


def check_time(data: Data, base: Table) -> None:
    if data.time is None:
        if data.split.by != "hash":
            raise ValueError("split: without data.time, split by hash (`by: hash`)")
        if data.history.keys or data.features.time:
            what = "history.keys" if data.history.keys else "features.time"
            raise ValueError(f"{what}: needs data.time; this data has no time column")
        if data.time_unit is not None:
            raise ValueError("time_unit: there is no time column to read in that unit")
        return
    column = base.columns.get(data.time)
    if column is None:
        raise ValueError(f"time: table '{data.base}' declares no column '{data.time}'")
    if column.type in TIME_TYPES and data.time_unit is not None:
        raise ValueError(f"time_unit: column '{data.time}' is a {column.type} already")
    if column.type in ("int", "long") and data.time_unit is None:
        raise ValueError(
            f"time_unit: column '{data.time}' is an {column.type}; say what it counts "
            f"(year or seconds)"
        )
    if column.type not in (*TIME_TYPES, "int", "long"):
        raise ValueError(
            f"time: column '{data.time}' must be a timestamp, a date or an int year or "
            f"epoch seconds, not {column.type}"
        )


def check_keys(
    key: str, name: str, table: Table, keys: list[str], base_keys: list[str], joined: dict
) -> None:
    """`keys` are the table's own key; `base_keys` the joined rows' columns, same types."""
    if sorted(table.keys) != sorted(keys):
        raise ValueError(
            f"{key}.key: table '{name}' must declare key: {keys} (its own key), so that "
            f"each record matches at most one of its rows"
        )
    if len(base_keys) != len(keys):
        raise ValueError(
            f"{key}.base_key: {len(base_keys)} columns for the {len(keys)} of table '{name}' key"
        )
    for ours, theirs in zip(base_keys, keys, strict=True):
        mine = joined.get(ours)
        if mine is None:
            raise ValueError(f"{key}.base_key: the joined rows have no column '{ours}'")
        other = table.columns[theirs].type
        if mine.type != other and {mine.type, other} != {"int", "long"}:
            raise ValueError(
                f"{key}.base_key: '{ours}' is {mine.type} but '{name}.{theirs}' is {other}"
            )


def check_label(data: Data, base: Table, joined: dict) -> None:
    label = data.label
    if label.kind == "event":
        events = data.tables.get(label.table)
        if events is None:
            raise ValueError(f"label.table: unknown table '{label.table}'")
        for where, columns, name in (
            ("base table", base.columns, data.base),
            ("table", events.columns, label.table),
        ):
            if label.key not in columns:
                raise ValueError(f"label.key: {where} '{name}' declares no column '{label.key}'")
        time = events.columns.get(label.time)
        if time is None or time.type != "timestamp":
            raise ValueError(f"label.time: '{label.table}.{label.time}' must be a timestamp")
        if data.time is None:
            raise ValueError("label: a label from events needs data.time")
        return
    if label.kind == "lookup":
        table = data.tables.get(label.table)
        if table is None:
            raise ValueError(f"label.table: unknown table '{label.table}'")
        if not table.keys:
            raise ValueError(f"label.table: table '{label.table}' needs a key to be looked up")
        check_keys(
            "label",
            label.table,
            table,
            table.keys,
            as_list(label.base_key) or table.keys,
            base.columns,  # the base's own columns: its records are checked against it
        )
        columns, where = table.columns, f"table '{label.table}'"
    else:
        columns, where = base.columns, f"the base table '{data.base}'"
    column = columns.get(label.column)
    if column is None or column.nullable:
        raise ValueError(
            f"label.column: {where} must declare '{label.column}' with nullable: false"
        )


def check_features(data: Data, joined: dict) -> None:
    for kind in ("categorical", "numeric"):
        for name in getattr(data.features, kind):
            if name not in joined:
                raise ValueError(
                    f"features.{kind}: no base or joined table declares a column '{name}'"
                )
            if kind == "numeric" and joined[name].type not in (*NUMBERS, "boolean"):
                raise ValueError(
                    f"features.numeric: column '{name}' has type "
                    f"{joined[name].type}; expected a number"
                )
    for key in data.history.keys:
        if key not in joined:
            raise ValueError(f"history.keys: no base or joined table declares '{key}'")
    features = set(data.features.categorical) | set(data.features.numeric)
    features |= set(data.features.time)
    for name in data.slices:
        if name not in features:
            raise ValueError(
                f"slices: '{name}' is not a feature; slices are categorical, numeric or "
                f"time features"
            )
