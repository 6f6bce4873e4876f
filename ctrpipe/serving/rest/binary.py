"""Triton's binary tensor data extension to the REST protocol, which tritonclient uses by
default (`set_data_from_numpy(..., binary_data=True)`): the body is the JSON request, of
the length the `Inference-Header-Content-Length` header gives, followed by the inputs'
raw bytes (tensors.py) in input order, each input saying its size in
`parameters.binary_data_size`. An output asked for with `parameters.binary_data` (or
every output, with the request's `binary_data_output`) comes back the same way.
"""

from __future__ import annotations

import orjson

from ctrpipe.serving import tensors
from ctrpipe.serving.payload import RequestError

HEADER = b"inference-header-content-length"


def split(body: bytes, header: bytes | None) -> tuple[dict, bytes]:
    """The JSON request and the bytes after it."""
    size = len(body)
    if header is not None:
        if not header.isdigit() or int(header) > len(body):
            raise RequestError(
                400, "Inference-Header-Content-Length must be a length within the body"
            )
        size = int(header)
    try:
        doc = orjson.loads(body[:size])
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"the body is not valid JSON ({exc})") from None
    if type(doc) is not dict:
        raise RequestError(400, "the body must be a JSON object: an inference request")
    return doc, body[size:]


def attach(doc: dict, tail: bytes) -> dict:
    """`doc` with each binary input's data read from `tail`, in input order."""
    at = 0
    for tensor in doc.get("inputs") or []:
        parameters = tensor.get("parameters") if type(tensor) is dict else None
        if type(parameters) is not dict or "binary_data_size" not in parameters:
            continue
        name, size = tensor.get("name"), parameters["binary_data_size"]
        if type(size) is not int or size < 0 or at + size > len(tail):
            raise RequestError(400, "binary_data_size past the end of the body", field=name)
        tensor["data"] = tensors.decode(
            str(name), str(tensor.get("datatype")), tail[at : at + size]
        )
        tensor["parameters"] = {k: v for k, v in parameters.items() if k != "binary_data_size"}
        at += size
    if at != len(tail):
        raise RequestError(400, f"{len(tail) - at} bytes after the binary inputs")
    return doc


def wanted(doc: dict) -> set[str] | bool:
    """The outputs to answer in binary: True for all of them."""
    parameters = doc.get("parameters")
    if type(parameters) is dict and parameters.get("binary_data_output") is True:
        return True
    names = set()
    for output in doc.get("outputs") or []:
        p = output.get("parameters") if type(output) is dict else None
        if type(p) is dict and p.get("binary_data") is True:
            names.add(output.get("name"))
    return names


def answer(response: dict, raw: dict, binary: set[str] | bool) -> tuple[bytes, int | None]:
    """The response body, and the JSON part's length when binary outputs follow it.
    `raw` maps each output's name to its numpy values."""
    if not binary:
        return orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY), None
    tail = []
    for output in response["outputs"]:
        if binary is True or output["name"] in binary:
            data = tensors.encode(raw[output["name"]])
            output.pop("data", None)
            output["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(data)}
            tail.append(data)
    head = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    return head + b"".join(tail), len(head)
