"""Stage generate (PySpark): raw tables to train / validation / golden feature sets,
and the online snapshot a raw request is served with.

Validates every record against the declared schema, quarantines bad ones with a reason,
joins and aggregates into features, subsamples negatives and splits by time. The
snapshot comes from the same pass: each join's table as the join reads it, and each
history key's aggregates at the cut (`online.cut`, default the newest record) from
probes among the rows' own history windows (ctrpipe/online/store.py has its files).
Beside it, the skew sample: golden rows' raw records with their own aggregates.
"""

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq

from ctrpipe import config, fileio, manifest, spark
from ctrpipe.data import dataset, features, raw
from ctrpipe.data.settings import Data
from ctrpipe.data.split import SPLITS
from ctrpipe.errors import exits_cleanly
from ctrpipe.online import snapshot
from ctrpipe.online.settings import Online


@exits_cleanly
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=config.PARAMS_FILE)
    for name in ("raw", *SPLITS, "features", "quarantine", "metrics", "snapshot", "skew-sample"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    params = config.load(args.params)
    data = params.section("data", Data)
    online = params.section("online", Online)
    for table in data.tables.values():  # fail fast, before Spark starts
        raw.inspect(Path(args.raw), table)
    settings = params.section("spark", config.Spark)
    session = spark.session(settings, app="generate")
    try:
        # Every check runs before an output lands: a failure leaves no new output.
        built = dataset.build(
            session, data, Path(args.raw), settings.broadcast_max_rows, True, online.cut
        )
        with fileio.atomic_path(args.quarantine) as quarantine, ThreadPoolExecutor(1) as pool:
            quarantine.mkdir()
            # The quarantine's small Spark jobs run on the cores the splits' job leaves
            # idle; the quarantine lands only after the splits have passed their checks.
            pending = pool.submit(dataset.write_quarantine, built, quarantine)
            built.stats["splits"], history = dataset.write_splits(
                built, data, {name: Path(getattr(args, name)) for name in SPLITS}
            )
            golden = pq.read_table(args.golden)
            sample = snapshot.skew_sample(built.labelled, data, golden, online.skew_rows)
            files = snapshot.build(built.labelled, data, built.cut, history)
            pending.result()
        with fileio.atomic_path(args.skew_sample) as tmp:
            pq.write_table(sample, tmp, **fileio.FINAL_PARQUET)
        digest = manifest.write(args.snapshot, files)
        fileio.write_json(
            args.features,
            {
                "id": built.key,
                "time": data.time,
                "label": features.LABEL,
                "weight": features.WEIGHT,
                **features.feature_names(data),
            },
        )
        fileio.write_json(args.metrics, built.stats)
    finally:
        session.stop()
    rows = ", ".join(f"{s} {c['rows']:,}" for s, c in built.stats["splits"].items())
    keys = ", ".join(f"{k} {t.num_rows:,}" for k, t in history.items())
    print(
        f"generate: {rows} rows; snapshot sha256 {digest[:12]} at {built.cut}"
        f"{f' ({keys} keys)' if keys else ''}, skew sample {sample.num_rows:,} rows; "
        f"{time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
