"""Reading a labelled split (train, validation, golden) for the model stages.

One reader, so that train and evaluate refuse the same bad files with the same words:
a missing file or column, no rows, labels that are not 0/1 or only one class (log loss
and AUC need both), weights that are missing or not positive.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ctrpipe.errors import DataError


def read(
    path: str | Path,
    columns: list[str],
    label: str,
    weight: str,
    needed_by: str = "the model needs it",
) -> pa.Table:
    """`columns` of the split at `path`, after the checks above."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found; run `dvc repro generate` first")
    try:
        names = pq.read_schema(path).names
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(f"{path}: column '{missing[0]}' missing ({needed_by})")
        table = pq.read_table(path, columns=list(dict.fromkeys(columns)))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: no rows")
    check_label(table.column(label), f"{path}: column '{label}'")
    check_weight(table.column(weight), f"{path}: column '{weight}'")
    return table


def check_label(label: pa.ChunkedArray, where: str) -> None:
    if not (
        pa.types.is_integer(label.type)
        or pa.types.is_boolean(label.type)
        or pa.types.is_floating(label.type)
    ):
        raise DataError(f"{where}: has type {label.type}; expected 0/1")
    if label.null_count:
        raise DataError(f"{where}: {label.null_count} null labels")
    classes = sorted(pc.unique(label.cast(pa.float64())).to_pylist())
    if not set(classes) <= {0.0, 1.0}:
        raise DataError(f"{where}: labels must be 0 or 1 (found {classes[-1]:g})")
    if len(classes) < 2:
        raise DataError(f"{where}: only the class {classes[0]:g}; expected both 0 and 1")


def check_weight(weight: pa.ChunkedArray, where: str) -> None:
    if not (pa.types.is_floating(weight.type) or pa.types.is_integer(weight.type)):
        raise DataError(f"{where}: has type {weight.type}; expected a number")
    if weight.null_count or pc.min(weight).as_py() <= 0:
        raise DataError(f"{where}: weights must be positive and not null")
