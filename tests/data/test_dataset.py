"""The generate library on a hand-written dataset: checks, label, history, splits."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctrpipe import fileio
from ctrpipe.data import dataset, split
from ctrpipe.data.settings import Data
from ctrpipe.errors import DataError
from ctrpipe.online import snapshot
from tests.conftest import make_data, make_params
from tests.support import tinyraw

pytestmark = pytest.mark.integration

TINY = {"data": {"sample": {"negative_rate": 1.0}, "quality": {"max_bad_fraction": 0.5}}}


def rows_by_id(built) -> dict:
    return {r["event_id"]: r.asDict() for r in built.rows.collect()}


def build_and_write(spark, params, raw, out):
    data = params.section("data", Data)
    built = dataset.build(spark, data, raw)
    built.stats["splits"], _ = dataset.write_splits(
        built, data, {s: out / f"{s}.parquet" for s in split.SPLITS}
    )
    return built


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    raw = tinyraw.write(tmp_path_factory.mktemp("raw"), dirty=True)
    return build_and_write(spark, make_params(**TINY), raw, tmp_path_factory.mktemp("out"))


def test_label_counts_clicks_inside_the_window_only(built):
    rows = rows_by_id(built)
    assert rows["e02"]["label"] == 1
    assert rows["e04"]["label"] == 0  # its click came two hours later
    assert rows["e01"]["label"] == 0
    assert sum(r["label"] for r in rows.values()) == 4


def test_history_sees_only_labels_final_before_the_row(built):
    rows = rows_by_id(built)
    # u1 at 04:00 sees events up to 03:00 (lag one hour): e01 (no click), e02 (click).
    assert rows["e03"]["hist_user_id_n"] == 2
    assert rows["e03"]["hist_user_id_ctr"] == pytest.approx((1 + 1.0) / (2 + 31.0))
    # at 02:00 only e01 is old enough; its own click never counts for itself
    assert rows["e02"]["hist_user_id_n"] == 1
    assert rows["e02"]["hist_user_id_ctr"] == pytest.approx(1.0 / 32.0)
    assert rows["e01"]["hist_user_id_n"] == 0
    # recent volume counts every earlier impression of the last day, not the row itself
    assert rows["e04"]["hist_user_id_recent"] == 3


def test_bad_records_are_quarantined_with_one_reason_each(built):
    reasons = built.stats["tables"]["impressions"]["reasons"]
    assert reasons == {
        "bad_type:bid_price": 1,
        "duplicate_key:event_id": 1,
        "malformed_record": 1,
        "null:user_id": 1,
        "out_of_range:bid_price": 1,
        "unknown_value:device": 1,
    }
    assert built.stats["tables"]["clicks"]["reasons"] == {
        "malformed_record": 1,
        "orphan:impressions": 1,
    }
    bad = built.quarantine["impressions"].collect()
    assert [r["reason"] for r in bad] == sorted(reasons)
    malformed = next(r for r in bad if r["reason"] == "malformed_record")
    assert malformed["_record"] == "e90,2026-01-01 01:00:00,u9"
    # the duplicate kept is the smaller record: the original e01 survives
    assert rows_by_id(built)["e01"]["floor_price"] == 0.1


def test_a_key_repeated_with_spaces_around_it_is_a_duplicate_when_trimmed(spark, tmp_path):
    """Keys are compared as the join reads them: with trim, " c1 " is c1, so the join
    does not give each c1 impression two rows."""
    raw = tinyraw.write(tmp_path / "raw")
    with (raw / "campaigns.csv").open("a") as f:
        f.write(" c1 ,a1,travel,100.0\n")
    params = make_params(data={"tables": {"campaigns": {"trim": True}}, **TINY["data"]})
    built = build_and_write(spark, params, raw, tmp_path / "out")
    assert built.stats["tables"]["campaigns"]["reasons"] == {"duplicate_key:campaign_id": 1}
    assert built.rows.count() == len(tinyraw.IMPRESSIONS)


def test_splits_by_time_with_a_fixed_golden_window(built):
    rows = rows_by_id(built)
    assert {e for e, r in rows.items() if r[split.SPLIT] == "golden"} == {"e09", "e10"}
    assert {e for e, r in rows.items() if r[split.SPLIT] == "validation"} == {"e07", "e08", "e11"}
    assert built.stats["splits"]["train"]["rows"] == 7


def test_each_split_lands_as_one_file_sorted_by_time_then_key(spark, tmp_path):
    raw = tinyraw.write(tmp_path / "raw", dirty=True)
    built = build_and_write(spark, make_params(**TINY), raw, tmp_path / "out")
    rows = rows_by_id(built)
    for name in split.SPLITS:
        table = pq.read_table(tmp_path / "out" / f"{name}.parquet")
        order = list(zip(table["ts"].to_pylist(), table["event_id"].to_pylist()))
        assert order == sorted(order)
        assert sorted(table["event_id"].to_pylist()) == sorted(
            e for e, r in rows.items() if r[split.SPLIT] == name
        )
        counts = built.stats["splits"][name]
        assert (counts["rows"], counts["positives"]) == (
            table.num_rows,
            sum(table["label"].to_pylist()),
        )


@pytest.mark.parametrize(
    ("keys", "cut"),
    [
        (["user_id", "slot_id"], None),  # base keys: history before the joins
        (["user_id", "advertiser_id"], dt.datetime(2026, 1, 12, 10, 30)),  # a dimension's
    ],
)
def test_probes_in_generates_pass_give_history_ats_snapshot_and_leave_the_splits(
    spark, tmp_path, keys, cut
):
    """The snapshot generate builds from probes among its own rows equals the one
    history_at builds from the labelled rows, byte for byte, and the probes change
    no split's bytes."""
    raw = tinyraw.write(tmp_path / "raw", dirty=True)
    data = make_params(data={**TINY["data"], "history": {"keys": keys}}).section("data", Data)
    outs = {name: {s: tmp_path / name / f"{s}.parquet" for s in split.SPLITS} for name in "ab"}
    plain = dataset.build(spark, data, raw)
    counts, none = dataset.write_splits(plain, data, outs["a"])
    probed = dataset.build(spark, data, raw, probe=True, cut=cut)
    assert probed.cut == (cut or dt.datetime(2026, 1, 14, 9, 0))
    assert dataset.write_splits(probed, data, outs["b"])[0] == counts
    for name in split.SPLITS:
        assert outs["a"][name].read_bytes() == outs["b"][name].read_bytes(), name
    history = dataset.write_splits(probed, data, {s: tmp_path / "c" / s for s in outs["a"]})[1]
    assert none == {} and sorted(history) == sorted(keys)
    from_probes = snapshot.build(probed.labelled, data, probed.cut, history)
    assert from_probes == snapshot.build(plain.labelled, data, probed.cut)
    assert history["user_id"]["user_id"].to_pylist() == ["u1", "u2", "u3", "u4"]


