"""The compiled model: parity with XGBoost, the library cache, and every refusal."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from ctrpipe.errors import ConfigError, DataError
from ctrpipe.model import onnx_export, package
from ctrpipe.serving import compiled
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def assert_matches(booster: xgb.Booster, model: compiled.Compiled, x: np.ndarray) -> None:
    expected = booster.inplace_predict(x)
    got = model.predict(x)
    assert got.dtype == np.float32 and got.shape == (len(x),)
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    assert diff.max() <= onnx_export.TOLERANCE, f"row {diff.argmax()}: {diff.max():.3g}"


def train(x: np.ndarray, y: np.ndarray, rounds: int = 40, **params) -> xgb.Booster:
    params = {
        "objective": "binary:logistic",
        "max_depth": 4,
        "eta": 0.3,
        "nthread": 1,
        "seed": 0,
        **params,
    }
    return xgb.train(params, xgb.DMatrix(x, y), rounds)


@pytest.fixture(scope="module")
def data():
    """8 numeric columns with NaN, 4 categorical codes (0..11, 12 = other) as floats."""
    rng = np.random.default_rng(0)
    n = 6000
    numeric = rng.normal(size=(n, 8)).astype(np.float32)
    numeric[rng.random(numeric.shape) < 0.15] = np.nan
    codes = rng.integers(0, 13, size=(n, 4)).astype(np.float32)
    x = np.hstack([numeric, codes])
    logit = (
        -1
        + np.nan_to_num(numeric[:, 0])
        + np.isnan(numeric[:, 1]) * 1.5
        + (codes[:, 0] == 3)
        - 0.2 * codes[:, 1]
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def tiny(data):
    """A booster whose trees stop at different depths (min_child_weight and gamma prune
    them), so the padding of short branches is exercised."""
    x, y = data
    return train(x, y, min_child_weight=30, gamma=0.5)


def model_bytes(booster: xgb.Booster) -> bytes:
    return bytes(booster.save_raw("ubj"))


def test_matches_xgboost_on_a_package(packages, tmp_path):
    """A package built by the project's own code: its probe rows and every threshold."""
    from ctrpipe.serving.service import probe_matrix

    folder = packages[0]["a"]
    files = package.verify(folder)
    spec = json.loads(files["schema.json"])
    schema = package.load(folder).schema
    probe = probe_matrix(schema, json.loads(files["profile.json"]))
    model = compiled.load(
        files["model.ubj"],
        len(schema.names),
        tmp_path,
        source_name=str(folder / "model.ubj"),
        probe=probe,
    )
    assert model.parity <= onnx_export.TOLERANCE
    booster = package.load_booster(files["model.ubj"], "model.ubj")
    assert_matches(booster, model, probe)
    assert_matches(
        booster,
        model,
        compiled.threshold_rows(compiled.flatten(booster, "model.ubj"), rows=5000, seed=7),
    )
    assert spec["input"]["shape"][1] == model.n_features


def test_matches_xgboost_with_missing_values_codes_and_short_branches(tiny, data, tmp_path):
    trees = compiled.flatten(tiny, "tiny")
    leaves = [
        json.loads(tiny.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"][t][
            "left_children"
        ].count(-1)
        for t in range(trees.n_trees)
    ]
    assert min(leaves) < 2**trees.depth  # some trees really are padded
    model = compiled.load(model_bytes(tiny), 12, tmp_path)
    x, _ = data
    assert_matches(tiny, model, x)
    odd = x.copy()
    odd[::7, 8:] = 12  # every code `other`
    odd[::5, :] = np.nan
    odd[1::11, 0] = np.inf
    odd[2::11, 2] = -np.inf
    assert_matches(tiny, model, odd)


def test_two_threads_give_the_same_answers(tiny, data, tmp_path):
    x = np.resize(data[0], (10_001, 12))  # past PARALLEL_ROWS, and not a multiple of 8
    one = compiled.load(model_bytes(tiny), 12, tmp_path, threads=1)
    two = compiled.load(model_bytes(tiny), 12, tmp_path, threads=2)
    assert np.array_equal(one.predict(x), two.predict(x))
    assert_matches(tiny, two, x)


def test_trees_that_are_single_leaves(data, tmp_path):
    x, y = data
    stumps = train(x, y, rounds=3, gamma=1e9)  # no split is worth it: every tree a leaf
    assert compiled.flatten(stumps, "stumps").depth == 0
    assert_matches(stumps, compiled.load(model_bytes(stumps), 12, tmp_path), x[:100])


def test_predict_input_checks(tiny, data, tmp_path):
    model = compiled.load(model_bytes(tiny), 12, tmp_path)
    empty = model.predict(np.empty((0, 12), dtype=np.float32))
    assert empty.shape == (0,) and empty.dtype == np.float32
    x = data[0][:50]
    for bad in (x[0], x[:, :11], x[None], np.empty((0, 3), dtype=np.float32)):
        with pytest.raises(DataError, match=r"expected a matrix of 12 columns, got shape"):
            model.predict(bad)
    same = model.predict(x)
    assert np.array_equal(model.predict(x.astype(np.float64)), same)
    assert np.array_equal(model.predict(np.asfortranarray(x)), same)
    assert np.array_equal(model.predict(data[0][:100:2]), model.predict(data[0][:100][::2]))


