"""Stage evaluate: the trained model on the validation and golden sets.

Writes, through dvclive, one metrics file (ROC AUC, PR AUC, log loss, calibration error,
overall and per slice) and plot tables (ROC, precision-recall, reliability per split, and
the model's feature importance) for `dvc metrics` and `dvc plots`.
"""

import argparse
import time

from ctrpipe import config
from ctrpipe.errors import exits_cleanly
from ctrpipe.model import evaluation
from ctrpipe.model.settings import Evaluate, SliceColumns

SPLITS = ("validation", "golden")


@exits_cleanly
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=config.PARAMS_FILE)
    for name in ("model", "schema", *SPLITS):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--out", required=True, help="dvclive's folder: metrics, plots")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    params = config.load(args.params)
    settings = params.section("evaluate", Evaluate)
    slices = params.section("data", SliceColumns).slices  # named once, in the data group
    model = evaluation.load_model(args.model, args.schema)
    # Read and check every split before scoring any: a bad one fails fast, writes nothing.
    paths = {name: getattr(args, name) for name in SPLITS}
    tables = {
        name: evaluation.read_split(path, model.schema, slices) for name, path in paths.items()
    }
    results = {
        name: evaluation.evaluate(model, table, settings, slices, source=str(paths[name]))
        for name, table in tables.items()
    }
    evaluation.write_reports(args.out, results, evaluation.importance(model))
    summary = ", ".join(
        f"{name} AUC {r['metrics']['roc_auc']:.4f} (logloss {r['metrics']['logloss']:.4f})"
        for name, r in results.items()
    )
    print(f"evaluate: {summary} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
