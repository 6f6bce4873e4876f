"""Typed view of params.yaml: every stage and command reads its settings through here.

params.yaml holds one group per concern (composed from conf/); each is checked against
its schema only by the code that reads it, ``load(path).section("model", Model)``, so a
change to one group's schema invalidates no other stage. A bad value is one line naming
the key, e.g. ``params.yaml: data.rows: must be greater than 0 (got -5)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from ctrpipe.errors import ConfigError

PARAMS_FILE = "params.yaml"
S = TypeVar("S", bound=BaseModel)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Spark(Strict):
    """The `spark` group (conf/spark/): its values live there only."""

    master: str
    driver_memory: str
    shuffle_partitions: int = Field(gt=0)
    # A dimension table of at most this many rows is broadcast to its join.
    broadcast_max_rows: int = Field(ge=0)
    # How long a stage that needs task slots at once waits for a cluster's executors.
    slots_wait_seconds: float = Field(ge=0)
    conf: dict[str, str | int | float | bool]  # passed to Spark as they are


class Params(BaseModel):
    """params.yaml's groups, unchecked until `section` reads one."""

    model_config = ConfigDict(extra="allow", frozen=True)
    _source: str = PrivateAttr(PARAMS_FILE)  # the file errors name

    def section(self, name: str, schema: type[S]) -> S:
        """The top-level group `name`, checked against `schema`."""
        raw = (self.model_extra or {}).get(name)
        if raw is None:
            raise ConfigError(f"{self._source}: no '{name}' group; run `make params`")
        try:
            return schema.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"{self._source}: {name}.{describe(exc)}") from None


def load(path: str | Path = PARAMS_FILE) -> Params:
    """Read and check params.yaml; raise ConfigError with one line naming the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror}); run `make params`") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from exc
    return parse(raw, source=str(path))


def parse(raw: object, source: str = PARAMS_FILE) -> Params:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of groups, got {type(raw).__name__}")
    params = Params.model_validate(raw)
    params._source = source
    return params


def read_raw(path: str | Path) -> dict:
    """A params file as plain data; ConfigError when it cannot be read."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})".replace("\n", " ")) from None


def validate_groups(raw: dict, schema: type[S], source: str | Path) -> S:
    """The groups `schema` declares, from `raw`, checked."""
    try:
        return schema.model_validate({k: raw[k] for k in schema.model_fields if k in raw})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe(exc)}") from None


def updated(settings: S, changes: dict) -> S:
    """`settings` with nested `changes` (a None leaves a value as it is), validated
    again: a ValidationError names the key of a bad change."""

    def merge(base: dict, over: dict) -> dict:
        out = dict(base)
        for key, value in over.items():
            if isinstance(value, dict):
                out[key] = merge(base[key], value)
            elif value is not None:
                out[key] = value
        return out

    return type(settings).model_validate(merge(settings.model_dump(), changes))


def describe(exc: ValidationError) -> str:
    """The first validation error as 'dotted.key: reason (got value)'."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    given = err.get("input")
    if err["type"] == "value_error":
        # Our own checks start with the key they are about ("time: ..."): nest it.
        head = msg.split(": ", 1)[0]
        if " " not in head and ": " in msg:
            return f"{loc}.{msg}" if loc else msg
        return f"{loc}: {msg}" if loc else msg
    shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
    return f"{loc}: {msg}{shown}" if loc else f"{msg}{shown}"
