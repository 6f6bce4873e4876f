"""Benchmark `monitor` on a large request log: wall time of the whole command.

    python bench/monitor.py                  # 10M logged rows, with labels for all
    python bench/monitor.py --rows 1e6 --no-labels

Builds a request log of --rows rows in the format serve writes (ctrpipe/serving/request_log.py):
validation rows repeated, each with a unique id and the package's own prediction, in
files of 1M rows, plus a labels file for every id. Then times run.monitor (Spark start
included) in this process, with the project's `spark` settings. Prints figures only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from train import machine  # bench/train.py, this folder

from ctrpipe import config, params, paths, spark
from ctrpipe.model import package
from ctrpipe.monitoring import run
from ctrpipe.monitoring.settings import Ops
from ctrpipe.serving import request_log

FILE_ROWS = 1_000_000
TARGET_SECONDS = 60


def write_log(folder: Path, source: pa.Table, loaded: package.Loaded, rows: int) -> int:
    """Request log files of `rows` rows made of `source` repeated; the number of files."""
    schema = loaded.schema
    base = source.select([*schema.names, schema.label])
    predictions = pa.array(loaded.predict(source).astype(np.float64))
    arrow = request_log.arrow_schema(schema)
    files, written = 0, 0
    while written < rows:
        n = min(FILE_ROWS, rows - written)
        take = pa.array(np.arange(written, written + n) % base.num_rows)
        part = base.take(take)
        ids = pc.cast(pa.array(np.arange(written, written + n)), pa.string())
        columns = {
            "ts": pa.array(np.full(n, int(time.time() * 1000)), pa.timestamp("ms", "UTC")),
            "id": ids,
            "version": pa.nulls(n, pa.string()),
            "digest": pa.array([loaded.digest] * n),
            "prediction": predictions.take(take),
        }
        columns |= {name: part.column(name) for name in schema.names}
        table = pa.table(columns).cast(arrow)
        pq.write_table(
            table, folder / "logs" / f"requests-bench-{files:06d}.parquet", compression="zstd"
        )
        labels = pa.table({"id": ids, "clicked": part.column(schema.label)})
        pq.write_table(labels, folder / "labels" / f"part-{files:06d}.parquet")
        files += 1
        written += n
    return files


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=float, default=1e7)
    parser.add_argument("--no-labels", action="store_true")
    parser.add_argument("--package", default=paths.PACKAGE)
    parser.add_argument("--source", default=paths.VALIDATION)
    args = parser.parse_args(argv)
    rows = int(args.rows)
    print(machine())
    loaded = package.load(ROOT / args.package)
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        folder = Path(tmp)
        (folder / "logs").mkdir()
        (folder / "labels").mkdir()
        started = time.perf_counter()
        files = write_log(folder, pq.read_table(ROOT / args.source), loaded, rows)
        print(
            f"wrote {rows:,} logged rows in {files} files ({time.perf_counter() - started:.1f} s)"
        )
        settings = config.updated(
            params.groups(ROOT, Ops).monitor,
            {
                "logs": str(folder / "logs"),
                "out": str(folder / "out"),
                "labels": None if args.no_labels else str(folder / "labels"),
            },
        )
        if args.no_labels:
            settings = settings.model_copy(update={"labels": None})
        started = time.perf_counter()
        session = spark.session(run.spark_settings(ROOT), app="bench-monitor")
        ready = time.perf_counter()
        result, _ = run.monitor(
            run.Options(ROOT, settings, package=ROOT / args.package, act=False), spark=session
        )
        done = time.perf_counter()
        session.stop()
    total = done - started
    print(
        f"monitor over {result['rows']['logged']:,} rows "
        f"({result['rows']['labelled'] or 0:,} labelled): {total:.1f} s wall "
        f"(Spark start {ready - started:.1f} s, judging {done - ready:.1f} s); "
        f"{result['rows']['logged'] / total / 1e6:.2f}M rows/s; verdict {result['verdict']}; "
        f"target <= {TARGET_SECONDS} s"
    )


if __name__ == "__main__":
    main()
