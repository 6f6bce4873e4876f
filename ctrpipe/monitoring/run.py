"""The monitor command: the served model's traffic, labels and metrics, judged.

monitor.json (keys sorted):

    {"format": 1, "verdict": "ok" | "warn" | "alarm", "time": ISO-8601,
     "window": {"since": ISO-8601 | null},
     "model": {"version": str | null, "digest": str, "package": path},
     "rows": {"logged": n, "labelled": n | null, "other_models": [{"version", "digest",
              "rows"}]},
     "checks": [check, ...],                     # checks.py; the verdict's reasons
     "drift": {feature | "prediction": {"kind", "metric", "bins": [label, ...],
               "expected": [fraction, ...], "actual": [fraction, ...]}},
     "quality": {"overall": figures, "reliability": [...],
                 "slices": {feature: {value: figures + "reference_roc_auc"}},
                 "reference": {"roc_auc", "logloss", "positive_rate"} | null} | null,
     "engineering": {"url", "p50_ms", "p99_ms", "error_rate", "client_error_rate",
                     "memory_mib", "cpu_cores", "requests", "snapshot_age_hours"} | null,
     "actions": [{"action", "status", "detail"}, ...]}

Only the rows of the newest package in the window are judged (the one serving now);
rows of other packages (before a swap) are counted in rows.other_models.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from ctrpipe import config, fileio, params, paths
from ctrpipe import spark as spark_session
from ctrpipe.errors import DataError
from ctrpipe.model import package
from ctrpipe.monitoring import actions, checks, engineering, html, quality, traffic
from ctrpipe.monitoring.settings import Monitor, Ops
from ctrpipe.release import fetch, registry, remote

FORMAT = 1


@dataclass(frozen=True)
class Options:
    repo: Path
    settings: Monitor
    package: Path | None = None  # default: the served version's, fetched if needed
    act: bool = True  # run the alarm actions
    now: dt.datetime | None = None


def monitor(options: Options, spark=None) -> tuple[dict, Path]:
    """Judge the traffic; write monitor.json and monitor.html; run the actions.
    The result and the folder written."""
    s, repo = options.settings, options.repo
    now = options.now or dt.datetime.now(dt.timezone.utc)
    since = now - dt.timedelta(hours=s.window_hours) if s.window_hours else None
    spark = spark or spark_session.session(spark_settings(repo), app="ctrpipe-monitor")
    # The numpy side (traffic.py) pays per batch, not per row: bigger Arrow batches.
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(traffic.ARROW_BATCH))
    # Log files are small next to Spark's 128 MB splits: a few tasks per core keep every
    # core busy to the end instead of leaving one task running alone.
    spark.conf.set(
        "spark.sql.files.minPartitionNum", str(4 * spark.sparkContext.defaultParallelism)
    )
    files = traffic.log_files(repo / s.logs)
    served = traffic.models(spark, files, since)
    if not served:
        raise DataError(f"{repo / s.logs}: no logged rows since {since:%Y-%m-%d %H:%M} UTC")
    newest = served[0]
    folder = options.package or package_of(repo, newest)
    # The profile as checked against the manifest; the model itself is not needed here.
    verified, digest = package.verify(Path(folder)), package.digest(folder)
    if digest != newest["digest"]:
        raise DataError(
            f"{folder}: its manifest sha256 {digest[:12]} is not the "
            f"logged model's {newest['digest'][:12]}"
        )
    profile = json.loads(verified["profile.json"])
    counts = traffic.histograms(spark, files, checks.profiled(profile), newest["digest"], since)
    drift_checks, drift = checks.drift_checks(profile, counts, newest["rows"], s)

    reference = reference_metrics(repo, newest["version"], digest)
    labelled = None
    if s.labels:
        labels = traffic.read_labels(spark, repo / s.labels, s.id_column, s.label_column)
        rows = traffic.read_logs(spark, files, since)
        mine = rows.where(rows.digest == newest["digest"])
        # The slices evaluate reported for this version (data.slices when it was built).
        slices = list((reference or {}).get("slices", {}))
        labelled = quality.summarize(
            traffic.buckets(mine, labels, slices), s.quality.min_slice_rows
        )
    if labelled is not None:
        add_reference(labelled, reference)
    figures = None
    if s.engineering.metrics_url:
        figures = {
            "url": s.engineering.metrics_url,
            **engineering.figures(engineering.scrape(s.engineering.metrics_url)),
        }

    all_checks = [
        *drift_checks,
        *checks.quality_checks(labelled, reference, s),
        *checks.engineering_checks(figures, s),
    ]
    result = {
        "format": FORMAT,
        "verdict": checks.verdict(all_checks),
        "time": now.isoformat(),
        "window": {"since": since.isoformat() if since else None},
        "model": {"version": newest["version"], "digest": newest["digest"], "package": str(folder)},
        "rows": {
            "logged": newest["rows"],
            "labelled": labelled["overall"]["rows"] if labelled else None,
            "other_models": [{k: m[k] for k in ("version", "digest", "rows")} for m in served[1:]],
        },
        "checks": all_checks,
        "drift": drift,
        "quality": labelled,
        "engineering": figures,
        "actions": [],
    }
    out = repo / s.out
    write(result, out)
    if options.act:
        result["actions"] = [
            actions.retrain(result, s.actions.retrain, out / "monitor.json"),
            actions.rollback(repo, result, s.actions.rollback, now),
        ]
        write(result, out)
    return result, out


def add_reference(labelled: dict, reference: dict | None) -> None:
    """Put the validation figures beside the live ones, for the report."""
    ref = reference or {}
    labelled["reference"] = (
        None
        if reference is None
        else {k: ref.get(k) for k in ("roc_auc", "logloss", "positive_rate")}
    )
    for name, values in labelled["slices"].items():
        for value, figures in values.items():
            figures["reference_roc_auc"] = (
                ref.get("slices", {}).get(name, {}).get(value, {}).get("roc_auc")
            )


def write(result: dict, out: Path) -> None:
    fileio.write_json(out / "monitor.json", result)
    fileio.write_text(out / "monitor.html", html.render(result))


def package_of(repo: Path, served: dict) -> Path:
    """The served package: the working tree's models/package when it is the one logged,
    else the logged version's, fetched already or now from the DVC remote."""
    version = served["version"]
    for folder in (repo / paths.PACKAGE, *([repo / paths.FETCHED / version] if version else [])):
        if _digest_or_none(folder) == served["digest"]:
            return folder
    if version is None:
        raise DataError(
            f"the logged rows come from an unversioned package (manifest "
            f"sha256 {served['digest'][:12]}) that is not {paths.PACKAGE}; "
            f"name its folder with --package"
        )
    _, _, folder = fetch.fetch(repo, remote.resolve(repo), version=version)
    return folder


def reference_metrics(repo: Path, version: str | None, digest: str) -> dict | None:
    """The served model's validation metrics: from the version's commit, or for an
    unversioned package the working tree's, if its package is the one served."""
    text = None
    if version is not None:
        try:
            text = registry.show(repo, registry.find(repo, version).commit, paths.EVALUATE_METRICS)
        except registry.RegistryError:
            text = None
    elif (repo / paths.EVALUATE_METRICS).exists() and _digest_or_none(
        repo / paths.PACKAGE
    ) == digest:
        text = (repo / paths.EVALUATE_METRICS).read_text(encoding="utf-8")
    return json.loads(text).get("validation") if text else None


def spark_settings(repo: Path) -> config.Spark:
    """params.yaml's `spark` group (conf/'s without one): only that group, so
    that monitoring does not need the data stages' settings to be valid."""
    return params.groups(repo, Ops).spark


def _digest_or_none(folder: Path) -> str | None:
    try:
        return package.digest(folder)
    except (OSError, DataError):
        return None
