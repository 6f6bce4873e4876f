"""Shared fixtures and helpers: the project root, params built from the committed
params.yaml, stage arguments as dvc.yaml gives them, one local Spark session, and small
real models and packages built once per run."""

from __future__ import annotations

import copy
import os
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from ctrpipe import config, paths
from ctrpipe.data.settings import Data
from tests.support import models

ROOT = Path(__file__).resolve().parent.parent

# Tiny data does not repay HotSpot's optimizing compiler (C2): with C1 only, generate on
# the tiny preset took a third less CPU (45 against 67 CPU-s, paired runs, 2026-12-02),
# and the suite is CPU-bound on two cores. Tests only: the committed conf keeps C2 for
# real data.
QUICK_JVM = "-XX:TieredStopAtLevel=1"
QUICK_SPARK_CONF = {
    "spark.driver.extraJavaOptions": QUICK_JVM,
    "spark.executor.extraJavaOptions": QUICK_JVM,
}

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def stage_args(stage: str) -> list[str]:
    """A stage's arguments as dvc.yaml's `cmd:` gives them, with its ${paths.*} resolved:
    tests run a stage on exactly the paths DVC passes it."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    cmd = dvc["stages"][stage]["cmd"]
    for name, value in paths.declared().items():
        cmd = cmd.replace(f"${{paths.{name}}}", value)
    words = shlex.split(cmd)
    assert words[:3] == ["python", "-m", f"stages.{stage}"], cmd
    return words[3:]


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


def make_data(**changes) -> Data:
    """The committed data group with `changes`, checked."""
    return make_params(data=changes).section("data", Data)


@pytest.fixture(scope="session")
def spark():
    from ctrpipe.spark import session

    s = session(
        config.Spark(
            master="local[2]",
            driver_memory="1g",
            shuffle_partitions=2,
            broadcast_max_rows=10**6,
            slots_wait_seconds=0,
            conf=QUICK_SPARK_CONF,
        ),
        app="tests",
    )
    yield s
    s.stop()


@pytest.fixture(scope="session")
def tiny():
    """A small model on synthetic traffic: (schema, train, validation, model bytes)."""
    return models.train_tiny()


@pytest.fixture(scope="session")
def packages(tmp_path_factory):
    """Two real packages with different vocabularies, and a broken one; and the
    validation rows: ({"a", "b", "broken"} -> folder, validation)."""
    return models.build_packages(tmp_path_factory.mktemp("packages"))


TIERS = ("unit", "integration", "slow")


LONGEST = "tests/workflows/test_act.py"


def pytest_collection_modifyitems(items):
    """Each test has exactly one tier, so `-m unit` and friends partition the suite. The
    workflows' module, by far the longest, goes first: in `make test`'s two workers the
    rest runs beside it instead of after it."""
    items.sort(key=lambda item: item.nodeid.split("::")[0] != LONGEST)  # stable
    for item in items:
        found = {m.name for m in item.iter_markers() if m.name in TIERS}
        if len(found) != 1:
            raise pytest.UsageError(
                f"{item.nodeid}: mark it with exactly one of {TIERS} "
                f"(found {sorted(found) or 'none'})"
            )
