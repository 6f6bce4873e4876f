"""Benchmark batch and single-row prediction: ONNX Runtime against the compiled model.

    python bench/batch.py                    # models/package, the golden set's encoded rows
    python bench/batch.py --repeats 11 --calls 50000

On the golden set's encoded float32 matrix (repeated to 100k rows), prints rows/s of
ONNX Runtime (package.load's session, 1 and 2 intra-op threads) and of the compiled
model (ctrpipe/serving/compiled.py, 1 and 2 threads) for batches of 1k, 10k and 100k rows.
Each figure is the median of --repeats timed calls after a warm-up. The 1-thread
figures also come with CPU seconds per call (this thread's), which another process on
the machine disturbs far less than wall time. Then single-row p50 / p99 of both over
--calls calls, one thread, cycling through 1,000 rows (bench/predict.py's `latencies`).
The machine line has the load average: on 2 cores, anything else running halves the
2-thread figures. Prints figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from predict import latencies  # bench/predict.py, this folder
from train import machine  # bench/train.py, this folder

from ctrpipe import paths
from ctrpipe.model import onnx_export, package
from ctrpipe.serving import compiled

SIZES = (1_000, 10_000, 100_000)
TARGET_ROWS_S = 2_000_000


def rows_of(x: np.ndarray, n: int) -> np.ndarray:
    return np.ascontiguousarray(np.resize(x, (n, x.shape[1])))  # repeats x as needed


def rate(fn, x: np.ndarray, repeats: int) -> tuple[float, float]:
    """Median rows/s by the wall clock and by this thread's CPU time."""
    fn(x)
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.thread_time()
        fn(x)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
    return len(x) / float(np.median(wall)), len(x) / max(float(np.median(cpu)), 1e-9)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--package", default=paths.PACKAGE)
    parser.add_argument("--golden", default=paths.GOLDEN)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args(argv)
    path, golden = ROOT / args.package, ROOT / args.golden
    if missing := [str(p) for p in (path / package.MANIFEST, golden) if not p.is_file()]:
        sys.exit(f"missing {', '.join(missing)}: run `make repro` first")

    print(machine())
    loaded = package.load(path)
    x = loaded.schema.encode(pq.read_table(golden), str(golden))
    onnx_bytes, model_ubj = (path / "model.onnx").read_bytes(), (path / "model.ubj").read_bytes()
    n_features = len(loaded.schema.names)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)  # an empty cache: the first load compiles, the second reuses
        started = time.perf_counter()
        model = compiled.load(model_ubj, n_features, cache, threads=1)
        first = time.perf_counter() - started
        started = time.perf_counter()
        compiled.load(model_ubj, n_features, cache, threads=1)
        again = time.perf_counter() - started
        wide = compiled.load(model_ubj, n_features, cache, threads=2)
        print(
            f"package {loaded.digest[:12]}: {n_features} features, {len(x):,} golden rows; "
            f"compiled load {first:.2f} s with the compile, {again:.2f} s from the cache "
            f"(both with the parity check; largest difference from XGBoost {model.parity:.1e})"
        )
        variants = {
            "ONNX Runtime, 1 thread": lambda a: onnx_export.predict(loaded.session, a),
            "ONNX Runtime, 2 threads": (lambda s: lambda a: onnx_export.predict(s, a))(
                onnx_export.session(onnx_bytes, 2)
            ),
            "compiled, 1 thread": model.predict,
            "compiled, 2 threads": wide.predict,
        }
        print(
            f"\n{'rows/s (median of ' + str(args.repeats) + ')':32}"
            + "".join(f"{n:>14,}" for n in SIZES)
        )
        best = 0.0
        for name, fn in variants.items():
            figures = [rate(fn, rows_of(x, n), args.repeats) for n in SIZES]
            best = max(best, *(wall for wall, _ in figures))
            print(f"{name:32}" + "".join(f"{wall:14,.0f}" for wall, _ in figures))
            if name.endswith("1 thread"):
                print(f"{'  by CPU time':32}" + "".join(f"{cpu:14,.0f}" for _, cpu in figures))

        print(f"\nsingle row, {args.calls:,} calls, one thread (us)      p50      p99")
        rows = x[:1000]
        for name, fn in (
            ("ONNX Runtime (onnx_export.predict)", variants["ONNX Runtime, 1 thread"]),
            ("compiled (Compiled.predict)", model.predict),
        ):
            us = latencies(fn, rows, args.calls)
            print(f"  {name:44} {np.percentile(us, 50):8.1f} {np.percentile(us, 99):8.1f}")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"\nbest batch rate {best:,.0f} rows/s (target >= {TARGET_ROWS_S:,}); "
        f"load average now {load}"
    )


if __name__ == "__main__":
    main()
