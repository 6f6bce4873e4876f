"""Raw-data sources for the ingest stage, chosen by `data.source`.

Each source writes every table declared in `data.tables` to `out_dir / table.path` and
returns the number of records it wrote per table.
"""

from __future__ import annotations

from pathlib import Path

from ctrpipe.data.settings import Data


def write(data: Data, out_dir: Path) -> dict[str, int]:
    if data.source.name == "synthetic":
        from ctrpipe.data.sources import synthetic as source
    else:
        from ctrpipe.data.sources import files as source
    return source.write(data, out_dir)
