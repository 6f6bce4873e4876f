"""GRPCInferenceService, the Open Inference Protocol's gRPC API, on the data plane: each
RPC turns its message into v2.py's neutral types, asks v2.py, and turns the answer back.

    ServerLive      live: true while the process answers
    ServerReady     ready: what GET /ready says (a model loaded and checked, not draining)
    ModelReady      ready for `model` (version "" for any); NOT_FOUND for another name
    ServerMetadata  name, version, extensions
    ModelMetadata   the model's inputs (one per feature, or raw field) and its output
    ModelInfer      one input tensor per feature; the output `probability`, FP32 [N]

Tensors come in `contents` (the field matching the datatype: fp32_contents for FP32, ...)
or in `raw_input_contents`: little-endian elements without padding, BYTES as elements
each after its 4-byte little-endian length. The answer comes back the same way: in
raw_output_contents for a raw request, else in contents.fp32_contents.

Statuses (`CODES`, the one place they are mapped): a refused request (400, 422) is
INVALID_ARGUMENT with the data plane's message, naming the tensor; an unknown model or
version (404) NOT_FOUND; no model yet (503) UNAVAILABLE, which clients retry. More rows
than serve.max_batch (413) is INVALID_ARGUMENT, not RESOURCE_EXHAUSTED: it fails the same
way on every retry and every replica (Triton answers a batch past its max_batch_size the
same), while RESOURCE_EXHAUSTED says "quota or load, back off and retry". A message past
`max_message_bytes` is refused by gRPC itself (RESOURCE_EXHAUSTED) from its length
prefix, never buffered (a 200 MB one left the server's peak memory as it was) nor seen
by a handler. Anything else is INTERNAL with a generic
message; the traceback goes to the log, never to the client.

Why grpc.server (a thread pool) and not grpc.aio: see `GrpcServer`.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from concurrent import futures

import grpc
import numpy as np

from ctrpipe.errors import ConfigError
from ctrpipe.serving import tensors, v2
from ctrpipe.serving.grpc import open_inference_grpc_pb2 as pb
from ctrpipe.serving.grpc import open_inference_grpc_pb2_grpc as pb_grpc
from ctrpipe.serving.payload import RequestError

log = logging.getLogger(__name__)

GENERIC = "internal error; it was logged"
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}
# InferTensorContents' field of each datatype; FP16 and BF16 have none (raw only)
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
THREADS = 2  # RPCs handled at once (see GrpcServer)


class GrpcServer:
    """GRPCInferenceService on `host:port` for `service`, in a thread pool.

    Why grpc.server and not grpc.aio: measured, single-row ModelInfer on the tests'
    package (raw contents, 4 features), one server process, the client on the same
    2-core machine (a grpc.aio client with 16 calls in flight), 2026-12-07: the pool
    3,150-3,370/s (330-345 µs of server CPU an RPC), grpc.aio 2,330-2,800/s (405-480
    µs); with tritonclient.grpc (2 processes of 4 threads) 2,340-2,975/s against
    1,990-2,390/s. gRPC's own machinery decides: an RPC doing nothing (ServerLive) costs
    165 µs in the pool, 270 in aio. The handler's Python (about 10 µs of decoding here,
    25 in v2.infer, measured alone) costs three to four times that in the server, where
    it contends for the GIL with gRPC's polling thread; so two threads: three served
    5% fewer rows, four 15-25% fewer, and a big batch releases the GIL in the model.
    Past about 3,000 single rows a second, run more processes (`serve --workers N`).

    SO_REUSEPORT stays on (gRPC's default on Linux, set here to say so): the workers of
    `serve --workers N` each bind the same port and the kernel spreads connections."""

    def __init__(self, service, host: str, port: int, max_message_bytes: int) -> None:
        self.service = service
        self.host, self.port = host, port
        self.max_message_bytes = max_message_bytes
        self._server: grpc.Server | None = None

    def start(self) -> GrpcServer:
        """Bind and serve; `.port` is the bound port (port 0 picks a free one). A
        ConfigError if the address cannot be bound."""
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="ctrpipe-grpc"),
            options=[
                ("grpc.so_reuseport", 1),
                # gRPC refuses a bigger message (RESOURCE_EXHAUSTED) before buffering it
                ("grpc.max_receive_message_length", self.max_message_bytes),
            ],
        )
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(self.service), server)
        address = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError:  # grpcio >= 1.60 raises where older ones returned 0
            bound = 0
        if not bound:
            server.stop(None)
            raise ConfigError(f"gRPC cannot listen on {address} ({why_not(self.host, self.port)})")
        server.start()
        self.port, self._server = bound, server
        return self

    def stop(self, grace: float) -> None:
        """Refuse new RPCs and let those in flight finish (at most `grace` seconds).
        The service itself (draining /ready, the request log) is the caller's."""
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None


def why_not(host: str, port: int) -> str:
    """Why the address cannot be bound: gRPC says so only in its own log, so bind it
    as gRPC does (SO_REUSEPORT) and take the operating system's reason."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return "gRPC refused it"


class Servicer(pb_grpc.GRPCInferenceServiceServicer):
    """The six RPCs, each a function of (service, request) -> response run by `_answer`."""

    def __init__(self, service) -> None:
        self.service = service

    def ServerLive(self, request, context):
        return self._answer("ServerLive", server_live, request, context)

    def ServerReady(self, request, context):
        return self._answer("ServerReady", server_ready, request, context)

    def ModelReady(self, request, context):
        return self._answer("ModelReady", model_ready, request, context)

    def ServerMetadata(self, request, context):
        return self._answer("ServerMetadata", server_metadata, request, context)

    def ModelMetadata(self, request, context):
        return self._answer("ModelMetadata", model_metadata, request, context)

    def ModelInfer(self, request, context):
        return self._answer("ModelInfer", model_infer, request, context)

    def _answer(self, rpc: str, handle, request, context):
        """The response, or the RPC aborted with its status: the one place a
        RequestError becomes a gRPC status, and where every RPC is counted."""
        started = time.perf_counter()
        try:
            return _counted(self.service, rpc, 200, started, handle(self.service, request))
        except RequestError as exc:
            code, message, status = CODES.get(exc.status), refusal(exc), exc.status
            if code is None:
                log.error("gRPC %s: no status for a RequestError %s", rpc, exc.status)
                code, message, status = grpc.StatusCode.INTERNAL, GENERIC, 500
        except Exception:
            log.exception("error answering gRPC %s", rpc)
            code, message, status = grpc.StatusCode.INTERNAL, GENERIC, 500
        _counted(self.service, rpc, status, started, None)
        context.abort(code, message)  # raises: gRPC sends the status


def refusal(exc: RequestError) -> str:
    """The data plane's message, after the tensor it is about (a status carries only a
    message): "floor_price: datatype BYTES does not fit a numeric feature; ..."."""
    message = f"{exc.field}: {exc.message}" if exc.field else exc.message
    return message if exc.row is None else f"{message} (row {exc.row})"


def _counted(service, rpc: str, status: int, started: float, response):
    """Count the RPC under `grpc.<rpc>`, with an HTTP-like status as /predict's are."""
    service.metrics.observe(f"grpc.{rpc}", status, time.perf_counter() - started)
    return response


