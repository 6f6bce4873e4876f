"""The `data` group of params.yaml: the raw tables, how they relate, and what to make of them.

Pydantic checks types and ranges; the cross-references (a feature naming a column that no
table declares, a join on a missing table) are checked after. Either way the error is one
line naming the key, e.g. ``params.yaml: data.rows: must be greater than 0 (got -5)``.
Read with ``config.load().section("data", Data)``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ctrpipe.config import Strict
from ctrpipe.errors import ConfigError
from ctrpipe.fileio import FORMATS


class Column(Strict):
    type: Literal["string", "int", "long", "double", "boolean", "timestamp"]
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    values: list[str] | None = None


class Table(Strict):
    path: str
    key: str | None = None
    format: Literal["csv", "parquet", "json"] | None = None
    sep: str = ","
    columns: dict[str, Column] = Field(min_length=1)

    @property
    def file_format(self) -> str:
        if self.format:
            return self.format
        suffix = Path(self.path).suffix.lower()
        if suffix not in FORMATS:
            raise ConfigError(
                f"table file '{self.path}': cannot tell its format from the "
                f"extension; set 'format' to csv, parquet or json"
            )
        return FORMATS[suffix]


class Join(Strict):
    # `key`, not `on`: YAML 1.1 reads a bare `on` as the boolean true.
    table: str
    key: str
    required: bool = False  # quarantine base rows with no match instead of leaving nulls


class Label(Strict):
    """Either a column of the joined rows or the existence of a matching event."""

    column: str | None = None
    positive: list[str | int | float | bool] = [1]
    threshold: float | None = None  # label = column > threshold, for numeric columns
    table: str | None = None
    key: str | None = None
    time: str | None = None
    window_seconds: int = Field(3600, gt=0)

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.column is None) == (self.table is None):
            raise ValueError(
                "set exactly one of 'column' (a label column) or 'table' "
                "(label = a matching row exists in that table)"
            )
        if self.table is not None and (self.key is None or self.time is None):
            raise ValueError("a label from a table needs 'key' (join key) and 'time'")
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


class Split(Strict):
    validation_start: dt.datetime


class Golden(Strict):
    start: dt.datetime
    end: dt.datetime

    @model_validator(mode="after")
    def _ordered(self):
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self


class Data(Strict):
    source: Literal["synthetic", "files"]
    rows: int = Field(1_000_000, gt=0)
    seed: int = 0
    start: dt.date = dt.date(2026, 1, 1)
    days: int = Field(14, gt=0)
    dirty_rate: float = Field(0.0, ge=0, lt=0.5)
    input_dir: str = "data/external"
    tables: dict[str, Table] = Field(min_length=1)
    base: str
    time: str
    joins: list[Join] = []
    label: Label
    features: Features
    history: History = History()
    quality: Quality = Quality()
    sample: Sample = Sample()
    split: Split
    golden: Golden

    @model_validator(mode="after")
    def _references(self):
        check_references(self)
        return self


def check_references(data: Data) -> None:
    """Every name the spec uses must be declared by a table, with a fitting type."""
    tables = data.tables

    def need_table(key: str, name: str) -> Table:
        if name not in tables:
            raise ValueError(f"{key}: unknown table '{name}'; declared: {', '.join(tables)}")
        return tables[name]

    def need_column(key: str, table: Table, table_name: str, column: str) -> Column:
        if column not in table.columns:
            raise ValueError(f"{key}: table '{table_name}' declares no column '{column}'")
        return table.columns[column]

    base = need_table("base", data.base)
    time = need_column("time", base, data.base, data.time)
    if time.type != "timestamp":
        raise ValueError(f"time: column '{data.time}' must have type timestamp, not {time.type}")

    joined = dict(base.columns)
    for i, join in enumerate(data.joins):
        dim = need_table(f"joins.{i}.table", join.table)
        need_column(f"joins.{i}.key", base, data.base, join.key)
        need_column(f"joins.{i}.key", dim, join.table, join.key)
        if dim.key != join.key:
            raise ValueError(
                f"joins.{i}.key: table '{join.table}' must declare key: {join.key}"
                " (its own key)"
                "so that each record matches at most one of its rows"
            )
        joined.update({c: t for c, t in dim.columns.items() if c != join.key})

    label = data.label
    if label.table is not None:
        events = need_table("label.table", label.table)
        need_column("label.key", events, label.table, label.key)
        need_column("label.key", base, data.base, label.key)
        if need_column("label.time", events, label.table, label.time).type != "timestamp":
            raise ValueError(f"label.time: column '{label.time}' must have type timestamp")
    elif label.column not in base.columns or base.columns[label.column].nullable:
        raise ValueError(
            f"label.column: the base table '{data.base}' must declare "
            f"'{label.column}' with nullable: false"
        )

    for kind in ("categorical", "numeric"):
        for name in getattr(data.features, kind):
            if name not in joined:
                raise ValueError(
                    f"features.{kind}: no base or joined table declares a column '{name}'"
                )
            if kind == "numeric" and joined[name].type in ("string", "timestamp"):
                raise ValueError(
                    f"features.numeric: column '{name}' has type "
                    f"{joined[name].type}; expected a number"
                )
    for key in data.history.keys:
        if key not in joined:
            raise ValueError(f"history.keys: no base or joined table declares '{key}'")
    if data.split.validation_start.tzinfo is not None or data.golden.start.tzinfo is not None:
        raise ValueError("split/golden: give times without a zone; all times are UTC")
