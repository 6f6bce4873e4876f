"""`python -m ctrpipe features refresh`: a new online snapshot from newer raw data, for a
model already built, without retraining.

The same functions as the snapshot stage, on the raw folder given, with params.yaml's
data config. That config must build the features the package's own snapshot was built
for (the spec's digest): a changed feature config needs a new model, not a refresh. The
snapshot lands in `<out>/<digest>/` at once; a service serving `<out>` swaps to the
newest matching one (Service.refresh_online).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from ctrpipe import config, manifest, spark
from ctrpipe.data import dataset, raw
from ctrpipe.data.settings import Data
from ctrpipe.errors import DataError
from ctrpipe.online import snapshot, store


def refresh(
    params: config.Params,
    raw_dir: Path,
    package: Path,
    out: Path,
    cut: dt.datetime | None = None,
) -> store.Snapshot:
    """Build, check and write the snapshot; the written one, loaded."""
    data = matching_data(params, package, "retrain instead of refreshing")
    for table in data.tables.values():  # fail fast, before Spark starts
        raw.inspect(raw_dir, table)
    settings = params.section("spark", config.Spark)
    session = spark.session(settings, app="refresh")
    try:
        labelled = dataset.label(session, data, raw_dir, settings.broadcast_max_rows)
        files = snapshot.build(labelled, data, cut or labelled.newest(data))
    finally:
        session.stop()
    staged = out / f".new-{json.loads(files[store.INFO])['cut']}"
    digest = manifest.write(staged, files)
    target = out / digest
    if target.exists():  # the same raw data and cut: the same snapshot, already there
        shutil.rmtree(staged)
    else:
        staged.rename(target)
    return store.load(target)


def matching_data(params: config.Params, package: Path, advice: str) -> Data:
    """params.yaml's data config, which must build the features of the package's own
    snapshot (the spec's digest); a DataError ending in `advice` if it does not."""
    data = params.section("data", Data)
    expected = store.load(package / store.FOLDER)  # the package's own, checked
    built = snapshot.config_of(data)
    if built != expected.config:
        raise DataError(
            f"{config.PARAMS_FILE}: its data config builds other features than the model "
            f"{package} was trained on (config {built[:12]}, the "
            f"package's {expected.config[:12]}); {advice}"
        )
    return data
