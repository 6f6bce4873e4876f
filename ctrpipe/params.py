"""Compose params.yaml from the Hydra groups in conf/, exactly as DVC does.

DVC composes params.yaml itself only on `dvc exp run`; `dvc repro` reads the committed
file. `python -m ctrpipe.params [OVERRIDE ...]` (or `make params`) runs DVC's own
composition function, so the two can never disagree in format. `groups` reads the
commands' groups from a repository's params.yaml, or from this project's conf/ where a
folder has none: conf/ is the one place values live.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from ctrpipe import config, fileio
from ctrpipe.errors import ConfigError, exits_cleanly

S = TypeVar("S", bound=BaseModel)
ROOT = Path(__file__).resolve().parent.parent  # the project, where conf/ is
CONF_DIR = "conf"
QUESTION = "?? "  # a drafted value (`ctrpipe infer`) a person must replace
CONFIG_NAME = "config"


def compose(
    output: str | Path = "params.yaml", overrides: list[str] = (), root: str | Path = "."
) -> Path:
    from dvc.utils.hydra import compose_and_dump  # DVC's import costs 0.3 s: only here

    root = Path(root).resolve()
    output = root / output
    with fileio.atomic_path(output, suffix=".yaml") as tmp:
        compose_and_dump(tmp, str(root / CONF_DIR), None, CONFIG_NAME, str(root), list(overrides))
        check_answered(config.read_raw(tmp), output)
    return output


def check_answered(raw, output: Path, key: str = "") -> None:
    """ConfigError, and no params.yaml, while a value is still a drafted QUESTION."""
    if isinstance(raw, dict):
        for name, value in raw.items():
            check_answered(value, output, f"{key}.{name}" if key else str(name))
    elif isinstance(raw, list):
        for value in raw:
            check_answered(value, output, key)
    elif isinstance(raw, str) and raw.startswith(QUESTION):
        raise ConfigError(
            f"{output.name} not written: {key} is a question to answer in conf/: {raw[3:]}"
        )


def is_current(root: str | Path = ".") -> bool:
    """True when the committed params.yaml equals a fresh composition of conf/."""
    root = Path(root).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = compose(Path(tmp) / "params.yaml", root=root)
        return fresh.read_text() == (root / "params.yaml").read_text()


def groups(repo: str | Path, schema: type[S]) -> S:
    """The groups `schema` declares, from `repo`/params.yaml; a group it lacks (or all,
    for a service started from a bare package folder) from this project's conf/."""
    path = Path(repo) / config.PARAMS_FILE
    found = config.read_raw(path) if path.exists() else {}
    if any(name not in found for name in schema.model_fields):
        with tempfile.TemporaryDirectory() as tmp:
            found = config.read_raw(compose(Path(tmp) / "params.yaml", root=ROOT)) | found
    return config.validate_groups(found, schema, path)


@exits_cleanly
def main(argv: list[str]) -> None:
    print(f"wrote {compose(overrides=argv)}")


if __name__ == "__main__":
    main(sys.argv[1:])
