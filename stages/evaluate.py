"""Stage evaluate: the trained model on the validation and golden sets.

Writes, through dvclive, one metrics file (ROC AUC, PR AUC, log loss, calibration error,
overall and per slice) and plot tables (ROC, precision-recall, reliability per split, and
the model's feature importance) for `dvc metrics` and `dvc plots`.
"""

import argparse
import time
from pathlib import Path

from ctrpipe import config, evaluation, model_config
from ctrpipe.errors import exits_cleanly

SPLITS = ("validation", "golden")


@exits_cleanly
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=config.PARAMS_FILE)
    parser.add_argument("--model", default="models/model.ubj")
    parser.add_argument("--schema", default="models/schema.json")
    parser.add_argument("--data", default="data/processed")
    parser.add_argument("--out", default="reports/evaluate")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    settings = config.load(args.params).section("evaluate", model_config.Evaluate)
    model = evaluation.load_model(args.model, args.schema)
    # Read and check every split before scoring any: a bad one fails fast, writes nothing.
    paths = {name: Path(args.data) / f"{name}.parquet" for name in SPLITS}
    tables = {name: evaluation.read_split(path, model.schema, settings.slices)
              for name, path in paths.items()}
    results = {name: evaluation.evaluate(model, table, settings, source=str(paths[name]))
               for name, table in tables.items()}
    evaluation.write_reports(args.out, results, evaluation.importance(model))
    summary = ", ".join(f"{name} AUC {r['metrics']['roc_auc']:.4f} "
                        f"(logloss {r['metrics']['logloss']:.4f})" for name, r in results.items())
    print(f"evaluate: {summary} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
