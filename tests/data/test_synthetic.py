"""The synthetic source: byte-for-byte deterministic, learnable, and dirty on request."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from ctrpipe import config
from ctrpipe.data.settings import Data
from ctrpipe.data.sources import synthetic
from ctrpipe.errors import ConfigError
from tests.conftest import params_dict

pytestmark = pytest.mark.unit

TABLES = ("impressions", "clicks", "campaigns", "slots")
DIRTY_RATE = 0.06


SOURCE_KEYS = {"rows", "seed", "start", "days", "dirty_rate", "click_window_seconds"}


def make_data(**overrides) -> Data:
    """The default data group (the synthetic source), with source settings and other
    keys overridden."""
    raw = params_dict()["data"]
    raw["source"]["synthetic"].update({k: v for k, v in overrides.items() if k in SOURCE_KEYS})
    raw.update({k: v for k, v in overrides.items() if k not in SOURCE_KEYS})
    return config.parse({"data": raw}).section("data", Data)


def generate(out: Path, **overrides) -> tuple[Data, dict[str, int]]:
    data = make_data(**overrides)
    out.mkdir(parents=True, exist_ok=True)
    return data, synthetic.write(data, out)


def file_of(out: Path, data: Data, table: str) -> Path:
    return out / data.tables[table].path


def impression_lines(out: Path, data: Data) -> tuple[list[str], list[str]]:
    header, *lines = file_of(out, data, "impressions").read_text().splitlines()
    return header.split(","), lines


def load(out: Path, data: Data) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Impressions (well-formed lines only) and parseable clicks, as strings."""
    header, lines = impression_lines(out, data)
    rows = [line.split(",") for line in lines]
    impressions = pd.DataFrame([r for r in rows if len(r) == len(header)], columns=header)
    clicks = []
    for line in file_of(out, data, "clicks").read_text().splitlines():
        try:
            clicks.append(json.loads(line))
        except ValueError:
            pass
    return impressions, pd.DataFrame(clicks, columns=list(data.tables["clicks"].columns))


def labelled(impressions: pd.DataFrame, clicks: pd.DataFrame, window: int) -> pd.DataFrame:
    """Impressions with the click delay and the label (a click within the window)."""
    first = clicks.sort_values("click_ts").drop_duplicates("event_id")
    out = impressions.merge(first[["event_id", "click_ts"]], on="event_id", how="left")
    delay = pd.to_datetime(out["click_ts"]) - pd.to_datetime(out["ts"])
    out["delay"] = delay.dt.total_seconds()
    out["label"] = (out["delay"] <= window).astype(int)
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    data, counts = generate(out, rows=50_000, dirty_rate=0.0)
    impressions, clicks = load(out, data)
    slots = pq.read_table(file_of(out, data, "slots")).to_pandas()
    rows = labelled(impressions, clicks, data.label.window_seconds)
    return data, counts, out, rows, clicks, slots


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    out = tmp_path_factory.mktemp("dirty")
    data, counts = generate(out, rows=60_000, dirty_rate=DIRTY_RATE)
    return data, counts, out


def test_same_config_gives_the_same_bytes_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "CHUNK", 7_000)  # several chunks, the last one short
    runs = [generate(tmp_path / str(i), rows=30_000, dirty_rate=0.02) for i in range(2)]
    assert runs[0][1] == runs[1][1]
    for table in TABLES:
        first, second = (file_of(tmp_path / str(i), runs[i][0], table) for i in range(2))
        assert first.read_bytes() == second.read_bytes(), table


def test_another_seed_gives_other_data(tmp_path):
    seven, _ = generate(tmp_path / "a", rows=5_000, seed=7)
    eight, _ = generate(tmp_path / "b", rows=5_000, seed=8)
    for table in TABLES:
        assert (
            file_of(tmp_path / "a", seven, table).read_bytes()
            != file_of(tmp_path / "b", eight, table).read_bytes()
        ), table