def server_live(service, request) -> pb.ServerLiveResponse:
    return pb.ServerLiveResponse(live=True)


def server_ready(service, request) -> pb.ServerReadyResponse:
    status, _ = service.readiness()
    return pb.ServerReadyResponse(ready=status == 200)


def model_ready(service, request) -> pb.ModelReadyResponse:
    ready = v2.model_ready(service, request.name, request.version or None)
    return pb.ModelReadyResponse(ready=ready)


def server_metadata(service, request) -> pb.ServerMetadataResponse:
    meta = v2.server_metadata()
    return pb.ServerMetadataResponse(
        name=meta["name"], version=meta["version"], extensions=meta["extensions"]
    )


def model_metadata(service, request) -> pb.ModelMetadataResponse:
    """The features contract's inputs; with a snapshot, the raw contract's fields too, in
    the one place the message has for more (properties, strings): `raw_inputs`, JSON."""
    meta = v2.model_metadata(service, request.name, request.version or None)
    raw = meta.get("parameters", {}).get("raw_inputs")
    return pb.ModelMetadataResponse(
        name=meta["name"],
        versions=[v for v in meta["versions"] if v],
        platform=meta["platform"],
        inputs=[_tensor_metadata(t) for t in meta["inputs"]],
        outputs=[_tensor_metadata(t) for t in meta["outputs"]],
        properties={"raw_inputs": json.dumps(raw)} if raw else {},
    )


