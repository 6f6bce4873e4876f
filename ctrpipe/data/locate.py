"""Where a table's files are: one file, every file of a folder, or a glob's matches.

Ingest (copying them into data/raw/) and generate (reading them) both ask here, so the
two agree on which files a table is, and in which order.
"""

from __future__ import annotations

from pathlib import Path

from ctrpipe.data.settings import Table
from ctrpipe.errors import DataError

GLOB = set("*?[")


def files_of(folder: Path, table: Table) -> list[Path]:
    """The table's files, in name order: its path, every file under it when it is a
    folder, or the files its glob matches; DataError when there are none."""
    where = folder / table.path
    if GLOB & set(table.path):
        found = sorted(p for p in folder.glob(table.path) if p.is_file())
        if not found:
            raise DataError(f"{where}: no file matches")
        return found
    if where.is_dir():
        found = sorted(
            p for p in where.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))
        )
        if not found:
            raise DataError(f"{where}: empty folder, expected files")
        return found
    return [where]