def test_files_follow_the_declared_schema(clean):
    data, counts, out, *_ = clean
    declared = {name: list(table.columns) for name, table in data.tables.items()}
    header, lines = impression_lines(out, data)
    assert header == declared["impressions"]
    campaigns = file_of(out, data, "campaigns").read_text().splitlines()
    assert campaigns[0].split(",") == declared["campaigns"]
    clicks = file_of(out, data, "clicks").read_text().splitlines()
    assert list(json.loads(clicks[0])) == declared["clicks"]
    slots = pq.read_table(file_of(out, data, "slots"))
    assert slots.column_names == declared["slots"]
    assert slots.schema.field("position").type == pa.int32()
    assert set(slots["position"].to_pylist()) <= set(range(1, 7))
    assert counts == {
        "impressions": len(lines),
        "clicks": len(clicks),
        "campaigns": len(campaigns) - 1,
        "slots": slots.num_rows,
    }


def test_columns_follow_the_config_order(tmp_path):
    raw = params_dict()["data"]
    columns = raw["tables"]["impressions"]["columns"]
    reordered = dict(reversed(list(columns.items())))
    data, _ = generate(
        tmp_path,
        rows=2_000,
        tables={
            **raw["tables"],
            "impressions": {**raw["tables"]["impressions"], "columns": reordered},
        },
    )
    header, lines = impression_lines(tmp_path, data)
    assert header == list(reordered)
    assert re.fullmatch(r"[0-9a-f]{16}", lines[0].split(",")[-1])  # event_id comes last now


def test_click_rate_is_realistic(clean):
    rows = clean[3]
    assert 0.02 <= rows["label"].mean() <= 0.05


def test_clicks_follow_their_impression(clean):
    data, _, _, rows, clicks, _ = clean
    assert clicks["event_id"].isin(rows["event_id"]).all()
    delay = rows["delay"].dropna()
    assert len(delay) == len(clicks) and (delay >= 1).all()
    assert 30 <= delay.median() <= 120
    late = (delay > data.label.window_seconds).mean()
    assert 0.01 <= late <= 0.06  # clicks that arrive too late to count as labels


def test_clean_run_has_no_dirt(clean):
    data, counts, out, rows, clicks, _ = clean
    header, lines = impression_lines(out, data)
    assert all(line.count(",") == len(header) - 1 for line in lines)
    assert len(lines) == data.source.synthetic.rows == len(rows) and rows["event_id"].is_unique
    assert not (rows[header] == "").any().any()
    prices = rows[["floor_price", "bid_price", "clearing_price"]].astype(float)
    assert prices.min().min() >= 0 and prices.max().max() <= 50
    assert (prices["floor_price"] <= prices["clearing_price"]).all()
    assert (prices["clearing_price"] <= prices["bid_price"]).all()
    assert rows["bid_price"].str.fullmatch(r"\d+\.\d{4}").all()
    assert set(rows["device"]) == set(data.tables["impressions"].columns["device"].values)
    assert 10 <= rows["country"].nunique() <= 25
    pd.to_datetime(rows["ts"], format="%Y-%m-%d %H:%M:%S")
    assert len(clicks) == counts["clicks"]  # every click line parses


