"""Compose params.yaml from the Hydra groups in conf/, exactly as DVC does.

DVC composes params.yaml itself only on `dvc exp run`; `dvc repro` reads the committed
file. `python -m ctrpipe.params [OVERRIDE ...]` (or `make params`) runs DVC's own
composition function, so the two can never disagree in format.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from dvc.utils.hydra import compose_and_dump

CONF_DIR = "conf"
CONFIG_NAME = "config"


def compose(output: str | Path = "params.yaml", overrides: list[str] = (),
            root: str | Path = ".") -> Path:
    root = Path(root).resolve()
    output = root / output
    compose_and_dump(output, str(root / CONF_DIR), None, CONFIG_NAME, str(root), list(overrides))
    return output


def is_current(root: str | Path = ".") -> bool:
    """True when the committed params.yaml equals a fresh composition of conf/."""
    root = Path(root).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "params.yaml"
        compose_and_dump(fresh, str(root / CONF_DIR), None, CONFIG_NAME, str(root), [])
        return fresh.read_text() == (root / "params.yaml").read_text()


if __name__ == "__main__":
    print(f"wrote {compose(overrides=sys.argv[1:])}")
