"""Stage package: the trained model as a content-addressed folder for serving.

Converts the model to ONNX (refusing when its predictions differ from XGBoost's), writes
the schema, the reference profile for drift monitoring, a model card, the online snapshot
raw requests are served from, and a sha256 manifest, all at once: a failure leaves no
package.

Before the package is written, a staged copy of it serves sampled golden rows from their
raw records (the skew check, ctrpipe/serving/skew.py); the figures go into the model card
and into a metric of the pipeline, so a published version states the skew it was built
with.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from ctrpipe import config, fileio, paths
from ctrpipe.errors import DataError, exits_cleanly
from ctrpipe.model import card, package
from ctrpipe.model.encoding import FeatureSchema
from ctrpipe.model.settings import Package
from ctrpipe.online import store
from ctrpipe.serving import skew


@exits_cleanly
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=config.PARAMS_FILE)
    for name in ("model", "schema", "train-params", "train", "validation", "snapshot", "out"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--metrics", required=True, help="may be absent: the card then says so")
    parser.add_argument("--golden", required=True, help="the skew check's expected rows")
    parser.add_argument("--skew-sample", required=True, help="the skew check's raw records")
    parser.add_argument("--skew", required=True, help="where the skew figures go")
    parser.add_argument("--lock", default=paths.LOCK_FILE)
    parser.add_argument(
        "--commit", default=None, help="default: the last commit that changed ctrpipe/ or stages/"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    settings = config.load(args.params).section("package", Package)
    inputs = package.Inputs(
        model=read_bytes(args.model),
        schema=read_schema(args.schema),
        train=read_table(args.train),
        validation=read_table(args.validation),
        train_params=read_json(args.train_params),
        metrics=read_json(args.metrics) if Path(args.metrics).exists() else None,
        data_hashes=card.lock_hashes(
            args.lock, {"train": args.train, "validation": args.validation, "golden": args.golden}
        ),
        commit=args.commit or card.git_commit(),
        names={
            "model": args.model,
            "train": args.train,
            "validation": args.validation,
            "train_params": args.train_params,
            "metrics": args.metrics,
        },
    )
    files = package.build(inputs, settings) | store.packaged(args.snapshot)
    figures = skew_figures(files, read_table(args.skew_sample), read_table(args.golden))
    files["model_card.md"] += card.skew(figures).encode("utf-8")
    digest = package.write(args.out, files)
    fileio.write_json(args.skew, figures)
    print(
        f"package: {args.out} sha256 {digest} in {time.perf_counter() - started:.1f} s; skew: "
        f"{figures['rows_different']} of {figures['rows_checked']} golden rows differ "
        f"(features {figures['features_different'] or 'none'}, predictions "
        f"{figures['predictions_different']})"
    )


def skew_figures(files: dict[str, bytes], sample, golden) -> dict:
    """The skew check on a staged copy of the package: the service loads a folder, and
    the card that states the figures is one of the package's files."""
    with tempfile.TemporaryDirectory(prefix=".package.") as tmp:
        staged = Path(tmp) / "package"
        package.write(staged, files)
        return skew.check(staged, sample, golden)


def read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


def read_json(path: str):
    try:
        return json.loads(read_bytes(path))
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def read_schema(path: str) -> FeatureSchema:
    try:
        return FeatureSchema(**read_json(path))
    except TypeError as exc:
        raise DataError(f"{path}: not a feature schema ({exc})") from None


def read_table(path: str):
    if not Path(path).is_file():
        raise DataError(f"{path}: cannot read (No such file or directory)")
    try:
        return pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None


if __name__ == "__main__":
    main()
