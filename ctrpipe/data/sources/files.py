"""The `files` source: the user's own tables (CSV, Parquet or JSON lines) from a folder.

A table's path is a file, a folder or a glob (a file per day, as logs arrive); ingest
copies every file of it byte for byte into data/raw/, under the same relative path, so
that generate sees and quarantines exactly what the user gave. The declared schema in
`data.tables` says what they hold.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq

from ctrpipe.data.locate import files_of
from ctrpipe.data.settings import Data, Table
from ctrpipe.errors import DataError


def write(data: Data, out_dir: Path) -> dict[str, int]:
    counts = {}
    source = Path(data.input_dir)
    for name, table in data.tables.items():
        where = f"(table '{name}' in data.tables)"
        try:
            files = files_of(source, table)
        except DataError as exc:
            raise DataError(f"{exc} {where}") from None
        counts[name] = 0
        for src in files:
            if not src.is_file():
                raise DataError(f"{src} {where}: file not found")
            if src.stat().st_size == 0:
                raise DataError(f"{src} {where}: empty file, expected records")
            dst = out_dir / src.relative_to(source)
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(src, dst)
            except OSError as exc:
                raise DataError(f"{src} {where}: cannot read ({exc.strerror})") from exc
            counts[name] += count_records(dst, table, f"{src} {where}")
    return counts


def count_records(path: Path, table: Table, where: str) -> int:
    if table.file_format == "parquet":
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:  # pyarrow raises several types for a bad footer
            raise DataError(f"{where}: not a readable Parquet file ({exc})") from exc
    with path.open("rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        f.seek(-1, 2)
        lines += f.read(1) != b"\n"  # a last line without a newline
    return lines - 1 if table.file_format == "csv" and table.header else lines
