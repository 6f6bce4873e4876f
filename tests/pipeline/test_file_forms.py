"""The forms a user's files take, through `dvc repro generate` on one group file in
conf/data/: JSON lines with epoch seconds, null tokens and text padded with spaces
(tests/support/events.py); CSV files with a date for time, also trimmed
(tests/support/visits.py); a headerless CSV with a ", " separator in two files, split by
hash (tests/support/census.py). Only the data stages run: what they write is read back
and held against what the fixtures wrote."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from ctrpipe import paths
from ctrpipe.data.split import SPLIT, SPLITS
from tests.support import census, events, visits
from tests.support.project import SMALL, commit_project, copy_project, edit_conf, run, stage_runs

pytestmark = pytest.mark.slow

CASES = {
    # name: (module, records written, bad records as (reason, file))
    "events": (events, 2000 + len(events.BAD), events.BAD),
    "visits": (visits, 1400 + len(visits.BAD), visits.BAD),
    "census": (census, 4000 + 1, [("malformed_record", "people/part-2.data")]),
}


@dataclass
class Generated:
    name: str
    base: str
    stats: dict  # reports/generate/data.json
    key: str  # the id column of the feature rows
    splits: pd.DataFrame  # the three splits, each row with its SPLIT
    quarantine: pd.DataFrame  # the base table's bad records


@pytest.fixture(scope="module")
def generated(request, tmp_path_factory) -> Generated:
    """The case the test names (indirect parameter) after `dvc repro generate`; pytest
    keeps it, or its error, for the module."""
    return generate(tmp_path_factory.mktemp(request.param), request.param)


def generate(repo: Path, name: str) -> Generated:
    module = CASES[name][0]
    copy_project(repo)
    module.write(repo / "data" / "external")
    group = module.data_config(repo / "data" / "external")
    group["input_dir"] = "data/external"
    (repo / "conf" / "data" / f"{name}.yaml").write_text(yaml.safe_dump(group, sort_keys=False))
    edit_conf(repo, {**SMALL, "config.yaml": ("data: synthetic", f"data: {name}")})
    commit_project(repo, name)
    out = run(["dvc", "repro", "generate"], repo)
    assert stage_runs(out) == ["ingest", "generate"]
    splits = pd.concat(
        [
            pq.read_table(repo / getattr(paths, s.upper())).to_pandas().assign(**{SPLIT: s})
            for s in SPLITS
        ],
        ignore_index=True,
    )
    base = group["base"]
    return Generated(
        name=name,
        base=base,
        stats=json.loads((repo / paths.DATA_METRICS).read_text()),
        key=json.loads((repo / paths.FEATURES).read_text())["id"],
        splits=splits,
        quarantine=pq.read_table(repo / paths.QUARANTINE / f"{base}.parquet").to_pandas(),
    )


def assert_same(found: pd.Series, expected: pd.Series) -> None:
    """Equal value by value (by index), nulls where expected has them; else the first
    differences."""
    wrong = found.isna() != expected.isna()
    wrong |= found.notna() & (found != expected)
    assert not wrong.any(), (
        f"{found.name}: {int(wrong.sum())} values differ, e.g. "
        f"{list(zip(found[wrong].head(3), expected[wrong].head(3)))} (found, expected)"
    )


def naive_utc(column: pd.Series) -> pd.Series:
    column = pd.to_datetime(column)
    return column.dt.tz_convert(None) if column.dt.tz is not None else column


@pytest.mark.parametrize("generated", list(CASES), indirect=True)
def test_good_and_quarantined_records_add_up_to_those_written(generated):
    _, written, bad = CASES[generated.name]
    table = generated.stats["tables"][generated.base]
    assert table["records"] == written
    assert table["reasons"] == dict(Counter(reason for reason, _ in bad))
    # negative_rate 1.0: every good record is a row of one split
    assert (
        len(generated.splits)
        == written - len(bad)
        == sum(s["rows"] for s in generated.stats["splits"].values())
    )
    assert generated.splits[generated.key].is_unique


@pytest.mark.parametrize("generated", list(CASES), indirect=True)
def test_the_quarantine_names_the_file_and_reason_of_each_bad_record(generated):
    _, _, bad = CASES[generated.name]
    found = sorted(zip(generated.quarantine["reason"], generated.quarantine["_file"]))
    assert found == sorted(bad)


@pytest.mark.parametrize("generated", ["events"], indirect=True)
def test_events_json_lines_trimmed_with_null_tokens_and_epoch_seconds(generated):
    truth = pd.DataFrame(events.records()).set_index("id")
    rows = generated.splits.set_index("id").loc[truth.index]
    # trim: no value keeps the spaces the files put around it
    assert_same(rows["device"], truth["device"])
    assert_same(rows["user"], truth["user"])
    # "N/A" and JSON null: a nullable number keeps its record with a missing value
    assert truth["score"].isna().sum() > 400
    assert_same(rows["score"], truth["score"])
    # "-" in a column that allows no null: the record is quarantined as it came in
    null_user = generated.quarantine[generated.quarantine["reason"] == "null:user"]
    assert list(null_user["id"]) == ["e99991"] and list(null_user["user"]) == ["-"]
    # epoch seconds: each record's time is the fixture's, and the split follows it
    at = naive_utc(rows["at"])
    assert_same(at, pd.to_datetime(truth["at"], unit="s"))
    assert at.min() >= pd.Timestamp("2026-01-01") and at.max() < pd.Timestamp("2026-01-11")
    assert (rows["hour"] == at.dt.hour).all()
    expected = pd.Series("validation", index=at.index, name=SPLIT)
    expected[at < pd.Timestamp("2026-01-07")] = "train"
    expected[(at >= pd.Timestamp("2026-01-09")) & (at < pd.Timestamp("2026-01-10"))] = "golden"
    assert_same(rows[SPLIT], expected)
    assert rows[SPLIT].value_counts().min() > 150


@pytest.mark.parametrize("generated", ["visits"], indirect=True)
def test_visits_csv_with_a_date_for_time_trimmed_and_na_tokens(generated):
    truth = pd.DataFrame(visits.records()).set_index("visit_id")
    rows = generated.splits.set_index("visit_id").loc[truth.index]
    assert_same(rows["channel"], truth["channel"])
    assert truth["spend"].isna().sum() > 250
    assert_same(rows["spend"], truth["spend"])
    # each record's day is the fixture's, at midnight UTC, and the split follows it
    day = naive_utc(rows["day"])
    assert_same(day, pd.to_datetime(truth["day"]))
    assert set(day[rows[SPLIT] == "golden"].dt.day) == {12}
    assert set(day[rows[SPLIT] == "train"].dt.day) == set(range(1, 8))
    assert set(day[rows[SPLIT] == "validation"].dt.day) == {8, 9, 10, 11, 13, 14}
    bad_day = generated.quarantine[generated.quarantine["reason"] == "bad_type:day"]
    assert list(bad_day["day"]) == ["2026-01-32"]


@pytest.mark.parametrize("generated", ["census"], indirect=True)
def test_census_headerless_csv_with_a_two_character_separator_split_by_hash(generated):
    rows = generated.splits
    # ", " split the fields: no value starts with the separator's space
    assert set(rows["workclass"]) == set(census.WORK)
    assert set(rows["education"]) == set(census.EDUCATION)
    assert rows["age"].between(18, 79).all() and rows["hours"].between(10, 69).all()
    share = rows[SPLIT].value_counts(normalize=True)
    assert share["golden"] == pytest.approx(0.1, abs=0.03)
    assert share["validation"] == pytest.approx(0.2, abs=0.03)
    # The short line is kept as it came in, from the second file.
    bad = generated.quarantine.iloc[0]
    assert bad["_record"] == "77, private" and bad["_file"] == "people/part-2.data"
