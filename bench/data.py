"""Benchmark ingest + generate on a user's own multi-table data (the retail fixture of
the tests: a fact table a file per day, three dimension tables, one joined by two
columns, one by a renamed key, NA tokens), against the synthetic ad logs of the same
size, side by side in one run.

    python bench/data.py                  # 1M orders and 1M impressions, 3 runs each
    python bench/data.py --rows 3e5 --runs 1

Each run is the real stage entry points in subprocesses (bench/pipeline.py's
ingest_and_generate: wall time and the peak memory of the process tree).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import ingest_and_generate  # bench/pipeline.py, this folder
from train import machine  # bench/train.py, this folder

from tests.support import retail


def params_for(data: dict, path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    path.write_text(yaml.safe_dump({**raw, "data": data}))
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    rows = int(args.rows)
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        external = retail.write(tmp / "external", orders=rows, dirt=True)
        synthetic = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]
        synthetic["source"]["synthetic"]["rows"] = rows
        cases = {
            "retail (4 tables, files)": params_for(retail.data_config(external), tmp / "r.yaml"),
            "synthetic ad logs": params_for(synthetic, tmp / "s.yaml"),
        }
        print(f"{rows:,} base rows; {args.runs} runs each, alternating")
        print(f"{'data':>26} {'ingest s':>9} {'generate s':>11} {'total s':>8} {'peak GiB':>9}")
        results = {name: [] for name in cases}
        for i in range(args.runs):
            for name, params in cases.items():
                work = tmp / f"run{i}-{len(results[name])}-{name[:5]}"
                work.mkdir()
                results[name].append(ingest_and_generate(params, work))
                ingest, generate, peak = results[name][-1]
                print(
                    f"{name:>26} {ingest:9.1f} {generate:11.1f} {ingest + generate:8.1f} "
                    f"{peak / 2**30:9.2f}",
                    flush=True,
                )
        for name, runs in results.items():
            totals = [i + g for i, g, _ in runs]
            print(
                f"{name}: median total {statistics.median(totals):.1f} s "
                f"({min(totals):.1f}-{max(totals):.1f})"
            )


if __name__ == "__main__":
    main()
