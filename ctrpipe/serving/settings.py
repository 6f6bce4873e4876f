"""The `serve` group of params.yaml (conf/serve/): the service and its request log.

No stage reads it, so changing it re-runs nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ctrpipe.config import Strict


class RequestLog(Strict):
    dir: str = "logs/requests"
    sample_rate: float = Field(0.05, ge=0, le=1)
    rotate_rows: int = Field(100_000, ge=1)
    rotate_seconds: float = Field(300.0, gt=0)
    queue: int = Field(10_000, ge=1)


class Serve(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_batch: int = Field(10_000, ge=1, le=1 << 20)
    threads: int = Field(1, ge=1, le=256)
    workers: int = Field(1, ge=1, le=64)
    grpc_port: int | None = Field(None, ge=0, le=65535)
    deadline_ms: float = Field(50.0, gt=0)
    max_queued: int = Field(128, ge=1)
    backend: Literal["auto", "compiled", "onnx"] = "auto"
    follow_seconds: float = Field(10.0, gt=0)
    log: RequestLog = RequestLog()
