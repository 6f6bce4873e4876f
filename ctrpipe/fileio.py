"""Writes that are all-or-nothing and byte-stable.

Everything a stage outputs goes through here: a crash leaves the old file or nothing,
never half a file that DVC or a reader would take as done.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

# Spark's Parquet files are staged and re-encoded by pyarrow: compressing or
# dictionary-encoding them would be CPU spent on bytes that are read once and thrown away.
STAGED_PARQUET = {"compression": "none", "parquet.enable.dictionary": "false"}
# How pyarrow writes every final Parquet file: snappy, and only Parquet's own schema.
FINAL_PARQUET = {"compression": "snappy", "store_schema": False}

# How a data file's format is told from its extension.
FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "json", ".json": "json"}


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str = ""):
    """Yield a temporary path beside `target`; move it into place only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / f"out{suffix}"
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_parquet(df, path: str | Path) -> None:
    """Write a Spark DataFrame as one Parquet file with a fixed name and stable bytes.

    The caller orders the rows; one partition keeps that order. Spark's Parquet writer
    lists column encodings in a per-JVM hash order, so two runs of the same rows can
    differ in bytes: its one part file is re-encoded by pyarrow, row group by row group,
    which writes the same bytes for the same rows every time.
    """
    with atomic_path(path) as tmp:
        spark_out = tmp.parent / "spark"
        df.coalesce(1).write.mode("error").options(**STAGED_PARQUET).parquet(str(spark_out))
        parts = sorted(spark_out.glob("part-*.parquet"))
        if len(parts) != 1:
            raise RuntimeError(f"expected one Parquet part in {spark_out}, found {len(parts)}")
        reencode_parquet(parts[0], tmp)


def reencode_parquet(src: Path, dst: Path) -> None:
    import pyarrow.parquet as pq  # here: most importers of this module write only JSON

    source = pq.ParquetFile(src)
    schema = source.schema_arrow.remove_metadata()
    with pq.ParquetWriter(dst, schema, **FINAL_PARQUET) as writer:
        for i in range(source.num_row_groups):
            group = source.read_row_group(i).replace_schema_metadata(None)
            writer.write_table(group, row_group_size=max(group.num_rows, 1))


def write_sorted_parquet(files: list[Path], dst: Path, by: list[str]) -> None:
    """The rows of several Parquet files as one file sorted by `by`, nulls first (as
    Spark sorts), snappy-compressed and without a stored Arrow schema: stable bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables(pq.read_table(f).replace_schema_metadata(None) for f in files)
    table = table.sort_by([(c, "ascending", "at_start") for c in by])
    pq.write_table(table, dst, **FINAL_PARQUET)


def cache_dir(name: str) -> Path:
    """A folder of the per-user cache: $CTRPIPE_CACHE/name, default ~/.cache/ctrpipe/name."""
    return Path(os.environ.get("CTRPIPE_CACHE") or "~/.cache/ctrpipe").expanduser() / name
