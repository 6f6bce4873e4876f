"""Any tabular data through config alone: composite and renamed join keys, clashing
column names, null tokens, tables spread over files, a label in its own table, time as a
year or no time at all. Each dataset is written by tests/support and read as a user's."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import xgboost as xgb

from ctrpipe import config
from ctrpipe.data import dataset, features, split
from ctrpipe.data.settings import Data
from ctrpipe.model import encoding, metrics
from tests.support import census, loans_by_year, retail

pytestmark = pytest.mark.integration


def parse(raw: dict) -> Data:
    return config.parse({"data": raw}).section("data", Data)


@pytest.fixture(scope="module")
def retail_built(spark, tmp_path_factory):
    folder = retail.write(tmp_path_factory.mktemp("retail"))
    data = parse(retail.data_config(folder))
    built = dataset.build(spark, data, folder)
    return data, built, built.rows.toPandas()


def test_joins_keep_one_row_per_good_order_and_both_regions(retail_built):
    data, built, rows = retail_built
    orders = built.stats["tables"]["orders"]
    assert len(rows) == orders["records"] - orders["bad"]  # no join multiplied a row
    assert rows["order_id"].is_unique
    # The store's region, under the table's name, beside the customer's.
    assert {"region", "stores_region"} <= set(rows.columns)
    assert (rows["region"] != rows["stores_region"]).any()
    # The weather by (shop, hour): found for all but the few store hours it lacks.
    assert 0 < rows["temp"].isna().mean() < 0.06
    # "NA" and "" are nulls: a nullable number keeps its row with a missing value.
    assert rows["discount"].isna().mean() > 0.5 and rows["rain"].isna().mean() > 0.5
    assert rows["size"].isna().any() and rows["weight_kg"].notna().all()


def test_bad_records_are_quarantined_with_their_file(retail_built):
    _, built, _ = retail_built
    bad = built.quarantine["orders"].toPandas()
    assert sorted(bad["reason"]) == [
        "bad_type:discount",
        "duplicate_key:order_id",
        "malformed_record",
    ]
    assert set(bad["_file"]) == {"orders/day-00.csv"}
    assert built.stats["tables"]["weather"]["bad"] == 0


def test_the_two_column_join_carries_the_signal(retail_built):
    """A model with the weather beats one without it by far: the join matters."""
    data, _, rows = retail_built
    names = features.feature_names(data)
    auc = {}
    for label, drop in (("with", []), ("without", ["temp", "rain"])):
        roles = {
            "id": "order_id",
            "time": "ts",
            "label": "label",
            "weight": "weight",
            "categorical": names["categorical"],
            "numeric": [n for n in names["numeric"] if n not in drop],
        }
        table = pa.Table.from_pandas(rows, preserve_index=False)
        train = table.filter(pa.compute.equal(table[split.SPLIT], "train"))
        valid = table.filter(pa.compute.equal(table[split.SPLIT], "validation"))
        schema = encoding.fit(train, roles, max_categories=50, min_count=5)
        booster = xgb.train(
            {"objective": "binary:logistic", "max_depth": 6, "eta": 0.2, "nthread": 2},
            xgb.DMatrix(schema.encode(train), train["label"].to_numpy()),
            num_boost_round=80,
        )
        p = booster.inplace_predict(schema.encode(valid))
        auc[label] = metrics.roc_auc(valid["label"].to_numpy(), p, np.ones(len(p)))
    assert auc["with"] > auc["without"] + 0.05 and auc["with"] > 0.65, auc


def test_a_single_headerless_table_in_two_files_splits_by_hash(spark, tmp_path):
    folder = census.write(tmp_path / "census")
    data = parse(census.data_config(folder))
    built = dataset.build(spark, data, folder)
    rows = built.rows.toPandas()
    people = built.stats["tables"]["people"]
    assert people["records"] == 4001 and people["reasons"] == {"malformed_record": 1}
    share = rows[split.SPLIT].value_counts(normalize=True)
    assert share["golden"] == pytest.approx(0.1, abs=0.03)
    assert share["validation"] == pytest.approx(0.2, abs=0.03)
    assert set(rows["workclass"]) == set(census.WORK)  # ", " split the values cleanly
    again = dataset.build(spark, data, folder).rows.toPandas()
    assert (again.set_index("row_id")[split.SPLIT] == rows.set_index("row_id")[split.SPLIT]).all()
    bad = built.quarantine["people"].toPandas()
    assert list(bad["_file"]) == ["people/part-2.data"]


def test_a_label_in_its_own_table_and_a_year_for_time(spark, tmp_path):
    folder = loans_by_year.write(tmp_path / "loans")
    data = parse(loans_by_year.data_config(folder))
    built = dataset.build(spark, data, folder)
    rows = built.rows.toPandas()
    applications = built.stats["tables"]["applications"]
    unlabelled = applications["reasons"].get("unlabelled", 0)
    assert 0 < unlabelled < 200 and applications["bad"] == unlabelled
    assert len(rows) == applications["records"] - unlabelled
    years = rows["year"].dt.year
    assert (rows["year"].dt.strftime("%m-%d %H:%M") == "01-01 00:00").all()
    assert set(years[rows[split.SPLIT] == "golden"]) == {2022}
    assert years[rows[split.SPLIT] == "train"].max() < 2020
    assert 0 < rows["label"].mean() < 0.5


def test_json_lines_with_epoch_seconds_null_tokens_and_trimmed_text(spark, tmp_path):
    """Events in JSON lines: time in epoch seconds, "N/A" for a missing score, text
    padded with spaces; and a CSV whose time is a date."""
    folder = tmp_path / "events"
    folder.mkdir()
    start = 1_767_225_600  # 2026-01-01 00:00:00 UTC
    lines = [
        {
            "id": f"e{i}",
            "at": start + i * 3600,
            "kind": f"  {'ab'[i % 2]}  ",
            "score": "N/A" if i % 3 == 0 else str(i / 10),
            "hit": i % 2,
        }
        for i in range(240)
    ]
    (folder / "events.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    raw = {
        "source": "files",
        "input_dir": str(folder),
        "tables": {
            "events": {
                "path": "events.jsonl",
                "key": "id",
                "trim": True,
                "null_values": ["N/A"],
                "columns": {
                    "id": {"type": "string", "nullable": False},
                    "at": {"type": "long", "nullable": False},
                    "kind": {"type": "string", "values": ["a", "b"]},
                    "score": {"type": "double"},
                    "hit": {"type": "int", "nullable": False},
                },
            }
        },
        "base": "events",
        "time": "at",
        "time_unit": "seconds",
        "label": {"column": "hit"},
        "features": {"categorical": ["kind"], "numeric": ["score"], "time": ["hour"]},
        "slices": [],
        "split": {
            "by": "time",
            "validation_start": "2026-01-07",
            "golden": {"start": "2026-01-09", "end": "2026-01-10"},
        },
    }
    built = dataset.build(spark, parse(raw), folder)
    rows = built.rows.toPandas().sort_values("id")
    assert built.stats["tables"]["events"]["bad"] == 0  # "  a  " trimmed, "N/A" a null
    assert set(rows["kind"]) == {"a", "b"} and rows["score"].isna().sum() == 80
    assert rows["at"].min() == pd.Timestamp("2026-01-01 00:00:00")
    assert (rows["hour"] == rows["at"].dt.hour).all()

    (folder / "days.csv").write_text(
        "id,day,x,hit\n"
        + "".join(f"d{i},2026-01-{1 + i % 12:02d},{i},{i % 2}\n" for i in range(120))
    )
    raw["tables"] = {
        "days": {
            "path": "days.csv",
            "key": "id",
            "columns": {
                "id": {"type": "string", "nullable": False},
                "day": {"type": "date", "nullable": False},
                "x": {"type": "double"},
                "hit": {"type": "int", "nullable": False},
            },
        }
    }
    raw.update(base="days", time="day", features={"numeric": ["x"]})
    del raw["time_unit"]
    days = dataset.build(spark, parse(raw), folder).rows.toPandas()
    assert set(days["day"].dt.strftime("%H:%M")) == {"00:00"}
    assert set(days[days[split.SPLIT] == "golden"]["day"].dt.day) == {9}
