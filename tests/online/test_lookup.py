"""The lookup turns a raw record into the features generate would make of it, from a
snapshot's tables; a bad record is refused naming its field; a snapshot is verified."""

from __future__ import annotations

import pytest

from ctrpipe.errors import DataError
from ctrpipe.online import store
from ctrpipe.online.lookup import FieldError, Lookup
from tests.conftest import make_data
from tests.support import snapshots

pytestmark = pytest.mark.unit

RECORD = {
    "event_id": "e1",  # a base column no feature reads: accepted, not used
    "ts": "2026-01-14T10:30:00Z",
    "user_id": "u1",
    "campaign_id": "c2",
    "slot_id": "s3",
    "device": "mobile",
    "country": "US",
    "floor_price": 1.25,
}
USERS = {"u1": (12.0, 3.0 / 42.0, 5.0)}
CAMPAIGNS = {"c2": (400.0, 0.031, 80.0)}
SLOTS = {"s3": (90.0, 0.05, 7.0)}


def tables() -> dict:
    return snapshots.dimensions() | {
        store.history_file("user_id"): snapshots.history("user_id", USERS),
        store.history_file("campaign_id"): snapshots.history("campaign_id", CAMPAIGNS),
        store.history_file("slot_id"): snapshots.history("slot_id", SLOTS),
    }


@pytest.fixture(scope="module")
def lookup(tmp_path_factory) -> Lookup:
    data = make_data(tables={"impressions": {"columns": {"user_id": {"nullable": True}}}})
    folder = snapshots.write(tmp_path_factory.mktemp("snapshot") / "s", data, tables())
    return Lookup(store.load(folder))


def test_a_raw_record_gets_its_joins_history_and_time_features(lookup):
    row = lookup.features_of(RECORD)
    assert row == {
        "device": "mobile",
        "country": "US",
        "campaign_id": "c2",
        "advertiser_id": "a0",
        "category": "retail",
        "slot_id": "s3",
        "publisher_id": "p0",
        "ad_size": "300x250",
        "site_category": "sport",
        "floor_price": 1.25,
        "position": 4.0,  # an int column, a numeric feature: a double, as generate casts
        "daily_budget": 300.0,
        "hour": 10.0,
        "day_of_week": 4.0,  # Spark's dayofweek: Sunday 1, so Wednesday 4
        "hist_user_id_n": 12.0,
        "hist_user_id_ctr": 3.0 / 42.0,
        "hist_user_id_recent": 5.0,
        "hist_campaign_id_n": 400.0,
        "hist_campaign_id_ctr": 0.031,
        "hist_campaign_id_recent": 80.0,
        "hist_slot_id_n": 90.0,
        "hist_slot_id_ctr": 0.05,
        "hist_slot_id_recent": 7.0,
    }
    assert list(row) == lookup.features  # the model's order: categorical, then numeric


def test_time_is_read_in_utc_and_sunday_is_one(lookup):
    row = lookup.features_of(RECORD | {"ts": "2026-01-04T01:15:00+02:00"})
    assert (row["hour"], row["day_of_week"]) == (23.0, 7.0)  # Saturday 23:15 UTC
    row = lookup.features_of(RECORD | {"ts": "2026-01-04 09:00:00"})  # naive: UTC
    assert (row["hour"], row["day_of_week"]) == (9.0, 1.0)


def test_unknown_values_get_what_training_gave_an_unseen_one(lookup):
    row = lookup.features_of(RECORD | {"user_id": "u-new", "campaign_id": "c-new"})
    # add_history's value for a first sighting: (0 + alpha) / (0 + alpha + beta), n 0
    assert row["hist_user_id_ctr"] == (0 + 1.0) / (0 + 1.0 + 30.0)
    assert (row["hist_user_id_n"], row["hist_user_id_recent"]) == (0.0, 0.0)
    # a campaign the dimension table lacks: the left join's nulls
    assert [row[c] for c in ("advertiser_id", "category", "daily_budget")] == [None] * 3
    assert row["campaign_id"] == "c-new"


def test_a_null_key_gets_null_aggregates_as_in_training(lookup):
    row = lookup.features_of(RECORD | {"user_id": None})
    assert [row[f"hist_user_id_{k}"] for k in ("n", "ctr", "recent")] == [None] * 3


BAD = [
    ({"ts": None}, "ts", "not nullable"),
    ({"ts": "yesterday"}, "ts", "not a time"),
    ({"ts": 1767225600}, "ts", "expected timestamp"),
    ({"campaign_id": 7}, "campaign_id", "expected string; got int"),
    ({"floor_price": "1.5"}, "floor_price", "expected double; got str"),
    ({"floor_price": True}, "floor_price", "expected double; got bool"),
    ({"floor_price": 10**400}, "floor_price", "out of range"),
    ({"campaign_id": None}, "campaign_id", "not nullable"),
    ({"flor_price": 1.0}, "flor_price", "unknown field"),
]


@pytest.mark.parametrize("change, field, message", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_a_bad_record_is_refused_naming_the_field(lookup, change, field, message):
    with pytest.raises(FieldError) as err:
        lookup.features_of(RECORD | change)
    assert (err.value.field, message in err.value.message) == (field, True), err.value.message


@pytest.mark.parametrize("field", ["ts", "user_id", "slot_id", "device"])
def test_a_missing_field_is_refused_by_name(lookup, field):
    record = {k: v for k, v in RECORD.items() if k != field}
    with pytest.raises(FieldError, match="missing") as err:
        lookup.features_of(record)
    assert err.value.field == field


def test_a_changed_snapshot_file_is_refused_naming_it(tmp_path):
    folder = snapshots.tiny(tmp_path / "s")
    name = store.dimension_file("slots")
    (folder / name).write_bytes((folder / name).read_bytes() + b"\0")
    with pytest.raises(DataError, match=f"{name}: sha256 mismatch"):
        store.load(folder)


def test_a_snapshot_without_a_table_its_spec_names_is_refused(tmp_path):
    folder = snapshots.write(tmp_path / "s", make_data(), snapshots.dimensions())
    with pytest.raises(DataError, match="names history.user_id.parquet, which it does not"):
        store.load(folder)


def test_a_snapshot_for_other_features_is_refused_for_the_model(tmp_path):
    lookup = Lookup(store.load(snapshots.tiny(tmp_path / "s")))
    lookup.check_model(["device", "campaign_id", "floor_price", "position"], "here")
    with pytest.raises(DataError, match=r"here: .*missing \['hour'\]"):
        lookup.check_model(["device", "campaign_id", "floor_price", "position", "hour"], "here")


@pytest.mark.parametrize(
    "column, unit, sent, hour, day",
    [
        ({"type": "long"}, "seconds", 1767574800, 1.0, 2.0),  # 2026-01-05 01:00 UTC, a Monday
        ({"type": "int"}, "year", 2026, 0.0, 5.0),  # 1 January 2026, a Thursday
        ({"type": "date"}, None, "2026-01-04", 0.0, 1.0),  # a Sunday
    ],
    ids=["epoch seconds", "year", "date"],
)
def test_the_time_is_read_as_generate_reads_its_column(tmp_path, column, unit, sent, hour, day):
    data = make_data(tables={"impressions": {"columns": {"ts": column}}}, time_unit=unit)
    folder = snapshots.write(tmp_path / "s", data, tables())
    row = Lookup(store.load(folder)).features_of(RECORD | {"ts": sent})
    assert (row["hour"], row["day_of_week"]) == (hour, day)