def _tensor_metadata(tensor: dict) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
    )


def model_infer(service, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
    """An empty version ("" is proto3's unset) asks for whichever version is served."""
    answer = v2.infer(
        service, request.model_name, request.model_version or None, infer_request(request)
    )
    return infer_response(answer, request.id, raw=bool(request.raw_input_contents))


def infer_request(request: pb.ModelInferRequest) -> v2.InferRequest:
    """The request in v2's types: each input's data a list (contents, BYTES) or a 1-D
    numpy array (raw numbers), its length checked against the shape by v2.infer. Its
    10 µs a row count several times over in the server (see GrpcServer), so an empty
    parameter map is not iterated and the raw path does not look at contents fields."""
    raw, inputs = request.raw_input_contents, request.inputs
    if not raw:
        given = [_input(t, from_contents(t)) for t in inputs]
    elif len(raw) != len(inputs):
        raise RequestError(
            400,
            f"raw_input_contents has {len(raw)} entries for {len(inputs)} inputs; "
            "send one per input, in the inputs' order",
        )
    else:
        given = [_input(t, from_raw(t, data)) for t, data in zip(inputs, raw)]
    return v2.InferRequest(
        inputs=given,
        id=request.id or None,
        parameters=parameters(request.parameters),
        outputs=[output.name for output in request.outputs] or None,
    )


def _input(tensor, data) -> v2.Tensor:
    return v2.Tensor(
        tensor.name, tensor.datatype, list(tensor.shape), data, parameters(tensor.parameters)
    )


def from_contents(tensor) -> list:
    """The values in the contents field of the tensor's datatype; values in any other
    field are refused rather than ignored (a client's mistake to point out)."""
    field = CONTENTS.get(tensor.datatype)
    if field is None:
        raise RequestError(
            400,
            f"datatype {tensor.datatype!r} has no contents field; "
            f"send it in raw_input_contents, or use one of {', '.join(CONTENTS)}",
            field=tensor.name,
        )
    other = [f.name for f, _ in tensor.contents.ListFields() if f.name != field]
    if other:
        raise RequestError(
            400,
            f"datatype {tensor.datatype} takes its values in contents.{field}; got {other[0]}",
            field=tensor.name,
        )
    return list(getattr(tensor.contents, field))


def from_raw(tensor, raw: bytes):
    """Raw contents as flat data (tensors.py, the encoding REST's binary extension shares):
    fixed-size elements read in place into a 1-D array, BYTES as a list of strings."""
    if tensor.HasField("contents"):
        raise RequestError(
            400, "contents and raw_input_contents are exclusive: send one", field=tensor.name
        )
    return tensors.decode(tensor.name, tensor.datatype, raw)


def infer_response(answer: v2.InferResponse, request_id: str, raw: bool) -> pb.ModelInferResponse:
    """The answer as a ModelInferResponse; outputs as the request sent its inputs: raw
    bytes for raw contents, else the datatype's contents field."""
    response = pb.ModelInferResponse(
        model_name=answer.model_name, model_version=answer.model_version or "", id=request_id
    )
    set_parameters(response.parameters, answer.parameters)
    for tensor in answer.outputs:
        out = response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        set_parameters(out.parameters, tensor.parameters)
        if raw:
            data = np.asarray(tensor.data, tensors.FIXED[tensor.datatype])
            response.raw_output_contents.append(tensors.encode(data))
        else:
            data = tensor.data.tolist() if isinstance(tensor.data, np.ndarray) else tensor.data
            getattr(out.contents, CONTENTS[tensor.datatype]).extend(data)
    return response


def parameters(given) -> dict:
    """A map of InferParameter as plain values ({"context": True}, ...)."""
    return {key: _value(p) for key, p in given.items()} if given else {}


def _value(parameter):
    which = parameter.WhichOneof("parameter_choice")
    return getattr(parameter, which) if which else None


def set_parameters(target, values: dict) -> None:
    for key, value in values.items():
        if isinstance(value, bool):  # before int: a bool is an int
            target[key].bool_param = value
        elif isinstance(value, int):
            target[key].int64_param = value
        elif isinstance(value, float):
            target[key].double_param = value
        else:
            target[key].string_param = str(value)
