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
    check_label_facts(
        label.type,
        label.null_count,
        lambda: pc.unique(label.cast(pa.float64())).to_pylist(),
        where,
    )


def check_label_facts(kind: pa.DataType, nulls: int, classes, where: str) -> None:
    """The label's checks from what they need, however it was counted: its Arrow type,
    its nulls and (called only when those pass) its distinct values as floats."""
    if not (pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_floating(kind)):
        raise DataError(f"{where}: has type {kind}; expected 0/1")
    if nulls:
        raise DataError(f"{where}: {nulls} null labels")
    found = sorted(classes())
    if not set(found) <= {0.0, 1.0}:
        raise DataError(f"{where}: labels must be 0 or 1 (found {found[-1]:g})")
    if len(found) < 2:
        raise DataError(f"{where}: only the class {found[0]:g}; expected both 0 and 1")


def check_weight(weight: pa.ChunkedArray, where: str) -> None:
    check_weight_facts(weight.type, weight.null_count, lambda: pc.min(weight).as_py(), where)


def check_weight_facts(kind: pa.DataType, nulls: int, smallest, where: str) -> None:
    """The weight's checks from its Arrow type, its nulls and (called only when those
    pass) its smallest value."""
    if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
        raise DataError(f"{where}: has type {kind}; expected a number")
    if nulls or smallest() <= 0:
        raise DataError(f"{where}: weights must be positive and not null")
