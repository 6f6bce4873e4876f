"""The skew check finds every difference between what the service looks up for a raw
record and generate's row for it: none on rows made the way generate makes them, and
each one planted, by feature."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ctrpipe.online.lookup import Lookup
from ctrpipe.serving import skew
from tests.support import snapshots

pytestmark = pytest.mark.integration


def test_rows_made_as_generate_makes_them_show_no_skew(packages):
    folders, _ = packages
    figures = skew.check(folders["a"], snapshots.SKEW_SAMPLE, snapshots.SKEW_GOLDEN)
    assert figures["rows_checked"] == 3
    assert (figures["rows_different"], figures["predictions_different"]) == (0, 0)
    assert figures["features_different"] == {}


def test_a_changed_value_is_skew_named_by_feature(packages):
    folders, _ = packages
    changed = snapshots.SKEW_GOLDEN.set_column(5, "position", pa.array([1.0, 1.0, 2.0, 3.0]))
    figures = skew.check(folders["a"], snapshots.SKEW_SAMPLE, changed)
    assert figures["rows_different"] == 1
    assert figures["features_different"] == {"position": 1}
    assert figures["predictions_different"] == 1  # the package predicts on position 3.0


def test_a_lookup_that_reads_another_table_is_caught(packages, monkeypatch):
    folders, _ = packages
    real = Lookup.features_of

    def off_by_one(self, record):
        row = real(self, record)
        return row | {"position": None if row["position"] is None else row["position"] + 1}

    monkeypatch.setattr(Lookup, "features_of", off_by_one)
    figures = skew.check(folders["a"], snapshots.SKEW_SAMPLE, snapshots.SKEW_GOLDEN)
    assert figures["rows_different"] == 2 and figures["features_different"] == {"position": 2}
