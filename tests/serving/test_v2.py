"""The Open Inference Protocol's data plane (v2.py), in process: metadata, the model
check, JSON requests parsed, tensors encoded to the same matrix /predict makes of the
same rows, candidate batches as context tensors, and every bad tensor a 4xx naming it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ctrpipe import manifest
from ctrpipe.online import store
from ctrpipe.release.registry import ARTIFACT
from ctrpipe.serving import v2
from ctrpipe.serving.payload import RequestError
from ctrpipe.serving.service import Service
from ctrpipe.serving.settings import RequestLog
from tests.serving.test_raw_requests import RECORDS
from tests.support.models import request_rows

pytestmark = pytest.mark.unit

MAX_BATCH = 50
VERSION = "v1.0.0"


@pytest.fixture(scope="module")
def service(packages, tmp_path_factory):
    """The tiny package, ONNX Runtime serving (no compiler), every row logged."""
    folders, _ = packages
    logs = tmp_path_factory.mktemp("logs")
    service = Service(
        max_batch=MAX_BATCH, backend="onnx", log=RequestLog(dir=str(logs), sample_rate=1.0)
    )
    service.load(folders["a"], VERSION)
    yield service
    service.close()


def metric_samples_of(service) -> dict:
    text = service.metrics.render()
    text = text.decode() if isinstance(text, bytes) else text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def rows_of(packages, n: int) -> list[dict]:
    folders, validation = packages
    from ctrpipe.model import package

    return request_rows(validation, package.load(folders["a"]).schema, n)


def tensors(rows: list[dict], schema, nested: bool = False) -> list[dict]:
    """JSON input tensors of the features of `rows`, column by column."""
    out = []
    for name in schema.names:
        data = [r[name] for r in rows]
        out.append(
            {
                "name": name,
                "datatype": "BYTES" if name in schema.categorical else "FP64",
                "shape": [len(rows), 1] if nested else [len(rows)],
                "data": [[v] for v in data] if nested else data,
            }
        )
    return out


def infer(service, doc: dict, version: str | None = VERSION) -> v2.InferResponse:
    return v2.infer(service, ARTIFACT, version, v2.request_from_json(doc))


def predictions(service, body: dict) -> list[float]:
    status, answer = service.predict(json.dumps(body).encode())
    assert status == 200, answer
    return answer["predictions"]


def test_server_metadata_names_the_project_and_its_version():
    meta = v2.server_metadata()
    assert meta == {"name": "ctrpipe", "version": "0.1.0", "extensions": []}


def test_model_metadata_lists_features_raw_fields_and_the_output(service):
    meta = v2.model_metadata(service, ARTIFACT, None)
    schema = service.model.loaded.schema
    assert meta["name"] == ARTIFACT and meta["versions"] == [VERSION]
    assert meta["platform"] == "xgboost_onnx"
    assert [t["name"] for t in meta["inputs"]] == schema.names
    assert {t["name"]: t["datatype"] for t in meta["inputs"]} == {
        "floor_price": "FP32",
        "position": "FP32",
        "device": "BYTES",
        "campaign_id": "BYTES",
    }
    raw = {t["name"]: t["datatype"] for t in meta["parameters"]["raw_inputs"]}
    assert raw == {
        "ts": "BYTES",
        "campaign_id": "BYTES",
        "slot_id": "BYTES",
        "device": "BYTES",
        "floor_price": "FP64",
    }
    assert meta["outputs"] == [{"name": "probability", "datatype": "FP32", "shape": [-1]}]


def test_an_unknown_model_or_version_is_a_404_and_no_model_a_503(service, packages):
    for name, version in (("other", None), (ARTIFACT, "v9.9.9")):
        with pytest.raises(RequestError) as caught:
            v2.check_model(service, name, version)
        assert caught.value.status == 404
        with pytest.raises(RequestError):
            v2.model_ready(service, name, version)
    assert v2.model_ready(service, ARTIFACT, VERSION) and v2.model_ready(service, ARTIFACT, None)
    empty = Service()
    assert v2.model_ready(empty, ARTIFACT, None) is False
    with pytest.raises(RequestError) as caught:
        infer(empty, {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]})
    assert caught.value.status == 503
    folder = Service(backend="onnx")
    folder.load(packages[0]["a"])  # served from a folder: no version
    assert v2.model_metadata(folder, ARTIFACT, None)["versions"] == []
    with pytest.raises(RequestError) as caught:
        v2.check_model(folder, ARTIFACT, VERSION)
    assert caught.value.status == 404


@pytest.mark.parametrize("n", [1, 5, 40])
@pytest.mark.parametrize("nested", [False, True])
def test_feature_tensors_are_the_rows_of_predict_bit_for_bit(service, packages, n, nested):
    rows = rows_of(packages, max(n, 4))[:n]
    schema = service.model.loaded.schema
    doc = {"id": "r-1", "inputs": tensors(rows, schema, nested)}
    answer = infer(service, doc)
    assert (answer.model_name, answer.model_version, answer.id) == (ARTIFACT, VERSION, "r-1")
    (out,) = answer.outputs
    assert (out.name, out.datatype, out.shape) == ("probability", "FP32", [n])
    assert out.data.tolist() == predictions(service, {"rows": rows})
    request = v2.request_from_json(doc)
    columns = {t.name: t.data for t in request.inputs}
    x = service.model.encoder.encode_columns({}, columns, n)
    assert x.tobytes() == service.model.encoder.encode(rows).tobytes()


def test_raw_tensors_are_looked_up_as_raw_rows_are(service):
    fields = ["ts", "campaign_id", "slot_id", "device", "floor_price"]
    inputs = [
        {
            "name": name,
            "datatype": "FP64" if name == "floor_price" else "BYTES",
            "shape": [2],
            "data": [r[name] for r in RECORDS],
        }
        for name in fields
    ]
    answer = infer(service, {"inputs": inputs})
    assert answer.outputs[0].data.tolist() == predictions(service, {"rows": RECORDS})


def test_context_tensors_are_a_candidate_batch(service):
    context = RECORDS[0]
    campaigns = ["c1", "c2", "c-new", "c0"]
    inputs = [
        {
            "name": k,
            "datatype": "FP64" if k == "floor_price" else "BYTES",
            "shape": [1],
            "data": [v],
            "parameters": {"context": True},
        }
        for k, v in context.items()
        if k != "campaign_id"
    ]
    inputs.append({"name": "campaign_id", "datatype": "BYTES", "shape": [4], "data": campaigns})
    answer = infer(service, {"inputs": inputs})
    body = {"context": context, "candidates": [{"campaign_id": c} for c in campaigns]}
    batch = predictions(service, body)
    assert answer.outputs[0].data.tolist() == batch
    assert batch == [
        predictions(service, {"row": context | {"campaign_id": c}})[0] for c in campaigns
    ]


def test_grpc_style_numpy_data_is_taken_as_the_same_values(service, packages):
    rows = rows_of(packages, 6)
    schema = service.model.loaded.schema
    inputs = []
    for t in tensors(rows, schema):
        if t["datatype"] == "BYTES":
            data = np.array([v.encode() if v is not None else None for v in t["data"]], object)
        else:
            data = np.array([np.nan if v is None else v for v in t["data"]], np.float64)
            data = [None if v != v else v for v in data.tolist()]  # contents: nulls as None
        inputs.append(v2.Tensor(t["name"], t["datatype"], t["shape"], data))
    answer = v2.infer(service, ARTIFACT, None, v2.InferRequest(inputs))
    assert answer.outputs[0].data.tolist() == predictions(service, {"rows": rows})


def test_response_to_json_is_the_spec_s_response(service, packages):
    rows = rows_of(packages, 4)
    answer = infer(service, {"id": "7", "inputs": tensors(rows, service.model.loaded.schema)})
    doc = v2.response_to_json(answer)
    assert doc["model_name"] == ARTIFACT and doc["model_version"] == VERSION and doc["id"] == "7"
    (out,) = doc["outputs"]
    assert out["name"] == "probability" and out["shape"] == [4] and len(out["data"]) == 4
    assert all(type(v) is float for v in out["data"])
    json.dumps(doc)


def test_metrics_and_the_request_log_are_fed_as_predict_feeds_them(service, packages):
    rows = rows_of(packages, 5)
    before = metric_samples_of(service)
    infer(service, {"inputs": tensors(rows, service.model.loaded.schema)})
    after = metric_samples_of(service)
    key = ("ctrpipe_predicted_rows_total", (("contract", "features"),))
    assert after[key] - before.get(key, 0) == 5
    assert service.log.flush()


def good(packages) -> list[dict]:
    from ctrpipe.model import package

    schema = package.load(packages[0]["a"]).schema
    return tensors(rows_of(packages, 4)[:3], schema)


def change(inputs: list[dict], name: str, **changes) -> list[dict]:
    return [t | changes if t["name"] == name else t for t in inputs]


BAD = {  # name -> (make inputs from good ones, status, tensor or key named, words)
    "datatype of a number": (
        lambda t: change(t, "device", datatype="FP32"),
        400,
        "device",
        "BYTES",
    ),
    "datatype of a string": (
        lambda t: change(t, "position", datatype="BYTES"),
        400,
        "position",
        "FP32",
    ),
    "bool datatype": (
        lambda t: change(t, "position", datatype="BOOL"),
        400,
        "position",
        "datatype",
    ),
    "shape [N, 2]": (lambda t: change(t, "position", shape=[3, 2]), 400, "position", "[N, 1]"),
    "shape and data disagree": (
        lambda t: change(t, "position", shape=[4]),
        400,
        "position",
        "holds 4",
    ),
    "another N": (
        lambda t: change(t, "position", shape=[2], data=[1, 2]),
        400,
        "position",
        "where the other inputs have 3",
    ),
    "unknown input": (
        lambda t: t + [{"name": "flor_price", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]}],
        400,
        "flor_price",
        "unknown input",
    ),
    "missing input": (
        lambda t: [x for x in t if x["name"] != "device"],
        400,
        "device",
        "missing",
    ),
    "twice": (lambda t: t + [t[0]], 400, "floor_price", "twice"),
    "string in a number": (
        lambda t: change(t, "position", data=[1, "2", 3]),
        400,
        "position",
        "got a string",
    ),
    "bool in a number": (
        lambda t: change(t, "position", data=[1, True, 3]),
        400,
        "position",
        "boolean",
    ),
    "number in a string": (
        lambda t: change(t, "device", data=["a", 3, None]),
        400,
        "device",
        "got a number",
    ),
    "past float32": (
        lambda t: change(t, "floor_price", data=[1, 4e38, 3]),
        400,
        "floor_price",
        "float32",
    ),
    "int past float64": (
        lambda t: change(t, "position", data=[1, 10**400, 3]),
        400,
        "position",
        "float32",
    ),
    "context of 2": (
        lambda t: change(t, "device", shape=[2], data=["a", "b"], parameters={"context": True}),
        400,
        "device",
        "context",
    ),
    "nested wrongly": (
        lambda t: change(t, "position", shape=[3, 1], data=[[1], [2, 3], [4]]),
        400,
        "position",
        "nested",
    ),
    "a list in data": (lambda t: change(t, "position", data=[1, [2], 3]), 400, "position", "array"),
    "raw field missing": (
        lambda t: [
            {"name": "device", "datatype": "BYTES", "shape": [1], "data": ["mobile"]},
        ],
        400,
        "ts",
        "missing",
    ),
    "raw field of another type": (
        lambda t: [{"name": "ts", "datatype": "FP64", "shape": [1], "data": [1.0]}],
        400,
        "ts",
        "BYTES",
    ),
    "a raw field among features": (
        lambda t: [
            {"name": "ts", "datatype": "BYTES", "shape": [1], "data": ["2026-01-01"]},
            {"name": "position", "datatype": "FP32", "shape": [1], "data": [1.0]},
        ],
        400,
        "ts",
        "raw field among features",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_tensor_is_a_400_naming_it(service, packages, case):
    make, status, field, words = BAD[case]
    with pytest.raises(RequestError) as caught:
        infer(service, {"inputs": make(good(packages))})
    assert (caught.value.status, caught.value.field) == (status, field), caught.value.message
    assert words in caught.value.message


def test_more_rows_than_max_batch_is_a_413(service):
    inputs = [{"name": "device", "datatype": "BYTES", "shape": [MAX_BATCH + 1], "data": ["a"] * 51}]
    with pytest.raises(RequestError) as caught:
        infer(service, {"inputs": inputs})
    assert (caught.value.status, caught.value.field) == (413, "device")


def test_an_unknown_output_is_refused(service, packages):
    with pytest.raises(RequestError) as caught:
        infer(service, {"inputs": good(packages), "outputs": [{"name": "logit"}]})
    assert (caught.value.status, caught.value.field) == (400, "logit")


MALFORMED = {  # name -> (request document, key or tensor named)
    "not an object": ([1], None),
    "unknown key": ({"inputs": [], "model": 1}, "model"),
    "id not a string": ({"id": 7, "inputs": []}, "id"),
    "no inputs": ({"inputs": []}, "inputs"),
    "input not an object": ({"inputs": [7]}, "inputs"),
    "no data": ({"inputs": [{"name": "a", "shape": [1], "datatype": "FP32"}]}, "a"),
    "shape not ints": (
        {"inputs": [{"name": "a", "shape": ["1"], "datatype": "FP32", "data": [1]}]},
        "a",
    ),
    "data not a list": (
        {"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": 1}]},
        "a",
    ),
    "parameters not an object": ({"inputs": [], "parameters": []}, "parameters"),
    "unknown tensor key": (
        {"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1], "x": 1}]},
        "a",
    ),
    "outputs malformed": ({"inputs": [], "outputs": ["probability"]}, "outputs"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_request_is_a_400_naming_the_key(case):
    doc, field = MALFORMED[case]
    if type(doc) is dict and doc.get("inputs") == [] and case != "no inputs":
        doc = doc | {"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}]}
    with pytest.raises(RequestError) as caught:
        v2.request_from_json(doc)
    assert (caught.value.status, caught.value.field) == (400, field), caught.value.message


def test_a_package_without_a_snapshot_has_no_raw_inputs(packages, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(packages[0]["a"], bare)
    shutil.rmtree(bare / store.FOLDER)
    files = {p.name: p.read_bytes() for p in bare.iterdir() if p.name != "manifest.json"}
    manifest.write(bare, files)
    service = Service(backend="onnx")
    service.load(bare)
    assert "parameters" not in v2.model_metadata(service, ARTIFACT, None)
    with pytest.raises(RequestError) as caught:
        infer(
            service,
            {"inputs": [{"name": "ts", "datatype": "BYTES", "shape": [1], "data": ["x"]}]},
            None,
        )
    assert (caught.value.status, caught.value.field) == (400, "ts")
