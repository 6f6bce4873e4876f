"""The `files` source: the user's own tables (CSV, Parquet or JSON lines) from a folder.

Ingest copies them byte for byte into data/raw/, so that generate sees and quarantines
exactly what the user gave; the declared schema in `data.tables` says what they hold.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq

from ctrpipe.data.settings import Data
from ctrpipe.errors import DataError


def write(data: Data, out_dir: Path) -> dict[str, int]:
    counts = {}
    for name, table in data.tables.items():
        src = Path(data.input_dir) / table.path
        where = f"{src} (table '{name}' in data.tables)"
        if not src.is_file():
            raise DataError(f"{where}: file not found")
        if src.stat().st_size == 0:
            raise DataError(f"{where}: empty file, expected records")
        dst = out_dir / table.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(src, dst)
        except OSError as exc:
            raise DataError(f"{where}: cannot read ({exc.strerror})") from exc
        counts[name] = count_records(dst, table.file_format, where)
    return counts


def count_records(path: Path, fmt: str, where: str) -> int:
    if fmt == "parquet":
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:  # pyarrow raises several types for a bad footer
            raise DataError(f"{where}: not a readable Parquet file ({exc})") from exc
    with path.open("rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        f.seek(-1, 2)
        lines += f.read(1) != b"\n"  # a last line without a newline
    return lines - 1 if fmt == "csv" else lines
