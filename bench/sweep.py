"""Benchmark the sweep's trials in parallel (issue 17): Spark tasks against one after
another, on the project's splits and sweep settings.

    python bench/sweep.py                 # sweep.parallel 2 on local[2]
    python bench/sweep.py --parallel 2 --runs 3

Reads the splits as the train stage does (nothing is written), then runs the sweep,
interleaved `--runs` times:

- `sequential`: `sweep.parallel: 1`, the committed sweep (each trial with the model's
  nthread);
- `batches here`: `sweep.parallel: N`, the batches run one trial after another in this
  process (each trial one thread);
- `batches on Spark`: the same batches as Spark tasks at once on `local[N]`.

The last two give the same trials (a test checks it); the Spark session's start is not
timed. Target: the parallel sweep at least 1.6x faster than the sequential one on 2
cores. Prints medians; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from train import load, machine  # bench/train.py, this folder

from ctrpipe import config, spark
from ctrpipe.model import distributed, sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    model, search, dtrain, dvalid = load(ROOT / config.PARAMS_FILE)
    batched = search.model_copy(update={"parallel": args.parallel})
    session = spark.session(
        config.load(ROOT / config.PARAMS_FILE)
        .section("spark", config.Spark)
        .model_copy(update={"master": f"local[{args.parallel}]"}),
        app="bench-sweep",
    )
    runner = distributed.trial_runner(session, batched, model, dtrain, dvalid)
    ways = {
        "sequential": lambda: sweep.run(search, model, dtrain, dvalid),
        "batches here": lambda: sweep.run(batched, model, dtrain, dvalid),
        "batches on Spark": lambda: sweep.run(batched, model, dtrain, dvalid, runner),
    }
    seconds = {name: [] for name in ways}
    best = {}
    for _ in range(args.runs):
        for name, way in ways.items():
            started = time.perf_counter()
            study = way()
            seconds[name].append(time.perf_counter() - started)
            pruned = sum(t.state.name == "PRUNED" for t in study.trials)
            best[name] = (study.best_trial.number, study.best_value, pruned)
    session.stop()
    base = statistics.median(seconds["sequential"])
    print(f"{'sweep':<18} {'median s':>9} {'speed-up':>9}  best trial, logloss, pruned")
    for name, times in seconds.items():
        median = statistics.median(times)
        number, value, pruned = best[name]
        print(f"{name:<18} {median:>9.1f} {base / median:>8.2f}x  #{number}, {value:.5f}, {pruned}")


if __name__ == "__main__":
    main()
