"""Several xgboost.spark fits in one driver process, for the determinism tests: one
Spark session, the splits read once, then a fit per worker count asked for.

python -m tests.support.spark_fits MASTER SPLITS PARAMS OUT N [N ...] writes the fit
with N workers, cut to its best iteration, to OUT/fit-<i>-w<N>.ubj; PARAMS is a train
stage's params.yaml and its params.json's final params (the sweep is not run here).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ctrpipe import config, spark
from ctrpipe.model import distributed, training
from ctrpipe.model.settings import Model


def main(master: str, splits: str, params: str, out: str, *workers: str) -> None:
    splits, out = Path(splits), Path(out)
    loaded = config.load(Path(params) / "params.yaml")
    model = loaded.section("model", Model)
    final = json.loads((Path(params) / "params.json").read_text())["params"]
    roles = training.read_roles(splits / "features.json")
    settings = loaded.section("spark", config.Spark).model_copy(update={"master": master})
    session = spark.session(settings, app="fits")
    try:
        wait = settings.slots_wait_seconds
        distributed.check_slots(session, max(int(n) for n in workers), wait)
        train = distributed.read_split(session, splits / "train.parquet", roles)
        valid = distributed.read_split(session, splits / "validation.parquet", roles)
        schema = distributed.fit_encoding(
            train, roles, model.encoding.max_categories, model.encoding.min_count
        )
        for i, n in enumerate(workers):
            with_n = model.model_copy(update={"num_workers": int(n)})
            booster = distributed.fit(train, valid, schema, final, with_n, wait)
            training.best_model(booster).save_model(out / f"fit-{i}-w{n}.ubj")
    finally:
        session.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
