"""The Open Inference Protocol (V2) on the data plane: tensors in, predictions out, and
the server's and the model's metadata. No transport here: rest/ and grpc/ turn their
messages into these types and back, so both answer the same thing for the same request.

The contract (docs/serving.md; the specification is in ../shared/open-inference-protocol/):

    model    `name` is the registry's artifact name (`model`, gto's); `version` its
             registry version, None for a package served from a folder (which then
             answers to no version)
    inputs   one tensor per feature (the features contract) or per raw field of the
             base table (the raw contract, features looked up in the snapshot):
             BYTES for categoricals and text, FP32 / FP64 / INT32 / INT64 for numbers,
             BOOL for booleans; shape [N] or [N, 1]
    context  an input with `parameters: {"context": true}` has length 1 and is
             broadcast over the N rows: a candidate batch (one impression, N ads)
    output   `probability`, FP32, shape [N]: the click probability of each row

Errors are `RequestError`s (payload.py): 400 naming the tensor, 404 for an unknown model
name or version, 413 past `serve.max_batch` rows, 503 before a model is loaded.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ctrpipe.online.lookup import FieldError
from ctrpipe.release.registry import ARTIFACT
from ctrpipe.serving.payload import RequestError, rows_from_columns

if TYPE_CHECKING:
    from ctrpipe.serving.service import Model, Service

OUTPUT = "probability"  # the one output tensor: click probabilities, FP32 [N]
NUMBERS = frozenset({"FP32", "FP64", "INT32", "INT64"})
# The datatypes a tensor may have for a raw field of each declared type, and for a
# feature (numeric or categorical). INT tensors fit a double: JSON gives 2 for 2.0.
FIELD_TYPES = {
    "string": frozenset({"BYTES"}),
    "timestamp": frozenset({"BYTES"}),
    "date": frozenset({"BYTES"}),
    "int": frozenset({"INT32", "INT64"}),
    "long": frozenset({"INT32", "INT64"}),
    "double": NUMBERS,
    "boolean": frozenset({"BOOL"}),
}
METADATA_TYPES = {"string": "BYTES", "timestamp": "BYTES", "date": "BYTES", "int": "INT64"}
METADATA_TYPES |= {"long": "INT64", "double": "FP64", "boolean": "BOOL"}
REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})


@dataclass
class Tensor:
    """One named tensor. `data` is flat, in row-major order: a list of Python values
    (JSON) or a 1-D numpy array (binary contents, gRPC's raw_input_contents)."""

    name: str
    datatype: str  # "BYTES", "FP32", "FP64", "INT32", "INT64", "BOOL", ...
    shape: list[int]
    data: Any
    parameters: dict = field(default_factory=dict)


@dataclass
class InferRequest:
    inputs: list[Tensor]
    id: str | None = None
    parameters: dict = field(default_factory=dict)
    outputs: list[str] | None = None  # the requested outputs' names; None: all


@dataclass
class InferResponse:
    model_name: str
    model_version: str | None
    outputs: list[Tensor]  # [Tensor(OUTPUT, "FP32", [N], float32 array)]
    id: str | None = None
    parameters: dict = field(default_factory=dict)


@functools.cache
def server_metadata() -> dict:
    """The server's name and version (pyproject's, else the installed package's)."""
    return {"name": "ctrpipe", "version": _version(), "extensions": []}


def _version() -> str:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        pass
    try:
        return importlib.metadata.version("ctrpipe")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


def check_model(service: Service, name: str, version: str | None) -> Model:
    """The served model if `name` and `version` name it: 404 for another name or version
    (a folder-served package has none, and answers only when none is asked), 503 before
    a model is loaded."""
    if name != ARTIFACT:
        raise RequestError(404, f"unknown model '{name}'; this server serves '{ARTIFACT}'")
    model = service.model
    if model is None:
        raise RequestError(503, service.problem or "no model loaded yet")
    if version is not None and version != model.version:
        served = f"version {model.version}" if model.version else "no version (a folder)"
        raise RequestError(404, f"unknown version '{version}' of '{name}'; serving {served}")
    return model


def model_ready(service: Service, name: str, version: str | None) -> bool:
    """Whether the model is loaded and ready; a 404 RequestError for an unknown one."""
    try:
        check_model(service, name, version)
    except RequestError as exc:
        if exc.status == 503:
            return False
        raise
    return not service.draining


def model_metadata(service: Service, name: str, version: str | None) -> dict:
    """The model's metadata (the features contract's inputs; with a snapshot, the raw
    fields a raw request must send, in `parameters.raw_inputs`)."""
    model = check_model(service, name, version)
    schema = model.loaded.schema
    inputs = [_meta(n, "FP32") for n in schema.numeric]
    inputs += [_meta(n, "BYTES") for n in schema.categorical]
    answer = {
        "name": ARTIFACT,
        "versions": [model.version] if model.version else [],
        "platform": f"xgboost_{model.backend}",
        "inputs": inputs,
        "outputs": [_meta(OUTPUT, "FP32")],
    }
    if model.online is not None:
        fields = model.online.fields
        raw = [_meta(n, METADATA_TYPES[fields[n]["type"]]) for n in model.online.request]
        answer["parameters"] = {"raw_inputs": raw}
    return answer


def _meta(name: str, datatype: str) -> dict:
    return {"name": name, "datatype": datatype, "shape": [-1]}


def request_from_json(doc) -> InferRequest:
    """A V2 JSON inference request (decoded) as an InferRequest: each tensor's data flat,
    nested data flattened one level per dimension. A 400 naming the key or tensor for
    anything malformed."""
    if type(doc) is not dict:
        raise RequestError(400, "the body must be an inference request object")
    for key in doc:
        if key not in REQUEST_KEYS:
            raise RequestError(400, f"unknown key; expected {sorted(REQUEST_KEYS)}", field=key)
    request_id = doc.get("id")
    if request_id is not None and type(request_id) is not str:
        raise RequestError(400, "'id' must be a string", field="id")
    inputs = doc.get("inputs")
    if type(inputs) is not list or not inputs:
        raise RequestError(400, "'inputs' must be a non-empty list of tensors", field="inputs")
    outputs = doc.get("outputs")
    if outputs is not None:
        if type(outputs) is not list or not all(
            type(o) is dict and type(o.get("name")) is str for o in outputs
        ):
            raise RequestError(400, "'outputs' must be a list of {\"name\": ...}", field="outputs")
        outputs = [o["name"] for o in outputs]
    return InferRequest(
        inputs=[_tensor(t, i) for i, t in enumerate(inputs)],
        id=request_id,
        parameters=_parameters(doc.get("parameters"), "parameters"),
        outputs=outputs,
    )


def _tensor(doc, i: int) -> Tensor:
    if type(doc) is not dict or type(doc.get("name")) is not str:
        raise RequestError(400, f"input {i} must be an object with a string 'name'", "inputs")
    name = doc["name"]
    for key in INPUT_KEYS - {"parameters"}:
        if key not in doc:
            raise RequestError(400, f"the tensor has no '{key}'", field=name)
    for key in doc:
        if key not in INPUT_KEYS:
            raise RequestError(400, f"unknown key '{key}' in the tensor", field=name)
    datatype, shape, data = doc["datatype"], doc["shape"], doc["data"]
    if type(datatype) is not str:
        raise RequestError(400, "'datatype' must be a string", field=name)
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestError(400, "'shape' must be a list of non-negative integers", field=name)
    if type(data) is not list and not isinstance(data, np.ndarray):  # arrays: binary data
        raise RequestError(400, "'data' must be a list", field=name)
    parameters = _parameters(doc.get("parameters"), name)
    return Tensor(name, datatype, shape, _flat(data, shape, name), parameters)


def _parameters(given, field: str) -> dict:
    if given is None:
        return {}
    if type(given) is not dict:
        raise RequestError(400, "'parameters' must be an object", field=field)
    return given


def _flat(data: list, shape: list[int], name: str) -> list:
    """`data` flat: nested data (a list per dimension but the last) flattened."""
    for size in shape[1:]:
        if not data or type(data[0]) is not list:
            break  # already flat from here; a stray list is refused as a value later
        if set(map(type, data)) != {list} or set(map(len, data)) != {size}:
            raise RequestError(
                400, f"nested 'data' must hold lists of {size} values, as the shape says", name
            )
        data = [value for inner in data for value in inner]
    return data


def response_to_json(response: InferResponse) -> dict:
    """The V2 JSON inference response; each output's data a flat list of floats."""
    answer = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "id": response.id,
        "outputs": [
            {
                "name": t.name,
                "datatype": t.datatype,
                "shape": list(t.shape),
                "data": t.data.tolist() if isinstance(t.data, np.ndarray) else list(t.data),
            }
            | ({"parameters": t.parameters} if t.parameters else {})
            for t in response.outputs
        ],
    }
    if response.model_version is None:
        del answer["model_version"]  # the spec: a server without versions gives none
    if response.id is None:
        del answer["id"]
    if response.parameters:
        answer["parameters"] = response.parameters
    return answer


