"""Stage train: XGBoost on the train split, with a hyperparameter sweep inside the stage.

Fits the feature encoding on train, searches the `sweep.space` on a sample of train with
Optuna, refits the best params on all of train with early stopping on validation, and
writes the model cut to its best iteration (UBJSON), its input schema, its params and
metrics, and one row per sweep trial.
"""

import argparse
import time

from ctrpipe import config, fileio
from ctrpipe.errors import exits_cleanly
from ctrpipe.model import encoding, sweep, training
from ctrpipe.model.settings import Model, Sweep


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
    nthread = model.params.get("nthread", -1)  # for building the DMatrix; XGBoost checks it
    nthread = nthread if isinstance(nthread, int) else -1

    roles = training.read_roles(args.features)
    train_table = training.read_split(args.train, roles)
    valid_table = training.read_split(args.validation, roles)
    schema = encoding.fit(
        train_table, roles, model.encoding.max_categories, model.encoding.min_count
    )
    dtrain = training.to_dmatrix(train_table, schema, args.train, nthread)
    dvalid = training.to_dmatrix(valid_table, schema, args.validation, nthread)
    loaded = time.perf_counter()

    study = sweep.run(search, model, dtrain, dvalid)
    swept = time.perf_counter()

    final_params = training.booster_params(model, study.best_params)
    booster = training.train(final_params, dtrain, dvalid, model)
    best = training.best_model(booster)
    metrics = training.evaluate(best, dvalid)
    summary = training.summary(booster, best, final_params, metrics)
    summary["sweep"] = {
        "best_trial": study.best_trial.number,
        "best_value": round(study.best_value, 6),
    }
    refit = time.perf_counter()

    # Everything is computed before the first write: a failure leaves no new output.
    with fileio.atomic_path(args.model, suffix=".ubj") as tmp:
        best.save_model(tmp)  # the suffix makes XGBoost write UBJSON
    fileio.write_text(args.schema, schema.to_json())
    fileio.write_json(args.model_params, summary)
    fileio.write_text(args.trials, sweep.trials_csv(study, search.space))

    pruned = sum(t.state.name == "PRUNED" for t in study.trials)
    print(
        f"train: {len(study.trials)} trials ({pruned} pruned) on "
        f"{min(dtrain.num_row(), search.sample_rows):,} rows, best logloss "
        f"{study.best_value:.5f}; final {summary['trees']} trees on {dtrain.num_row():,} "
        f"rows: validation logloss {metrics['logloss']:.5f}, AUC {metrics['auc']:.4f}; "
        f"load {loaded - started:.1f} s, sweep {swept - loaded:.1f} s, "
        f"refit {refit - swept:.1f} s, total {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
