"""Generate on a standalone cluster gives the same bytes as local mode."""

from __future__ import annotations

import pytest

from tests.support import tinyraw
from tests.support.spark_cluster import standalone_cluster
from tests.support.stages import SPARK, generate, tiny_params

pytestmark = pytest.mark.slow

OUTPUTS = [
    "out/train.parquet",
    "out/validation.parquet",
    "out/golden.parquet",
    "out/features.json",
    "quarantine/impressions.parquet",
    "quarantine/clicks.parquet",
    "metrics.json",
]


def test_generate_on_a_standalone_cluster_matches_local_mode(tmp_path):
    raw = tinyraw.write(tmp_path / "raw", dirty=True)
    dirty_ok = {"quality": {"max_bad_fraction": 0.5}}
    local = (
        generate(tiny_params(**dirty_ok), tmp_path / "local", raw)
        if (tmp_path / "local").mkdir() is None
        else None
    )
    assert local.returncode == 0, local.stderr[-3000:]

    (tmp_path / "cluster").mkdir()
    (tmp_path / "spark").mkdir()
    with standalone_cluster(tmp_path / "spark") as master:
        params = tiny_params(**dirty_ok)
        params["spark"] = {**SPARK, "master": master}
        remote = generate(params, tmp_path / "cluster", raw)
    assert remote.returncode == 0, remote.stderr[-3000:]
    for name in OUTPUTS:
        assert (tmp_path / "cluster" / name).read_bytes() == (
            tmp_path / "local" / name
        ).read_bytes(), name
