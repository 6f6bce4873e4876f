"""The Open Inference Protocol over gRPC, against a real server in another process and
driven by NVIDIA's client (tritonclient.grpc): health, metadata, predictions equal to the
service's own for the same rows (bit for bit), the request id echoed, and each refusal
with its status code and a message naming the tensor, the server answering after it.

The server is another process because its generated modules and tritonclient.grpc both
define the protobuf package `inference`; this module must never import
ctrpipe.serving.grpc."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from ctrpipe.model import package
from ctrpipe.serving.service import Service, default_max_body
from tests.conftest import ROOT
from tests.serving.test_raw_requests import RECORDS
from tests.support.models import close, expected, request_rows
from tests.support.served import Served

pytestmark = pytest.mark.integration

MAX_BATCH = 50
LIMIT = default_max_body(MAX_BATCH)  # the server's max message: its max body (1.1 MB)
TIMEOUT = 30.0  # seconds any one RPC may take
READY = "grpc: listening on 127.0.0.1:"
RECORD = RECORDS[0]  # a raw record as an ad server sends it: base-table fields


def command(folder: Path, port: int = 0) -> list[str]:
    """`serve` with gRPC on `port` (0: a free one) beside its REST port."""
    return [
        *(sys.executable, "-m", "ctrpipe", "serve", "--package", str(folder), "--port", "0"),
        *("--grpc-port", str(port), "--max-batch", str(MAX_BATCH), "--sample-rate", "0"),
    ]


class Running:
    """`serve --grpc-port 0` (tests.support.served), with the gRPC port it printed."""

    def __init__(self, folder: Path) -> None:
        self.served = Served(
            *("--package", str(folder), "--grpc-port", "0", "--max-batch", str(MAX_BATCH)),
            *("--sample-rate", "0"),
        )
        self.port = int(self.served.wait_line(READY).split(READY)[1].split()[0])

    @property
    def lines(self) -> list[str]:
        return self.served.lines

    def stop(self) -> int:
        return self.served.stop()


@pytest.fixture(scope="module")
def server(packages):
    running = Running(packages[0]["a"])
    yield running
    assert running.stop() == 0, "".join(running.lines)


@pytest.fixture(scope="module")
def client(server):
    with triton.InferenceServerClient(f"127.0.0.1:{server.port}") as c:
        yield c


@pytest.fixture(scope="module")
def reference(packages):
    """The same package in this process: what /predict answers for the same rows."""
    service = Service(max_batch=MAX_BATCH)
    service.load(packages[0]["a"])
    return service


@pytest.fixture(scope="module")
def rows(packages):
    """Validation rows, unseen categories and missing numbers among them. BYTES has no
    null, so rows with a missing categorical are left out."""
    folders, validation = packages
    schema = package.load(folders["a"]).schema
    every = request_rows(validation, schema, 40)
    return [r for r in every if all(r[name] is not None for name in schema.categorical)]


def predicted(service: Service, rows: list[dict]) -> np.ndarray:
    status, answer = service.predict(json.dumps({"rows": rows}).encode())
    assert status == 200, answer
    return np.asarray(answer["predictions"], np.float32)  # float32 values: exact


def tensors(rows: list[dict], numbers=np.float32, drop=(), add=None) -> list:
    """One input per feature, as set_data_from_numpy sends it (raw_input_contents):
    numbers as `numbers` (None as NaN), strings as BYTES."""
    inputs = []
    for name in rows[0]:
        if name in drop:
            continue
        values = [r[name] for r in rows]
        if isinstance(values[0], str):
            data = np.array([v.encode() for v in values], dtype=np.object_)
        else:
            data = np.array([np.nan if v is None else v for v in values], numbers)
        inputs.append(tensor(name, data))
    return inputs + (add or [])


def tensor(name: str, data: np.ndarray):
    datatype = "BYTES" if data.dtype == np.object_ else triton.np_to_triton_dtype(data.dtype)
    return triton.InferInput(name, list(data.shape), datatype).set_data_from_numpy(data)


def refused(call) -> tuple[str, str]:
    """The status code and message of an RPC that must fail."""
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value.status(), caught.value.message()


def still_answers(client, reference, rows) -> None:
    """After a refusal, the next request is answered as before."""
    result = client.infer("model", tensors(rows[:2]), client_timeout=TIMEOUT)
    assert result.as_numpy("probability").tobytes() == predicted(reference, rows[:2]).tobytes()


def test_health_and_metadata(client, packages):
    schema = package.load(packages[0]["a"]).schema
    assert client.is_server_live(client_timeout=TIMEOUT)
    assert client.is_server_ready(client_timeout=TIMEOUT)
    assert client.is_model_ready("model", client_timeout=TIMEOUT)
    server = client.get_server_metadata(as_json=True, client_timeout=TIMEOUT)
    assert server["name"] == "ctrpipe" and server["version"]
    meta = client.get_model_metadata("model", as_json=True, client_timeout=TIMEOUT)
    assert meta["name"] == "model" and "versions" not in meta  # a folder: no version
    inputs = {t["name"]: t["datatype"] for t in meta["inputs"]}
    assert inputs == {n: "FP32" for n in schema.numeric} | {n: "BYTES" for n in schema.categorical}
    assert meta["outputs"] == [{"name": "probability", "datatype": "FP32", "shape": ["-1"]}]


@pytest.mark.parametrize("numbers", [np.float32, np.float64])
def test_predictions_are_the_service_s_own_bit_for_bit(client, reference, rows, packages, numbers):
    result = client.infer(
        "model", tensors(rows, numbers), request_id="batch-7", client_timeout=TIMEOUT
    )
    got = result.as_numpy("probability")
    assert (got.dtype, got.shape) == (np.float32, (len(rows),))
    assert got.tobytes() == predicted(reference, rows).tobytes()
    assert got.tolist() == close(expected(packages[0]["a"], rows))
    response = result.get_response()
    assert (response.id, response.model_name, response.model_version) == ("batch-7", "model", "")
    for row in rows[:3]:  # single rows, as an ad server sends them
        one = client.infer("model", tensors([row], numbers), client_timeout=TIMEOUT)
        assert one.as_numpy("probability").tobytes() == predicted(reference, [row]).tobytes()


def test_a_context_tensor_is_shared_by_every_row(client, reference, rows):
    """A candidate batch: one impression's device and price (`context`, length 1) with
    N campaigns and positions."""
    candidates = [r | {"device": rows[0]["device"], "floor_price": 2.5} for r in rows[:5]]
    inputs = tensors(candidates, drop=("device", "floor_price"))
    for name, data in (
        ("device", np.array([rows[0]["device"].encode()], np.object_)),
        ("floor_price", np.array([2.5], np.float32)),
    ):
        shared = tensor(name, data)
        shared._input.parameters["context"].bool_param = True  # the client has no setter
        inputs.append(shared)
    result = client.infer("model", inputs, client_timeout=TIMEOUT)
    assert result.as_numpy("probability").tobytes() == predicted(reference, candidates).tobytes()


def contents_request(rows: list[dict]) -> service_pb2.ModelInferRequest:
    """The rows in InferTensorContents (fp32_contents, bytes_contents), not raw."""
    request = service_pb2.ModelInferRequest(model_name="model", id="contents-1")
    for name in rows[0]:
        values = [r[name] for r in rows]
        text = isinstance(values[0], str)
        tensor = request.inputs.add(name=name, datatype="BYTES" if text else "FP32")
        tensor.shape.append(len(rows))
        if text:
            tensor.contents.bytes_contents.extend(v.encode() for v in values)
        else:
            tensor.contents.fp32_contents.extend(np.nan if v is None else v for v in values)
    return request


@pytest.fixture(scope="module")
def stub(server):
    """tritonclient's generated stub and messages, for what its client does not send."""
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def invalid(stub, request) -> str:
    """The message of a ModelInfer that must be INVALID_ARGUMENT."""
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    return caught.value.details()