def test_dirty_run_has_each_kind_of_dirt(dirty):
    data, counts, out = dirty
    header, lines = impression_lines(out, data)
    fields = [line.split(",") for line in lines]
    width = np.array([len(f) for f in fields])
    whole = [f for f in fields if len(f) == len(header)]
    bids = pd.to_numeric(pd.Series([f[header.index("bid_price")] for f in whole]), errors="coerce")
    ids = pd.Series([f[0] for f in whole])
    found = {
        "truncated": ((width > 1) & (width < len(header))).sum(),
        "garbage": (width == 1).sum(),
        "duplicate": ids.duplicated().sum(),
        "null_user": sum(f[header.index("user_id")] == "" for f in whole),
        "text_bid": bids.isna().sum(),
        "bad_bid": ((bids < 0) | (bids > 50)).sum(),
    }
    expected = DIRTY_RATE / len(found) * data.source.synthetic.rows
    for kind, n in found.items():
        assert 0.6 * expected <= n <= 1.4 * expected, (kind, n, expected)
    copies = pd.Series([line for line in lines if line.count(",") == len(header) - 1])
    assert copies.duplicated().sum() == found["duplicate"]  # duplicates are exact copies
    assert counts["impressions"] == len(lines) == data.source.synthetic.rows + found["duplicate"]
    # Spread through the file, not piled at the end.
    bad_at = np.flatnonzero(width != len(header))
    assert (bad_at < len(lines) / 2).mean() == pytest.approx(0.5, abs=0.15)

    clicks = file_of(out, data, "clicks").read_text().splitlines()
    parsed = []
    for line in clicks:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pass
    expected = DIRTY_RATE / 2 * len(clicks)
    assert 0.5 * expected <= len(clicks) - len(parsed) <= 1.5 * expected  # malformed JSON
    known = set(ids)
    orphans = sum(c["event_id"] not in known for c in parsed)
    assert 0.5 * expected <= orphans <= 2.0 * expected  # plus clicks on garbage lines
    assert counts["clicks"] == len(clicks)


def test_data_carries_learnable_signal(clean):
    _, _, _, rows, _, slots = clean
    rows = rows.merge(slots, on="slot_id")
    by_position = rows.groupby("position")["label"].mean()
    assert by_position[1] > 2 * by_position[6]
    by_device = rows.groupby("device")["label"].mean()
    assert by_device["mobile"] > 1.5 * by_device["ctv"]
    rows["hour"] = rows["ts"].str[11:13]
    features = ["position", "device", "campaign_id", "slot_id", "hour"]
    x = OneHotEncoder(handle_unknown="ignore").fit_transform(rows[features])
    train = np.arange(len(rows)) < 0.7 * len(rows)
    model = LogisticRegression(C=0.3, max_iter=500).fit(x[train], rows["label"][train])
    auc = roc_auc_score(rows["label"][~train], model.predict_proba(x[~train])[:, 1])
    assert auc > 0.62


def test_traffic_is_heavy_tailed(clean):
    data, _, _, rows, _, _ = clean
    users = rows["user_id"].value_counts()
    assert users.head(len(users) // 100).sum() > 0.10 * len(rows)  # top 1% of users
    campaigns = rows["campaign_id"].value_counts()
    assert campaigns.head(len(campaigns) // 10).sum() > 0.3 * len(rows)
    assert len(users) < data.source.synthetic.rows / 5  # many users, most seen rarely


def test_small_run_has_both_classes(tmp_path):
    data, counts = generate(tmp_path, rows=2_000, days=3)
    impressions, clicks = load(tmp_path, data)
    rows = labelled(impressions, clicks, data.label.window_seconds)
    assert 0 < rows["label"].sum() < len(rows)
    ts = pd.to_datetime(rows["ts"])
    start = pd.Timestamp(data.source.synthetic.start)
    assert ts.min() >= start and ts.max() < start + dt.timedelta(days=3)


def test_a_schema_it_cannot_write_is_a_clear_error(tmp_path):
    raw = params_dict()["data"]
    columns = dict(raw["tables"]["clicks"]["columns"])
    columns["clicked_at"] = columns.pop("click_ts")
    tables = {**raw["tables"], "clicks": {**raw["tables"]["clicks"], "columns": columns}}
    raw["label"] = {**raw["label"], "time": "clicked_at"}
    data = config.parse({"data": {**raw, "tables": tables}}).section("data", Data)
    with pytest.raises(ConfigError, match=r"data\.tables\.clicks\.columns: .*click_ts"):
        synthetic.write(data, tmp_path)