def infer(service: Service, name: str, version: str | None, request: InferRequest) -> InferResponse:
    """The click probability of each of the request's N rows. The inputs' names choose
    the contract: exactly the model's features, or (with a snapshot) raw fields whose
    features are looked up. A RequestError (400 naming the tensor, 404, 413, 503) for
    anything the service cannot answer."""
    model = check_model(service, name, version)
    for wanted in request.outputs or ():
        if wanted != OUTPUT:
            raise RequestError(400, f"unknown output; the model gives '{OUTPUT}'", field=wanted)
    tensors = _named(request.inputs)
    contract = _contract(model, tensors)
    n, shared, columns = _columns(tensors, service.max_batch, arrays=contract == "features")
    online = model.online if contract == "raw" else None
    for tensor in tensors.values():
        _check_datatype(model, online, tensor)
    try:
        features = (shared, columns) if online is None else online.columns_of(shared, columns, n)
        x = model.encoder.encode_columns(*features, n)
    except (FieldError, RequestError) as exc:  # a bad value: V2 answers 400 for all of them
        raise RequestError(400, exc.message, field=exc.field, row=exc.row) from None
    scores = np.asarray(model.predict(x), np.float32) if n else np.empty(0, np.float32)
    service.metrics.rows.labels(contract).inc(n)
    if service.log is not None:
        rows = rows_from_columns(*features, n)
        raw = rows_from_columns(shared, columns, n) if online is not None else None
        service.log.offer(rows, None, scores.tolist(), model.loaded.schema, model.answer, raw)
    output = Tensor(OUTPUT, "FP32", [n], scores)
    return InferResponse(ARTIFACT, model.version, [output], id=request.id)


