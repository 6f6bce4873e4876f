"""Stage snapshot (PySpark): the online features a raw request is served with.

From the raw tables, with generate's own functions: each join's table as the join reads
it and each history key's aggregates as of the cut (`online.cut`, default the newest
record), content-addressed (ctrpipe/online/store.py). Beside it, the skew sample: golden
rows' raw records with their aggregates at their own times, which stage skew serves.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ctrpipe import config, fileio, manifest, spark
from ctrpipe.data import dataset, raw
from ctrpipe.data.settings import Data
from ctrpipe.errors import exits_cleanly
from ctrpipe.online import snapshot, store
from ctrpipe.online.settings import Online


@exits_cleanly
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=config.PARAMS_FILE)
    for name in ("raw", "golden", "out", "skew-sample"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    params = config.load(args.params)
    data = params.section("data", Data)
    online = params.section("online", Online)
    for table in data.tables.values():  # fail fast, before Spark starts
        raw.inspect(Path(args.raw), table)
    _, key = dataset.with_row_id(data)
    ids = sample_ids(args.golden, key, online.skew_rows)
    settings = params.section("spark", config.Spark)
    session = spark.session(settings, app="snapshot")
    try:
        labelled = dataset.label(session, data, Path(args.raw), settings.broadcast_max_rows)
        cut = online.cut or snapshot.newest(labelled, data)  # None without a time
        files = snapshot.build(labelled, data, cut)
        sample = snapshot.skew_sample(labelled, data, ids, snapshot.request_columns(data))
        (sample,) = snapshot.to_arrow({"sample": sample}, {"sample": [key]}).values()
    finally:
        session.stop()
    with fileio.atomic_path(args.skew_sample) as tmp:
        pq.write_table(sample, tmp, **fileio.FINAL_PARQUET)
    digest = manifest.write(args.out, files)
    counts = json.loads(files[store.INFO])["rows"]
    rows = ", ".join(f"{name} {n:,}" for name, n in counts.items())
    print(
        f"snapshot: {args.out} sha256 {digest} at {cut} ({rows}); "
        f"skew sample {sample.num_rows:,} rows; {time.perf_counter() - started:.1f} s"
    )


def sample_ids(golden: str, key: str, n: int) -> list[str]:
    """`n` golden ids, evenly spaced through the file (sorted by time, then id)."""
    ids = pq.read_table(golden, columns=[key])[0].to_pylist()
    picks = np.unique(np.linspace(0, len(ids) - 1, min(n, len(ids))).astype(int))
    return [ids[i] for i in picks]


if __name__ == "__main__":
    main()
