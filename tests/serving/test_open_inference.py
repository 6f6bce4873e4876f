"""The Open Inference Protocol over REST, driven by clients nobody here wrote: NVIDIA's
tritonclient gets exactly /predict's predictions, and schemathesis, generating requests
from the protocol's OpenAPI file, finds no 5xx. Against `python -m ctrpipe serve` in a
process of its own."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
import yaml
from tritonclient.utils import InferenceServerException

from ctrpipe.model import package
from tests.conftest import ROOT
from tests.support.client import UNSHED
from tests.support.served import Served

pytestmark = pytest.mark.integration

OPENAPI = ROOT / "ctrpipe" / "serving" / "rest" / "open_inference_rest.yaml"


@pytest.fixture(scope="module")
def served(packages):
    # A deadline nothing reaches: on a loaded test machine the default 50 ms sheds a
    # request now and then, a 503 that schemathesis counts as a server error.
    unshed = ("--deadline-ms", str(UNSHED))
    server = Served("--package", str(packages[0]["a"]), "--sample-rate", "0", *unshed)
    server.wait_line("serving ")
    yield server
    server.stop()


def complete_rows(packages, n: int) -> list[dict]:
    """Validation rows without missing values (tritonclient's JSON has no null)."""
    folders, validation = packages
    names = package.load(folders["a"]).schema.names
    rows = [r for r in validation.select(names).to_pylist() if None not in r.values()]
    return rows[:n]


def triton_inputs(packages, rows: list[dict], binary: bool) -> list:
    schema = package.load(packages[0]["a"]).schema
    inputs = []
    for name in schema.numeric:
        tensor = httpclient.InferInput(name, [len(rows)], "FP32")
        tensor.set_data_from_numpy(np.array([r[name] for r in rows], np.float32), binary)
        inputs.append(tensor)
    for name in schema.categorical:
        tensor = httpclient.InferInput(name, [len(rows)], "BYTES")
        values = np.array([r[name].encode() for r in rows], dtype=np.object_)
        tensor.set_data_from_numpy(values, binary)
        inputs.append(tensor)
    return inputs


def predict_answers(served: Served, rows: list[dict]) -> np.ndarray:
    status, body = served.call("POST", "/predict", {"rows": rows})
    assert status == 200, body
    return np.array(json.loads(body)["predictions"], dtype=np.float32)


def test_tritonclient_reads_health_and_metadata(served, packages):
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{served.port}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("model")
    assert client.get_server_metadata()["name"] == "ctrpipe"
    meta = client.get_model_metadata("model")
    schema = package.load(packages[0]["a"]).schema
    assert [i["name"] for i in meta["inputs"]] == schema.names
    kinds = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert {kinds[n] for n in schema.numeric} == {"FP32"}
    assert {kinds[n] for n in schema.categorical} == {"BYTES"}
    assert [o["name"] for o in meta["outputs"]] == ["probability"]
    for call in (lambda: client.get_model_metadata("nope"), lambda: client.infer("nope", [])):
        with pytest.raises(InferenceServerException, match="nope"):
            call()
    with pytest.raises(InferenceServerException):  # a folder's package has no version
        client.get_model_metadata("model", model_version="v9")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_gets_predicts_predictions_bit_for_bit(served, packages, binary):
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{served.port}")
    rows = complete_rows(packages, 40)
    result = client.infer(
        "model",
        triton_inputs(packages, rows, binary),
        outputs=[httpclient.InferRequestedOutput("probability", binary_data=binary)],
        request_id="request-7",
    )
    got = result.as_numpy("probability")
    assert got.dtype == np.float32 and got.shape == (len(rows),)
    assert got.tobytes() == predict_answers(served, rows).tobytes()
    assert result.get_response()["id"] == "request-7"


def test_a_bad_tensor_is_a_400_naming_it(served, packages):
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{served.port}")
    rows = complete_rows(packages, 3)
    inputs = triton_inputs(packages, rows, binary=False)
    wrong = httpclient.InferInput(inputs[0].name(), [3], "BYTES")
    wrong.set_data_from_numpy(np.array([b"a", b"b", b"c"], dtype=np.object_), False)
    with pytest.raises(InferenceServerException, match=inputs[0].name()):
        client.infer("model", [wrong, *inputs[1:]])
    # Without one feature the inputs read as a raw record (the snapshot's fields), which
    # misses its time: either way a missing input, named.
    with pytest.raises(InferenceServerException, match="missing"):
        client.infer("model", [inputs[0], *inputs[2:]])
    assert client.is_server_ready()


def test_schemathesis_finds_no_server_error(served, tmp_path):
    """Requests generated from the protocol's OpenAPI file, with the model's name in the
    path, and the paths without a version that the specification allows beside them."""
    spec = yaml.safe_load(OPENAPI.read_text())
    for path, item in list(spec["paths"].items()):
        if "/versions/{MODEL_VERSION}" in path:
            unversioned = copy.deepcopy(item)
            unversioned["parameters"] = [
                p for p in item.get("parameters", []) if p["name"] != "MODEL_VERSION"
            ]
            for operation in unversioned.values():
                if isinstance(operation, dict) and "operationId" in operation:
                    operation["operationId"] += "-unversioned"
            spec["paths"][path.replace("/versions/{MODEL_VERSION}", "")] = unversioned
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "schemathesis.toml").write_text('[parameters]\n"path.MODEL_NAME" = "model"\n')
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "--config-file",
            str(tmp_path / "schemathesis.toml"),
            "run",
            str(tmp_path / "spec.yaml"),
            "--url",
            f"http://127.0.0.1:{served.port}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "50",
            "--seed",
            "1",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "/v2/models/{MODEL_NAME}/infer" in proc.stdout
