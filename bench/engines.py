"""Benchmark the train stage's engines side by side as the data grows (issue 17).

    python bench/engines.py                  # 1M and 10M impressions
    python bench/engines.py --rows 1e6

Each size: ingest and generate write the splits (not timed here; bench/pipeline.py times
them). Then the train stage, with the committed sweep, three ways in turn:

- `local`: the local engine (the splits in the stage's memory);
- `spark local[2]`: the spark engine, 2 XGBoost workers, Spark in local mode;
- `cluster 2x1`: the spark engine, 2 workers, on a standalone cluster of two 1-core
  workers started here on loopback.

For each: wall seconds (and the stage's own load / sweep / refit split), the peak memory
of the stage's Python process (the driver, where the local engine holds the splits), of
the rest of its process tree (Spark's JVM and Python workers; in local mode the JVM runs
the executors too) and of the cluster's executors; and validation ROC AUC over the whole
validation split. The goal is a driver whose memory stays flat as rows grow, not speed
on two cores. Prints figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import xgboost as xgb
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import ingest_and_generate, size_params  # bench/pipeline.py, this folder

from ctrpipe.model import encoding, metrics
from tests.support.spark_cluster import standalone_cluster

MASTER_LOCAL = "local[2]"


def executors() -> list[psutil.Process]:
    """A standalone cluster's executor JVMs and their Python workers."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if "CoarseGrainedExecutorBackend" in " ".join(p.info["cmdline"] or []):
            found += [p, *p.children(recursive=True)]
    return found


def rss(processes) -> int:
    total = 0
    for p in processes:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def train(work: Path, engine: str, master: str | None) -> dict:
    """The train stage once, measured; its printed timings."""
    raw = yaml.safe_load((work / "params.yaml").read_text())
    raw["model"]["engine"] = engine
    if master:
        raw["spark"]["master"] = master
    out = work / f"{engine}-{(master or 'none').replace('/', '_')}"
    out.mkdir()
    (out / "params.yaml").write_text(yaml.safe_dump(raw))
    cmd = [
        sys.executable,
        "-m",
        "stages.train",
        f"--params={out / 'params.yaml'}",
        f"--features={work / 'features.json'}",
        f"--train={work / 'train.parquet'}",
        f"--validation={work / 'validation.parquet'}",
        f"--model={out / 'model.ubj'}",
        f"--schema={out / 'schema.json'}",
        f"--model-params={out / 'params.json'}",
        f"--trials={out / 'trials.csv'}",
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    driver = psutil.Process(proc.pid)
    peaks = {"driver": 0, "rest": 0, "executors": 0}
    while proc.poll() is None:
        try:
            peaks["driver"] = max(peaks["driver"], driver.memory_info().rss)
            peaks["rest"] = max(peaks["rest"], rss(driver.children(recursive=True)))
        except psutil.Error:
            pass
        if master and master.startswith("spark://"):
            peaks["executors"] = max(peaks["executors"], rss(executors()))
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    output = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"train ({engine}, {master}) failed:\n{output[-3000:]}")
    steps = dict(re.findall(r"(load|sweep|refit) ([\d.]+) s", output))
    return {"seconds": seconds, "steps": steps, "auc": auc(work, out), **peaks}


def auc(work: Path, out: Path) -> float:
    """Validation ROC AUC of the written model over the whole split."""
    import pyarrow.parquet as pq

    schema = encoding.FeatureSchema.load(out / "schema.json")
    valid = pq.read_table(work / "validation.parquet")
    booster = xgb.Booster(model_file=str(out / "model.ubj"))
    prob = booster.predict(xgb.DMatrix(schema.encode(valid), feature_names=schema.names))
    label = valid[schema.label].to_numpy().astype(np.float64)
    weight = valid[schema.weight].to_numpy().astype(np.float64)
    return metrics.roc_auc(label, prob.astype(np.float64), weight)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, nargs="+", default=[1e6, 1e7])
    args = parser.parse_args()
    gib = 2**30
    print(
        f"{'rows':>12} {'engine':<16} {'seconds':>8} {'load/sweep/refit s':>20} "
        f"{'driver GiB':>10} {'JVM+workers GiB':>15} {'executors GiB':>13} {'AUC':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (int(r) for r in args.rows):
            work, p = size_params(Path(tmp), rows)
            ingest_and_generate(p, work)
            (work / "spark").mkdir()
            runs = [("local", "local", None), ("spark local[2]", "spark", MASTER_LOCAL)]
            results = [(name, train(work, engine, master)) for name, engine, master in runs]
            with standalone_cluster(work / "spark", cores=1, memory="3g", workers=2) as url:
                results.append(("cluster 2x1", train(work, "spark", url)))
            for name, r in results:
                steps = "/".join(r["steps"].get(k, "-") for k in ("load", "sweep", "refit"))
                print(
                    f"{rows:>12,} {name:<16} {r['seconds']:>8.1f} {steps:>20} "
                    f"{r['driver'] / gib:>10.2f} {r['rest'] / gib:>15.2f} "
                    f"{r['executors'] / gib:>13.2f} {r['auc']:>7.4f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
