"""Where the train stage fits: `model.engine`.

`local` reads the splits into this process; `spark` keeps them in Spark, fits the
encoding there, runs the sweep's trials on seeded samples collected to the driver, and
refits on `model.num_workers` Spark tasks (distributed.py). The sweep's trials run as
Spark tasks with either engine when `sweep.parallel` is above 1. Both return the same
things, which stages/train.py writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import optuna
import xgboost as xgb

from ctrpipe import spark
from ctrpipe.config import Spark
from ctrpipe.model import encoding, sweep, training
from ctrpipe.model.encoding import FeatureSchema
from ctrpipe.model.settings import Model, Sweep


@dataclass
class Fitted:
    schema: FeatureSchema
    study: optuna.Study
    booster: xgb.Booster  # every round trained; it knows its best one
    dvalid: xgb.DMatrix  # what the summary's validation metrics are computed on
    train_rows: int
    timings: dict[str, float]


def fit(
    train_path: str, valid_path: str, settings: Spark, model: Model, search: Sweep, roles: dict
) -> Fitted:
    """The schema, the sweep and the final booster, by the configured engine."""
    engine = on_spark if model.engine == "spark" else local
    return engine(train_path, valid_path, settings, model, search, roles)


def local(
    train_path: str, valid_path: str, settings: Spark, model: Model, search: Sweep, roles: dict
) -> Fitted:
    """The splits in memory: the sweep on a sample of train (its trials as Spark tasks
    when `sweep.parallel` is above 1), the refit on all of it."""
    started = time.perf_counter()
    nthread = model.params.get("nthread", -1)  # for building the DMatrix; XGBoost checks it
    nthread = nthread if isinstance(nthread, int) else -1
    train_table = training.read_split(train_path, roles)
    valid_table = training.read_split(valid_path, roles)
    schema = encoding.fit(
        train_table, roles, model.encoding.max_categories, model.encoding.min_count
    )
    dtrain = training.to_dmatrix(train_table, schema, train_path, nthread)
    dvalid = training.to_dmatrix(valid_table, schema, valid_path, nthread)
    loaded = time.perf_counter()
    if search.parallel > 1:
        from ctrpipe.model import distributed  # pyspark: only when it runs

        session = spark.session(settings, app="sweep")
        try:
            wait = settings.slots_wait_seconds
            distributed.check_slots(session, search.parallel, wait, "sweep.parallel")
            runner = distributed.trial_runner(session, search, model, dtrain, dvalid)
            study = sweep.run(search, model, dtrain, dvalid, runner)
        finally:
            session.stop()
    else:
        study = sweep.run(search, model, dtrain, dvalid)
    swept = time.perf_counter()
    booster = training.train(
        training.booster_params(model, study.best_params), dtrain, dvalid, model
    )
    timings = {"load": loaded - started, "sweep": swept - loaded}
    timings["refit"] = time.perf_counter() - swept
    return Fitted(schema, study, booster, dvalid, dtrain.num_row(), timings)


def on_spark(
    train_path: str, valid_path: str, settings: Spark, model: Model, search: Sweep, roles: dict
) -> Fitted:
    """The splits in Spark: the encoding fitted there, the sweep on seeded samples of
    train and validation (`sweep.sample_rows` each) collected to the driver, the refit
    on `model.num_workers` tasks. The summary's validation metrics are the sample's."""
    from ctrpipe.model import distributed

    started = time.perf_counter()
    session = spark.session(settings, app="train")
    try:
        wait = settings.slots_wait_seconds
        distributed.check_slots(session, model.num_workers, wait)
        distributed.check_slots(session, search.parallel, wait, "sweep.parallel")
        train = distributed.read_split(session, train_path, roles)
        valid = distributed.read_split(session, valid_path, roles)
        schema = distributed.fit_encoding(
            train, roles, model.encoding.max_categories, model.encoding.min_count
        )
        samples = [
            distributed.sample(df, schema, search.sample_rows, search.sampler_seed)
            for df in (train, valid)
        ]
        dtrain, dvalid = (
            training.to_dmatrix(table, schema, path)
            for table, path in zip(samples, (train_path, valid_path))
        )
        loaded = time.perf_counter()
        runner = None
        if search.parallel > 1:
            runner = distributed.trial_runner(session, search, model, dtrain, dvalid)
        study = sweep.run(search, model, dtrain, dvalid, runner)
        swept = time.perf_counter()
        params = training.booster_params(model, study.best_params)
        booster = distributed.fit(train, valid, schema, params, model, wait)
        rows = train.count()
    finally:
        session.stop()
    timings = {"load": loaded - started, "sweep": swept - loaded}
    timings["refit"] = time.perf_counter() - swept
    return Fitted(schema, study, booster, dvalid, rows, timings)
