"""The pull-request report (`python -m ctrpipe report`) on a small hand-made repository.

The fixture never runs the pipeline. It writes small files of the real shapes (gate.json,
metrics.json, data.json, plot tables, trials.csv, params.yaml) into a temp git + DVC
repository with a minimal dvc.yaml that declares them:

    commit 1 on main   state "v1"; tagged model@v1.0.0 and model#prod#1 through gto
    commit 2 on main   state "base": other metrics, same params
    branch feature     state "pr" in the workspace, uncommitted: a changed and a new
                       param, other metrics, a new slice value, a failed gate check

Commits are made with fixed authors and dates, so their hashes (which the report shows)
are the same on every run.

The report of `feature` against `main` must equal tests/reporting/golden/report.md byte for byte.
After an intended change to the report, regenerate the golden file and review its diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/reporting/test_report.py -k golden
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ctrpipe import paths
from ctrpipe.release import registry
from ctrpipe.reporting import plots, report
from tests.conftest import ROOT
from tests.support.project import attempt, run

pytestmark = pytest.mark.integration

GOLDEN = ROOT / "tests" / "reporting" / "golden" / "report.md"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IDENTITY = {
    "GIT_AUTHOR_NAME": "Report Test",
    "GIT_AUTHOR_EMAIL": "report@example.com",
    "GIT_COMMITTER_NAME": "Report Test",
    "GIT_COMMITTER_EMAIL": "report@example.com",
}

DVC_YAML = f"""\
stages:
  generate:
    cmd: python -c "print('generate')"
    metrics:
      - {paths.DATA_METRICS}:
          cache: false
  train:
    cmd: python -c "print('train')"
    params:
      - model
    plots:
      - {paths.TRIALS}:
          {{cache: false, template: scatter, x: number, y: value}}
  evaluate:
    cmd: python -c "print('evaluate')"
    params:
      - evaluate
    metrics:
      - {paths.EVALUATE_METRICS}:
          cache: false
    plots:
      - {paths.EVALUATE_PLOTS}/roc/validation.json: {{cache: false, x: fpr, y: tpr}}
      - {paths.EVALUATE_PLOTS}/roc/golden.json: {{cache: false, x: fpr, y: tpr}}
      - {paths.EVALUATE_PLOTS}/precision_recall/validation.json:
          {{cache: false, x: recall, y: precision}}
      - {paths.EVALUATE_PLOTS}/precision_recall/golden.json:
          {{cache: false, x: recall, y: precision}}
      - {paths.EVALUATE_PLOTS}/calibration/validation.json:
          {{cache: false, x: mean_predicted, y: observed_rate}}
      - {paths.EVALUATE_PLOTS}/calibration/golden.json:
          {{cache: false, x: mean_predicted, y: observed_rate}}
      - {paths.EVALUATE_PLOTS}/feature_importance.json:
          {{cache: false, x: gain, y: feature}}
  gate:
    cmd: python -c "print('gate')"
    metrics:
      - {paths.GATE_REPORT}:
          cache: false
"""

# Per state: golden / validation ROC AUC and log loss, row counts, quarantine counts.
STATES = {
    "v1": {"auc": 0.7301, "logloss": 0.1452, "rows": 5000, "bad": 40, "eta": 0.1, "tablet": False},
    "base": {
        "auc": 0.7342,
        "logloss": 0.1441,
        "rows": 5000,
        "bad": 42,
        "eta": 0.1,
        "tablet": False,
    },
    "pr": {
        "auc": 0.7389,
        "logloss": 0.1430,
        "rows": 5100,
        "bad": 37,
        "eta": 0.05,
        "tablet": True,
        "skew": 37,
    },
}

LOG = """\
Stage 'ingest' didn't change, skipping
Running stage 'generate':
> python -m stages.generate
generate: 12,345 rows in 6.4 s
Updating lock file 'dvc.lock'

