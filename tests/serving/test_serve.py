"""The prediction service over real HTTP on loopback: answers equal the package's own
predictions, every bad request is a 4xx naming its field, fuzzed bodies never get a 5xx,
metrics move, readiness follows the model, and swaps under load fail no request.

Request bodies are fuzzed twice: property-based with hypothesis (any JSON document, the
good row with fields dropped or replaced, request ids of any shape, any bytes), and by a
seeded random generator that also mutates valid bodies byte by byte (huge numbers, NaN
tokens, deep nesting, invalid UTF-8)."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from ctrpipe import cli
from ctrpipe.errors import DataError
from ctrpipe.model import package
from ctrpipe.serving.payload import COLUMNWISE_FROM, RowEncoder
from ctrpipe.serving.rest.server import Server
from ctrpipe.serving.service import Service
from tests.conftest import ROOT
from tests.support.client import UNSHED, Client, Load
from tests.support.models import close, expected, request_rows

# payload.py silences this warning (a number past float32 is refused with a 422) with
# a filter installed at import; pytest swaps the filters out around each test.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning"),
]
MAX_BATCH = 50
MAX_BODY = 64 << 10


@pytest.fixture(scope="module")
def server(packages):
    folders, _ = packages
    service = Service(max_batch=MAX_BATCH, max_body=MAX_BODY)
    service.load(folders["a"], "v1.0.0")
    srv = Server(("127.0.0.1", 0), service, deadline_ms=UNSHED).start()
    yield srv
    srv.stop(grace=5)


def raw_exchange(srv: Server, data: bytes) -> tuple[int, dict]:
    """Send raw bytes, read one response: for requests http.client will not send."""
    with socket.create_connection(("127.0.0.1", srv.server_port), timeout=30) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


def test_predictions_over_http_equal_loaded_predict(server, packages):
    folders, validation = packages
    schema = package.load(folders["a"]).schema
    client = Client(server)
    assert 5 < COLUMNWISE_FROM <= 40 <= MAX_BATCH
    for n in (5, 40):  # below and above COLUMNWISE_FROM: both encoding folders
        rows = request_rows(validation, schema, n)
        status, answer = client.predict({"rows": rows})
        assert status == 200, answer
        assert answer["model"] == {"version": "v1.0.0", "digest": package.digest(folders["a"])}
        assert answer["predictions"] == close(expected(folders["a"], rows))
    for row in request_rows(validation, schema, 5):
        status, answer = client.predict({"row": row})
        assert status == 200 and answer["predictions"] == close(expected(folders["a"], [row]))
    assert client.predict({"rows": []}) == (200, {"model": answer["model"], "predictions": []})


@pytest.mark.parametrize("n", [1, COLUMNWISE_FROM - 1, COLUMNWISE_FROM, 1000])
def test_encoder_matches_feature_schema_encode(packages, n):
    folders, validation = packages
    schema = package.load(folders["a"]).schema
    rows = request_rows(validation, schema, max(n, 4))[:n]
    got = RowEncoder(schema).encode(rows)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, schema.encode(pa.Table.from_pylist(rows)))


def a_row(packages) -> dict:
    folders, validation = packages
    return request_rows(validation, package.load(folders["a"]).schema, 5)[4]


def body_with(row: dict, field: str, raw: str) -> bytes:
    """A {"row": ...} body whose `field` is the literal JSON text `raw`."""
    return json.dumps({"row": {**row, field: "@@"}}).replace('"@@"', raw).encode()


BAD = {  # name -> (body from a good row, status, field, row, words in the message)
    "not json": (lambda r: b"{not json", 400, None, None, "not valid JSON"),
    "invalid utf-8": (lambda r: b'{"row": {"device": "\xff\xfe"}}', 400, None, None, "not UTF-8"),
    "not an object": (lambda r: b"[1, 2]", 400, None, None, "got an array"),
    "neither key": (lambda r: {}, 400, None, None, "got neither"),
    "both keys": (lambda r: {"row": r, "rows": [r]}, 400, None, None, "got both"),
    "extra top-level key": (lambda r: {"rows": [r], "model": 1}, 400, "model", None, "unknown"),
    "rows not a list": (lambda r: {"rows": r}, 400, "rows", None, "list of objects"),
    "row not an object": (lambda r: {"rows": [r, 7]}, 400, None, 1, "got a number"),
    "too many rows": (
        lambda r: {"rows": [r] * (MAX_BATCH + 1)},
        413,
        "rows",
        None,
        f"at most {MAX_BATCH}",
    ),
    "missing field": (
        lambda r: {"rows": [r, {k: v for k, v in r.items() if k != "position"}]},
        422,
        "position",
        1,
        "missing feature",
    ),
    "unknown field": (
        lambda r: {"row": r | {"flor_price": 1.0}},
        422,
        "flor_price",
        0,
        "unknown field",
    ),
    "string for numeric": (
        lambda r: {"row": r | {"floor_price": "1.5"}},
        422,
        "floor_price",
        0,
        "expected a number",
    ),
    "bool for numeric": (
        lambda r: {"row": r | {"position": True}},
        422,
        "position",
        0,
        "got a boolean",
    ),
    "list for numeric": (
        lambda r: {"row": r | {"position": [1]}},
        422,
        "position",
        0,
        "got an array",
    ),
    "number for categorical": (
        lambda r: {"row": r | {"device": 3}},
        422,
        "device",
        0,
        "expected a string",
    ),
    "bool for categorical": (
        lambda r: {"row": r | {"device": False}},
        422,
        "device",
        0,
        "got a boolean",
    ),
    "object for categorical": (
        lambda r: {"row": r | {"campaign_id": {}}},
        422,
        "campaign_id",
        0,
        "got an object",
    ),
    "NaN": (lambda r: body_with(r, "floor_price", "NaN"), 422, "floor_price", 0, "send null"),
    "Infinity": (
        lambda r: body_with(r, "floor_price", "Infinity"),
        422,
        "floor_price",
        0,
        "Infinity is not JSON",
    ),
    "-Infinity in a categorical": (
        lambda r: body_with(r, "device", "-Infinity"),
        422,
        "device",
        0,
        "-Infinity is not JSON",
    ),
    "float past float64": (
        lambda r: body_with(r, "floor_price", "1e400"),
        422,
        "floor_price",
        0,
        "float32 range",
    ),
    "float past float32": (
        lambda r: body_with(r, "position", "-4e38"),
        422,
        "position",
        0,
        "float32 range",
    ),
    "int past float64": (
        lambda r: body_with(r, "position", "9" * 400),
        422,
        "position",
        0,
        "float32 range",
    ),
    "int past the digit limit": (
        lambda r: body_with(r, "position", "9" * 5000),
        400,
        None,
        None,
        "not valid JSON",
    ),
    "deep nesting": (lambda r: b"[" * 20_000 + b"]" * 20_000, 400, None, None, "nests too deeply"),
    "third row bad": (
        lambda r: {"rows": [r, r, r | {"device": 1}]},
        422,
        "device",
        2,
        "expected a string",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_requests_get_a_4xx_naming_the_field(server, packages, case):
    make, status, field, row, words = BAD[case]
    client = Client(server)
    got, answer = client.predict(make(a_row(packages)))
    assert (got, answer["field"], answer["row"]) == (status, field, row), answer
    assert words in answer["error"]
    # The same keep-alive connection still answers.
    assert client.predict({"row": a_row(packages)})[0] == 200
    client.close()


PROTOCOL = {  # name -> (raw request, status)
    "garbage request line": (b"HELLO\r\n\r\n", 400),
    "unknown HTTP version": (b"GET /health HTTP/9.9\r\n\r\n", 400),
    "unknown method": (b"BREW /predict HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    "GET on /predict": (b"GET /predict HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    "POST on /health": (b"POST /health HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 405),
    "unknown path": (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    "no Content-Length": (b"POST /predict HTTP/1.1\r\nHost: x\r\n\r\n", 411),
    "chunked": (
        b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        411,
    ),
    "bad Content-Length": (b"POST /predict HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    "conflicting Content-Length": (
        b"POST /predict HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        400,
    ),
    "body too big": (
        b"POST /predict HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)
        + b" " * (MAX_BODY + 1),
        413,
    ),
    "header line too long": (b"GET /health HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    "request line too long": (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
}


@pytest.mark.parametrize("case", PROTOCOL)
def test_protocol_errors_are_4xx(server, case):
    data, status = PROTOCOL[case]
    got, answer = raw_exchange(server, data)
    assert got == status and answer["error"], answer
    assert Client(server).call("GET", "/health") == (200, {"status": "ok"})


class Raw(str):
    """JSON text placed as is: tokens and numbers json.dumps will not write."""


def dump(value) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value)


def random_scalar(rng: random.Random):
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            rng.randint(-(10**6), 10**6),
            rng.random() * 10 ** rng.randint(-5, 5),
            Raw("1e400"),
            Raw("-1e999"),
            Raw("3.5e38"),
            Raw("9" * rng.randint(20, 320)),
            Raw("NaN"),
            Raw("Infinity"),
            Raw("-Infinity"),
            "",
            "mobile",
            "c1",
            "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(1, 8))),
            Raw('"\\ud800"'),
            Raw('"\\u0000"'),
            "x" * rng.randint(0, 3000),
        ]
    )


def random_json(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth > 3 or roll < 0.6:
        return random_scalar(rng)
    if roll < 0.8:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        rng.choice(["row", "rows", "device", "x", ""]): random_json(rng, depth + 1)
        for _ in range(rng.randint(0, 4))
    }


def mutated_row(rng: random.Random, row: dict) -> dict:
    row = dict(row)
    for _ in range(rng.randint(0, 3)):
        action, key = rng.random(), rng.choice(list(row) or ["x"])
        if action < 0.25:
            row.pop(key, None)
        elif action < 0.45:
            row[rng.choice(["extra", key + "_", key.upper(), ""])] = random_scalar(rng)
        else:
            row[key] = random_json(rng)
    return row


def random_body(rng: random.Random, good: dict) -> bytes:
    roll = rng.random()
    if roll < 0.35:
        rows = [
            mutated_row(rng, good) if rng.random() < 0.5 else good
            for _ in range(rng.choice([1, 2, 5, 40, MAX_BATCH + 1]))
        ]
        return dump({"rows": rows}).encode("utf-8", "surrogatepass")
    if roll < 0.55:
        return dump({"row": mutated_row(rng, good)}).encode("utf-8", "surrogatepass")
    if roll < 0.7:
        return dump(random_json(rng)).encode("utf-8", "surrogatepass")
    if roll < 0.8:  # deep nesting, inside the rows or alone
        n = rng.randint(500, 20_000)
        inner = "[" * n + "]" * n
        return (inner if rng.random() < 0.5 else '{"rows": [' + inner + "]}").encode()
    valid = json.dumps({"rows": [good, good]}).encode()
    if roll < 0.9:  # bytes flipped, invalid UTF-8 among them
        data = bytearray(valid)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    return (
        valid[: rng.randrange(len(valid))]
        if rng.random() < 0.5
        else bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    )


def test_fuzzed_bodies_never_get_a_5xx(server, packages):
    rng = random.Random(20261124)
    good = a_row(packages)
    client, seen = Client(server), {}
    for i in range(600):
        body = random_body(rng, good)
        status, answer = client.predict(body)
        seen[status] = seen.get(status, 0) + 1
        assert status in (200, 400, 413, 422), (i, status, answer, body[:300])
        if status != 200:
            assert set(answer) == {"error", "field", "row"} and answer["error"], answer
    assert {200, 400, 413, 422} <= set(seen), seen  # the fuzzer reaches every outcome
    assert client.predict({"row": good})[0] == 200
    assert not any(key[1] >= 500 for key in error_counts(client))


# Property-based: any JSON document, or any row that is the good one with some fields
# replaced by any JSON value or dropped, or any bytes at all, gets an answer below 500.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def bodies(draw, good: dict) -> bytes:
    kind = draw(st.sampled_from(["row", "rows", "document", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "document":
        return json.dumps(draw(JSON)).encode()  # NaN and Infinity included
    row = dict(good)
    for key in draw(st.lists(st.sampled_from(sorted(good)), max_size=3, unique=True)):
        if draw(st.booleans()):
            del row[key]
        else:
            row[key] = draw(JSON)
    row |= draw(st.dictionaries(st.text(max_size=8), JSON, max_size=2))
    body = {"row": row} if kind == "row" else {"rows": [good, row]}
    if draw(st.booleans()):  # request ids: right or wrong key, any value
        body[draw(st.sampled_from(["id", "ids"]))] = draw(
            JSON | st.lists(st.text(max_size=8) | st.none(), min_size=2, max_size=2)
        )
    return json.dumps(body).encode()


def test_no_request_body_gets_a_5xx(server, packages):
    good, client = a_row(packages), Client(server)

    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(bodies(good))
    def property(body):
        status, answer = client.predict(body)
        assert status < 500, (status, answer, body[:300])
        if status != 200:
            assert answer["error"] and set(answer) == {"error", "field", "row"}

    property()
    assert not any(key[1] >= 500 for key in error_counts(client))


def metric_samples(client: Client) -> dict:
    status, text = client.call("GET", "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def error_counts(client: Client) -> dict:
    return {
        (dict(labels)["endpoint"], int(dict(labels)["code"])): value
        for (name, labels), value in metric_samples(client).items()
        if name == "ctrpipe_request_errors_total"
    }


def test_metrics_expose_latency_counts_model_and_process(server, packages):
    folders, _ = packages
    client = Client(server)
    before = metric_samples(client)
    for _ in range(3):
        assert client.predict({"row": a_row(packages)})[0] == 200
    for _ in range(2):
        assert client.predict({"row": {"nope": 1}})[0] == 422
    after = metric_samples(client)

    def moved(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert moved("ctrpipe_requests_total", endpoint="/predict", code="200") == 3
    assert moved("ctrpipe_requests_total", endpoint="/predict", code="422") == 2
    assert moved("ctrpipe_request_errors_total", endpoint="/predict", code="422") == 2
    assert moved("ctrpipe_request_errors_total", endpoint="/predict", code="200") == 0
    assert moved("ctrpipe_request_duration_seconds_count", endpoint="/predict") == 5
    assert moved("ctrpipe_predicted_rows_total", contract="features") == 3
    buckets = {
        dict(labels)["le"]
        for (name, labels) in after
        if name == "ctrpipe_request_duration_seconds_bucket"
    }
    assert {"1e-05", "2.5e-05", "0.0001", "0.001", "0.005", "+Inf"} <= buckets
    # The 3 successes took more than 0 s, so some bucket below +Inf moved or +Inf did.
    assert moved("ctrpipe_request_duration_seconds_bucket", endpoint="/predict", le="+Inf") == 5
    info = {
        dict(labels)["digest"]: dict(labels)["version"]
        for (name, labels) in after
        if name == "ctrpipe_model_info"
    }
    assert info == {package.digest(folders["a"]): "v1.0.0"}
    assert after[("ctrpipe_ready", ())] == 1
    assert after[("process_resident_memory_bytes", ())] > 0
    assert ("process_cpu_seconds_total", ()) in after


@pytest.fixture
def empty_server():
    srv = Server(("127.0.0.1", 0), Service(max_batch=MAX_BATCH)).start()
    yield srv
    srv.stop(grace=5)


def test_ready_only_once_a_model_passed_its_check(empty_server, packages):
    folders, _ = packages
    client, service = Client(empty_server), empty_server.service
    assert client.call("GET", "/health") == (200, {"status": "ok"})
    assert client.call("GET", "/ready") == (503, {"ready": False, "reason": "no model loaded"})
    status, answer = client.predict({"row": a_row(packages)})
    assert status == 503 and answer["error"] == "no model loaded yet"

    with pytest.raises(DataError, match="ONNX and XGBoost predictions differ"):
        service.load(folders["broken"])
    status, answer = client.call("GET", "/ready")
    assert status == 503 and "ONNX and XGBoost predictions differ" in answer["reason"]
    assert metric_samples(client)[("ctrpipe_ready", ())] == 0

    service.load(folders["a"])
    status, answer = client.call("GET", "/ready")
    assert status == 200 and answer["model"] == {
        "version": None,
        "digest": package.digest(folders["a"]),
    }
    assert answer["parity"] <= 1e-6
    # A later refused package leaves the one in service serving.
    with pytest.raises(DataError):
        service.load(folders["broken"])
    assert client.call("GET", "/ready")[0] == 200
    assert client.predict({"row": a_row(packages)})[0] == 200


def test_swap_under_concurrent_requests_fails_none(server, packages):
    folders, validation = packages
    loaded = {name: package.load(folders[name]) for name in ("a", "b")}
    rows = request_rows(validation, loaded["a"].schema, 6)
    answers = {loaded[n].digest: expected(folders[n], rows) for n in loaded}
    assert len(set(map(tuple, answers.values()))) == 2  # the two models disagree
    with Load(server, {"rows": rows}, threads=4) as load:
        try:
            for i in range(20):
                server.service.swap(loaded["b" if i % 2 == 0 else "a"])
                load.wait_for(8)  # let some requests through before the next swap
        finally:
            load.stop()
            server.service.swap(loaded["a"], "v1.0.0")
    results = load.results
    assert results and all(status == 200 for status, _ in results), [
        r for r in results if r[0] != 200
    ][:3]
    digests = {answer["model"]["digest"] for _, answer in results}
    assert digests == set(answers)
    for _, answer in results:  # never one model's encoding with the other's trees
        assert answer["predictions"] == close(answers[answer["model"]["digest"]])


def test_a_package_passes_its_check_and_serves_compiled(packages):
    folder = packages[0]["a"]
    service = Service()
    model = service.load(folder)
    assert model.parity <= 1e-6 and service.readiness()[0] == 200
    row = {name: None for name in model.loaded.schema.names} | {"device": "mobile"}
    status, answer = service.predict(json.dumps({"rows": [row, row]}).encode())
    assert status == 200 and answer["predictions"] == close(expected(folder, [row, row]))
    assert model.backend == "compiled"  # gcc is on the machines this runs on (docs/serving.md)


def test_shutdown_lets_a_request_in_flight_finish(packages):
    folders, _ = packages
    service = Service(max_batch=MAX_BATCH)
    service.load(folders["a"])
    srv = Server(("127.0.0.1", 0), service).start()
    body = json.dumps({"row": a_row(packages)}).encode()
    with socket.create_connection(("127.0.0.1", srv.server_port), timeout=30) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10]
        )
        for _ in range(3000):  # until the server is reading the body
            if srv.app.in_flight:
                break
            threading.Event().wait(0.01)
        stopped = []
        stopper = threading.Thread(target=lambda: stopped.append(srv.stop(grace=60)))
        stopper.start()
        for _ in range(3000):  # until it is draining
            if not service.readiness()[0] == 200:
                break
            threading.Event().wait(0.01)
        sock.sendall(body[10:])
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 200 and response.getheader("Connection") == "close"
        assert len(json.loads(response.read())["predictions"]) == 1
        stopper.join(timeout=60)
    assert stopped == [True]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", srv.server_port), timeout=5)


def test_cli_serves_a_package_and_stops_on_sigterm(packages):
    folders, _ = packages
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ctrpipe",
            "serve",
            "--package",
            str(folders["a"]),
            "--port",
            "0",
            "--sample-rate",
            "0",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:"), first
        port = int(first.split(";")[0].rsplit(":", 1)[1])
        assert "serving an unversioned package" in proc.stdout.readline()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/ready")
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["ready"]
        conn.request("POST", "/predict", json.dumps({"row": a_row(packages)}))
        response = conn.getresponse()
        assert response.status == 200 and len(json.loads(response.read())["predictions"]) == 1
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert out.splitlines()[-2:] == ["stopping: finishing the requests in flight", "stopped"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--package", "{missing}"], "{missing}/manifest.json: cannot read"),
        (["--package", "{broken}"], "ONNX and XGBoost predictions differ"),
        (["--package", "{a}", "--max-batch", "0"], "--max-batch: Input should be greater"),
        (["--package", "{a}", "--sample-rate", "2"], "--sample-rate: Input should be less"),
        (["--stage", "dev"], "--stage: the only stage is 'prod'"),
        (["--package", "{a}", "--snapshot", "{missing}"], "{missing}/manifest.json: cannot read"),
    ],
)
def test_cli_refuses_bad_input_in_one_line(packages, tmp_path, capsys, args, message):
    folders, _ = packages
    names = {"missing": tmp_path / "nothing", "broken": folders["broken"], "a": folders["a"]}
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", *[a.format(**names) for a in args], "--port", "0"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert message.format(**names) in err[0]
