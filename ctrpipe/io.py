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
    """Write a Spark DataFrame as one Parquet file with a fixed name.

    The caller orders the rows; one partition keeps that order and Spark's random
    part-file name is dropped, so the same rows always give the same bytes.
    """
    with atomic_path(path) as tmp:
        df.coalesce(1).write.mode("error").parquet(str(tmp))
        parts = sorted(tmp.glob("part-*.parquet"))
        if len(parts) != 1:
            raise RuntimeError(f"expected one Parquet part in {tmp}, found {len(parts)}")
        single = tmp.parent / "single.parquet"
        os.replace(parts[0], single)
        shutil.rmtree(tmp)
        os.replace(single, tmp)
