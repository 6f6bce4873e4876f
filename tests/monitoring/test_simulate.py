"""simulate's drift on any package: built from the package's own features when none is
configured, and a configured one naming what the package lacks is refused."""

from __future__ import annotations

import pytest

from ctrpipe.errors import ConfigError
from ctrpipe.model import package
from ctrpipe.monitoring import simulate
from tests.support.models import traffic

pytestmark = pytest.mark.unit


def test_the_default_drift_moves_the_first_categorical_and_the_top_numeric(packages):
    folders, _ = packages
    schema = package.load(folders["a"]).schema
    rows = traffic(3000, 4, sample=False)
    gain = simulate.model_gain(folders["a"])
    spec = simulate.default_drift(rows, schema, schema.names, gain)
    first, top = next(iter(schema.categorical)), max(schema.numeric, key=lambda n: gain.get(n, 0))
    assert set(spec) == {first, top}
    counts = {
        c["values"]: c["counts"]
        for c in rows.column(first).value_counts().to_pylist()
        if c["values"] in schema.categorical[first]
    }
    assert spec[first] == {"set": min(counts, key=counts.get), "fraction": 0.6}
    assert spec[top]["shift"] > 0
    moved = simulate.drifted(rows, spec, seed=1)
    share = moved.column(first).to_pylist().count(spec[first]["set"]) / moved.num_rows
    assert share > 0.55
    assert simulate.default_drift(rows, schema, schema.names, gain) == spec  # deterministic
    # Raw requests carry fewer fields: only those are moved.
    fields = [n for n in schema.names if n not in (first, top)]
    assert not {first, top} & set(simulate.default_drift(rows, schema, fields, gain))


def test_a_drift_naming_an_unknown_feature_is_refused(packages):
    schema = package.load(packages[0]["a"]).schema
    with pytest.raises(ConfigError, match=r"simulate.drift: 'browser' is not a feature"):
        simulate.check_drift({"browser": {"set": "x"}}, schema.names)
    simulate.check_drift({}, schema.names)


def test_a_shifted_integer_field_stays_an_integer():
    """A raw request's integer field (an hour) is moved and rounded, not sent as 13.9,
    which the service would refuse."""
    import pyarrow as pa

    rows = pa.table({"hour": pa.array([1, 5, None], pa.int64()), "price": [1.0, 2.0, 3.0]})
    moved = simulate.drifted(rows, {"hour": {"shift": 13.9}, "price": {"scale": 2.0}}, seed=1)
    assert moved.column("hour").type == pa.int64()
    assert moved.column("hour").to_pylist() == [15, 19, None]
    assert moved.column("price").to_pylist() == [2.0, 4.0, 6.0]
