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
    spec = simulate.default_drift(rows, schema, gain)
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
    assert simulate.default_drift(rows, schema, gain) == spec  # deterministic


def test_a_drift_naming_an_unknown_feature_is_refused(packages):
    schema = package.load(packages[0]["a"]).schema
    with pytest.raises(ConfigError, match=r"simulate.drift: 'browser' is not a feature"):
        simulate.check_drift({"browser": {"set": "x"}}, schema)
    simulate.check_drift({}, schema)