def test_contents_are_answered_in_contents(stub, client, reference, rows):
    """tritonclient always sends raw contents; its protobuf messages send the other kind."""
    response = stub.ModelInfer(contents_request(rows), timeout=TIMEOUT)
    (output,) = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == (
        "probability",
        "FP32",
        [len(rows)],
    )
    assert not response.raw_output_contents and response.id == "contents-1"
    got = np.asarray(output.contents.fp32_contents, np.float32)
    assert got.tobytes() == predicted(reference, rows).tobytes()

    wrong = contents_request(rows[:1])
    wrong.inputs[0].contents.fp64_contents.append(1.0)  # beside its fp32_contents
    assert invalid(stub, wrong).startswith(f"{wrong.inputs[0].name}: ")
    still_answers(client, reference, rows)


def raw_request(fields: dict[str, tuple[str, bytes]]) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="model")
    for name, (datatype, raw) in fields.items():
        request.inputs.add(name=name, datatype=datatype).shape.append(1)
        request.raw_input_contents.append(raw)
    return request


def test_malformed_raw_contents_are_invalid_naming_the_tensor(stub, client, reference, rows):
    good = {
        "floor_price": ("FP32", np.float32(1.5).tobytes()),
        "position": ("FP32", np.float32(2).tobytes()),
        "device": ("BYTES", b"\x06\x00\x00\x00mobile"),
        "campaign_id": ("BYTES", b"\x02\x00\x00\x00c1"),
    }
    assert len(stub.ModelInfer(raw_request(good), timeout=TIMEOUT).raw_output_contents) == 1
    for name, broken in (
        ("device", ("BYTES", b"\x09\x00\x00\x00mobile")),  # claims 9 bytes, 6 follow
        ("device", ("BYTES", b"\x06\x00")),  # cut inside the length
        ("position", ("FP32", b"\x00\x00\x80")),  # 3 bytes of a 4-byte float
        ("position", ("FP16", b"\x00\x3c")),  # a type no feature takes
    ):
        assert invalid(stub, raw_request(good | {name: broken})).startswith(f"{name}: ")
    extra = raw_request(good)
    extra.raw_input_contents.append(b"")  # five buffers for four inputs
    assert "raw_input_contents" in invalid(stub, extra)
    still_answers(client, reference, rows)


