"""A data group as users write one: every mistake is one line naming its key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from ctrpipe import config
from ctrpipe.data.settings import Data, joined_columns
from ctrpipe.errors import ConfigError
from tests.support import census, loans_by_year, retail

pytestmark = pytest.mark.unit

RETAIL = retail.data_config(Path("ext"))


def parse(raw: dict) -> Data:
    return config.parse({"data": raw}).section("data", Data)


def changed(base: dict, edit) -> dict:
    raw = copy.deepcopy(base)
    edit(raw)
    return raw


def test_the_three_example_groups_parse():
    data = parse(RETAIL)
    assert [j.base_keys for j in data.joins] == [["shop"], ["product_sku"], ["shop", "hour"]]
    assert parse(census.data_config(Path("c"))).split.by == "hash"
    assert parse(loans_by_year.data_config(Path("l"))).label.kind == "lookup"


def test_a_clashing_dimension_column_is_kept_under_its_table_name():
    added = {(j.table, j.column): j.name for j in joined_columns(parse(RETAIL))}
    assert added[("stores", "region")] == "stores_region"
    assert added[("weather", "temp")] == "temp"
    assert ("weather", "hour") not in added  # a key column is the base's own


def set_in(path: str, value):
    def edit(raw):
        *parents, last = path.split(".")
        node = raw
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value

    return edit


def regions_joined_by_a_joined_column(raw: dict) -> None:
    raw["tables"]["regions"] = {
        "path": "regions.csv",
        "key": "name",
        "columns": {"name": {"type": "string"}, "manager": {"type": "string"}},
    }
    raw["joins"].append(
        {"table": "regions", "key": "name", "base_key": "stores_region", "required": True}
    )


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            set_in("joins.2.base_key", ["shop", "nope"]),
            r"joins.2.base_key: the joined rows have no column 'nope'",
        ),
        (
            set_in("joins.2.base_key", ["shop"]),
            r"joins.2.base_key: 1 columns for the 2 of table 'weather' key",
        ),
        (
            set_in("joins.2.key", ["store_id"]),
            r"joins.2.key: table 'weather' must declare key: \['store_id'\]",
        ),
        (
            set_in("joins.1.base_key", "hour"),
            r"joins.1.base_key: 'hour' is int but 'products.sku' is string",
        ),
        (
            set_in("tables.weather.key", ["store_id", "day"]),
            r"tables.weather.key: no column 'day' is declared",
        ),
        (set_in("slices", ["size", "nope"]), r"slices: 'nope' is not a feature"),
        (
            set_in("tables.products.null_values", ["NA"]),
            r"tables.products.null_values: a Parquet table has nulls of its own",
        ),
        (
            set_in("tables.products.sep", ";"),
            r"tables.products: header and sep apply to CSV tables, not parquet",
        ),
        (
            set_in("tables.orders.columns.stores_region", {"type": "string"}),
            r"joins.0: column 'region' of table 'stores' is taken, and so is 'stores_region'",
        ),
        (set_in("time", None), r"split: without data.time, split by hash"),
        (
            set_in("split", {"by": "hash", "validation_fraction": 0.2}),
            r"split: a split by hash needs golden_fraction",
        ),
        (
            lambda raw: raw["joins"].append(dict(raw["joins"][1])),
            r"joins.3.table: table 'products' is joined already",
        ),
        (
            regions_joined_by_a_joined_column,
            r"joins.3.required: base_key must be columns of the base table 'orders'",
        ),
    ],
)
def test_bad_relational_config_is_one_line_naming_the_key(edit, message):
    with pytest.raises(ConfigError, match=r"^params.yaml: data\." + message):
        parse(changed(RETAIL, edit))


def test_history_without_time_is_refused():
    raw = census.data_config(Path("c"))
    raw["history"] = {"keys": ["workclass"]}
    with pytest.raises(ConfigError, match=r"data.history.keys: needs data.time"):
        parse(raw)


def test_an_int_time_needs_its_unit():
    raw = loans_by_year.data_config(Path("l"))
    del raw["time_unit"]
    with pytest.raises(ConfigError, match=r"data.time_unit: column 'year' is an int; say what"):
        parse(raw)
