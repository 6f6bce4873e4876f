"""Benchmark the online snapshot's build: what the snapshot stage and `features refresh`
spend, by phase, as raw data grows.

    python bench/snapshot.py                  # 1M and 10M impressions
    python bench/snapshot.py --rows 1e6       # chosen sizes

Each size: ingest writes the synthetic raw tables (not timed here; bench/pipeline.py
times it), then a subprocess builds the snapshot as refresh does (dataset.label, then
snapshot.build, then the files written), printing its phases; the wall time and peak
memory are the whole process tree's (Python and Spark's JVM).

Targets (issue 16): the 10M preset's snapshot in <= 60 s; a refresh on the default
data (1M) in <= 30 s. Prints figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import run_measured, size_params  # bench/pipeline.py, this folder


def build(params_file: Path, raw: Path, out: Path) -> None:
    """The snapshot as refresh builds it into `out`, phase by phase; the phases' seconds
    go to out/../phases.json."""
    from ctrpipe import config, manifest, spark
    from ctrpipe.data import dataset
    from ctrpipe.data.settings import Data
    from ctrpipe.online import snapshot

    p = config.load(params_file)
    data, settings = p.section("data", Data), p.section("spark", config.Spark)
    phases, t = {}, time.perf_counter()

    def phase(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        phases[name] = round(now - t, 1)
        t = now

    session = spark.session(settings, app="bench-snapshot")
    phase("spark_start")
    labelled = dataset.label(session, data, raw, settings.broadcast_max_rows)
    phase("read_and_check")
    cut = labelled.newest(data)
    files = snapshot.build(labelled, data, cut)
    phase("history_and_tables")
    session.stop()
    manifest.write(out, files)
    phase("write")
    (out.parent / "phases.json").write_text(json.dumps(phases))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument(
        "--build", nargs=3, metavar=("PARAMS", "RAW", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.build:
        build(*(Path(a) for a in args.build))
        return

    py = sys.executable
    print(f"{'rows':>12} {'snapshot s':>11} {'peak GiB':>9}  phases (s)")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (int(r) for r in args.rows):
            work, p = size_params(Path(tmp), rows)
            raw = str(work / "raw")
            run_measured([py, "-m", "stages.ingest", "--params", str(p), "--out", raw])
            seconds, peak = run_measured(
                [py, str(Path(__file__)), "--build", str(p), raw, str(work / "s")]
            )
            phases = json.loads((work / "phases.json").read_text())
            print(f"{rows:>12,} {seconds:>11.1f} {peak / 2**30:>9.2f}  {phases}", flush=True)


if __name__ == "__main__":
    main()
