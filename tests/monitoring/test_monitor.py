"""The monitor on Spark, over traffic a real service logged: clean traffic gives no
alarm, shifted traffic an alarm naming the shifted features; the Spark histograms and
bucketed AUC agree with the numpy ones; alarm actions reach a loopback endpoint or run a
command; bad labels and empty logs are one-line errors. (The automatic rollback against
real tags and a real S3 remote is in test_publish.py.)"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctrpipe import cli, paths
from ctrpipe.errors import DataError
from ctrpipe.model import drift, metrics, package
from ctrpipe.monitoring import actions, checks, engineering, quality, run, simulate, traffic
from ctrpipe.monitoring.settings import Monitor, Retrain, Rollback
from ctrpipe.serving.rest.server import Server
from ctrpipe.serving.service import Service
from ctrpipe.serving.settings import RequestLog
from tests.conftest import QUICK_SPARK_CONF, ROOT, make_params
from tests.support import snapshots
from tests.support.client import UNSHED
from tests.support.models import traffic as make_traffic

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning"),
]
SHIFT = {"device": {"set": "ctv", "fraction": 0.7}, "floor_price": {"scale": 3.0}}


def settings(**changes) -> Monitor:
    base = {
        "min_rows": 500,
        "window_hours": None,
        "logs": "logs",
        "labels": "labels.parquet",
        "quality": {"min_labelled": 500, "min_slice_rows": 300},
        "actions": {"retrain": {"trigger": "never"}, "rollback": {"auto": False}},
    }
    return Monitor.model_validate(base | changes)


@pytest.fixture(scope="module")
def site(packages, tmp_path_factory):
    """A folder per kind of traffic, as a repository would hold it: the package in
    models/package, its validation metrics, the request log of a real service that
    served the traffic, and the delayed labels."""
    folders, validation = packages
    root = tmp_path_factory.mktemp("monitor")
    loaded = package.load(folders["a"])
    scores = loaded.predict(validation)
    y = validation.column("label").to_numpy()
    device = np.array(validation.column("device").to_pylist(), dtype=object)
    reference = {
        "validation": {
            "roc_auc": metrics.roc_auc(y, scores),
            "logloss": metrics.logloss(y, scores),
            "slices": {
                "device": {
                    d: {"roc_auc": metrics.roc_auc(y[device == d], scores[device == d])}
                    for d in ("mobile", "desktop", "tablet")
                }
            },
        }
    }
    clean = make_traffic(6000, 7, sample=False)
    sites = {}
    for name, table in (("clean", clean), ("shifted", simulate.drifted(clean, SHIFT, 3))):
        repo = root / name
        shutil.copytree(folders["a"], repo / paths.PACKAGE)
        (repo / paths.EVALUATE).mkdir(parents=True)
        (repo / paths.EVALUATE_METRICS).write_text(json.dumps(reference))
        service = Service(max_batch=1000, log=RequestLog(dir=str(repo / "logs"), sample_rate=1.0))
        service.load(repo / paths.PACKAGE)
        srv = Server(("127.0.0.1", 0), service, deadline_ms=UNSHED).start()
        try:
            replayed = simulate.replay(
                srv.url, simulate.requests(table, loaded.schema.names, loaded.schema.id, 250)
            )
        finally:
            srv.stop()
        assert replayed.statuses == {200: replayed.requests}
        pq.write_table(simulate.labels(table, loaded.schema), repo / "labels.parquet")
        sites[name] = (repo, table)
    return sites


def judged(site, spark, **changes):
    repo, _ = site
    return run.monitor(run.Options(repo, settings(**changes)), spark=spark)


def test_clean_traffic_raises_no_alarm(site, spark):
    result, out = judged(site["clean"], spark)
    assert result["verdict"] != "alarm", [c for c in result["checks"] if c["status"] == "alarm"]
    assert result["rows"]["logged"] == result["rows"]["labelled"] == 6000
    assert result["model"]["version"] is None
    q = result["quality"]
    assert q["reference"]["roc_auc"] > 0.6 and q["overall"]["roc_auc"] > 0.6
    assert {c["kind"] for c in result["checks"] if c["status"] != "skipped"} == {
        "input_drift",
        "prediction_drift",
        "quality",
    }
    assert json.loads((out / "monitor.json").read_text()) == result
    assert "<html" in (out / "monitor.html").read_text().lower()


def test_shifted_traffic_raises_an_alarm_naming_the_shifted_features(site, spark):
    result, _ = judged(site["shifted"], spark)
    assert result["verdict"] == "alarm"
    alarmed = {
        c["name"] for c in result["checks"] if c["status"] == "alarm" and c["kind"] == "input_drift"
    }
    assert alarmed == {"device", "floor_price"}
    clean, _ = judged(site["clean"], spark)
    assert value(result, "prediction") > value(clean, "prediction")
    assert result["drift"]["device"]["metric"] == "js"
    assert result["drift"]["floor_price"]["metric"] == "psi"


def value(result: dict, name: str) -> float:
    return next(c["value"] for c in result["checks"] if c["name"] == name)


def test_exit_codes_follow_the_verdict():
    limit = Monitor().drift.psi
    made = [checks.check(n, "input_drift", "psi", v, limit) for n, v in (("a", 0.0), ("b", None))]
    assert checks.verdict(made) == "ok" and checks.EXIT["ok"] == 0
    made.append(checks.check("c", "input_drift", "psi", 0.12, limit))
    assert checks.verdict(made) == "warn" and checks.EXIT["warn"] == 3
    made.append(checks.check("d", "input_drift", "psi", 0.3, limit))
    assert checks.verdict(made) == "alarm" and checks.EXIT["alarm"] == 4


def test_spark_histograms_equal_the_numpy_binning_of_the_same_rows(site, spark):
    repo, _ = site["shifted"]
    profile = json.loads((repo / paths.PACKAGE / "profile.json").read_text())
    counts = traffic.histograms(spark, traffic.log_files(repo / "logs"), profile["features"])
    logged = pq.read_table(sorted((repo / "logs").glob("*.parquet")))
    ones = np.ones(logged.num_rows)
    for name, entry in profile["features"].items():
        assert counts[name].sum() == logged.num_rows
        np.testing.assert_allclose(
            counts[name] / logged.num_rows,
            drift.fractions(entry, logged.column(name), ones),
            err_msg=name,
        )


def test_models_and_histograms_keep_the_window_and_the_newest_package(site, spark, tmp_path):
    """Three files: old rows of package X (before the window), rows of an older package
    Y without one feature, and new rows of X. Counted as numpy counts the same rows."""
    repo, _ = site["shifted"]
    profile = json.loads((repo / paths.PACKAGE / "profile.json").read_text())
    logged = pq.read_table(sorted((repo / "logs").glob("*.parquet")))
    thirds = [logged.slice(i * 2000, 2000) for i in range(3)]
    base = logged.column("ts")[0].as_py()
    hour = dt.timedelta(hours=1)
    dropped = next(n for n, e in profile["features"].items() if e["kind"] == "categorical")
    made = []
    plan = ((thirds[0], "x", -3 * hour), (thirds[1], "y", 0 * hour), (thirds[2], "x", hour))
    for i, (part, digest, shift) in enumerate(plan):
        ts = pa.array([base + shift] * part.num_rows, part.schema.field("ts").type)
        part = part.set_column(part.schema.get_field_index("ts"), "ts", ts)
        part = part.set_column(
            part.schema.get_field_index("digest"), "digest", pa.array([digest] * part.num_rows)
        )
        if digest == "y":
            part = part.drop_columns([dropped])
        pq.write_table(part, tmp_path / f"requests-{i}.parquet")
        made.append(part)
    files = traffic.log_files(tmp_path)
    since = base - hour
    served = traffic.models(spark, files, since)
    assert [(m["digest"], m["rows"]) for m in served] == [("x", 2000), ("y", 2000)]
    assert [m["digest"] for m in traffic.models(spark, files)] == ["x", "y"]
    assert traffic.models(spark, files)[0]["rows"] == 4000
    counts = traffic.histograms(spark, files, profile["features"], "x", since)
    ones = np.ones(2000)
    for name, entry in profile["features"].items():
        np.testing.assert_allclose(
            counts[name] / 2000, drift.fractions(entry, made[2].column(name), ones), err_msg=name
        )
    of_y = traffic.histograms(spark, files, profile["features"], "y")
    assert of_y[dropped][-1] == 2000 and of_y[dropped][:-1].sum() == 0  # all missing

    (tmp_path / "requests-9.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="requests-9.parquet: not a readable Parquet file"):
        traffic.log_files(tmp_path)
    pq.write_table(made[0].drop_columns(["digest"]), tmp_path / "requests-9.parquet")
    with pytest.raises(DataError, match="requests-9.parquet: the request log has no 'digest'"):
        traffic.log_files(tmp_path)


def test_bucketed_auc_and_log_loss_match_the_exact_ones(site, spark):
    repo, table = site["clean"]
    rows = traffic.read_logs(spark, traffic.log_files(repo / "logs"))
    labels = traffic.read_labels(spark, repo / "labels.parquet", "id", "clicked")
    summary = quality.summarize(traffic.buckets(rows, labels, ["device"]), 100)
    logged = pq.read_table(sorted((repo / "logs").glob("*.parquet"))).to_pydict()
    truth = dict(zip(table.column("event_id").to_pylist(), table.column("label").to_pylist()))
    y = np.array([truth[i] for i in logged["id"]])
    p = np.array(logged["prediction"])
    overall = summary["overall"]
    assert overall["roc_auc"] == pytest.approx(metrics.roc_auc(y, p), abs=1e-3)
    assert overall["logloss"] == pytest.approx(metrics.logloss(y, p), abs=1e-6)
    assert overall["clicks"] == y.sum() and overall["rows"] == len(y)
    assert 0 < overall["roc_auc_se"] < 0.05
    mobile = np.array(logged["device"], dtype=object) == "mobile"
    assert summary["slices"]["device"]["mobile"]["roc_auc"] == pytest.approx(
        metrics.roc_auc(y[mobile], p[mobile]), abs=1e-3
    )


def test_a_small_slice_is_not_judged_and_a_noisy_drop_is_no_alarm():
    limit = Monitor().quality.slice_roc_auc_drop
    noisy = checks.auc_check(
        "device=ctv",
        {"roc_auc": 0.70, "roc_auc_se": 0.05, "rows": 900, "clicks": 30},
        0.75,
        limit,
        "",
    )
    assert noisy["status"] == "ok" and "± 0.0980" in noisy["detail"]
    real = checks.auc_check(
        "device=ctv",
        {"roc_auc": 0.60, "roc_auc_se": 0.01, "rows": 9000, "clicks": 300},
        0.75,
        limit,
        "",
    )
    assert real["status"] == "alarm" and real["value"] == pytest.approx(0.15 - 0.0196)
    quality_checks = checks.quality_checks(
        {"overall": {"rows": 50}, "slices": {}}, {"roc_auc": 0.7}, Monitor()
    )
    assert {c["status"] for c in quality_checks} == {"skipped"}
    assert "50 labelled rows" in quality_checks[0]["detail"]


class Recorder(BaseHTTPRequestHandler):
    """A stand-in for GitHub's dispatch endpoint on loopback: records, answers 204
    (or 401 for a bad token)."""

    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Recorder.seen.append((self.path, self.headers["Authorization"], body))
        ok = self.headers["Authorization"] == "Bearer good"
        self.send_response(204 if ok else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def endpoint():
    Recorder.seen = []
    server = HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


ALARM = {
    "verdict": "alarm",
    "model": {"version": "v1.2.0", "digest": "d" * 64},
    "checks": [{"name": "device", "kind": "input_drift", "status": "alarm"}],
}


def test_an_alarm_sends_the_repository_dispatch_the_retrain_workflow_listens_to(
    endpoint, monkeypatch, tmp_path
):
    monkeypatch.setenv("GITHUB_TOKEN", "good")
    retrain = Retrain(repository="acme/ctr", api_url=endpoint)
    done = actions.retrain(ALARM, retrain, tmp_path / "monitor.json")
    assert done["status"] == "done", done
    ((path, auth, body),) = Recorder.seen
    assert path == "/repos/acme/ctr/dispatches" and auth == "Bearer good"
    assert body["event_type"] == "drift-alarm"
    assert body["client_payload"] == {
        "version": "v1.2.0",
        "digest": "d" * 64,
        "verdict": "alarm",
        "alarms": ["device"],
    }
    workflow = (ROOT / ".github/workflows/retrain.yml").read_text()
    assert "types: [drift-alarm]" in workflow

    monkeypatch.setenv("GITHUB_TOKEN", "expired")
    refused = actions.retrain(ALARM, retrain, tmp_path / "monitor.json")
    assert refused["status"] == "failed" and "HTTP 401" in refused["detail"]
    monkeypatch.delenv("GITHUB_TOKEN")
    assert "$GITHUB_TOKEN" in actions.retrain(ALARM, retrain, tmp_path / "m.json")["detail"]
    warn = ALARM | {"verdict": "warn"}
    assert actions.retrain(warn, retrain, tmp_path / "m.json")["status"] == "skipped"


def test_an_alarm_can_run_a_local_command_instead(tmp_path):
    marker = tmp_path / "retrained"
    script = (
        "import os, pathlib; pathlib.Path(os.environ['MARK']).write_text("
        "os.environ['CTRPIPE_MONITOR_VERDICT'] + ' ' + os.environ['CTRPIPE_MONITOR_RESULT'])"
    )
    command = [sys.executable, "-c", script.replace("os.environ['MARK']", repr(str(marker)))]
    done = actions.retrain(ALARM, Retrain(kind="command", command=command), tmp_path / "m.json")
    assert done["status"] == "done" and marker.read_text() == f"alarm {tmp_path / 'm.json'}"
    failing = Retrain(kind="command", command=[sys.executable, "-c", "raise SystemExit('no disk')"])
    failed = actions.retrain(ALARM, failing, tmp_path / "m.json")
    assert failed["status"] == "failed" and "no disk" in failed["detail"]


def test_no_rollback_without_an_alarm_of_a_rolling_kind_or_a_version(tmp_path):
    skipped = actions.rollback(tmp_path, ALARM, Rollback())  # input drift only
    assert skipped["status"] == "skipped" and "no alarm of a kind" in skipped["detail"]
    unversioned = ALARM | {"model": {"version": None, "digest": "d"}}
    quality_alarm = unversioned | {
        "checks": [{"name": "roc_auc", "kind": "quality", "status": "alarm"}]
    }
    assert "unversioned" in actions.rollback(tmp_path, quality_alarm, Rollback())["detail"]


def test_engineering_figures_from_a_live_metrics_page(packages):
    folders, validation = packages
    service = Service()
    service.load(folders["a"])
    srv = Server(("127.0.0.1", 0), service, deadline_ms=UNSHED).start()
    try:
        schema = service.model.loaded.schema
        good = simulate.requests(make_traffic(50, 9, sample=False), schema.names, schema.id, 5)
        replayed = simulate.replay(srv.url, [*good, b'{"rows": [{"x": 1}]}', b"nope"])
        for _ in range(100):  # a request is counted just after its answer is sent
            figures = engineering.figures(engineering.scrape(f"{srv.url}/metrics"))
            if figures["requests"] == 12:
                break
            time.sleep(0.01)
    finally:
        srv.stop()
    assert replayed.statuses == {200: 10, 422: 1, 400: 1}
    assert figures["requests"] == 12 and figures["error_rate"] == 0
    assert figures["client_error_rate"] == pytest.approx(2 / 12)
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] < 1000
    # The service's process: this test's own, which has been busy serving and scoring.
    assert figures["memory_mib"] > 10 and 0 < figures["cpu_cores"] < 64
    with pytest.raises(DataError, match="cannot read the service's metrics"):
        engineering.scrape("http://127.0.0.1:9/metrics")


def test_histogram_quantiles_interpolate_within_buckets():
    buckets = [(0.001, 50.0), (0.002, 90.0), (0.005, 100.0), (float("inf"), 100.0)]
    assert engineering.quantile(buckets, 0.5) == pytest.approx(0.001)
    assert engineering.quantile(buckets, 0.7) == pytest.approx(0.0015)
    assert engineering.quantile(buckets, 0.99) == pytest.approx(0.0047)
    assert engineering.quantile([(float("inf"), 0.0)], 0.5) is None


def test_bad_labels_and_empty_logs_are_one_line_errors(site, spark, tmp_path, packages):
    repo, _ = site["clean"]
    with pytest.raises(DataError, match="no request log files"):
        traffic.log_files(tmp_path)
    pq.write_table(pa.table({"id": ["a"], "click": [1]}), tmp_path / "l.parquet")
    with pytest.raises(DataError, match="column 'clicked' missing"):
        traffic.read_labels(spark, tmp_path / "l.parquet", "id", "clicked")
    (tmp_path / "l.csv").write_text("id,clicked\na,1\nb,7\n")
    with pytest.raises(DataError, match="must be 0 or 1"):
        traffic.read_labels(spark, tmp_path / "l.csv", "id", "clicked")
    with pytest.raises(DataError, match="labels not found"):
        traffic.read_labels(spark, tmp_path / "none.parquet", "id", "clicked")
    with pytest.raises(DataError, match="is not the logged model's"):
        run.monitor(run.Options(repo, settings(), package=packages[0]["b"]), spark=spark)


def test_simulate_then_monitor_through_the_command_line(packages, tmp_path, spark):
    """`python -m ctrpipe simulate` in a project of its own: the drifted phase alarms
    and runs the retrain command, and exits 4; `monitor` on the clean phase's log
    does not alarm. Only the groups these commands read are in its params.yaml."""
    folders, _ = packages
    shutil.copytree(folders["a"], tmp_path / paths.PACKAGE)
    (tmp_path / paths.VALIDATION).parent.mkdir(parents=True)
    pq.write_table(make_traffic(3000, 11, sample=False), tmp_path / paths.VALIDATION)
    params = {
        "spark": {
            "master": "local[2]",
            "driver_memory": "1g",
            "shuffle_partitions": 2,
            "broadcast_max_rows": 1000,
            "slots_wait_seconds": 0,
            "conf": QUICK_SPARK_CONF,
        },
        "simulate": {
            "contract": "features",  # no raw data here: the split's rows as they are
            "rows": 3000,
            "batch": 100,
            "drift": SHIFT,
            "retrain_command": ["python", "-c", "print('retrain!')"],
        },
        "monitor": settings(actions={}).model_dump() | {"logs": "logs"},
    }
    (tmp_path / "params.yaml").write_text(json.dumps(params))  # JSON is YAML
    done = subprocess.run(
        [sys.executable, "-m", "ctrpipe", "--repo", str(tmp_path), "simulate"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 4, done.stderr[-2000:]
    drifted = done.stdout.split("--- monitor after the drifted traffic ---")[1]
    assert drifted.lstrip().startswith("ALARM") and "retrain: done" in drifted
    assert "device js" in drifted and "floor_price psi" in drifted
    assert (tmp_path / "reports/simulate/drifted/monitor.html").is_file()

    clean = tmp_path / "reports/simulate/clean"
    code = cli.main(
        [
            "--repo",
            str(tmp_path),
            "monitor",
            "--no-actions",
            "--logs",
            str(clean / "logs"),
            "--labels",
            str(clean / "labels.parquet"),
            "--out",
            str(tmp_path / "again"),
        ]
    )
    assert code in (0, 3)
    assert json.loads((tmp_path / "again/monitor.json").read_text())["rows"]["logged"] == 3000


def test_the_served_snapshot_age_is_a_freshness_check_once_limited(packages):
    """The service shows its snapshot's cut; the monitor judges its age only with a
    limit set, as a check of its own kind (a stale snapshot is no reason to roll back)."""
    folders, _ = packages
    service = Service()
    service.load(folders["a"])
    text = service.metrics.render().decode()
    cut = snapshots.CUT.replace(tzinfo=dt.timezone.utc).timestamp()
    figures = engineering.figures(text, now=cut + 30 * 3600)
    assert figures["snapshot_age_hours"] == pytest.approx(30.0)

    settings = make_params().section("monitor", Monitor)
    assert [c["kind"] for c in checks.engineering_checks(figures, settings)].count("freshness") == 0
    limit = {"warn": 24, "alarm": 72}
    limited = make_params(monitor={"engineering": {"snapshot_age_hours": limit}}).section(
        "monitor", Monitor
    )
    (fresh,) = [c for c in checks.engineering_checks(figures, limited) if c["kind"] == "freshness"]
    assert (fresh["name"], fresh["status"]) == ("snapshot_age_hours", "warn")
    old = engineering.figures(text, now=cut + 100 * 3600)
    (fresh,) = [c for c in checks.engineering_checks(old, limited) if c["kind"] == "freshness"]
    assert fresh["status"] == "alarm"
