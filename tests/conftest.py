"""Shared fixtures: one local Spark session, configs built from the committed params."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import pytest
import yaml

from ctrpipe import config

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def deep_update(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def params_dict(**changes) -> dict:
    """The committed params.yaml as a dict, with nested `changes` applied."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    return deep_update(raw, changes)


def make_params(**changes) -> config.Params:
    return config.parse(params_dict(**changes))


@pytest.fixture(scope="session")
def spark():
    from ctrpipe.spark import session

    s = session(config.Spark(master="local[2]", driver_memory="1g", shuffle_partitions=2),
                app="tests")
    yield s
    s.stop()
