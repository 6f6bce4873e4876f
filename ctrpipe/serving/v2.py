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

from dataclasses import dataclass, field
from typing import Any

OUTPUT = "probability"  # the one output tensor: click probabilities, FP32 [N]


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
