"""`serve --workers N` (ctrpipe/serving/workers.py): N processes on one port, their
/metrics shared, a dead worker replaced, a worker that cannot load stopping them all,
and production followed by one worker for all. Real processes, HTTP on loopback."""

from __future__ import annotations

import json
import os
import signal

import pyarrow.parquet as pq
import pytest

from ctrpipe.model import package
from ctrpipe.monitoring import engineering
from ctrpipe.release import registry
from ctrpipe.serving.follow import Follower
from ctrpipe.serving.request_log import PATTERN
from ctrpipe.serving.service import Service
from ctrpipe.serving.team import Team
from tests.support.client import UNSHED
from tests.support.models import close, expected, request_rows
from tests.support.served import Served, metric_samples

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning"),
]


def test_two_workers_share_the_port_the_metrics_and_the_request_log(packages, tmp_path):
    folders, validation = packages
    rows = request_rows(validation, package.load(folders["a"]).schema, 5)
    served = Served(
        "--package", str(folders["a"]), "--workers", "2", "--sample-rate", "1",
        "--log-dir", str(tmp_path), "--deadline-ms", str(UNSHED),
    )  # fmt: skip
    try:
        served.wait_line("workers ready")
        for i in range(40):  # 40 connections: all on one worker has odds of 2**-39
            status, body = served.call("POST", "/predict", {"row": rows[i % 5]})
            assert status == 200, (body, "".join(served.lines))
            assert json.loads(body)["predictions"] == close(expected(folders["a"], [rows[i % 5]]))
        pages = [served.call("GET", "/metrics")[1].decode() for _ in range(4)]
    finally:
        code = served.stop()
    assert code == 0, "".join(served.lines)
    assert served.lines[-1] == "serve: every worker stopped\n"
    for page in pages:  # whichever worker answers counts every worker's requests
        got = metric_samples(page)
        assert got[("ctrpipe_requests_total", (("code", "200"), ("endpoint", "/predict")))] == 40
        assert got[("ctrpipe_ready", ())] == 1
        info = [dict(k[1]) for k, v in got.items() if k[0] == "ctrpipe_model_info" and v == 1]
        assert [i["digest"] for i in info] == [package.digest(folders["a"])]
        figures = engineering.figures(page)
        assert figures["requests"] == 40 and figures["memory_mib"] > 50
        assert figures["cpu_cores"] > 0
    # Each worker logs to files of its own; together they hold every row once.
    files = sorted(tmp_path.glob(PATTERN))
    assert {int(f.name.split("-")[2]) for f in files} == set(served.pids)
    assert sum(pq.read_metadata(f).num_rows for f in files) == 40


def test_a_dead_worker_is_replaced_while_the_other_answers(packages):
    folders, _ = packages
    served = Served("--package", str(folders["a"]), "--workers", "2", "--sample-rate", "0")
    try:
        served.wait_line("workers ready")
        for _ in range(10):
            assert served.call("GET", "/ready")[0] == 200
        before = served.metrics()
        os.kill(served.pids[1], signal.SIGKILL)
        line = served.wait_line("started")
        assert f"worker {served.pids[1]} exited (signal SIGKILL) after it served" in line
        for _ in range(20):  # while the new one loads, the other answers every connection
            assert served.call("GET", "/ready")[0] == 200
        served.wait_line("workers ready", times=2)
        after = served.metrics()
    finally:
        code = served.stop()
    assert code == 0, "".join(served.lines)
    key = ("ctrpipe_requests_total", (("code", "200"), ("endpoint", "/ready")))
    assert after[key] >= before[key] + 10  # the dead worker's counts are kept
    assert after[("ctrpipe_ready", ())] == 1


def test_a_worker_that_cannot_load_stops_the_service(packages):
    folders, _ = packages
    served = Served("--package", str(folders["broken"]), "--workers", "2", "--sample-rate", "0")
    code = served.stop(signal_it=False)
    out = "".join(served.lines)
    assert code == 1, out
    assert "ONNX and XGBoost predictions differ" in out
    assert served.lines[-1].startswith("error: serve: worker ")
    assert "before it loaded a model" in served.lines[-1]


def test_the_first_worker_follows_production_and_relays_it_to_the_others(
    packages, tagged, tmp_path
):
    """One Follower (the leader's) fetches; the other worker swaps to what it relays,
    once, and keeps its model when the relayed package is refused."""
    folders, _ = packages
    work, serving = tagged
    by_version = {"v1.0.0": folders["a"], "v1.1.0": folders["b"], "v1.2.0": folders["broken"]}
    leader, other = Service(), Service()
    for service in (leader, other):
        service.load(folders["a"], "v1.0.0")
    team = Team(tmp_path, leader=False)
    follower = Follower(
        leader,
        serving,
        interval=3600,
        fetch=lambda v: (package.digest(by_version[v]), by_version[v]),
        on_swap=Team(tmp_path, leader=True).relay,
    )
    team.follow(other)  # nothing relayed yet
    assert other.model.version == "v1.0.0"
    registry.push_tags(work, [registry.assign(work, "v1.1.0", "publish")])
    assert follower.check() == "v1.1.0"
    team.follow(other)
    assert (other.model.version, other.model.loaded.path) == ("v1.1.0", folders["b"])
    swaps = other.metrics.registry.get_sample_value("ctrpipe_model_swaps_total")
    team.follow(other)  # the same relay again: no second swap
    assert other.metrics.registry.get_sample_value("ctrpipe_model_swaps_total") == swaps

    team.relay("v1.2.0", folders["broken"])  # refused by the other's own check
    team.follow(other)
    assert other.model.version == "v1.1.0"
    for service in (leader, other):
        service.close()
