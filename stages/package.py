"""Stage package: the trained model as a content-addressed folder for serving.

Converts the model to ONNX (refusing when its predictions differ from XGBoost's), writes
the schema, the reference profile for drift monitoring, a model card, the online snapshot
raw requests are served from, and a sha256 manifest, all at once: a failure leaves no
package.
"""

import argparse
import json
import time
from pathlib import Path

import pyarrow.parquet as pq

from ctrpipe import config, paths
from ctrpipe.errors import DataError, exits_cleanly
from ctrpipe.model import card, package
from ctrpipe.model.encoding import FeatureSchema
from ctrpipe.model.settings import Package
from ctrpipe.online import store


@exits_cleanly
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=config.PARAMS_FILE)
    for name in ("model", "schema", "train-params", "train", "validation", "snapshot", "out"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--metrics", required=True, help="may be absent: the card then says so")
    parser.add_argument(
        "--golden", required=True, help="not read; only its hash in dvc.lock goes into the card"
    )
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
    digest = package.write(args.out, files)
    print(f"package: {args.out} sha256 {digest} in {time.perf_counter() - started:.1f} s")


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
