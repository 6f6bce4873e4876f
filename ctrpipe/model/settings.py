"""The model stages' groups of params.yaml: `model`, `sweep` (train), `evaluate`, `package`.

Read with ``config.load(path).section("model", Model)``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ctrpipe.config import Strict


class Encoding(Strict):
    max_categories: int = Field(200, gt=0)
    min_count: int = Field(20, gt=0)


class Model(Strict):
    params: dict[str, str | int | float | bool | list[str]]
    num_boost_round: int = Field(400, gt=0)
    early_stopping_rounds: int = Field(30, gt=0)
    encoding: Encoding = Encoding()
    # local: the splits in this process's memory. spark: XGBoost across `num_workers`
    # Spark tasks on the session the spark group makes (ctrpipe/model/distributed.py).
    engine: Literal["local", "spark"] = "local"
    num_workers: int = Field(2, ge=1)


class Dimension(Strict):
    """One searched param: a numeric range or a list of choices."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[str | int | float | bool] | None = None

    @model_validator(mode="after")
    def _well_formed(self):
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical dimension needs a non-empty 'choices' list")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(
                f"a {self.type} dimension needs low <= high (got low={self.low}, high={self.high})"
            )
        elif self.log and self.low <= 0:
            raise ValueError(f"a log-scaled dimension needs low > 0 (got {self.low})")
        return self


class Pruner(Strict):
    startup_trials: int = Field(4, ge=0)
    warmup_rounds: int = Field(20, ge=0)


class Sweep(Strict):
    n_trials: int = Field(gt=0)
    sampler_seed: int = 17
    sample_rows: int = Field(100_000, gt=0)
    parallel: int = Field(1, ge=1)  # trials at a time, as Spark tasks when above 1
    pruner: Pruner = Pruner()
    space: dict[str, Dimension] = Field(min_length=1)


class Evaluate(Strict):
    min_slice_rows: int = Field(500, gt=0)
    calibration_bins: int = Field(10, ge=2)


class SliceColumns(BaseModel):
    """The data group's `slices`, read alone: the model stages need nothing else of it."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    slices: list[str]


class Package(Strict):
    profile_bins: int = Field(10, ge=2)
    profile_top_categories: int = Field(50, gt=0)
