"""Stage train: XGBoost on the train split, with a hyperparameter sweep inside the stage.

Fits the feature encoding on train, searches the `sweep.space` on a sample of train with
Optuna, refits the best params on all of train with early stopping on validation, and
writes the model cut to its best iteration (UBJSON), its input schema, its params and
metrics, and one row per sweep trial.

`model.engine` says where (ctrpipe/model/engines.py): in this process, or on Spark with
the splits never collected. Both write the same files.
"""

import argparse
import time

from ctrpipe import config, fileio
from ctrpipe.errors import exits_cleanly
from ctrpipe.model import engines, sweep, training
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
    roles = training.read_roles(args.features)
    settings = params.section("spark", config.Spark)
    fitted = engines.fit(args.train, args.validation, settings, model, search, roles)
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


if __name__ == "__main__":
    main()
