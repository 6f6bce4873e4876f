"""Benchmark the promotion gate on the real pipeline outputs.

    python bench/gate.py                # needs models/package and data/processed (`make repro`)
    python bench/gate.py --calls 5000

Prints:
- the gate stage's wall time (`python -m stages.gate` in a fresh process, as DVC runs it)
  on the default golden set, candidate models/package against a smaller model trained
  here and put into a temporary production folder, so every check runs;
- the time of the paired bootstrap alone (1,000 resamples; ROC AUC and log loss);
- for models of three sizes, the gate's single-row cost measure (tree nodes visited per
  row) next to the measured ONNX Runtime single-row latency (p50 and p99 over `--calls`
  calls, one thread, as bench/predict.py times it), to show how the two track.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import xgboost as xgb
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from predict import latencies  # bench/predict.py, beside this file

from ctrpipe import paths
from ctrpipe.model import evaluation, onnx_export, package, training
from ctrpipe.model.settings import Package
from ctrpipe.release import bootstrap, gate
from ctrpipe.release.settings import Gate

# (name, trees, depth) of the models trained here, beside models/package (147 trees, depth
# 3 today): more trees at the same depth, and the same trees deeper.
SIZES = (("small", 30, 3), ("wide", 300, 3), ("large", 300, 7))


def train_package(
    folder: Path, schema, train: pa.Table, validation: pa.Table, trees: int, depth: int
) -> Path:
    """A package of a model like train's, with the given size, on the same rows."""
    dtrain = training.to_dmatrix(train, schema, "train", nthread=2)
    booster = xgb.train(
        {
            "objective": "binary:logistic",
            "tree_method": "hist",
            "eta": 0.1,
            "max_depth": depth,
            "min_child_weight": 20,
            "nthread": 2,
            "seed": 0,
        },
        dtrain,
        num_boost_round=trees,
    )
    inputs = package.Inputs(
        model=bytes(booster.save_raw("ubj")),
        schema=schema,
        train=train,
        validation=validation,
        train_params={},
        metrics=None,
        data_hashes={},
        commit="benchmark",
    )
    package.write(folder, package.build(inputs, Package()))
    return folder


def production_folder(folder: Path, source: Path) -> Path:
    folder.mkdir()
    shutil.copytree(source, folder / "package")
    ref = {
        "version": "v0.0.1-bench",
        "tag": "model#prod#1",
        "commit": None,
        "digest": package.digest(source),
    }
    (folder / "ref.json").write_text(json.dumps(ref))
    return folder


