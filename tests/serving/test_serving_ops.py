"""What runs beside the request path: the sampled request log (rotating Parquet files)
and following production's tag (a publish or rollback reaches a running service under
load without failing a request). Real HTTP on loopback, real git tags in temp folders."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ctrpipe.errors import DataError
from ctrpipe.model import encoding, package
from ctrpipe.release import registry
from ctrpipe.serving import request_log
from ctrpipe.serving.follow import Follower
from ctrpipe.serving.request_log import PATTERN
from ctrpipe.serving.rest.server import Server
from ctrpipe.serving.service import Service
from ctrpipe.serving.settings import RequestLog
from tests.support.client import UNSHED, Client, Load
from tests.support.models import close, expected, request_rows

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning"),
]


def served(folders, settings: RequestLog | None, version: str | None = "v1.0.0") -> Server:
    service = Service(max_batch=500, log=settings)
    service.load(folders["a"], version)
    return Server(("127.0.0.1", 0), service, deadline_ms=UNSHED).start()


def log_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(PATTERN))


def test_every_row_is_logged_with_its_id_prediction_and_raw_values(packages, tmp_path):
    folders, validation = packages
    srv = served(folders, RequestLog(dir=str(tmp_path), sample_rate=1.0))
    rows = request_rows(validation, package.load(folders["a"]).schema, 40)
    client = Client(srv)
    try:
        status, answer = client.predict({"rows": rows[:30], "ids": [f"r{i}" for i in range(30)]})
        assert status == 200
        assert client.predict({"row": rows[30], "id": "single"})[0] == 200
        assert client.predict({"rows": rows[31:]})[0] == 200  # no ids: null
        assert client.predict({"rows": [{"nope": 1}], "ids": ["bad"]})[0] == 422
    finally:
        client.close()
        srv.stop()
    (file,) = log_files(tmp_path)
    table = pq.read_table(file)
    assert table.num_rows == 40  # the refused request is not logged
    logged = table.to_pylist()
    assert [r["id"] for r in logged] == [f"r{i}" for i in range(30)] + ["single"] + [None] * 9
    assert [r["prediction"] for r in logged] == close(expected(folders["a"], rows))
    assert {r["version"] for r in logged} == {"v1.0.0"}
    assert {r["digest"] for r in logged} == {package.digest(folders["a"])}
    assert logged[0]["device"] == "never-seen-device"  # as sent, not as encoded
    assert logged[1]["floor_price"] is None and logged[3]["position"] == 3.0


def test_a_huge_integer_is_logged_and_costs_no_other_row(packages, tmp_path):
    """2**64 fits float32, so the request is accepted; Arrow alone would refuse the int,
    and the writer would drop every row buffered with it."""
    folders, validation = packages
    schema = package.load(folders["a"]).schema
    srv = served(folders, RequestLog(dir=str(tmp_path), sample_rate=1.0))
    rows = request_rows(validation, schema, 5)
    rows[2] = {**rows[2], schema.numeric[0]: 2**64}
    client = Client(srv)
    try:
        assert client.predict({"rows": rows})[0] == 200
    finally:
        client.close()
        srv.stop()
    (file,) = log_files(tmp_path)
    logged = pq.read_table(file).column(schema.numeric[0]).to_pylist()
    assert len(logged) == 5 and logged[2] == float(2**64)


def test_sampling_keeps_about_the_configured_share(packages, tmp_path):
    folders, validation = packages
    srv = served(folders, RequestLog(dir=str(tmp_path), sample_rate=0.2))
    rows = request_rows(validation, package.load(folders["a"]).schema, 100)
    client = Client(srv)
    try:
        for _ in range(20):
            assert client.predict({"rows": rows})[0] == 200  # 2,000 rows in batches
        for row in rows:
            assert client.predict({"row": row})[0] == 200  # 100 single rows
    finally:
        client.close()
        srv.stop()
    logged = sum(pq.read_metadata(f).num_rows for f in log_files(tmp_path))
    assert 300 <= logged <= 540  # 20% of 2,100 is 420; this band is 5.5 sigma wide


def test_files_rotate_by_rows_and_by_age_and_never_show_half_written(packages, tmp_path):
    folders, validation = packages
    srv = served(
        folders, RequestLog(dir=str(tmp_path), sample_rate=1.0, rotate_rows=50, rotate_seconds=0.5)
    )
    rows = request_rows(validation, package.load(folders["a"]).schema, 30)
    client = Client(srv)
    try:
        for _ in range(4):
            assert client.predict({"rows": rows})[0] == 200
        for _ in range(100):  # bounded wait for the age rotation of the last rows
            if sum(pq.read_metadata(f).num_rows for f in log_files(tmp_path)) == 120:
                break
            time.sleep(0.05)
        files = log_files(tmp_path)
        assert len(files) >= 2 and sum(pq.read_metadata(f).num_rows for f in files) == 120
        assert not [p for p in tmp_path.iterdir() if p not in files]  # no temp files left
    finally:
        client.close()
        srv.stop()


def test_a_model_with_other_features_starts_a_new_file(tmp_path):
    """One file, one set of columns: rows of a model with other features (after a swap
    to a major version) go to a file of their own."""

    def schema(numeric):
        return encoding.FeatureSchema(
            numeric=numeric,
            categorical={"device": ["m"]},
            id="id",
            time="ts",
            label="y",
            weight="w",
        )

    log = request_log.RequestLog(RequestLog(dir=str(tmp_path), sample_rate=1.0))
    old, new = schema(["price"]), schema(["price", "bid"])
    log.offer(
        [{"price": 1.0, "device": "m"}], None, [0.1], old, {"version": "v1.0.0", "digest": "d1"}
    )
    log.offer(
        [{"price": 2, "bid": None, "device": None}],
        ["i"],
        [0.2],
        new,
        {"version": "v2.0.0", "digest": "d2"},
    )
    log.close()
    tables = [pq.read_table(f) for f in log_files(tmp_path)]
    assert [t.column_names[5:-1] for t in tables] == [
        ["price", "device"],
        ["price", "bid", "device"],
    ]
    assert tables[1].to_pylist()[0] | {"ts": None} == {
        "ts": None,
        "id": "i",
        "version": "v2.0.0",
        "digest": "d2",
        "prediction": 0.2,
        "price": 2.0,
        "bid": None,
        "device": None,
        "raw": None,  # the client sent the features
    }


def test_a_full_queue_drops_samples_and_counts_them_instead_of_blocking(packages, tmp_path):
    folders, validation = packages
    service = Service(log=RequestLog(dir=str(tmp_path), sample_rate=1.0, queue=1))
    service.load(folders["a"])
    body = json.dumps({"rows": request_rows(validation, service.model.loaded.schema, 5)})
    gate = threading.Lock()
    gate.acquire()
    original = service.log._write
    service.log._write = lambda *a: (gate.acquire(), original(*a))  # a stalled disk
    try:
        service.log.settings = service.log.settings.model_copy(update={"rotate_rows": 1})
        statuses = [service.predict(body.encode())[0] for _ in range(20)]
    finally:
        gate.release()
        service.close()
    assert statuses == [200] * 20
    dropped = service.metrics.registry.get_sample_value("ctrpipe_request_log_dropped_rows_total")
    assert dropped >= 5 * 17  # at most one in the writer, one queued, one racing


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"rows": [{}], "ids": ["a", "b"]}, 400, "ids"),
        ({"rows": [{}], "ids": "a"}, 400, "ids"),
        ({"row": {}, "ids": ["a"]}, 400, "ids"),
        ({"rows": [{}], "id": "a"}, 400, "id"),
    ],
)
def test_ids_of_a_wrong_shape_are_refused_with_the_field(packages, body, status, field):
    folders, _ = packages
    service = Service()
    service.load(folders["a"])
    code, answer = service.predict(json.dumps(body).encode())
    assert (code, answer["field"]) == (status, field), answer


def test_an_id_that_is_not_a_string_is_a_422_naming_the_row(packages):
    folders, validation = packages
    service = Service()
    service.load(folders["a"])
    rows = request_rows(validation, service.model.loaded.schema, 4)[:2]
    code, answer = service.predict(json.dumps({"rows": rows, "ids": ["x", 7]}).encode())
    assert (code, answer["field"], answer["row"]) == (422, "ids", 1)


def test_the_service_follows_production_under_load_and_fails_no_request(packages, tagged):
    folders, validation = packages
    work, serving = tagged
    by_version = {"v1.0.0": folders["a"], "v1.1.0": folders["b"]}
    srv = served(folders, None, version="v1.0.0")
    follower = Follower(
        srv.service,
        serving,
        interval=3600,
        fetch=lambda v: (package.digest(by_version[v]), by_version[v]),
    )
    rows = request_rows(validation, package.load(folders["b"]).schema, 4)
    answers = {package.digest(p): expected(p, rows) for p in by_version.values()}
    moves = []
    with Load(srv, {"rows": rows}, threads=3) as load:
        try:
            assert follower.check() is None  # v1.0.0 is served already
            for target in ("v1.1.0", "v1.0.0"):  # a publish, then a rollback, elsewhere
                registry.push_tags(work, [registry.assign(work, target, f"to {target}")])
                moves.append(follower.check())
                load.wait_for(20)
        finally:
            load.stop()
            srv.stop()
    results = load.results
    assert moves == ["v1.1.0", "v1.0.0"]
    assert results and all(status == 200 for status, _ in results)
    versions = [a["model"]["version"] for _, a in results]
    assert "v1.1.0" in versions and versions[-1] == "v1.0.0"
    for _, answer in results:
        assert answer["predictions"] == close(answers[answer["model"]["digest"]])


def test_a_failed_swap_keeps_the_current_model_and_is_counted(packages, tagged):
    folders, _ = packages
    work, serving = tagged
    srv = served(folders, None, version="v1.0.0")
    follower = Follower(
        srv.service,
        serving,
        interval=0.05,
        fetch=lambda v: (package.digest(folders["broken"]), folders["broken"]),
    )
    try:
        registry.push_tags(work, [registry.assign(work, "v1.1.0", "publish")])
        follower.start()
        for _ in range(200):  # bounded: the thread polls every 0.05 s
            if srv.service.metrics.registry.get_sample_value("ctrpipe_follow_errors_total"):
                break
            time.sleep(0.05)
    finally:
        follower.stop()
        srv.stop()
    assert srv.service.metrics.registry.get_sample_value("ctrpipe_follow_errors_total") >= 1
    assert srv.service.model.version == "v1.0.0"
    assert "ONNX and XGBoost predictions differ" in srv.service.problem
    fetched = []
    follower._fetch = lambda v: fetched.append(v)
    assert follower.check() is None and fetched == []  # the refused version is not retried


def test_the_compiled_model_serves_and_onnx_stands_in_without_a_compiler(
    packages, tmp_path, monkeypatch
):
    folders, validation = packages
    rows = request_rows(validation, package.load(folders["a"]).schema, 8)
    body = json.dumps({"rows": rows}).encode()
    answers = {}
    monkeypatch.setenv("CTRPIPE_CACHE", str(tmp_path / "cache"))
    for backend, cc in (("auto", None), ("onnx", None), ("auto", "/nonexistent/cc")):
        if cc:
            monkeypatch.setenv("CC", cc)
            monkeypatch.setenv("CTRPIPE_CACHE", str(tmp_path / "empty"))
        service = Service(backend=backend)
        model = service.load(folders["a"])
        status, answer = service.predict(body)
        assert status == 200 and answer["predictions"] == close(expected(folders["a"], rows))
        answers[(backend, cc)] = model.backend
        assert service.readiness()[1]["backend"] == model.backend
    assert answers == {
        ("auto", None): "compiled",
        ("onnx", None): "onnx",
        ("auto", "/nonexistent/cc"): "onnx",
    }
    refusing = Service(backend="compiled")
    with pytest.raises(DataError, match="no C compiler"):
        refusing.load(folders["a"])
    assert refusing.readiness()[0] == 503


def test_a_swap_keeps_one_compiled_model_and_threads_only_for_the_backend_serving(
    packages, tmp_path, monkeypatch
):
    folders, _ = packages
    monkeypatch.setenv("CTRPIPE_CACHE", str(tmp_path / "cache"))
    service = Service(threads=2)
    first, second = service.load(folders["a"]), service.load(folders["b"])
    assert (first.backend, second.backend) == ("compiled", "compiled")
    assert list(service._compiled) == [second.loaded.digest]  # the old one is let go
    # the compiled model has the threads; ONNX Runtime keeps package.load's one thread
    assert second.loaded.session.get_session_options().intra_op_num_threads == 1
    back = service.load(folders["a"])  # compiled again, from the cached library
    assert back.backend == "compiled" and list(service._compiled) == [back.loaded.digest]
    onnx = Service(threads=2, backend="onnx").load(folders["a"])
    assert onnx.loaded.session.get_session_options().intra_op_num_threads == 2