Running stage 'train':
> python -m stages.train
\x1b[32m[I 2026-01-01 00:00:00]\x1b[0m Trial 0 finished in 0.8 s
train: 5 trials (2 pruned) on 1,000 rows, best logloss 0.14020; final 30 trees on 4,000 \
rows: validation logloss 0.14010, AUC 0.7301; load 0.2 s, sweep 2.1 s, refit 0.9 s, total 3.3 s
Updating lock file 'dvc.lock'
Stage 'evaluate' is cached - skipping run, checking out outputs
Running stage 'production':
> python -m stages.production
production: v1.0.0 (model#prod#1) in 1.9 s
Updating lock file 'dvc.lock'
Running stage 'gate':
> python -m stages.gate
gate: fail — candidate vs v1.0.0 on 5100 golden rows in 4.2 s
Updating lock file 'dvc.lock'
"""


def r6(x: float) -> float:
    return round(x, 6)


def metrics_json(s: dict) -> dict:
    def split(shift: float, rows: int, golden: bool) -> dict:
        auc, ll = s["auc"] + shift, s["logloss"] + shift / 10
        device = {
            "desktop": {
                "rows": rows * 3 // 10,
                "roc_auc": r6(auc + 0.011),
                "logloss": r6(ll - 0.004),
            },
            "mobile": {
                "rows": rows * 6 // 10,
                "roc_auc": r6(auc - 0.006),
                "logloss": r6(ll + 0.003),
            },
        }
        if s["tablet"]:
            device["tablet"] = {
                "rows": rows // 20,
                "roc_auc": r6(auc - 0.02),
                "logloss": r6(ll + 0.01),
            }
        device["too_small"] = {"values": 1, "rows": rows // 20 if not s["tablet"] else 40}
        out = {
            "rows": rows,
            "positive_rate": 0.0374,
            "mean_prediction": r6(0.0368 + shift / 100),
            "roc_auc": r6(auc),
            "pr_auc": r6(auc / 5.5),
            "logloss": r6(ll),
            "ece": r6(0.0011 + shift / 50),
            "slices": {
                "device": device,
                "position": {
                    "1": {"rows": rows // 2, "roc_auc": r6(auc - 0.01), "logloss": r6(ll + 0.04)},
                    "2": {"rows": rows // 2, "roc_auc": r6(auc + 0.01), "logloss": r6(ll - 0.04)},
                },
            },
        }
        return out

    return {
        "validation": split(-0.004, s["rows"] * 2, False),
        "golden": split(0.0, s["rows"], True),
    }


def data_json(s: dict) -> dict:
    bad = s["bad"]
    return {
        "splits": {
            "golden": {
                "positive_rate": 0.0374,
                "positives": s["rows"] * 374 // 10000,
                "rows": s["rows"],
            },
            "validation": {
                "positive_rate": 0.0356,
                "positives": s["rows"] * 712 // 10000,
                "rows": s["rows"] * 2,
            },
        },
        "tables": {
            "campaigns": {"bad": 0, "bad_fraction": 0.0, "reasons": {}, "records": 30},
            "clicks": {
                "bad": 3,
                "bad_fraction": 0.006,
                "records": 500,
                "reasons": {"malformed_record": 1, "orphan:impressions": 2},
            },
            "impressions": {
                "bad": bad,
                "bad_fraction": r6(bad / 20000),
                "records": 20000,
                "reasons": {
                    "malformed_record": bad - 12,
                    "null:user_id": 5,
                    "out_of_range:bid_price": 7,
                },
            },
        },
    }


def gate_json(s: dict) -> dict:
    return {
        "format": 1,
        "verdict": "fail",
        "reason": "failed 1 of 6 checks: slice.device=mobile.roc_auc",
        "primary": "roc_auc",
        "candidate": {
            "digest": "c" * 8 + "0123456789abcdef" * 3 + "c" * 8,
            "metrics": {
                "rows": s["rows"],
                "roc_auc": s["auc"],
                "logloss": s["logloss"],
                "ece": 0.0011,
            },
        },
        "production": {
            "version": "v1.0.0",
            "tag": "model#prod#1",
            "commit": "0" * 40,
            "digest": "a" * 64,
            "metrics": {"rows": s["rows"], "roc_auc": 0.7301, "logloss": 0.1452, "ece": 0.0012},
        },
        "checks": [
            {
                "name": "floor.roc_auc",
                "value": s["auc"],
                "baseline": None,
                "threshold": 0.7,
                "passed": True,
                "reason": f"roc_auc {s['auc']} >= floor 0.7",
            },
            {
                "name": "floor.size_bytes",
                "value": 67851,
                "baseline": None,
                "threshold": 50000000,
                "passed": True,
                "reason": "model.onnx bytes 67,851 <= floor 50,000,000",
            },
            {
                "name": "new_model",
                "value": "c" * 8 + "0123456789abcdef" * 3 + "c" * 8,
                "baseline": "a" * 64,
                "threshold": None,
                "passed": True,
                "reason": "the candidate differs from the production model (v1.0.0)",
            },
            {
                "name": "margin.absolute",
                "value": s["auc"],
                "baseline": 0.7301,
                "threshold": 0.001,
                "passed": True,
                "reason": "roc_auc gain 0.0088 >= 0.001",
            },
            {
                "name": "significance",
                "value": 0.00213,
                "baseline": None,
                "threshold": 0.0,
                "passed": True,
                "reason": "95% interval of the roc_auc gain [0.00213, 0.0155]: lower end > 0",
            },
            {
                "name": "slice.device=mobile.roc_auc",
                "value": 0.7012,
                "baseline": 0.7295,
                "threshold": 0.02,
                "passed": False,
                "reason": "roc_auc in device=mobile 0.7295 -> 0.7012: down 0.0283 > 0.02",
            },
        ],
        "bootstrap": {
            "metric": "roc_auc",
            "resamples": 1000,
            "confidence": 0.95,
            "seed": 23,
            "mean_gain": 0.0088,
            "low": 0.00213,
            "high": 0.0155,
            "undefined": 0,
        },
        "drift": {"psi_limit": 0.2, "over_limit": ["hour"]},
        "warnings": ["drift: hour PSI 0.31 > 0.2 (golden against validation)"],
    }


def params_yaml(s: dict) -> dict:
    model = {"params": {"eta": s["eta"], "max_depth": 6}, "num_boost_round": 400}
    if s["tablet"]:
        model["params"]["min_child_weight"] = 2.0
    return {"model": model, "evaluate": {"slices": ["device", "position"], "min_slice_rows": 500}}


def curves(shift: float) -> dict[str, list[dict]]:
    return {
        "roc": [
            {"fpr": 0.0, "tpr": 0.0, "threshold": 1.0},
            {"fpr": 0.1, "tpr": r6(0.35 + shift), "threshold": 0.2},
            {"fpr": 0.4, "tpr": r6(0.75 + shift), "threshold": 0.05},
            {"fpr": 1.0, "tpr": 1.0, "threshold": 0.001},
        ],
        "precision_recall": [
            {"recall": 1.0, "precision": 0.0374, "threshold": 0.001},
            {"recall": 0.6, "precision": r6(0.08 + shift), "threshold": 0.05},
            {"recall": 0.2, "precision": r6(0.21 + shift), "threshold": 0.2},
            {"recall": 0.0, "precision": 1.0, "threshold": 1.0},
        ],
        "calibration": [
            {
                "bin": 0,
                "lower": 0.0,
                "upper": 0.1,
                "weight": 4500.0,
                "mean_predicted": 0.03,
                "observed_rate": r6(0.031 + shift / 10),
            },
            {
                "bin": 1,
                "lower": 0.1,
                "upper": 0.2,
                "weight": 400.0,
                "mean_predicted": 0.13,
                "observed_rate": r6(0.12 + shift),
            },
            {
                "bin": 3,
                "lower": 0.3,
                "upper": 0.4,
                "weight": 20.0,
                "mean_predicted": 0.34,
                "observed_rate": 0.4,
            },
        ],
    }


def skew_json(s: dict) -> dict:
    """The pull request's state reads hour in another zone: skew on the rows it moves."""
    wrong = s.get("skew", 0)
    return {
        "rows_checked": 1000,
        "rows_different": wrong,
        "predictions_different": wrong,
        "max_prediction_difference": 0.0 if not wrong else 0.0125,
        "features_different": {"hour": wrong} if wrong else {},
        "snapshot": "5ea4ad7f",
        "package": "ec7cb364",
    }


def write_state(repo: Path, name: str) -> None:
    s = STATES[name]
    files = {
        paths.EVALUATE_METRICS: metrics_json(s),
        paths.DATA_METRICS: data_json(s),
        paths.GATE_REPORT: gate_json(s),
        paths.SKEW: skew_json(s),
    }
    for split, shift in (("validation", -0.01), ("golden", 0.0)):
        for kind, rows in curves(shift + s["auc"] - 0.73).items():
            files[f"{paths.EVALUATE_PLOTS}/{kind}/{split}.json"] = rows
    files[f"{paths.EVALUATE_PLOTS}/feature_importance.json"] = [
        {"feature": "position", "gain": 120.5},
        {"feature": "device", "gain": 60.25},
        {"feature": "hist_user_id_ctr", "gain": r6(150.0 + s["auc"])},
        {"feature": "hour", "gain": 12.0},
    ]
    for rel, obj in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2) + "\n")
    (repo / "params.yaml").write_text(yaml.safe_dump(params_yaml(s), sort_keys=False))
    (repo / paths.TRIALS).parent.mkdir(parents=True, exist_ok=True)
    (repo / paths.TRIALS).write_text(
        "number,state,value,eta,max_depth\n"
        "0,COMPLETE,0.1402,0.1,6\n1,PRUNED,0.1460,0.2,3\n2,COMPLETE,0.1398,0.05,5\n"
        "3,PRUNED,0.1431,0.3,8\n4,COMPLETE,0.1405,0.08,4\n5,FAIL,,0.1,2\n"
    )


def git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {**IDENTITY, **({"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date} if date else {})}
    return run(["git", *args], repo, env).strip()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    """The fixture repository (see the module's docstring) and its two commits."""
    repo = tmp_path_factory.mktemp("report") / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for key, value in (
        ("user.name", IDENTITY["GIT_AUTHOR_NAME"]),
        ("user.email", IDENTITY["GIT_AUTHOR_EMAIL"]),
        ("commit.gpgsign", "false"),
        ("tag.gpgsign", "false"),
    ):
        git(repo, "config", key, value)
    run(["dvc", "init", "-q"], repo)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    write_state(repo, "v1")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1", date="2026-01-01T00:00:00+00:00")
    first = git(repo, "rev-parse", "HEAD")
    write_state(repo, "base")
    git(repo, "commit", "-qam", "base", date="2026-01-02T00:00:00+00:00")
    second = git(repo, "rev-parse", "HEAD")
    registry.register(repo, "v1.0.0", first, "model v1.0.0")
    registry.assign(repo, "v1.0.0", "publish v1.0.0: first model")
    git(repo, "checkout", "-q", "-b", "feature")
    write_state(repo, "pr")
    log = repo.parent / "repro.log"
    log.write_text(LOG)
    budget = repo.parent / "budget.json"
    budget.write_text(json.dumps(BUDGET))
    return {"repo": repo, "first": first, "second": second, "log": log, "budget": budget}


def budget_figure(number, label, ref, head, ratio, line, result) -> dict:
    """A figure as bench/budget.py's --json writes it (its numbers are not shown)."""
    shown = {"REF": ref, "HEAD": head, "ratio": ratio, "line": line}
    return {"number": number, "label": label, "result": result, "shown": shown}


# bench/budget.py --quick --json: one figure not run, one within its line, one past it.
BUDGET = {
    "date": "2026-12-08T02:00:00+00:00",
    "machine": "2 cores (nproc), a test CPU",
    "quick": True,
    "sides": {"REF": {"commit": "a" * 40}, "HEAD": {"commit": "b" * 40}},
    "figures": {
        "dvc_status": budget_figure(
            3,
            "`dvc status`",
            "0.57 s (0.57, 0.57)",
            "0.71 s (0.70, 0.71)",
            "1.25x (HEAD/REF)",
            "1.00x + 10% noise: HEAD <= 0.63 s",
            "fail",
        ),
        "fresh_clone_repro": budget_figure(
            1, "fresh-clone `make repro`", "-", "-", "-", "0.80x", "not run (--quick)"
        ),
        "noop_repro": budget_figure(
            2,
            "no-op `dvc repro`",
            "0.97 s (0.92, 0.97)",
            "0.95 s (0.95, 0.96)",
            "0.98x (HEAD/REF)",
            "1.00x + 10% noise: HEAD <= 1.07 s",
            "pass",
        ),
    },
}


def report_cli(repo: Path, out: Path, *extra: str, seed: str = "0"):
    """`python -m ctrpipe --repo REPO report --out OUT ...`: the finished process."""
    return attempt(
        [sys.executable, "-m", "ctrpipe", "--repo", str(repo), "report", "--out", str(out), *extra],
        ROOT,
        {"PYTHONHASHSEED": seed},
    )


def ok(proc) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr


def copy(project: dict, dest: Path) -> Path:
    shutil.copytree(project["repo"], dest, symlinks=True)
    return dest


@pytest.fixture(scope="module")
def built(project, tmp_path_factory) -> Path:
    """The report of `feature` against `main`, with the log: the golden report."""
    out = tmp_path_factory.mktemp("built") / "pr"
    log, budget = str(project["log"]), str(project["budget"])
    ok(report_cli(project["repo"], out, "--base", "main", "--log", log, "--budget", budget))
    return out


def section(text: str, heading: str) -> str:
    """The markdown from `heading` (a line starting with it) to the next `## `."""
    start = next(i for i, line in enumerate(text.splitlines()) if line.startswith(heading))
    lines = text.splitlines()[start:]
    end = next((i for i, line in enumerate(lines[1:], 1) if line.startswith("## ")), len(lines))
    return "\n".join(lines[:end])


def table_row(text: str, *first: str) -> list[str]:
    """The cells of the first table row that starts with the cells `first`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and tuple(cells[: len(first)]) == first:
            return cells
    raise AssertionError(f"no row {first} in:\n{text}")


def test_report_matches_golden(built):
    text = (built / "report.md").read_text(encoding="utf-8")
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.is_file(), "no golden file: run with UPDATE_GOLDEN=1 once and review it"
    assert text == GOLDEN.read_text(encoding="utf-8"), (
        "report.md differs from tests/reporting/golden/report.md; if intended, regenerate it with "
        "UPDATE_GOLDEN=1 and review the diff"
    )


def test_report_sections_in_order(built):
    text = (built / "report.md").read_text(encoding="utf-8")
    assert text.splitlines()[0] == report.MARKER
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    expected = [
        "## Promotion gate",
        "## Params against base `main`",
        "## Metrics against base `main`",
        "## Metrics against production v1.0.0",
        "## Slices of golden",
        "## Quarantine",
        "## Training/serving skew",
        "## Stage timings",
        "## Performance budget",
        "## Plots",
    ]
    assert len(headings) == len(expected)
    assert all(h.startswith(e) for h, e in zip(headings, expected)), headings
    # The gate: every check, the failing one marked, the warning, what was compared.
    gate = section(text, "## Promotion gate")
    assert "## Promotion gate: FAIL" in gate
    assert table_row(gate, "`slice.device=mobile.roc_auc`")[1:5] == [
        "0.7012",
        "0.7295",
        "0.02",
        "**fail**",
    ]
    assert table_row(gate, "`floor.size_bytes`")[1:5] == ["67,851", "–", "50,000,000", "pass"]
    assert len([line for line in gate.splitlines() if line.startswith("| `")]) == 6
    assert "- drift: hour PSI 0.31 > 0.2 (golden against validation)" in gate
    assert "against production v1.0.0 (`model#prod#1`, package `aaaaaaaaaaaa`)" in gate
    assert "95% interval of the gain [+0.0021, +0.0155]" in gate
    # Params: only the changed and the new one.
    params = section(text, "## Params")
    assert table_row(params, "`model.params.eta`")[1:] == ["`0.1`", "`0.05`"]
    assert table_row(params, "`model.params.min_child_weight`")[1:] == ["–", "`2.0`"]
    assert "max_depth" not in params and "slices" not in params
    # Metrics against the base: every overall metric, unchanged ones too, and no slices.
    against = section(text, "## Metrics against base")
    assert table_row(against, "`golden.roc_auc`")[1:] == ["0.7342", "0.7389", "+0.0047"]
    assert table_row(against, "`golden.rows`")[1:] == ["5,000", "5,100", "+100"]
    assert table_row(against, "`golden.positive_rate`")[1:] == ["0.0374", "0.0374", "+0.0000"]
    assert table_row(against, "`tables.impressions.bad`")[1:] == ["42", "37", "-5"]
    assert "slices" not in against.replace("(overall; slices below)", "")
    # Slices: the delta against the base, none for a value the base lacks.
    slices = section(text, "## Slices")
    assert table_row(slices, "mobile")[1:] == ["3,060", "0.7329", "0.1460", "+0.0047"]
    assert table_row(slices, "tablet")[1:] == ["255", "0.7189", "0.1530", "–"]
    assert "Too small to score (only counted): 1 value, 40 rows." in slices
    # Quarantine from data.json.
    quarantine = section(text, "## Quarantine")
    assert table_row(quarantine, "`impressions`")[1:] == ["20,000", "19,963", "37", "0.18%"]
    assert table_row(quarantine, "`clicks`", "`orphan:impressions`")[2:] == ["2"]
    assert table_row(quarantine, "`impressions`", "`malformed_record`")[2:] == ["25"]
    # Skew from skew.json: the figures, and which feature differs.
    skew = section(text, "## Training/serving skew")
    assert "**37 of 1,000 differ**" in skew
    assert table_row(skew, "1,000")[1:] == ["37", "37", "0.0125"]
    assert table_row(skew, "`hour`")[1:] == ["37"]
    # Timings from the log: ran, unchanged, cached.
    timings = section(text, "## Stage timings")
    assert table_row(timings, "`ingest`")[1:] == ["unchanged", "–"]
    assert table_row(timings, "`train`")[1:] == ["ran", "3.3"]
    assert table_row(timings, "`evaluate`")[1:] == ["cached", "–"]
    assert table_row(timings, "**total**")[1:] == ["4 ran", "15.8"]
    # The budget from bench/budget.py's file: in figure order, the failure marked.
    budget = section(text, "## Performance budget")
    assert "**1 of 2 figures past their budget line**" in budget
    assert "REF `aaaaaaaa`, HEAD `bbbbbbbb` (this pull request)" in budget
    numbers = [line.split(" | ")[0] for line in budget.splitlines() if line.startswith("| ")]
    assert numbers[2:] == ["| 1", "| 2", "| 3"]
    assert table_row(budget, "3", "`dvc status`")[2:] == [
        "0.57 s (0.57, 0.57)",
        "0.71 s (0.70, 0.71)",
        "1.25x (HEAD/REF)",
        "1.00x + 10% noise: HEAD <= 0.63 s",
        "**fail**",
    ]
    assert table_row(budget, "1")[-1] == "not run (--quick)"
    # Plots: each one linked relatively, and each file there.
    for stem, _ in plots.NAMES:
        assert f"![{stem}](plots/{stem}.png)" in text
        assert (built / "plots" / f"{stem}.png").is_file()


def test_production_section(project, built, tmp_path):
    text = (built / "report.md").read_text(encoding="utf-8")
    prod = section(text, "## Metrics against production")
    assert prod.startswith(
        f"## Metrics against production v1.0.0 (`model#prod#1`, commit `{project['first'][:8]}`)"
    )
    assert table_row(prod, "`golden.roc_auc`")[1:] == ["0.7301", "0.7389", "+0.0088"]
    assert table_row(prod, "`golden.logloss`")[1:] == ["0.1452", "0.1430", "-0.0022"]
    assert table_row(prod, "`tables.impressions.bad`")[1:] == ["40", "37", "-3"]
    assert f"base `main` (`{project['second'][:8]}`)" in text

    # With the production tags gone, the section says so in one sentence.
    repo = copy(project, tmp_path / "project")
    run(["git", "tag", "-d", "model@v1.0.0", "model#prod#1"], repo)
    out = tmp_path / "pr"
    ok(report_cli(repo, out, "--base", "main"))
    text = (out / "report.md").read_text(encoding="utf-8")
    prod = section(text, "## Metrics against production")
    assert prod.splitlines()[2] == "Nothing is in production, so there is nothing to compare with."
    assert "|" not in prod
    assert "and nothing in production." in text.splitlines()[3]
    assert (
        section(text, "## Stage timings").splitlines()[2]
        == "No log given (`--log`), so no timings."
    )


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every chunk of a PNG file, each checked against its CRC."""
    assert data[:8] == PNG_SIGNATURE
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert zlib.crc32(kind + body) == int.from_bytes(
            data[pos + 8 + length : pos + 12 + length], "big"
        ), kind
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    return chunks


def test_pngs_are_valid_and_byte_stable(project, built, tmp_path):
    # A second run with another hash seed, into a folder holding a stale file.
    out = tmp_path / "pr"
    (out / "plots").mkdir(parents=True)
    (out / "stale.md").write_text("old")
    inputs = ["--log", str(project["log"]), "--budget", str(project["budget"])]
    ok(report_cli(project["repo"], out, "--base", "main", *inputs, seed="12345"))
    names = sorted(f"{stem}.png" for stem, _ in plots.NAMES)
    for folder in (built, out):
        assert sorted(p.name for p in folder.iterdir()) == ["plots", "report.md"]
        assert sorted(p.name for p in (folder / "plots").iterdir()) == names
    assert (out / "report.md").read_bytes() == (built / "report.md").read_bytes()
    width, height = (round(v * plots.DPI) for v in plots.SIZE)
    for name in names:
        data = (built / "plots" / name).read_bytes()
        assert data == (out / "plots" / name).read_bytes(), f"{name} differs between runs"
        chunks = png_chunks(data)
        assert int.from_bytes(chunks[0][1][:4], "big") == width
        assert int.from_bytes(chunks[0][1][4:8], "big") == height
        kinds = {kind for kind, _ in chunks}
        assert b"tIME" not in kinds
        assert not any(
            b"Software" in body for kind, body in chunks if kind in (b"tEXt", b"iTXt", b"zTXt")
        ), name
        image = Image.open(io.BytesIO(data))
        image.load()
        assert image.size == (width, height)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 20, (
            f"{name} looks blank"
        )


def test_image_base_prefixes_the_links(project, tmp_path):
    out = report.write(
        project["repo"], "main", tmp_path / "pr", image_base="https://example.com/run/7"
    )
    text = (out / "report.md").read_text(encoding="utf-8")
    links = re.findall(r"!\[(\w+)\]\(([^)]*)\)", text)
    assert links == [
        (stem, f"https://example.com/run/7/plots/{stem}.png") for stem, _ in plots.NAMES
    ]


def test_same_revision_has_no_changes(project, tmp_path):
    repo = copy(project, tmp_path / "project")
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "pr"], repo)
    out = tmp_path / "pr"
    ok(report_cli(repo, out, "--base", "HEAD"))
    text = (out / "report.md").read_text(encoding="utf-8")
    assert section(text, "## Params").splitlines()[2] == "No param changes."
    against = section(text, "## Metrics against base")
    deltas = [
        line.rsplit(" | ", 1)[1].rstrip(" |")
        for line in against.splitlines()
        if line.startswith("| `")
    ]
    assert len(deltas) == 14 + 20  # 7 overall metrics per split; data.json has 20 figures
    assert set(deltas) == {"+0", "+0.0000"}
    assert "| +0.0000 |" in section(text, "## Slices")


def test_unreadable_metrics_at_base_are_named(project, tmp_path):
    repo = copy(project, tmp_path / "project")
    (repo / paths.EVALUATE_METRICS).write_text("{not json")
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "broken"], repo)
    write_state(repo, "pr")  # the workspace is fine again; the base is not
    out = tmp_path / "pr"
    ok(report_cli(repo, out, "--base", "HEAD"))
    against = section((out / "report.md").read_text(encoding="utf-8"), "## Metrics against base")
    problems = [line for line in against.splitlines() if line.startswith("- DVC could not")]
    assert len(problems) == 1, against
    assert problems[0].startswith(
        f"- DVC could not read the metrics `{paths.EVALUATE_METRICS}` at `"
    )
    assert table_row(against, "`golden.roc_auc`")[1:] == ["–", "0.7389", "–"]