def test_the_cache_is_reused(tiny, tmp_path, monkeypatch):
    first = compiled.load(model_bytes(tiny), 12, tmp_path)
    assert first.built and first.path.parent == tmp_path
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".sha256", ".so"]  # no leftovers
    mtime = first.path.stat().st_mtime_ns

    def no_compile(*args):
        raise AssertionError("compiled again")

    monkeypatch.setattr(compiled, "_build", no_compile)
    again = compiled.load(model_bytes(tiny), 12, tmp_path)
    assert not again.built and again.path == first.path
    assert first.path.stat().st_mtime_ns == mtime
    monkeypatch.setenv("CC", "/nonexistent/cc")  # a cached library needs no compiler
    assert not compiled.load(model_bytes(tiny), 12, tmp_path).built


def test_the_cache_folder_comes_from_ctrpipe_cache(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("CTRPIPE_CACHE", str(tmp_path / "c"))
    assert compiled.load(model_bytes(tiny), 12).path.parent == tmp_path / "c" / "compiled"


def test_a_different_model_gets_its_own_library(tiny, data, tmp_path):
    other = train(*data, rounds=5)
    paths = {compiled.load(model_bytes(b), 12, tmp_path).path for b in (tiny, other)}
    assert len(paths) == 2


def replace(path: Path, data: bytes) -> None:
    """Rewrite through a new file: writing in place into a library this process has
    mapped would change its code under it (a real process never does: see _build)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def test_a_corrupt_library_is_rebuilt(tiny, data, tmp_path):
    library = compiled.load(model_bytes(tiny), 12, tmp_path).path
    good = library.read_bytes()
    replace(library, good[: len(good) // 2])
    rebuilt = compiled.load(model_bytes(tiny), 12, tmp_path)
    assert rebuilt.built and library.read_bytes() == good
    assert_matches(tiny, rebuilt, data[0][:500])
    library.with_suffix(".sha256").unlink()  # no checksum: not trusted, rebuilt
    assert compiled.load(model_bytes(tiny), 12, tmp_path).built


def test_a_vouched_but_unloadable_library_is_refused_in_one_line(tiny, data, tmp_path):
    other = train(*data, rounds=3)  # a model this process has not loaded yet
    library = compiled.load(model_bytes(other), 12, tmp_path / "first").path
    cache = tmp_path / "second"
    cache.mkdir()
    garbage = b"not a shared library"
    (cache / library.name).write_bytes(garbage)
    (cache / library.with_suffix(".sha256").name).write_text(hashlib.sha256(garbage).hexdigest())
    with pytest.raises(ConfigError, match=r"compiled model: cannot load .*\.so") as exc:
        compiled.load(model_bytes(other), 12, cache)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "cc, message",
    [
        ("/nonexistent/cc", r"no C compiler \(/nonexistent/cc not found; set CC\)"),
        ("false", r"false failed on model\.ubj \(exit 1\)"),
        (
            "gcc -include missing.h",
            r"gcc -include missing.h failed on model\.ubj \(exit 1\): "
            r".*error: missing.h: No such file",
        ),
    ],
)
def test_no_compiler_or_a_failed_compile_is_one_line(tiny, tmp_path, monkeypatch, cc, message):
    monkeypatch.setenv("CC", cc)
    with pytest.raises(ConfigError, match=message) as exc:
        compiled.load(model_bytes(tiny), 12, tmp_path)
    assert "\n" not in str(exc.value)
    assert list(tmp_path.iterdir()) == []  # nothing half-built left behind


def test_a_model_that_disagrees_with_xgboost_is_refused(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(compiled.onnx_export, "base_margin", lambda booster: 0.25)
    with pytest.raises(
        DataError,
        match=r"models/x/model\.ubj: compiled model and XGBoost "
        r"predictions differ by .* \(> 1e-06\) on row",
    ):
        compiled.load(model_bytes(tiny), 12, tmp_path, source_name="models/x/model.ubj")


def test_models_it_cannot_compile_are_config_errors(data, tmp_path):
    x, y = data
    regression = xgb.train({"objective": "reg:squarederror", "nthread": 1}, xgb.DMatrix(x, y), 2)
    with pytest.raises(
        ConfigError, match=r"gbtree reg:squarederror model with 1 targets cannot be compiled"
    ):
        compiled.load(model_bytes(regression), 12, tmp_path)
    categorical = xgb.train(
        {"objective": "binary:logistic", "nthread": 1, "max_cat_to_onehot": 1},
        xgb.DMatrix(x[:, 8:], y, feature_types=["c"] * 4, enable_categorical=True),
        3,
    )
    with pytest.raises(ConfigError, match=r"categorical splits"):
        compiled.load(model_bytes(categorical), 4, tmp_path)
    with pytest.raises(DataError, match=r"model\.ubj: not an XGBoost model"):
        compiled.load(b"garbage", 12, tmp_path)


def test_the_wrong_number_of_features_is_refused(tiny, tmp_path):
    with pytest.raises(DataError, match=r"the model takes 12 features; expected 13"):
        compiled.load(model_bytes(tiny), 13, tmp_path)


def test_two_processes_compiling_at_once_both_load(tiny, tmp_path):
    """Each builds in its own temp folder and renames into place: both get a whole
    library, and the cache ends with one library, its checksum and nothing else."""
    model = tmp_path / "model.ubj"
    model.write_bytes(model_bytes(tiny))
    cache = tmp_path / "cache"
    code = (
        "import sys; from pathlib import Path; from ctrpipe.serving import compiled; "
        "m = compiled.load(Path(sys.argv[1]).read_bytes(), 12, Path(sys.argv[2])); "
        "print(m.parity)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(model), str(cache)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert all(float(out) <= onnx_export.TOLERANCE for out, _ in results)
    assert sorted(p.suffix for p in cache.iterdir()) == [".sha256", ".so"]
    assert not compiled.load(model.read_bytes(), 12, cache).built
