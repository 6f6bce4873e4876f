"""`python -m ctrpipe infer`: a drafted data group for a folder of files, its questions,
and `make params` refusing it until they are answered."""

from __future__ import annotations

import shutil

import pytest
import yaml

from ctrpipe import cli, config, params
from ctrpipe.data import infer
from ctrpipe.data.settings import Data
from ctrpipe.errors import ConfigError
from tests.conftest import ROOT
from tests.support import census, loans_by_year, retail

pytestmark = pytest.mark.unit


def answered(text: str, label: dict) -> dict:
    """The draft with its questions answered as a person would."""
    group = yaml.safe_load(text)
    group["label"] = label
    group["features"]["categorical"] = [
        c for c in group["features"]["categorical"] if not c.startswith(params.QUESTION)
    ]
    return group


def test_the_retail_draft_finds_keys_nulls_types_time_and_every_join(tmp_path):
    folder = retail.write(tmp_path / "retail", orders=3000)
    text = infer.draft(folder)
    group = yaml.safe_load(text)
    tables = group["tables"]
    assert tables["orders"]["path"] == "orders/*.csv" and tables["orders"]["key"] == "order_id"
    assert tables["weather"]["key"] == ["store_id", "hour"]
    assert tables["orders"]["columns"]["discount"]["type"] == "double"  # despite one "lots"
    assert tables["orders"]["columns"]["ts"] == {"type": "timestamp", "nullable": False}
    assert set(tables["orders"]["null_values"]) == {"", "NA"}
    assert "null_values" not in tables["products"]  # Parquet
    assert group["base"] == "orders" and group["time"] == "ts"
    assert group["joins"] == [
        {"table": "stores", "key": "code", "base_key": "shop"},
        {"table": "weather", "key": ["store_id", "hour"], "base_key": ["shop", "hour"]},
        {"table": "products", "key": "sku", "base_key": "product_sku"},
    ]
    assert group["label"]["column"].startswith("?? ") and "late" in group["label"]["column"]
    assert "stores_region" in group["features"]["categorical"]
    assert "late" not in group["features"]["categorical"] + group["features"]["numeric"]
    data = config.parse({"data": answered(text, {"column": "late", "positive": [1]})})
    assert data.section("data", Data).base == "orders"


def test_a_label_in_its_own_table_is_a_candidate_and_a_year_is_time(tmp_path):
    text = infer.draft(loans_by_year.write(tmp_path / "loans"))
    group = yaml.safe_load(text)
    assert group["time"] == "year" and group["time_unit"] == "year"
    assert "repaid of table outcomes (add table: outcomes)" in group["label"]["column"]
    assert "year" not in group["features"]["numeric"]
    label = {"column": "repaid", "table": "outcomes", "positive": [False]}
    data = config.parse({"data": answered(text, label)}).section("data", Data)
    assert data.label.kind == "lookup" and data.split.by == "time"


@pytest.mark.parametrize("case", ["empty", "unreadable", "headerless"])
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    if case == "unreadable":
        (folder / "broken.parquet").write_bytes(b"PAR1 not really")
    elif case == "headerless":
        census.write(tmp_path / "c")
        shutil.copy(tmp_path / "c" / "people" / "part-1.data", folder / "people.csv")
    out = tmp_path / "mine.yaml"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["infer", "--input", str(folder), "--out", str(out)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert {
        "empty": "no CSV, Parquet or JSON-lines file",
        "unreadable": "cannot read",
        "headerless": "reads as data, not column names",
    }[case] in err[0]
    assert not out.exists()


def test_make_params_refuses_a_drafted_group_until_its_questions_are_answered(tmp_path):
    root = tmp_path / "project"
    shutil.copytree(ROOT / "conf", root / "conf")
    folder = retail.write(tmp_path / "retail", orders=500)
    (root / "conf" / "data" / "mine.yaml").write_text(infer.draft(folder))
    with pytest.raises(
        ConfigError,
        match=r"params.yaml not written: data.label.column is a "
        r"question to answer in conf/: which column is",
    ):
        params.compose("params.yaml", ["data=mine"], root=root)
    assert not (root / "params.yaml").exists()
    group = answered(infer.draft(folder), {"column": "late", "positive": [1]})
    (root / "conf" / "data" / "mine.yaml").write_text(yaml.safe_dump(group))
    params.compose("params.yaml", ["data=mine"], root=root)
    assert config.load(root / "params.yaml").section("data", Data).label.column == "late"