def test_parse_log():
    text = (
        "Stage 'a' didn't change, skipping\r\n"
        "Running stage 'b':\n> cmd\nsome step in 9.9 s, more\nb: done in 1.5 s\n"
        "Updating lock file 'dvc.lock'\nlater line in 7.0 s\n"
        "Stage 'c' is cached - skipping run, checking out outputs\n"
        "Running stage 'd@1':\n\x1b[1mprogress\x1b[0m\rd: x; total 12.25 s\n"
        "Running stage 'e':\n> cmd\nerror: broken\n"
        "ERROR: failed to reproduce 'e': failed to run: cmd, exited with 1\n"
    )
    assert report.parse_log(text) == [
        report.StageRun("a", "unchanged", None),
        report.StageRun("b", "ran", 1.5),
        report.StageRun("c", "cached", None),
        report.StageRun("d@1", "ran", 12.25),
        report.StageRun("e", "failed", None),
    ]
    assert report.parse_log("nothing here\n") == []


def test_a_run_that_stopped_before_the_gate_says_the_gate_is_the_committed_one(
    project, built, tmp_path
):
    committed = "The gate below is the one committed on this branch"
    assert committed not in (built / "report.md").read_text(encoding="utf-8")  # gate ran
    log = tmp_path / "repro.log"  # a fork's run: `dvc repro package`
    log.write_text(
        "\n".join(
            line
            for line in project["log"].read_text().splitlines()
            if "'gate'" not in line and "'production'" not in line
        )
    )
    out = tmp_path / "pr"
    ok(report_cli(project["repo"], out, "--base", "main", "--log", str(log)))
    assert committed in (out / "report.md").read_text(encoding="utf-8")


