"""Stage train: XGBoost on the train split, with a hyperparameter sweep inside the stage.

Fits the feature encoding on train, searches the `sweep.space` on a sample of train with
Optuna, refits the best params on all of train with early stopping on validation, and
writes the model cut to its best iteration (UBJSON), its input schema, its params and
metrics, and one row per sweep trial.

`model.engine` says where: `local` reads the splits into this process; `spark` keeps
them in Spark, fits the encoding there, runs the sweep's trials on seeded samples
collected to the driver, and refits on `model.num_workers` Spark tasks
(ctrpipe/model/distributed.py). Both write the same files.
"""

import argparse
import time
from dataclasses import dataclass

import optuna
import xgboost as xgb

from ctrpipe import config, fileio, spark
from ctrpipe.errors import exits_cleanly
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


@exits_cleanly
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=config.PARAMS_FILE)
    for name in ("features", "train", "validation", "model", "schema", "model-params", "trials"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    params = config.load(args.params)
    model, search = params.section("model", Model), params.section("sweep", Sweep)
    training.booster_params(model)  # fail on a bad eval_metric before reading data
    roles = training.read_roles(args.features)
    settings = params.section("spark", config.Spark)
    if model.engine == "spark":
        fitted = on_spark(args, settings, model, search, roles)
    else:
        fitted = local(args, settings, model, search, roles)
    schema, study, booster = fitted.schema, fitted.study, fitted.booster

    best = training.best_model(booster)
    metrics = training.evaluate(best, fitted.dvalid)
    summary = training.summary(
        booster, best, training.booster_params(model, study.best_params), metrics
    )
    summary["sweep"] = {
        "best_trial": study.best_trial.number,
        "best_value": round(study.best_value, 6),
    }
    # Everything is computed before the first write: a failure leaves no new output.
    with fileio.atomic_path(args.model, suffix=".ubj") as tmp:
        best.save_model(tmp)  # the suffix makes XGBoost write UBJSON
    fileio.write_text(args.schema, schema.to_json())
    fileio.write_json(args.model_params, summary)
    fileio.write_text(args.trials, sweep.trials_csv(study, search.space))

    pruned = sum(t.state.name == "PRUNED" for t in study.trials)
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in fitted.timings.items())
    print(
        f"train ({model.engine}): {len(study.trials)} trials ({pruned} pruned), best logloss "
        f"{study.best_value:.5f}; final {summary['trees']} trees on {fitted.train_rows:,} "
        f"rows: validation logloss {metrics['logloss']:.5f}, AUC {metrics['auc']:.4f} "
        f"(on {fitted.dvalid.num_row():,} rows); {steps}, total "
        f"{time.perf_counter() - started:.1f} s"
    )


def local(args, settings: config.Spark, model: Model, search: Sweep, roles: dict) -> Fitted:
    """The splits in memory: the sweep on a sample of train (its trials as Spark tasks
    when `sweep.parallel` is above 1), the refit on all of it."""
    started = time.perf_counter()
    nthread = model.params.get("nthread", -1)  # for building the DMatrix; XGBoost checks it
    nthread = nthread if isinstance(nthread, int) else -1
    train_table = training.read_split(args.train, roles)
    valid_table = training.read_split(args.validation, roles)
    schema = encoding.fit(
        train_table, roles, model.encoding.max_categories, model.encoding.min_count
    )
    dtrain = training.to_dmatrix(train_table, schema, args.train, nthread)
    dvalid = training.to_dmatrix(valid_table, schema, args.validation, nthread)
    loaded = time.perf_counter()
    if search.parallel > 1:
        from ctrpipe.model import distributed

        session = spark.session(settings, app="sweep")
        try:
            distributed.check_slots(session, search.parallel, "sweep.parallel")
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


def on_spark(args, settings: config.Spark, model: Model, search: Sweep, roles: dict) -> Fitted:
    """The splits in Spark: the encoding fitted there, the sweep on seeded samples of
    train and validation (`sweep.sample_rows` each) collected to the driver, the refit
    on `model.num_workers` tasks. The summary's validation metrics are the sample's."""
    from ctrpipe.model import distributed

    started = time.perf_counter()
    session = spark.session(settings, app="train")
    try:
        distributed.check_slots(session, model.num_workers)
        distributed.check_slots(session, search.parallel, "sweep.parallel")
        train = distributed.read_split(session, args.train, roles)
        valid = distributed.read_split(session, args.validation, roles)
        schema = distributed.fit_encoding(
            train, roles, model.encoding.max_categories, model.encoding.min_count
        )
        samples = [
            distributed.sample(df, schema, search.sample_rows, search.sampler_seed)
            for df in (train, valid)
        ]
        dtrain, dvalid = (
            training.to_dmatrix(table, schema, path)
            for table, path in zip(samples, (args.train, args.validation))
        )
        loaded = time.perf_counter()
        runner = None
        if search.parallel > 1:
            runner = distributed.trial_runner(session, search, model, dtrain, dvalid)
        study = sweep.run(search, model, dtrain, dvalid, runner)
        swept = time.perf_counter()
        booster = distributed.fit(
            train, valid, schema, training.booster_params(model, study.best_params), model
        )
        rows = train.count()
    finally:
        session.stop()
    timings = {"load": loaded - started, "sweep": swept - loaded}
    timings["refit"] = time.perf_counter() - swept
    return Fitted(schema, study, booster, dvalid, rows, timings)


if __name__ == "__main__":
    main()
