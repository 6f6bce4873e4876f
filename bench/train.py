"""Benchmark the train stage on the real splits: refit overhead and sweep efficiency.

    python bench/train.py                   # 15 overhead runs, a 100-point grid
    python bench/train.py --grid-size 20 --runs 3

Reads the splits and params.yaml as the train stage does (nothing is written).
1. Overhead: the stage's refit (`training.train` with early stopping, then `best_model`)
   against a bare `xgboost.train` on the same DMatrix objects, params and number of
   rounds, once without an eval set and once with the validation eval set; medians of
   interleaved runs after one untimed warm-up. Target: at most 5%.
2. Sweep efficiency: the stage's sweep (`sweep.run`, conf/sweep/ settings) against a
   Latin-hypercube grid over the same space, each point trained like a trial (same
   sample, validation set and early stopping) without pruning. AUC and logloss are of each
   booster's best iteration on validation. Targets: best AUC within 0.002 of the grid's,
   at no more than a quarter of its compute (boosting rounds and wall seconds).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import xgboost as xgb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ctrpipe import (
    config,
    paths,
)
from ctrpipe.model import encoding, sweep, training
from ctrpipe.model.settings import Model, Sweep


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in open("/proc/cpuinfo")
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {psutil.cpu_count()} cores ({cpu}), "
        f"{psutil.virtual_memory().total / 2**30:.1f} GiB, {platform.machine()}, "
        f"Python {platform.python_version()}, XGBoost {xgb.__version__}; "
        f"load average {load}"
    )


def load(params_file: Path):
    """Model and sweep settings and both DMatrix objects, built as stages/train.py does."""
    params = config.load(params_file)
    model, search = params.section("model", Model), params.section("sweep", Sweep)
    nthread = model.params.get("nthread", -1)
    nthread = nthread if isinstance(nthread, int) else -1
    roles = training.read_roles(ROOT / paths.FEATURES)
    train_table = training.read_split(ROOT / paths.TRAIN, roles)
    valid_table = training.read_split(ROOT / paths.VALIDATION, roles)
    schema = encoding.fit(
        train_table, roles, model.encoding.max_categories, model.encoding.min_count
    )
    dtrain = training.to_dmatrix(train_table, schema, "train", nthread)
    dvalid = training.to_dmatrix(valid_table, schema, "validation", nthread)
    return model, search, dtrain, dvalid


def scored(booster: xgb.Booster, dvalid: xgb.DMatrix) -> dict:
    """Rounds trained, and validation logloss and AUC of the best iteration."""
    return {
        "rounds": booster.num_boosted_rounds(),
        **training.evaluate(training.best_model(booster), dvalid),
    }


def run_sweep(model: Model, search: Sweep, dtrain, dvalid) -> tuple:
    """The stage's sweep, timed; every trial's booster is kept (by wrapping
    `training.train`, which sweep.py calls) and scored after the clock stops."""
    boosters, original = [], training.train
    training.train = lambda *a, **k: boosters.append(original(*a, **k)) or boosters[-1]
    try:
        started = time.perf_counter()
        study = sweep.run(search, model, dtrain, dvalid)
        seconds = time.perf_counter() - started
    finally:
        training.train = original
    trials = [
        {**scored(b, dvalid), "params": t.params, "state": t.state.name}
        for t, b in zip(study.trials, boosters)
    ]
    return study, trials, seconds


def lhs(space: dict, n: int, seed: int = 0) -> list[dict]:
    """n points, each dimension cut into n equal strata (in log space where `log`), one
    point at the centre of each stratum, strata shuffled per dimension with a fixed seed."""
    rng, points = np.random.default_rng(seed), [{} for _ in range(n)]
    for name, dim in sorted(space.items()):
        for point, u in zip(points, (rng.permutation(n) + 0.5) / n):
            if dim.type == "categorical":
                point[name] = dim.choices[int(u * len(dim.choices))]
            elif dim.type == "int":
                point[name] = int(dim.low) + min(
                    int(u * (dim.high - dim.low + 1)), int(dim.high - dim.low)
                )
            elif dim.log:
                point[name] = math.exp(math.log(dim.low) + u * math.log(dim.high / dim.low))
            else:
                point[name] = dim.low + u * (dim.high - dim.low)
    return points


def run_grid(model: Model, points: list[dict], subset, dvalid) -> tuple[list, float]:
    results, seconds = [], 0.0
    for i, point in enumerate(points, 1):
        started = time.perf_counter()
        booster = training.train(training.booster_params(model, point), subset, dvalid, model)
        seconds += time.perf_counter() - started
        results.append({**scored(booster, dvalid), "params": point})
        if i % 10 == 0 or i == len(points):
            best = max(r["auc"] for r in results)
            print(
                f"  grid {i}/{len(points)}: {seconds:.0f} s, best AUC so far {best:.4f}", flush=True
            )
    return results, seconds


def overhead(model: Model, params: dict, dtrain, dvalid, runs: int) -> dict:
    """Median seconds of the project refit and the two bare variants, interleaved."""
    warm = training.train(params, dtrain, dvalid, model)  # warm-up; fixes the round count
    rounds = warm.num_boosted_rounds()
    variants = {
        "project": lambda: training.best_model(training.train(params, dtrain, dvalid, model)),
        "bare, no eval set": lambda: xgb.train(
            params, dtrain, num_boost_round=rounds, verbose_eval=False
        ),
        "bare, validation eval set": lambda: xgb.train(
            params,
            dtrain,
            num_boost_round=rounds,
            evals=[(dvalid, training.VALIDATION)],
            verbose_eval=False,
        ),
    }
    times, names = {name: [] for name in variants}, list(variants)
    cpu = {name: [] for name in variants}  # CPU seconds of all threads: less scheduling noise
    for i in range(runs):
        for name in names[i % 3 :] + names[: i % 3]:  # rotate the order each run
            started, started_cpu = time.perf_counter(), time.process_time()
            variants[name]()
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
    cut = []  # the project's step after training, timed alone for attribution
    for _ in range(20):
        started = time.perf_counter()
        training.best_model(warm)
        cut.append(time.perf_counter() - started)
    return {
        "rounds": rounds,
        "refit": scored(warm, dvalid),
        "times": times,
        "cpu": cpu,
        "cut_s": statistics.median(cut),
    }


def describe(result: dict) -> str:
    shown = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in sorted(result["params"].items())
    )
    return f"AUC {result['auc']:.4f}, logloss {result['logloss']:.5f} ({shown})"


def report_sweep(trials, sweep_s, grid, grid_s, study) -> None:
    chosen = trials[study.best_trial.number]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    s_rounds, g_rounds = sum(t["rounds"] for t in trials), sum(r["rounds"] for r in grid)
    s_auc, g_auc = max(t["auc"] for t in complete), max(r["auc"] for r in grid)
    print(
        f"sweep: {len(trials)} trials ({len(trials) - len(complete)} pruned), "
        f"{s_rounds:,} rounds, {sweep_s:.1f} s"
    )
    print(f"  chosen (best logloss, trial {study.best_trial.number}): {describe(chosen)}")
    print(f"  best AUC of its complete trials: {s_auc:.4f}")
    print(f"grid: {len(grid)} points, {g_rounds:,} rounds, {grid_s:.1f} s")
    print(f"  best logloss: {describe(min(grid, key=lambda r: r['logloss']))}")
    print(f"  best AUC:     {describe(max(grid, key=lambda r: r['auc']))}")
    gap = g_auc - s_auc
    print(
        f"best AUC gap (grid - sweep): {gap:+.4f} (target <= 0.002: "
        f"{'met' if gap <= 0.002 else 'MISSED'}); logloss gap (sweep chosen - grid best): "
        f"{chosen['logloss'] - min(r['logloss'] for r in grid):+.5f}"
    )
    for name, s, g in (("rounds", s_rounds, g_rounds), ("wall seconds", sweep_s, grid_s)):
        print(
            f"compute, {name}: sweep/grid = {s / g:.3f} "
            f"(target <= 0.25: {'met' if s / g <= 0.25 else 'MISSED'})"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(ROOT / config.PARAMS_FILE))
    parser.add_argument("--grid-size", type=int, default=100)
    parser.add_argument("--runs", type=int, default=15, help="overhead runs per variant")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(machine(), flush=True)

    model, search, dtrain, dvalid = load(Path(args.params))
    print(
        f"data: train {dtrain.num_row():,} rows, validation {dvalid.num_row():,} rows, "
        f"{dtrain.num_col()} features; sweep sample {search.sample_rows:,} rows",
        flush=True,
    )

    study, trials, sweep_s = run_sweep(model, search, dtrain, dvalid)
    print(f"sweep done in {sweep_s:.1f} s; timing the refit ({args.runs} runs)", flush=True)
    final = training.booster_params(model, study.best_params)
    over = overhead(model, final, dtrain, dvalid, args.runs)
    med = {name: statistics.median(t) for name, t in over["times"].items()}
    print(
        f"refit of the sweep's winner on all of train: {over['rounds']} rounds, "
        f"validation AUC {over['refit']['auc']:.4f}, logloss {over['refit']['logloss']:.5f}"
    )
    for name, seconds in med.items():
        spread = ", ".join(f"{t:.2f}" for t in over["times"][name])
        print(f"  {name:<26} median {seconds:.3f} s  (runs: {spread})")
    for name in ("bare, no eval set", "bare, validation eval set"):
        # Median of each run's paired ratio: the pairs share the machine's state.
        for clock in ("times", "cpu"):
            pairs = zip(over[clock]["project"], over[clock][name])
            pct = 100 * (statistics.median(p / b for p, b in pairs) - 1)
            print(
                f"  overhead vs {name} ({'wall' if clock == 'times' else 'CPU'}, paired): "
                f"{pct:+.1f}% (target <= 5%: {'met' if pct <= 5 else 'MISSED'})"
            )
    print(f"  of which best_model (cut to the best iteration): {1000 * over['cut_s']:.1f} ms")

    print(f"grid: {args.grid_size} Latin-hypercube points, no pruning", flush=True)
    subset = sweep.sample(dtrain, search.sample_rows, search.sampler_seed)
    grid, grid_s = run_grid(model, lhs(search.space, args.grid_size), subset, dvalid)
    report_sweep(trials, sweep_s, grid, grid_s, study)
    print(
        f"total {time.perf_counter() - started:.0f} s; load average now "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )


if __name__ == "__main__":
    main()
