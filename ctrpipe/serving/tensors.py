"""Tensors as raw bytes, the encoding both gRPC's `raw_input_contents` and Triton's binary
tensor extension to REST use: fixed-size types little-endian, row-major, one after
another; BYTES as each element's length in 4 little-endian bytes, then the element.

A buffer that does not fit its datatype and shape is a 400 naming the tensor.
"""

from __future__ import annotations

import numpy as np

from ctrpipe.serving.payload import RequestError

FIXED = {
    "BOOL": np.dtype("?"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}


def decode(name: str, datatype: str, raw: bytes) -> np.ndarray | list[str]:
    """A flat tensor from its bytes: a numpy array, or for BYTES a list of strings (the
    features and fields it feeds are text)."""
    if datatype == "BYTES":
        return _strings(name, raw)
    dtype = FIXED.get(datatype)
    if dtype is None:
        raise RequestError(400, f"unknown datatype {datatype!r}", field=name)
    if len(raw) % dtype.itemsize:
        raise RequestError(
            400, f"{len(raw)} bytes is not a whole number of {datatype} values", field=name
        )
    return np.frombuffer(raw, dtype=dtype)


def _strings(name: str, raw: bytes) -> list[str]:
    out, at, view = [], 0, memoryview(raw)
    while at < len(raw):
        if at + 4 > len(raw):
            raise RequestError(400, "BYTES element cut short in its length prefix", field=name)
        size = int.from_bytes(view[at : at + 4], "little")
        at += 4
        if at + size > len(raw):
            raise RequestError(400, "BYTES element longer than the data left", field=name)
        try:
            out.append(str(view[at : at + size], "utf-8"))
        except UnicodeDecodeError:
            raise RequestError(400, "BYTES element is not UTF-8 text", field=name) from None
        at += size
    return out


def encode(values: np.ndarray) -> bytes:
    """A fixed-size numeric tensor's raw bytes (little-endian)."""
    return np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes()
