"""Typed groups of params.yaml for the model stages: train, evaluate, package, gate.

Read with ``config.load().section("model", Model)``; kept apart from ctrpipe/config.py so
that changing them does not re-run the data stages.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ctrpipe.config import Strict


class Encoding(Strict):
    max_categories: int = Field(200, gt=0)
    min_count: int = Field(1, gt=0)


class Model(Strict):
    params: dict[str, str | int | float | bool | list[str]]
    num_boost_round: int = Field(400, gt=0)
    early_stopping_rounds: int = Field(30, gt=0)
    encoding: Encoding = Encoding()


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
            raise ValueError(f"a {self.type} dimension needs low <= high "
                             f"(got low={self.low}, high={self.high})")
        elif self.log and self.low <= 0:
            raise ValueError(f"a log-scaled dimension needs low > 0 (got {self.low})")
        return self


class Pruner(Strict):
    startup_trials: int = Field(4, ge=0)
    warmup_rounds: int = Field(20, ge=0)


class Sweep(Strict):
    n_trials: int = Field(gt=0)
    sampler_seed: int = 0
    sample_rows: int = Field(100_000, gt=0)
    pruner: Pruner = Pruner()
    space: dict[str, Dimension] = Field(min_length=1)


class Evaluate(Strict):
    slices: list[str] = []
    min_slice_rows: int = Field(500, gt=0)
    calibration_bins: int = Field(10, ge=2)


class Package(Strict):
    profile_bins: int = Field(10, ge=2)
    profile_top_categories: int = Field(50, gt=0)


class Margin(Strict):
    """How much better than production the candidate must be on the primary metric."""

    absolute: float = Field(0.001, ge=0)
    relative: float = Field(0.001, ge=0)


class Bootstrap(Strict):
    # Fewer than 100 resamples put the ends of a 95% interval on one or two draws.
    resamples: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int = 23


class Floors(Strict):
    """Absolute limits every candidate meets, production or not."""

    roc_auc: float = Field(0.70, ge=0, le=1)
    logloss: float = Field(0.25, gt=0)
    ece: float = Field(0.02, ge=0, le=1)
    size_bytes: int = Field(50_000_000, gt=0)


class Guards(Strict):
    """How much worse than production the candidate may be on what it does not optimise."""

    logloss: float = Field(0.002, ge=0)
    ece: float = Field(0.005, ge=0)
    slice_roc_auc: float = Field(0.02, ge=0)
    latency_ratio: float = Field(1.25, gt=0)
    size_ratio: float = Field(1.5, gt=0)


class Latency(Strict):
    """Single-row ONNX latency as a straight line in tree nodes visited per row, fitted
    by bench/gate.py: a count is deterministic where a timing is not."""

    fixed_us: float = Field(5.4, ge=0)
    per_node_ns: float = Field(7.1, gt=0)


class Drift(Strict):
    psi_limit: float = Field(0.2, gt=0)
    bins: int = Field(10, ge=2)
    top_categories: int = Field(50, gt=0)
    ignore: list[str] = ["day_of_week"]


class Gate(Strict):
    primary: Literal["roc_auc", "logloss"] = "roc_auc"
    margin: Margin = Margin()
    bootstrap: Bootstrap = Bootstrap()
    floors: Floors = Floors()
    guards: Guards = Guards()
    latency: Latency = Latency()
    drift: Drift = Drift()
