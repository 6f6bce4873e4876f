"""Every path the pipeline reads or writes, declared once: the `paths` entry of the
`vars:` block in dvc.yaml.

Stages get theirs on the command line (each `cmd:` in dvc.yaml passes them); the
commands that work around the pipeline (the CLI, report, monitor, publish, fetch) read
them here. All are relative to the project's root, so they also name files at other git
revisions (`registry.show(repo, commit, paths.GATE_REPORT)`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

DVC_FILE = "dvc.yaml"
LOCK_FILE = "dvc.lock"


def declared(dvc_file: Path = Path(__file__).resolve().parent.parent / DVC_FILE) -> dict:
    """The `paths` variables of dvc.yaml."""
    for entry in yaml.safe_load(dvc_file.read_text(encoding="utf-8")).get("vars", []):
        if isinstance(entry, dict) and "paths" in entry:
            return entry["paths"]
    raise RuntimeError(f"{dvc_file}: no `paths` in its vars block")


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
