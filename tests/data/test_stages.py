"""The ingest and generate stages as a user runs them: exit codes, messages, outputs.

Each bad input must end in one line naming the file, column or key, a non-zero exit,
and no output written.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from tests.support import loans, tinyraw
from tests.support.stages import (
    SPARK,
    assert_nothing_written,
    error_line,
    generate,
    run_stage,
    tiny_params,
)

pytestmark = pytest.mark.integration


def test_files_source_end_to_end_on_a_foreign_schema(tmp_path):
    """Loan applications in CSV (;), JSON lines and Parquet, label from a status rule."""
    src = loans.write(tmp_path / "external")
    online = {"skew_rows": 50}
    params = {"seed": 1, "data": loans.data_config(src), "online": online, "spark": SPARK}
    ingest = run_stage("ingest", params, tmp_path, "--out", str(tmp_path / "raw"))
    assert ingest.returncode == 0, ingest.stderr
    assert (tmp_path / "raw" / "applications.csv").read_bytes() == (
        src / "applications.csv"
    ).read_bytes()

    proc = generate(params, tmp_path, tmp_path / "raw")
    assert proc.returncode == 0, proc.stderr[-3000:]
    schema = json.loads((tmp_path / "out" / "features.json").read_text())
    assert schema["id"] == "app_id" and schema["label"] == "label"
    assert "hist_customer_id_ctr" in schema["numeric"] and "income" in schema["numeric"]
    frames = {
        s: pq.read_table(tmp_path / "out" / f"{s}.parquet").to_pandas()
        for s in ("train", "validation", "golden")
    }
    assert sum(len(f) for f in frames.values()) == loans.N
    train = frames["train"]
    assert set(train["label"]) == {0, 1}
    assert train["applied_at"].max() < frames["validation"]["applied_at"].min()
    assert set(train.columns) >= {"region", "product_type", "rate", "day_of_week"}
    assert train["region"].notna().all()  # the required join matched every row
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["tables"]["applications"]["bad"] == 0


def test_missing_raw_file(tmp_path):
    raw = tinyraw.write(tmp_path / "in")
    (raw / "clicks.jsonl").unlink()
    line = error_line(generate(tiny_params(), tmp_path, raw))
    assert line == f"error: {raw / 'clicks.jsonl'}: file not found"
    assert_nothing_written(tmp_path)


def test_empty_source(tmp_path):
    raw = tinyraw.write(tmp_path / "in")
    (raw / "campaigns.csv").write_text("campaign_id,advertiser_id,category,daily_budget\n")
    line = error_line(generate(tiny_params(), tmp_path, raw))
    assert line.endswith("campaigns.csv: no records (only a header or nothing), expected data")
    assert_nothing_written(tmp_path)


def test_missing_column(tmp_path):
    raw = tinyraw.write(tmp_path / "in")
    (raw / "campaigns.csv").write_text("campaign_id,category,daily_budget\nc1,x,1\n")
    line = error_line(generate(tiny_params(), tmp_path, raw))
    assert line.endswith(
        "campaigns.csv: column 'advertiser_id' missing "
        "(header has: campaign_id, category, daily_budget)"
    )
    assert_nothing_written(tmp_path)


def test_column_of_the_wrong_type(tmp_path):
    raw = tinyraw.write(tmp_path / "in")
    table = pq.read_table(raw / "slots.parquet")
    table = table.set_column(2, "position", table.column("position").cast("string"))
    pq.write_table(table, raw / "slots.parquet")
    line = error_line(generate(tiny_params(), tmp_path, raw))
    assert line.endswith("slots.parquet: column 'position' has type string, expected int")
    assert_nothing_written(tmp_path)


def test_single_class_label(tmp_path):
    raw = tinyraw.write(tmp_path / "in", impressions=[r[:6] + (None,) for r in tinyraw.IMPRESSIONS])
    (raw / "clicks.jsonl").write_text(
        '{"click_id":"k","event_id":"e01","click_ts":"2026-01-09 00:00:00"}\n'
    )
    line = error_line(generate(tiny_params(), tmp_path, raw))
    assert "label: only one class (0) in the train split" in line
    assert_nothing_written(tmp_path)


def test_bad_config_value(tmp_path):
    line = error_line(
        run_stage(
            "ingest",
            tiny_params(source={"synthetic": {"rows": 0}}),
            tmp_path,
            "--out",
            str(tmp_path / "raw"),
        )
    )
    assert line == (
        f"error: {tmp_path / 'params.yaml'}: data.source.synthetic.rows: "
        f"Input should be greater than 0 (got 0)"
    )
    assert_nothing_written(tmp_path)


def test_unknown_source(tmp_path):
    line = error_line(
        run_stage("ingest", tiny_params(source="s3"), tmp_path, "--out", str(tmp_path / "raw"))
    )
    assert "data.source: expected `files` or `{synthetic: {...}}` (got 's3')" in line
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("problem", ["missing", "empty"])
def test_files_source_missing_or_empty_file(tmp_path, problem):
    src = loans.write(tmp_path / "external")
    if problem == "missing":
        (src / "customers.jsonl").unlink()
    else:
        (src / "customers.jsonl").write_text("")
    params = {"data": loans.data_config(src), "spark": SPARK}
    line = error_line(run_stage("ingest", params, tmp_path, "--out", str(tmp_path / "raw")))
    expected = "file not found" if problem == "missing" else "empty file, expected records"
    assert (
        line == f"error: {src / 'customers.jsonl'} (table 'customers' in data.tables): {expected}"
    )
    assert_nothing_written(tmp_path)
