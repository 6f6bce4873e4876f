"""The service's paths: which endpoint a path is (its metrics label), and the request
headers both the ASGI path and the fast path read."""

from __future__ import annotations

from ctrpipe.serving.metrics import ENDPOINTS

# The endpoints that score: shed under overload, answered on the fast path.
SCORING = frozenset({"/predict", "/v2/models/{name}/infer"})


def header(headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def route(path: str) -> tuple[str, tuple[str, str | None] | None]:
    """The endpoint's metrics label (a known one, so a scanner trying a million paths
    cannot grow the label set), and for a model's V2 endpoint its (name, version)."""
    if path in ENDPOINTS:
        return path, None
    if path.endswith("/") and path[:-1] in ENDPOINTS:  # the specification writes /v2/
        return path[:-1], None
    parts = path.split("/")
    if len(parts) < 4 or parts[:3] != ["", "v2", "models"] or not parts[3]:
        return "other", None
    name, rest, version = parts[3], parts[4:], None
    if rest[:1] == ["versions"]:
        if len(rest) < 2 or not rest[1]:
            return "other", None
        version, rest = rest[1], rest[2:]
    action = {(): "", ("ready",): "/ready", ("infer",): "/infer"}.get(tuple(rest))
    if action is None:
        return "other", None
    return f"/v2/models/{{name}}{action}", (name, version)


def content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The one Content-Length of a request without chunked encoding, else None."""
    length = None
    for name, value in headers:
        if name == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif name == b"transfer-encoding":
            return None
    return length
