"""Benchmark ingest + generate: wall time, throughput, peak memory, growth with rows.

    python bench/pipeline.py                 # 1M and 10M impressions, plus a no-op repro
    python bench/pipeline.py --rows 1e6 2e6  # chosen sizes

Each size runs the real stage entry points in subprocesses on a composed params file,
writing to a temp folder; peak memory is the whole process tree (Python and Spark's
JVM), sampled every 0.1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ctrpipe import params


def run_measured(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS bytes of the command and all its children."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "DVC_NO_ANALYTICS": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    output = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{output[-3000:]}")
    return elapsed, peak


def ingest_and_generate(params: Path, work: Path) -> tuple[float, float, int]:
    """Both stages as DVC runs them, into `work`: their seconds and the peak memory."""
    py, raw = sys.executable, work / "raw"
    ingest = run_measured([py, "-m", "stages.ingest", "--params", str(params), "--out", str(raw)])
    generate = run_measured(
        [
            py,
            "-m",
            "stages.generate",
            "--params",
            str(params),
            "--raw",
            str(raw),
            *(f"--{s}={work / s}.parquet" for s in ("train", "validation", "golden")),
            "--features",
            str(work / "features.json"),
            "--quarantine",
            str(work / "quarantine"),
            "--metrics",
            str(work / "metrics.json"),
        ]
    )
    return ingest[0], generate[0], max(ingest[1], generate[1])


def size_params(tmp: Path, rows: int) -> tuple[Path, Path]:
    """A work folder for `rows` synthetic impressions and its params.yaml, composed."""
    work = tmp / f"rows{rows}"
    work.mkdir()
    return work, params.compose(
        work / "params.yaml", [f"data.source.synthetic.rows={rows}"], root=ROOT
    )


def bench_size(rows: int, tmp: Path) -> dict:
    work, p = size_params(tmp, rows)
    ingest, generate, peak = ingest_and_generate(p, work)
    return {"rows": rows, "ingest_s": ingest, "generate_s": generate, "peak_gib": peak / 2**30}


def noop_repro(times: int = 5) -> float:
    dvc = str(Path(sys.executable).parent / "dvc")
    status = subprocess.run([dvc, "status", "--json"], cwd=ROOT, capture_output=True, text=True)
    # `production` is always changed (it reads git tags); anything else means the
    # workspace is not reproduced, and there is no no-op to time.
    if status.returncode != 0 or any(
        changes != ["always changed"] for changes in json.loads(status.stdout).values()
    ):
        return float("nan")
    return statistics.median(run_measured([dvc, "repro"])[0] for _ in range(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, nargs="+", default=[1e6, 1e7])
    args = parser.parse_args()

    print(
        f"machine: {platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"
    )
    print(
        f"{'rows':>12} {'ingest s':>9} {'generate s':>11} {'total s':>8} "
        f"{'rows/s':>9} {'peak GiB':>9}"
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (int(r) for r in args.rows):
            r = bench_size(rows, Path(tmp))
            results.append(r)
            total = r["ingest_s"] + r["generate_s"]
            print(
                f"{rows:>12,} {r['ingest_s']:>9.1f} {r['generate_s']:>11.1f} {total:>8.1f} "
                f"{rows / total:>9,.0f} {r['peak_gib']:>9.2f}",
                flush=True,
            )
    if len(results) > 1:
        first, last = results[0], results[-1]
        size = last["rows"] / first["rows"]
        cost = (last["ingest_s"] + last["generate_s"]) / (first["ingest_s"] + first["generate_s"])
        print(f"growth: {size:.0f}x rows took {cost:.1f}x time")
    print(f"no-op dvc repro (median of 5): {noop_repro():.2f} s")


if __name__ == "__main__":
    main()
