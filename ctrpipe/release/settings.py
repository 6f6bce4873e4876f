"""The `gate` group of params.yaml (conf/gate/): what a candidate must show to replace
production. Read with ``config.load(path).section("gate", Gate)``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ctrpipe.config import Strict


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
    """Limits every candidate meets, production or not, held against what a trivial
    model scores on the same golden rows (the training positive rate as every
    prediction), so that they fit any data; absolute limits may be added."""

    roc_auc: float = Field(0.55, ge=0, le=1)  # the trivial model's is 0.5
    logloss_gain: float = Field(0.02, lt=1)  # fraction below the trivial model's
    ece_of_rate: float = Field(0.25, gt=0)  # calibration error / golden positive rate
    size_bytes: int = Field(50_000_000, gt=0)
    logloss: float | None = Field(None, gt=0)  # an absolute cap too, where one is known
    ece: float | None = Field(None, ge=0, le=1)


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