def _named(inputs: list[Tensor]) -> dict[str, Tensor]:
    tensors = {}
    for tensor in inputs:
        if tensor.name in tensors:
            raise RequestError(400, "the input is sent twice", field=tensor.name)
        tensors[tensor.name] = tensor
    return tensors


def _contract(model: Model, tensors: dict[str, Tensor]) -> str:
    """ "raw" when the inputs are raw fields only (and not exactly the features), else
    "features"; a 400 naming an input the features contract does not take, or a feature
    it misses. (A row's keys decide /predict's contract the same way, but there a typo
    beside raw fields is a raw record's unknown field; here inputs are never guessed.)"""
    online = model.online
    fields = online.fields if online is not None else {}
    known = model.encoder.known
    names = tensors.keys()
    if fields and names != known and names <= fields.keys():
        return "raw"  # a raw field missing is the lookup's to name
    for name in names:
        if name in known:
            continue
        if name in fields:
            message = "a raw field among features: send exactly the features, or raw fields only"
        else:
            message = "unknown input: not a feature" + (" nor a raw field" if fields else "")
        raise RequestError(400, message, field=name)
    for name in model.loaded.schema.names:
        if name not in tensors:
            raise RequestError(400, "missing input: a feature of the model", field=name)
    return "features"


def _columns(tensors: dict[str, Tensor], max_batch: int, arrays: bool) -> tuple[int, dict, dict]:
    """N, the context tensors' values (length 1, shared by every row) and the other
    tensors' data (length N each); a 400 naming a tensor of another shape, 413 past
    `max_batch` rows. With `arrays`, a numeric tensor's numpy data stays an array, which
    the encoder casts in one call (the features contract: no lookup reads the values)."""
    n, shared, columns = None, {}, {}
    for name, tensor in tensors.items():
        keep = arrays and isinstance(tensor.data, np.ndarray) and tensor.datatype != "BYTES"
        shape, data = tensor.shape, (tensor.data if keep else _values(tensor))
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise RequestError(400, f"shape {shape}: send [N] or [N, 1]", field=name)
        if math.prod(shape) != len(data):
            raise RequestError(
                400, f"shape {shape} holds {math.prod(shape)} values; data has {len(data)}", name
            )
        if tensor.parameters.get("context") is True:
            if shape[0] != 1:
                raise RequestError(400, f"a context tensor has 1 value; shape is {shape}", name)
            shared[name] = data[0].item() if isinstance(data, np.ndarray) else data[0]
            continue
        if n is None:
            n = shape[0]
            if n > max_batch:
                raise RequestError(413, f"{n} rows; at most {max_batch} per request", name)
        elif shape[0] != n:
            raise RequestError(400, f"{shape[0]} rows where the other inputs have {n}", name)
        columns[name] = data
    return (1 if n is None else n), shared, columns


def _values(tensor: Tensor) -> list:
    """A tensor's data as Python values (gRPC's raw contents come as numpy arrays, its
    BYTES as bytes): what the encoder and the lookup check and encode."""
    data = tensor.data
    if isinstance(data, np.ndarray):
        data = data.tolist()
    elif type(data) is not list:
        data = list(data)
    if tensor.datatype == "BYTES" and data and type(data[0]) is bytes:
        try:
            data = [v.decode("utf-8") if type(v) is bytes else v for v in data]
        except UnicodeDecodeError:
            raise RequestError(400, "a BYTES value is not UTF-8", field=tensor.name) from None
    return data


def _check_datatype(model: Model, online, tensor: Tensor) -> None:
    """A 400 when the tensor's datatype does not fit its feature or raw field."""
    if online is None:
        categorical = tensor.name in model.loaded.schema.categorical
        allowed, what = (
            (frozenset({"BYTES"}), "a categorical feature")
            if categorical
            else (NUMBERS, "a numeric feature")
        )
    else:
        declared = online.fields[tensor.name]["type"]
        allowed, what = FIELD_TYPES[declared], f"a raw field of type {declared}"
    if tensor.datatype not in allowed:
        raise RequestError(
            400,
            f"datatype {tensor.datatype} does not fit {what}; send {' or '.join(sorted(allowed))}",
            field=tensor.name,
        )