def params_file(path: Path) -> Path:
    """params.yaml with a gate group: its own, or conf/gate/default.yaml until it has one."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.setdefault("gate", yaml.safe_load((ROOT / "conf/gate/default.yaml").read_text()))
    path.write_text(yaml.safe_dump(params))
    return path


def stage_time(params: Path, production: Path, out: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.gate",
            f"--params={params}",
            f"--candidate={paths.PACKAGE}",
            f"--production={production}",
            f"--golden={paths.GOLDEN}",
            f"--validation={paths.VALIDATION}",
            f"--report={out / 'gate.json'}",
            f"--summary={out / 'summary.md'}",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, done.stdout.strip()


def bootstrap_times(
    candidate: package.Loaded, production: package.Loaded, golden: pa.Table, settings: Gate
) -> dict[str, float]:
    s = gate.score(candidate, golden, "golden")
    p = gate.score(production, golden, "golden").p
    b = settings.bootstrap
    out = {}
    for metric in bootstrap.METRICS:
        started = time.perf_counter()
        bootstrap.paired_gain(metric, s.y, s.w, s.p, p, b.resamples, b.confidence, b.seed)
        out[metric] = time.perf_counter() - started
    return out


def onnx_latency(loaded: package.Loaded, golden: pa.Table, calls: int) -> np.ndarray:
    rows = loaded.schema.encode(golden.slice(0, 1000))
    feed = {onnx_export.INPUT: None}

    def one(row):
        feed[onnx_export.INPUT] = row
        return loaded.session.run([onnx_export.OUTPUT], feed)

    return latencies(one, rows, calls)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidate", default=paths.PACKAGE)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args(argv)
    candidate_path = ROOT / args.candidate
    splits = {
        "train": ROOT / paths.TRAIN,
        "validation": ROOT / paths.VALIDATION,
        "golden": ROOT / paths.GOLDEN,
    }
    needed = [candidate_path / package.MANIFEST, *splits.values()]
    if missing := [str(p) for p in needed if not p.is_file()]:
        sys.exit(f"missing {', '.join(missing)}: run `make repro` first")

    candidate = package.load(candidate_path)
    schema = candidate.schema
    train, validation, golden = (
        evaluation.read_split(splits[s], schema, []) for s in ("train", "validation", "golden")
    )

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = {}
        for name, trees, depth in SIZES:
            started = time.perf_counter()
            models[name] = package.load(
                train_package(tmp / name, schema, train, validation, trees, depth)
            )
            print(
                f"trained and packaged {name} ({trees} trees, depth {depth}) in "
                f"{time.perf_counter() - started:.1f} s"
            )
        models = {
            "small": models["small"],
            paths.PACKAGE: candidate,
            "wide": models["wide"],
            "large": models["large"],
        }

        params = params_file(tmp / "params.yaml")
        settings = yaml.safe_load(params.read_text())["gate"]
        production = production_folder(tmp / "production", models["small"].path)
        walls = []
        for i in range(3):
            wall, line = stage_time(params, production, tmp / f"out{i}")
            walls.append(wall)
        print(
            f"\ngate stage on {golden.num_rows:,} golden rows, candidate {paths.PACKAGE} "
            f"against the small model:\n  {line}"
        )
        print(
            f"  wall time of `python -m stages.gate` (fresh process, 3 runs): "
            f"{', '.join(f'{w:.1f}' for w in walls)} s"
        )
        same = all(
            (tmp / f"out{i}/gate.json").read_bytes() == (tmp / "out0/gate.json").read_bytes()
            for i in range(3)
        )
        print(f"  gate.json byte-identical across the runs: {same}")

        times = bootstrap_times(candidate, models["small"], golden, Gate(**settings))
        print(
            f"\npaired bootstrap alone, {Gate(**settings).bootstrap.resamples} resamples of "
            f"{golden.num_rows:,} rows: "
            + ", ".join(f"{metric} {t:.2f} s" for metric, t in times.items())
        )

        print(
            f"\nsingle-row cost: the gate's measure against ONNX Runtime "
            f"({args.calls:,} single-row calls each, one thread)"
        )
        print(
            f"{'model':16} {'trees':>5} {'nodes/row':>10} {'p50 us':>8} {'p99 us':>8} "
            f"{'ns/node':>8}"
        )
        fit = []
        for name, loaded in models.items():
            nodes = gate.nodes_per_row(loaded, golden)
            us = onnx_latency(loaded, golden, args.calls)
            trees = package.load_booster(
                (loaded.path / "model.ubj").read_bytes(), name
            ).num_boosted_rounds()
            p50 = np.percentile(us, 50)
            fit.append((nodes, p50))
            print(
                f"{name:16} {trees:5d} {nodes:10.1f} {p50:8.1f} "
                f"{np.percentile(us, 99):8.1f} {p50 * 1000 / nodes:8.1f}"
            )
        nodes, p50 = np.array(fit).T
        slope, intercept = np.polyfit(nodes, p50, 1)
        r = np.corrcoef(nodes, p50)[0, 1]
        print(
            f"least squares: p50 = {intercept:.1f} us + {slope * 1000:.1f} ns x nodes/row "
            f"(r = {r:.3f}); the fixed part is the cost of a session.run call"
        )


if __name__ == "__main__":
    main()
