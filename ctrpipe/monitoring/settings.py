"""The `monitor` and `simulate` groups of params.yaml (conf/monitor/, conf/simulate/),
and `Ops`: every group the commands beside production read, ``params.groups(repo,
Ops)``. No stage reads them, so changing them re-runs nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from ctrpipe.config import Spark, Strict
from ctrpipe.serving.settings import Serve


class Limit(Strict):
    """A figure's warn and alarm levels; `above` says which way is bad."""

    warn: float
    alarm: float
    above: bool = True

    @model_validator(mode="after")
    def _ordered(self):
        if (self.alarm < self.warn) if self.above else (self.alarm > self.warn):
            side = "at or above" if self.above else "at or below"
            raise ValueError(f"alarm ({self.alarm}) must be {side} warn ({self.warn})")
        return self

    def status(self, value: float | None) -> str:
        if value is None:
            return "skipped"
        sign = 1 if self.above else -1
        if sign * value >= sign * self.alarm:
            return "alarm"
        return "warn" if sign * value >= sign * self.warn else "ok"


class Drift(Strict):
    psi: Limit = Limit(warn=0.1, alarm=0.25)
    js: Limit = Limit(warn=0.1, alarm=0.2)
    prediction_psi: Limit = Limit(warn=0.1, alarm=0.25)
    ignore: list[str] = ["day_of_week", "hist_user_id_n", "hist_campaign_id_n", "hist_slot_id_n"]


class Quality(Strict):
    min_labelled: int = Field(1000, ge=1)
    roc_auc_drop: Limit = Limit(warn=0.02, alarm=0.05)
    logloss_rise: Limit = Limit(warn=0.01, alarm=0.03)
    calibration: Limit = Limit(warn=0.15, alarm=0.3)
    min_slice_rows: int = Field(500, ge=1)
    slice_roc_auc_drop: Limit = Limit(warn=0.03, alarm=0.06)


class Engineering(Strict):
    metrics_url: str | None = None
    p50_ms: Limit = Limit(warn=2.5, alarm=10.0)
    p99_ms: Limit = Limit(warn=10.0, alarm=50.0)
    error_rate: Limit = Limit(warn=0.001, alarm=0.01)
    client_error_rate: Limit = Limit(warn=0.05, alarm=0.2)
    memory_mib: Limit = Limit(warn=2048, alarm=4096)
    cpu_cores: Limit = Limit(warn=1.5, alarm=1.9)
    # The served online snapshot's age (a check of kind freshness); None: not checked.
    snapshot_age_hours: Limit | None = None


class Retrain(Strict):
    # `trigger`, not `on`: YAML 1.1 reads a bare `on` as the boolean true.
    trigger: Literal["warn", "alarm", "never"] = "alarm"
    kind: Literal["dispatch", "command"] = "dispatch"
    repository: str = ""
    event_type: str = "drift-alarm"
    api_url: str = "https://api.github.com"
    token_env: str = "GITHUB_TOKEN"
    command: list[str] = []

    @model_validator(mode="after")
    def _complete(self):
        if self.kind == "command" and not self.command:
            raise ValueError("command: give the command to run, as a list of words")
        return self


class Rollback(Strict):
    auto: bool = True
    bake_hours: float = Field(24.0, ge=0)
    checks: list[Literal["prediction_drift", "input_drift", "quality", "engineering"]] = [
        "prediction_drift",
        "quality",
        "engineering",
    ]


class Actions(Strict):
    retrain: Retrain = Retrain()
    rollback: Rollback = Rollback()


class Monitor(Strict):
    logs: str = "logs/requests"
    window_hours: float | None = Field(24.0, gt=0)
    labels: str | None = None
    id_column: str = "id"
    label_column: str = "clicked"
    out: str = "reports/monitor"
    min_rows: int = Field(1000, ge=1)
    drift: Drift = Drift()
    quality: Quality = Quality()
    engineering: Engineering = Engineering()
    actions: Actions = Actions()


class Simulate(Strict):
    source: Literal["train", "validation", "golden"] = "validation"
    contract: Literal["raw", "features"] = "raw"
    rows: int = Field(20_000, ge=1)
    batch: int = Field(20, ge=1)
    seed: int = 7
    out: str = "reports/simulate"
    drift: dict[str, dict[str, str | float]] = {}
    retrain_command: list[str]  # what an alarm runs in place of the dispatch ([]: none)


class Ops(BaseModel):
    spark: Spark
    serve: Serve
    monitor: Monitor
    simulate: Simulate