def test_a_raw_record_is_answered_as_its_looked_up_features(client, reference):
    """The raw contract: base-table fields (the time as text), features looked up in the
    package's online snapshot, as POST /predict does for the same record."""
    inputs = [
        tensor(k, np.array([v.encode()], np.object_))
        if isinstance(v, str)
        else tensor(k, np.array([v], np.float64))
        for k, v in RECORD.items()
    ]
    result = client.infer("model", inputs, request_id="raw-1", client_timeout=TIMEOUT)
    assert result.as_numpy("probability").tobytes() == predicted(reference, [RECORD]).tobytes()
    assert result.get_response().id == "raw-1"


def test_an_unknown_model_or_version_is_not_found(client, reference, rows):
    for call in (
        lambda: client.infer("other", tensors(rows[:1]), client_timeout=TIMEOUT),
        lambda: client.infer("model", tensors(rows[:1]), "v9.9.9", client_timeout=TIMEOUT),
        lambda: client.is_model_ready("other", client_timeout=TIMEOUT),
        lambda: client.is_model_ready("model", "v9.9.9", client_timeout=TIMEOUT),
        lambda: client.get_model_metadata("other", client_timeout=TIMEOUT),
    ):
        status, message = refused(call)
        assert status == "StatusCode.NOT_FOUND", message
        assert "other" in message or "v9.9.9" in message
        still_answers(client, reference, rows)


@pytest.mark.parametrize(
    "name, data",
    [
        ("floor_price", np.array([b"1.5"], np.object_)),  # a number sent as text
        ("device", np.array([1.0], np.float32)),  # a category sent as a number
        ("position", np.array([True])),  # BOOL for a number
    ],
)
def test_a_datatype_that_does_not_fit_its_feature_is_invalid(client, reference, rows, name, data):
    inputs = tensors(rows[:1], drop=(name,), add=[tensor(name, data)])
    status, message = refused(lambda: client.infer("model", inputs, client_timeout=TIMEOUT))
    assert status == "StatusCode.INVALID_ARGUMENT", message
    assert message.startswith(f"{name}: "), message
    still_answers(client, reference, rows)


def test_a_shape_that_disagrees_with_the_data_is_invalid(client, reference, rows):
    inputs = tensors(rows[:2])
    inputs[0].set_shape([3])  # two values sent
    status, message = refused(lambda: client.infer("model", inputs, client_timeout=TIMEOUT))
    assert status == "StatusCode.INVALID_ARGUMENT", message
    assert message.startswith(f"{inputs[0].name()}: ") and "[3]" in message, message
    still_answers(client, reference, rows)


def test_unknown_and_missing_inputs_are_invalid(client, reference, rows):
    typo = tensor("flor_price", np.array([1.5], np.float32))
    for inputs, named in (
        (tensors(rows[:1], add=[typo]), "flor_price"),
        (tensors(rows[:1], drop=("position",)), None),
    ):
        status, message = refused(lambda: client.infer("model", inputs, client_timeout=TIMEOUT))
        assert status == "StatusCode.INVALID_ARGUMENT", message
        if named:
            assert message.startswith(f"{named}: "), message
        still_answers(client, reference, rows)


def test_more_rows_than_the_batch_limit_are_invalid(client, reference, rows):
    many = (rows * (MAX_BATCH // len(rows) + 1))[: MAX_BATCH + 1]
    status, message = refused(lambda: client.infer("model", tensors(many), client_timeout=TIMEOUT))
    assert status == "StatusCode.INVALID_ARGUMENT", message
    assert f"at most {MAX_BATCH}" in message
    still_answers(client, reference, rows)


def test_a_message_above_the_limit_is_refused_by_grpc(client, reference, rows):
    huge = tensor("device", np.array([b"x" * LIMIT], np.object_))
    inputs = tensors(rows[:1], drop=("device",), add=[huge])
    status, message = refused(lambda: client.infer("model", inputs, client_timeout=TIMEOUT))
    assert status == "StatusCode.RESOURCE_EXHAUSTED", message
    still_answers(client, reference, rows)


def test_a_port_in_use_is_a_one_line_error(packages):
    """A port held by a socket without SO_REUSEPORT (not another worker's) is refused."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            command(packages[0]["a"], port), cwd=ROOT, capture_output=True, text=True, timeout=120
        )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: gRPC cannot listen on 127.0.0.1:{port} (Address already in use)" in proc.stderr
    assert "Traceback" not in proc.stderr