def test_sorted_parquet_merges_files_with_nulls_first(tmp_path):
    pq.write_table(pa.table({"t": [3, None], "k": ["b", "a"]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"t": [1, 3], "k": ["z", "a"]}), tmp_path / "b.parquet")
    fileio.write_sorted_parquet(
        [tmp_path / "a.parquet", tmp_path / "b.parquet"], tmp_path / "out.parquet", by=["t", "k"]
    )
    assert pq.read_table(tmp_path / "out.parquet").to_pydict() == {
        "t": [None, 1, 3, 3],
        "k": ["a", "z", "a", "b"],
    }


def test_joined_dimensions_and_time_features(built):
    row = rows_by_id(built)["e03"]
    assert (row["category"], row["position"], row["hour"]) == ("retail", 3.0, 4.0)


def test_negative_subsampling_keeps_positives_and_reweights(spark, tmp_path):
    raw = tinyraw.write(tmp_path)
    params = make_params(data={"sample": {"negative_rate": 0.5, "seed": 3}})
    rows = dataset.build(spark, params.section("data", Data), raw).rows.collect()
    train = [r for r in rows if r[split.SPLIT] == "train"]
    assert all(r["weight"] == 1.0 for r in train if r["label"] == 1)
    assert all(r["weight"] == 2.0 for r in train if r["label"] == 0)
    assert sum(r["label"] == 1 for r in train) == 2  # both train clicks kept
    assert all(r["weight"] == 1.0 for r in rows if r[split.SPLIT] != "train")


def test_too_many_bad_records_fail_naming_the_top_reason(spark, tmp_path):
    raw = tinyraw.write(tmp_path, dirty=True)
    with pytest.raises(
        DataError,
        match=r"impressions.csv: .* over data.quality.max_bad_fraction"
        r"=0.05; top reason: ",
    ):
        dataset.build(spark, make_data(quality={"max_bad_fraction": 0.05}), raw)


def test_single_class_label_is_refused(spark, tmp_path):
    no_clicks = [row[:6] + (None,) for row in tinyraw.IMPRESSIONS]
    raw = tinyraw.write(tmp_path, impressions=no_clicks)
    (raw / "clicks.jsonl").write_text(
        '{"click_id": "k1", "event_id": "e01", "click_ts": "2026-01-05 00:00:00"}\n'
    )
    with pytest.raises(DataError, match=r"label: only one class \(0\) in the train split"):
        build_and_write(spark, make_params(**TINY), raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing landed


def test_empty_golden_window_is_refused(spark, tmp_path):
    raw = tinyraw.write(tmp_path)
    params = make_params(data={"split": {"golden": {"start": "2027-01-01", "end": "2027-01-02"}}})
    with pytest.raises(DataError, match=r"golden split is empty"):
        build_and_write(spark, params, raw, tmp_path / "out")


@pytest.mark.parametrize("trim", [False, True], ids=["exact", "equal-once-trimmed"])
def test_base_without_a_key_gets_a_content_id_and_loses_exact_copies(spark, tmp_path, trim):
    raw = tinyraw.write(tmp_path / "raw")
    copy = tinyraw.impression_line(*tinyraw.IMPRESSIONS[2][:6])  # a copy of e03
    if trim:
        copy = ",".join(f" {value} " for value in copy.split(","))
    with (raw / "impressions.csv").open("a") as f:
        f.write(copy + "\n")
    table = {"key": None, "trim": trim}
    params = make_params(data={"tables": {"impressions": table}, **TINY["data"]})
    built = build_and_write(spark, params, raw, tmp_path / "out")
    assert built.key == dataset.ROW_ID
    assert built.stats["tables"]["impressions"]["reasons"] == {"duplicate_key:row_id": 1}
    assert built.stats["splits"]["train"]["rows"] == 7
