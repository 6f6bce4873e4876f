"""The model's input contract: vocabularies, the `other` code, missing values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ctrpipe.errors import DataError
from ctrpipe.model import encoding

pytestmark = pytest.mark.unit

ROLES = {
    "id": "id",
    "time": "ts",
    "label": "label",
    "weight": "weight",
    "categorical": ["device"],
    "numeric": ["price"],
}


def fitted(max_categories=10, min_count=1):
    train = pa.table(
        {
            "device": ["m", "m", "m", "d", "d", "t", None],
            "price": [1.0, 2.0, None, 4.0, 5.0, 6.0, 7.0],
        }
    )
    return encoding.fit(train, ROLES, max_categories, min_count)


def test_vocabulary_is_most_frequent_first_within_limits():
    assert fitted().categorical == {"device": ["m", "d", "t"]}
    assert fitted(max_categories=2).categorical == {"device": ["m", "d"]}
    assert fitted(min_count=2).categorical == {"device": ["m", "d"]}


def test_encode_maps_unknown_to_other_and_keeps_missing():
    schema = fitted(max_categories=2)
    x = schema.encode(pa.table({"price": [1.5, None, 3], "device": ["d", "ctv", None]}))
    assert x.dtype == np.float32 and schema.names == ["price", "device"]
    np.testing.assert_array_equal(x[:, 0], [1.5, np.nan, 3])
    np.testing.assert_array_equal(x[:, 1], [1, 2, np.nan])  # 2 is the `other` code


def test_schema_round_trips_through_json_keeping_the_input_order():
    roles = {**ROLES, "categorical": ["zone", "device"]}
    train = pa.table({"zone": ["b", "a"], "device": ["m", "d"], "price": [1.0, 2.0]})
    schema = encoding.fit(train, roles, 10, 1)
    loaded = encoding.FeatureSchema.from_json(schema.to_json())
    assert loaded == schema
    assert loaded.names == ["price", "zone", "device"]


@pytest.mark.parametrize(
    "table, message",
    [
        (pa.table({"price": [1.0]}), r"batch: column 'device' missing"),
        (pa.table({"price": ["x"], "device": ["m"]}), r"batch: column 'price' has type string"),
    ],
)
def test_bad_input_names_the_column(table, message):
    with pytest.raises(DataError, match=message):
        fitted().encode(table, source="batch")
