"""features.history_at, the online snapshot's aggregates: for any key value and cut time,
exactly what add_history gave a training row of that value at that time."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from ctrpipe.data import features
from tests.conftest import make_data

pytestmark = pytest.mark.integration

START = dt.datetime(2026, 1, 1)


def labelled_rows(spark, data, n: int = 300):
    """Rows as generate hands them to add_history: a time, the history keys, a label.
    Times fall on a coarse grid so that many rows share one (ties are the hard case)."""
    rng = random.Random(3)
    records = [
        (
            f"e{i:04d}",
            START + dt.timedelta(minutes=30 * rng.randrange(200)),
            rng.choice(["u1", "u2", "u3", None]),
            rng.choice(["c1", "c2"]),
            rng.choice(["s1", "s2", "s3"]),
            int(rng.random() < 0.2),
        )
        for i in range(n)
    ]
    columns = ["event_id", data.time, *data.history.keys, features.LABEL]
    assert data.history.keys == ["user_id", "campaign_id", "slot_id"]
    return spark.createDataFrame(records, columns)


def test_a_probe_at_a_rows_time_gets_that_rows_aggregates_bit_for_bit(spark):
    data = make_data()
    rows = labelled_rows(spark, data)
    trained = features.add_history(rows, data).collect()
    for row in random.Random(5).sample(trained, 12):
        cut = row[data.time]
        online = features.history_at(rows, data, cut)
        for key in data.history.keys:
            if row[key] is None:
                continue
            (served,) = online[key].where(online[key][key] == row[key]).collect()
            for column in features.key_history_columns(key):
                assert served[column] == row[column], (key, row[key], cut, column)


def test_a_value_unseen_before_the_cut_gets_what_training_gave_a_first_sighting(spark):
    data = make_data()
    rows = labelled_rows(spark, data)
    first = rows.where(rows.user_id == "u2").orderBy(data.time).first()[data.time]
    (served,) = features.history_at(rows, data, first)["user_id"].where("user_id = 'u2'").collect()
    h = data.history
    assert served["hist_user_id_n"] == 0.0 and served["hist_user_id_recent"] == 0.0
    assert served["hist_user_id_ctr"] == h.prior_alpha / (h.prior_alpha + h.prior_beta)
