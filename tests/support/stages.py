"""Running the data stages as a user does: a subprocess on a params file, its exit code,
its one-line error, and nothing written on a failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import QUICK_SPARK_CONF, ROOT, params_dict

SPARK = {
    "master": "local[2]",
    "driver_memory": "1g",
    "shuffle_partitions": 2,
    "broadcast_max_rows": 1_000_000,
    "slots_wait_seconds": 60,  # as conf/spark: a cluster's executors register after the start
    "conf": QUICK_SPARK_CONF,
}


def run_stage(stage: str, params: dict, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return subprocess.run(
        [sys.executable, "-m", f"stages.{stage}", "--params", str(path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def generate(params: dict, tmp: Path, raw: Path) -> subprocess.CompletedProcess:
    out = tmp / "out"
    return run_stage(
        "generate",
        params,
        tmp,
        "--raw",
        str(raw),
        *(f"--{s}={out / s}.parquet" for s in ("train", "validation", "golden")),
        "--features",
        str(out / "features.json"),
        "--quarantine",
        str(tmp / "quarantine"),
        "--metrics",
        str(tmp / "metrics.json"),
        "--snapshot",
        str(out / "snapshot"),
        "--skew-sample",
        str(out / "skew_sample.parquet"),
    )


def error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


def assert_nothing_written(tmp: Path) -> None:
    for name in ("out", "quarantine", "metrics.json", "raw"):
        assert not (tmp / name).exists(), name


def tiny_params(**data) -> dict:
    return params_dict(data={"sample": {"negative_rate": 1.0}, **data}, spark=SPARK)
