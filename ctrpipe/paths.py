"""Every path the pipeline reads or writes, declared once: the `paths` of paths.yaml,
which both pipeline files (dvc.yaml, release/dvc.yaml) load as their vars.

Stages get theirs on the command line (each `cmd:` passes them); the commands that work
around the pipeline (the CLI, report, monitor, publish, fetch) read them here. All are
relative to the project's root, so they also name files at other git revisions
(`registry.show(repo, commit, paths.GATE_REPORT)`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

PATHS_FILE = "paths.yaml"
# The pipeline's files, joined by DVC into one graph: the production stage has one of
# its own, so that its run on every repro rewrites only its own small lock.
PIPELINE_FILES = ("dvc.yaml", "release/dvc.yaml")
LOCK_FILE = "dvc.lock"  # the lock of dvc.yaml: every output a version is made of


def declared(file: Path = Path(__file__).resolve().parent.parent / PATHS_FILE) -> dict:
    """The `paths` of paths.yaml."""
    found = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    if not isinstance(found.get("paths"), dict):
        raise RuntimeError(f"{file}: no `paths` mapping")
    return found["paths"]


_P = declared()
RAW: str = _P["raw"]
TRAIN: str = _P["train"]
VALIDATION: str = _P["validation"]
GOLDEN: str = _P["golden"]
FEATURES: str = _P["features"]
QUARANTINE: str = _P["quarantine"]
DATA_METRICS: str = _P["data_metrics"]
SNAPSHOT: str = _P["snapshot"]
SKEW_SAMPLE: str = _P["skew_sample"]
MODEL: str = _P["model"]
MODEL_SCHEMA: str = _P["model_schema"]
MODEL_PARAMS: str = _P["model_params"]
TRIALS: str = _P["trials"]
EVALUATE: str = _P["evaluate"]
# dvclive's layout inside the evaluate folder
EVALUATE_METRICS = f"{EVALUATE}/metrics.json"
EVALUATE_PLOTS = f"{EVALUATE}/plots/custom"
PACKAGE: str = _P["package"]
PRODUCTION: str = _P["production"]
GATE_REPORT: str = _P["gate_report"]
GATE_SUMMARY: str = _P["gate_summary"]
SKEW: str = _P["skew"]
FETCHED: str = _P["fetched"]
SNAPSHOTS: str = _P["snapshots"]
PR_REPORT: str = _P["pr_report"]