def one_line_error(proc, *needles: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: "), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    return proc.stderr


def test_missing_gate_json_is_one_line(project, tmp_path):
    repo = copy(project, tmp_path / "project")
    (repo / paths.GATE_REPORT).unlink()
    out = tmp_path / "pr"
    one_line_error(report_cli(repo, out, "--base", "main"), paths.GATE_REPORT, "no such file")
    assert not out.exists()


def test_missing_metrics_json_is_one_line(project, tmp_path):
    repo = copy(project, tmp_path / "project")
    (repo / paths.EVALUATE_METRICS).write_text("{not json")
    out = tmp_path / "pr"
    one_line_error(
        report_cli(repo, out, "--base", "main"), paths.EVALUATE_METRICS, "not valid JSON"
    )
    (repo / paths.EVALUATE_METRICS).unlink()
    one_line_error(report_cli(repo, out, "--base", "main"), paths.EVALUATE_METRICS, "no such file")
    assert not out.exists()


def test_unknown_base_is_one_line(project, tmp_path):
    out = tmp_path / "pr"
    one_line_error(
        report_cli(project["repo"], out, "--base", "origin/no-such-branch"),
        "'origin/no-such-branch'",
    )
    assert not out.exists()


def test_missing_log_is_one_line(project, tmp_path):
    out = tmp_path / "pr"
    one_line_error(
        report_cli(project["repo"], out, "--base", "main", "--log", str(tmp_path / "no-such.log")),
        "no-such.log",
        "no such file",
    )
    assert not out.exists()


def test_the_budget_section_renders_bench_budget_pys_own_file(project, tmp_path):
    """bench/budget.py's --json output, from its own functions, is what the report reads;
    without one, the section says so."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import budget as bench_budget
    finally:
        sys.path.remove(str(ROOT / "bench"))
    lines = bench_budget.load_budget()
    rows = [
        bench_budget.judge(f, lines["figures"][f.key], ref, head, "")
        for f, ref, head in [
            (bench_budget.BY_KEY["serve_rps"], [4000.0, 4100.0], [3000.0, 3100.0]),
            (bench_budget.BY_KEY["noop_repro"], [1.0, 1.1], [0.9, 0.95]),
        ]
    ]
    bench = types.SimpleNamespace(
        sides={s: bench_budget.Side(s, c * 40) for s, c in (("REF", "c"), ("HEAD", "d"))},
        args=types.SimpleNamespace(quick=True),
        budget=lines,
        setup={},
        errors={},
        notes=[],
    )
    path = tmp_path / "budget.json"
    path.write_text(json.dumps(bench_budget.raw(bench, rows, dt.datetime(2026, 12, 8))))
    out = tmp_path / "pr"
    ok(report_cli(project["repo"], out, "--base", "main", "--budget", str(path)))
    budget = section((out / "report.md").read_text(encoding="utf-8"), "## Performance budget")
    assert "**1 of 2 figures past their budget line**" in budget
    rps = table_row(budget, "6")
    assert rps[2:5] == ["4,050/s (4,000, 4,100)", "3,050/s (3,000, 3,100)", "1.33x (REF/HEAD)"]
    assert rps[-1] == "**fail**" and table_row(budget, "2")[-1] == "pass"

    ok(report_cli(project["repo"], tmp_path / "none", "--base", "main"))
    plain = (tmp_path / "none" / "report.md").read_text(encoding="utf-8")
    assert "No budget figures given (`--budget`)" in section(plain, "## Performance budget")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ('{"sides": {}, "figures": {}}', "not bench/budget.py's --json output"),
    ],
)
def test_a_missing_or_malformed_budget_file_is_one_line(project, tmp_path, content, says):
    path = tmp_path / "budget.json"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "pr"
    one_line_error(report_cli(project["repo"], out, "--base", "main", "--budget", str(path)), says)
    assert not out.exists()


def test_mermaid_charts_resample_curves_onto_an_even_grid():
    from ctrpipe.reporting import charts

    # A diagonal sampled at uneven points reads back as the grid itself.
    rows = [{"fpr": x, "tpr": x} for x in (0.0, 0.03, 0.5, 0.97, 1.0)]
    assert charts.resample(rows, "fpr", "tpr") == pytest.approx(np.linspace(0, 1, charts.GRID))
    lines = charts.blocks(
        {"roc": {"golden": rows}},
        [{"feature": "b", "gain": 1.0}, {"feature": "a", "gain": 2.0}],
        [],
    )
    text = "\n".join(lines)
    assert text.count("```mermaid") == 2 and 'x-axis ["a", "b"]' in text
    assert "line [0.0000, 0.0500," in text
