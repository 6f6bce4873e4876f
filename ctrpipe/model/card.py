"""model_card.md: what the packaged model is, what it was trained on, how well it did.

Deterministic on purpose (no build time, no host name): the same inputs give the same
card, so rebuilding a package gives the same content address. Provenance comes from
dvc.lock (the data hashes DVC recorded) and the code commit, both passed in.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import yaml

from ctrpipe.errors import DataError
from ctrpipe.model import onnx_export
from ctrpipe.model.encoding import FeatureSchema

if TYPE_CHECKING:  # annotations only; importing xgboost takes 1.3 s
    import xgboost as xgb

NOT_RECORDED = "not recorded"


CODE_PATHS = ("ctrpipe", "stages")


def git_commit(cwd: str | Path = ".") -> str:
    """The last commit that changed the pipeline's code, and whether the code has changed
    since. Not HEAD: committing dvc.lock moves HEAD, and the card of a rebuild on the same
    code must stay byte for byte the same."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)

    try:
        last = git("log", "-1", "--format=%H", "--", *CODE_PATHS)
        dirty = git("status", "--porcelain", "--", *CODE_PATHS)
    except OSError:
        return "unknown (git not available)"
    if last.returncode != 0 or not last.stdout.strip():
        return "unknown (not a git repository)"
    suffix = " with uncommitted changes" if dirty.stdout.strip() else ""
    return last.stdout.strip() + suffix


def lock_hashes(lock: str | Path, paths: dict[str, str | Path]) -> dict[str, str]:
    """The md5 that dvc.lock records for each data path (matched relative to the lock's
    folder, where dvc.yaml lives); NOT_RECORDED when the lock or the entry is absent."""
    lock = Path(lock)
    if not lock.is_file():
        return {role: NOT_RECORDED for role in paths}
    try:
        stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{lock}: cannot read ({exc})".replace("\n", " ")) from exc
    recorded = {
        os.path.normpath(out["path"]): out.get("md5", NOT_RECORDED)
        for stage in stages.values()
        for out in stage.get("outs", [])
    }
    return {
        role: recorded.get(
            os.path.relpath(Path(path).resolve(), lock.parent.resolve()), NOT_RECORDED
        )
        for role, path in paths.items()
    }


def render(
    booster: xgb.Booster,
    schema: FeatureSchema,
    train: pa.Table,
    validation: pa.Table,
    train_params: dict,
    metrics: dict | None,
    data_hashes: dict[str, str],
    commit: str,
    names: dict[str, str],
) -> str:
    parts = [
        "# Model card: click-through-rate model\n",
        "Predicts the probability that an ad impression is clicked. `manifest.json` lists "
        "every file of this package with its sha256; the package's identity is the sha256 "
        "of `manifest.json`, checked on every load.\n",
        "## Model\n",
        _model(booster, schema),
        f"### Training parameters ({names['train_params']})\n",
        _table(_flat(train_params)),
        "## Features\n",
        _features(schema),
        "## Data\n",
        _data(schema, train, validation, data_hashes),
        f"## Metrics ({names['metrics']})\n",
        _table(_flat(metrics))
        if metrics is not None
        else f"Not available: {names['metrics']} did not exist when this package was built.\n",
        "## Provenance\n",
        f"- code commit: `{commit}`\n- data hashes: the md5 of each file as recorded in dvc.lock\n",
    ]
    return "\n".join(parts)


def skew(figures: dict) -> str:
    """The card's skew section: the package's golden rows served from their raw records
    against generate's rows (stages/package.py runs the check on a staged copy)."""
    return "\n".join(
        [
            "\n## Training/serving skew\n",
            f"Golden rows served from their raw records through the service, with the "
            f"online snapshot `{figures['snapshot'][:12]}` cut at each row's time: "
            f"**{figures['rows_different']} of {figures['rows_checked']} differ** from "
            f"generate's rows, in a feature or in the prediction.\n",
            _table(_flat({k: v for k, v in figures.items() if k != "snapshot"})),
        ]
    )


def _model(booster: xgb.Booster, schema: FeatureSchema) -> str:
    n = len(schema.names)
    return _table(
        {
            "objective": "binary:logistic",
            "trees": booster.num_boosted_rounds(),
            "features": n,
            "input": f"`{onnx_export.INPUT}`: float32 [N, {n}], NaN = missing",
            "output": f"`{onnx_export.OUTPUT}`[:, {onnx_export.CLICK_COLUMN}] = click probability",
            "files": "model.ubj (XGBoost), model.onnx (ONNX, same predictions to "
            f"{onnx_export.TOLERANCE:g})",
        }
    )


def _features(schema: FeatureSchema) -> str:
    rows = ["| # | feature | type | encoding |", "| --- | --- | --- | --- |"]
    for i, name in enumerate(schema.names):
        if name in schema.categorical:
            kind, how = (
                "categorical",
                (
                    f"index in its {len(schema.categorical[name])} values; "
                    f"any other value {schema.other_code(name)}; missing NaN"
                ),
            )
        else:
            kind, how = "numeric", "as is; missing NaN"
        rows.append(f"| {i} | {name} | {kind} | {how} |")
    return "\n".join(rows) + "\n"


def _data(
    schema: FeatureSchema, train: pa.Table, validation: pa.Table, hashes: dict[str, str]
) -> str:
    rows = [
        "| split | rows | weighted rows | click rate (weighted) | md5 (dvc.lock) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for role, table in (("train", train), ("validation", validation), ("golden", None)):
        if table is None:
            rows.append(f"| {role} | not read | | | {hashes.get(role, NOT_RECORDED)} |")
            continue
        label = _column(table, schema.label)
        weight = (
            _column(table, schema.weight)
            if schema.weight in table.column_names
            else np.ones(table.num_rows)
        )
        rate = np.dot(label, weight) / weight.sum() if table.num_rows else float("nan")
        rows.append(
            f"| {role} | {table.num_rows:,} | {weight.sum():,.0f} | {rate:.4%} | "
            f"{hashes.get(role, NOT_RECORDED)} |"
        )
    return (
        "\n".join(rows) + "\n\nTrain negatives are subsampled; weights restore the real "
        "traffic mix, so the weighted click rate is the real one.\n"
    )


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)


def _flat(obj, prefix: str = "") -> dict[str, object]:
    if isinstance(obj, dict):
        out = {}
        for key in sorted(obj):
            out |= _flat(obj[key], f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): obj}


def _table(pairs: dict[str, object]) -> str:
    rows = ["| key | value |", "| --- | --- |"]
    rows += [f"| {key} | {_value(value)} |" for key, value in pairs.items()]
    return "\n".join(rows) + "\n"


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return json.dumps(value)
    return str(value).replace("|", "\\|")
