"""Every monitored figure against its warn and alarm levels (conf/monitor/), and the
verdict: the worst status of any check.

A check is {"name", "kind", "metric", "value", "warn", "alarm", "status", "detail"};
its kind is input_drift, prediction_drift, quality, engineering or freshness (what the rollback
settings choose from). A figure that could not be computed (too few rows, no labels, no
reference) is "skipped" with the reason in `detail`, and never raises the verdict.
"""

from __future__ import annotations

import numpy as np

from ctrpipe.model import drift, metrics
from ctrpipe.monitoring.settings import Limit, Monitor

ORDER = {"skipped": -1, "ok": 0, "warn": 1, "alarm": 2}
EXIT = {"ok": 0, "warn": 3, "alarm": 4}
Z95 = 1.96


def check(name: str, kind: str, metric: str, value, limit: Limit, detail: str = "") -> dict:
    value = (
        None
        if value is None or (isinstance(value, float) and np.isnan(value))
        else round(float(value), metrics.DIGITS)
    )
    return {
        "name": name,
        "kind": kind,
        "metric": metric,
        "value": value,
        "warn": limit.warn,
        "alarm": limit.alarm,
        "status": limit.status(value),
        "detail": detail,
    }


def verdict(checks: list[dict]) -> str:
    worst = max((ORDER[c["status"]] for c in checks), default=0)
    return next(s for s, rank in ORDER.items() if rank == max(worst, 0))


def profiled(profile: dict) -> dict[str, dict]:
    """The profile's entry of every column drift is judged on: features and prediction."""
    return {**profile["features"], "prediction": profile["prediction"]}


def drift_checks(
    profile: dict, counts: dict[str, np.ndarray], rows: int, settings: Monitor
) -> tuple[list[dict], dict]:
    """One check per feature (PSI if numeric, Jensen-Shannon if categorical) and one
    for the prediction; and per feature the fractions behind it, for the report."""
    limits = settings.drift
    short = rows < settings.min_rows
    why = f"{rows} rows; drift is judged from {settings.min_rows}" if short else ""
    out, sections = [], {}
    for name, entry in profiled(profile).items():
        if name in limits.ignore:
            continue
        expected = drift.reference(entry)
        actual = counts[name] / max(counts[name].sum(), 1)
        numeric = entry["kind"] == "numeric"
        value = drift.psi(expected, actual) if numeric else drift.js(expected, actual)
        kind, limit = (
            ("prediction_drift", limits.prediction_psi)
            if name == "prediction"
            else ("input_drift", limits.psi if numeric else limits.js)
        )
        out.append(
            check(name, kind, "psi" if numeric else "js", None if short else value, limit, why)
        )
        sections[name] = {
            "kind": entry["kind"],
            "metric": "psi" if numeric else "js",
            "bins": labels(entry),
            "expected": _list(expected),
            "actual": _list(actual),
        }
    return out, sections


def labels(entry: dict) -> list[str]:
    """A readable name of each bin of a profile entry, missing last."""
    if entry["kind"] == "categorical":
        return [*entry["values"], "(missing)"]
    edges = [f"{e:.4g}" for e in entry["edges"]]
    if not edges:
        return ["all", "(missing)"]
    return [
        f"≤{edges[0]}",
        *(f"{a}–{b}" for a, b in zip(edges, edges[1:])),
        f">{edges[-1]}",
        "(missing)",
    ]


def quality_checks(quality: dict | None, reference: dict | None, settings: Monitor) -> list[dict]:
    """Against the served version's own validation metrics: the drop of ROC AUC overall
    and per slice value (judged by its lower 95% confidence bound, so that a small
    slice's noise is no alarm), the rise of log loss, and |calibration - 1|."""
    q = settings.quality
    overall = (quality or {}).get("overall", {})
    n = overall.get("rows", 0)
    why = (
        "no labels joined (monitor.labels)"
        if quality is None
        else f"{n} labelled rows; quality is judged from {q.min_labelled}"
        if n < q.min_labelled
        else "no validation metrics of the served version"
        if reference is None
        else ""
    )
    ref = reference or {}
    calibration = overall.get("calibration")
    out = [
        auc_check("roc_auc", overall, ref.get("roc_auc"), q.roc_auc_drop, why),
        check(
            "logloss",
            "quality",
            "logloss_rise",
            None if why else overall["logloss"] - ref["logloss"],
            q.logloss_rise,
            why,
        ),
        check(
            "calibration",
            "quality",
            "calibration_error",
            None if why or calibration is None else abs(calibration - 1),
            q.calibration,
            why or ("" if calibration is not None else "no clicks among the labelled rows"),
        ),
    ]
    for name, values in (quality or {}).get("slices", {}).items():
        for value, figures in values.items():
            base = ref.get("slices", {}).get(name, {}).get(value, {}).get("roc_auc")
            rows = figures.get("rows", 0)
            reason = why or (
                f"{rows} rows; a slice is judged from {q.min_slice_rows}"
                if rows < q.min_slice_rows
                else ""
            )
            out.append(auc_check(f"{name}={value}", figures, base, q.slice_roc_auc_drop, reason))
    return out


def auc_check(name: str, figures: dict, base: float | None, limit: Limit, why: str) -> dict:
    """The drop of ROC AUC below `base`, less 1.96 standard errors (never below 0)."""
    area, se = figures.get("roc_auc"), figures.get("roc_auc_se")
    why = why or (
        "no validation AUC for this value"
        if base is None
        else "one class only among its rows"
        if area is None
        else ""
    )
    if why:
        return check(name, "quality", "roc_auc_drop_lower", None, limit, why)
    drop = base - area
    return check(
        name,
        "quality",
        "roc_auc_drop_lower",
        max(drop - Z95 * se, 0.0),
        limit,
        f"AUC {area:.4f} against {base:.4f}: a drop of {drop:.4f} ± "
        f"{Z95 * se:.4f} (95%), {figures['rows']} rows, {figures['clicks']} clicks",
    )


def engineering_checks(figures: dict | None, settings: Monitor) -> list[dict]:
    """The service's figures; and, with a limit set, the snapshot's age, a check of its
    own kind (freshness): a stale snapshot calls for a refresh, not a rollback."""
    e = settings.engineering
    why = "" if figures is not None else "no metrics URL (monitor.engineering.metrics_url)"
    figures = figures or {}
    fresh = []
    if e.snapshot_age_hours is not None:
        age = figures.get("snapshot_age_hours")
        missing = "no online snapshot served" if age is None else ""
        fresh.append(
            check(
                "snapshot_age_hours",
                "freshness",
                "snapshot_age_hours",
                age,
                e.snapshot_age_hours,
                why or missing,
            )
        )
    return fresh + [
        check(
            name,
            "engineering",
            name,
            figures.get(name),
            getattr(e, name),
            why or ("" if figures.get(name) is not None else "not on the page"),
        )
        for name in (
            "p50_ms",
            "p99_ms",
            "error_rate",
            "client_error_rate",
            "memory_mib",
            "cpu_cores",
        )
    ]


def _list(values: np.ndarray) -> list[float]:
    return [round(float(v), metrics.DIGITS) for v in values]
