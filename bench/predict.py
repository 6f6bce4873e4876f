"""Benchmark single-row prediction: the package's ONNX model against XGBoost.

    python bench/predict.py                          # models/package, rows from validation
    python bench/predict.py --package P --calls 50000

Times `session.run` on a 1 x n_features float32 array (ONNX Runtime, one thread, as
`package.load` opens it) and `Booster.inplace_predict` on the same array (one thread),
cycling through 1,000 rows, and prints p50 / p99 and their ratio. Without a package it
builds a temporary one from a 100-tree model trained on random data, so it always runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xgboost as xgb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ctrpipe import paths
from ctrpipe.model import encoding, onnx_export, package
from ctrpipe.model.settings import Package as Settings


def random_package(folder: Path, rows: int = 20_000, trees: int = 100) -> Path:
    """A package of a model trained on random data with 15 numeric, 5 categorical features."""
    rng = np.random.default_rng(0)
    cols = {f"n{i}": rng.normal(size=rows) for i in range(15)}
    cols |= {f"c{i}": [f"v{k}" for k in rng.zipf(1.5, rows) % 50] for i in range(5)}
    logit = -3 + cols["n0"] + 0.5 * cols["n1"] * (np.array(cols["c0"]) == "v1")
    cols |= {
        "id": np.arange(rows),
        "ts": np.arange(rows),
        "weight": np.ones(rows),
        "label": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int32),
    }
    table = pa.table(cols)
    roles = {
        "id": "id",
        "time": "ts",
        "label": "label",
        "weight": "weight",
        "numeric": [f"n{i}" for i in range(15)],
        "categorical": [f"c{i}" for i in range(5)],
    }
    schema = encoding.fit(table, roles, max_categories=30, min_count=5)
    x = schema.encode(table)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 6, "nthread": 1},
        xgb.DMatrix(x, cols["label"], feature_names=schema.names),
        trees,
    )
    inputs = package.Inputs(
        model=bytes(booster.save_raw("ubj")),
        schema=schema,
        train=table,
        validation=table,
        train_params={},
        metrics=None,
        data_hashes={},
        commit="benchmark",
    )
    package.write(folder / "package", package.build(inputs, Settings()))
    pq.write_table(table, folder / "rows.parquet")  # the rows to time predictions on
    return folder / "package"


def sample_rows(loaded: package.Loaded, validation: Path, n: int = 1000) -> np.ndarray:
    if validation.is_file():
        return loaded.schema.encode(pq.read_table(validation).slice(0, n), str(validation))
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, len(loaded.schema.names))).astype(np.float32)


def latencies(fn, rows: np.ndarray, calls: int) -> np.ndarray:
    """Microseconds of `fn` on one row at a time (1 x n_features arrays)."""
    return timed(fn, [np.ascontiguousarray(rows[i : i + 1]) for i in range(len(rows))], calls)


def timed(fn, args: list, calls: int) -> np.ndarray:
    """Microseconds of `calls` calls of `fn`, cycling through `args`, after a warm-up."""
    for a in args[:200]:  # warm up caches and lazy initialisation
        fn(a)
    out = np.empty(calls)
    for i in range(calls):
        a = args[i % len(args)]
        start = time.perf_counter_ns()
        fn(a)
        out[i] = time.perf_counter_ns() - start
    return out / 1000


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--package", default=paths.PACKAGE)
    parser.add_argument("--validation", default=paths.VALIDATION)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path, validation = Path(args.package), Path(args.validation)
        if not (path / package.MANIFEST).is_file():
            print(f"{path}: no package; building one from a 100-tree model on random data")
            path, validation = random_package(Path(tmp)), Path(tmp) / "rows.parquet"
        loaded = package.load(path)
        booster = package.load_booster((path / "model.ubj").read_bytes(), "model.ubj")
        booster.set_param({"nthread": 1})
        rows = sample_rows(loaded, validation)
        feed = {onnx_export.INPUT: None}

        def onnx_predict(row):
            feed[onnx_export.INPUT] = row
            return loaded.session.run([onnx_export.OUTPUT], feed)

        results = {
            "ONNX Runtime session.run": latencies(onnx_predict, rows, args.calls),
            "XGBoost inplace_predict": latencies(booster.inplace_predict, rows, args.calls),
        }
    print(
        f"package {loaded.digest[:12]}: {booster.num_boosted_rounds()} trees, "
        f"{len(loaded.schema.names)} features, {args.calls:,} single-row calls each"
    )
    print(f"{'':28} {'p50 us':>8} {'p99 us':>8}")
    for name, us in results.items():
        print(f"{name:28} {np.percentile(us, 50):8.1f} {np.percentile(us, 99):8.1f}")
    onnx, xgb_ = (np.percentile(us, 50) for us in results.values())
    print(f"XGBoost / ONNX Runtime p50 ratio: {xgb_ / onnx:.1f}x")


if __name__ == "__main__":
    main()
