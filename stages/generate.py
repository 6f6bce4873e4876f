"""Stage generate (PySpark): raw tables to train / validation / golden feature sets.

Validates every record against the declared schema, quarantines bad ones with a reason,
joins and aggregates into features, subsamples negatives and splits by time.
"""

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ctrpipe import config, fileio, spark
from ctrpipe.data import dataset, features, raw
from ctrpipe.data.settings import Data
from ctrpipe.data.split import SPLITS
from ctrpipe.errors import exits_cleanly


@exits_cleanly
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=config.PARAMS_FILE)
    for name in ("raw", *SPLITS, "features", "quarantine", "metrics"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    params = config.load(args.params)
    data = params.section("data", Data)
    for table in data.tables.values():  # fail fast, before Spark starts
        raw.inspect(Path(args.raw), table)
    settings = params.section("spark", config.Spark)
    session = spark.session(settings, app="generate")
    try:
        # Every check runs before an output lands: a failure leaves no new output.
        built = dataset.build(session, data, Path(args.raw), settings.broadcast_max_rows)
        with fileio.atomic_path(args.quarantine) as quarantine, ThreadPoolExecutor(1) as pool:
            quarantine.mkdir()
            # The quarantine's small Spark jobs run on the cores the splits' job leaves
            # idle; the quarantine lands only after the splits have passed their checks.
            pending = pool.submit(dataset.write_quarantine, built, quarantine)
            built.stats["splits"] = dataset.write_splits(
                built, data, {name: Path(getattr(args, name)) for name in SPLITS}
            )
            pending.result()
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
    print(f"generate: {rows} rows in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
