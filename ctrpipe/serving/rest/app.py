"""The service's HTTP endpoints as an ASGI application: routing, request bodies, load
shedding, and the mapping of the data plane's answers and errors to HTTP, in one place.

    POST /predict                 the service's own contract (payload.py): rows, or a
                                  context and its candidates
    GET  /health, /ready          liveness, and readiness once a model passed its check
    GET  /metrics                 Prometheus text (metrics.py)
    GET  /v2, /v2/health/live, /v2/health/ready
    GET  /v2/models/{name}[/versions/{version}][/ready]
    POST /v2/models/{name}[/versions/{version}]/infer
                                  the Open Inference Protocol (v2.py)

A bad request is a 4xx naming what was wrong, never a 5xx: `/predict` answers
{"error", "field", "row"}, the V2 endpoints {"error"} as the protocol specifies. A body
needs a Content-Length (411 without one: chunked bodies are not read) of at most the
service's `max_body` (413). An unexpected failure is a 500 with a generic message, logged
and counted.

Shedding: a scoring request (/predict, infer) that finds `max_queued` requests ahead of
it, or that could not start within `deadline` of arriving (lag.py measures both), is
answered 503 with `Retry-After` and not scored: past saturation an answer after the
auction's deadline is worth nothing, and queueing it would only delay the next ones.
The health, readiness and metrics endpoints are never shed.

The scoring endpoints usually never reach the ASGI callable: the protocol answers them
itself through `App.shed` and `App.score` (protocol.py's fast path).
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from ctrpipe.serving import v2
from ctrpipe.serving.metrics import ENDPOINTS
from ctrpipe.serving.payload import RequestError
from ctrpipe.serving.rest import binary
from ctrpipe.serving.rest.lag import Lag
from ctrpipe.serving.rest.protocol import ARRIVED, GENERIC
from ctrpipe.serving.rest.routes import SCORING, header, route
from ctrpipe.serving.service import Service

log = logging.getLogger(__name__)

JSON = b"application/json"
OCTETS = b"application/octet-stream"
RETRY_AFTER = b"1"  # seconds: a shed request is worth retrying on another replica at once


class App:
    """The ASGI callable uvicorn runs, a task per request, on one event loop; and the
    shedding and scoring the protocol's fast path calls directly."""

    def __init__(self, service: Service, deadline: float, max_queued: int):
        self.service = service
        self.lag = Lag()
        self.deadline = deadline  # seconds from a request's first byte to its start
        self.max_queued = max_queued
        self.in_flight = 0  # requests being answered, for a drain to wait on
        self.cancelled = 0  # requests a shutdown cut short

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        arrived, queued = scope.get(ARRIVED) or (time.perf_counter(), 0)
        endpoint, model = route(scope["path"])
        self.in_flight += 1
        try:
            status, body, content_type, extra = await self._answer(
                scope, receive, endpoint, model, arrived, queued
            )
        except ClientGone:
            return
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        except Exception:
            log.exception("error answering %s %s", scope["method"], endpoint)
            status, body, content_type, extra = 500, orjson.dumps(GENERIC), JSON, CLOSE
        finally:
            self.in_flight -= 1
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
        if extra:
            headers += extra
        if self.service.draining and not extra:
            headers += CLOSE
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.service.metrics.observe(endpoint, status, time.perf_counter() - arrived)

    async def _answer(self, scope, receive, endpoint, model, arrived, queued):
        """(status, body, content type, extra headers) for one request."""
        method = scope["method"]
        if endpoint == "other":
            return refusal(404, f"no such endpoint; try {', '.join(ENDPOINTS)}", endpoint)
        if ENDPOINTS[endpoint] != method:
            return refusal(405, f"{endpoint} takes {ENDPOINTS[endpoint]}", endpoint)
        if endpoint in SCORING:
            shed = self.shed(arrived, queued)
            if shed is not None:
                return shed
            try:
                body = await read_body(scope, receive, self.service.max_body)
            except RequestError as exc:
                return refusal(exc.status, exc.message, endpoint, exc.field, exc.row)
            return self.score(endpoint, model, scope["headers"], body)
        try:
            return self._endpoint(endpoint, model)
        except RequestError as exc:
            return refusal(exc.status, exc.message, endpoint, exc.field, exc.row)

    def shed(self, arrived: float, queued: int):
        """The 503 for a scoring request that should not be scored, counted; else None.
        The wait is the longer of this request's own since its first byte was parsed and
        the event loop's lag (lag.py): a request also waits in the kernel's buffers
        before its first byte is parsed, about as long as the loop lags."""
        if queued >= self.max_queued:
            reason = "queue"
        elif max(time.perf_counter() - arrived, self.lag.seconds) > self.deadline:
            reason = "deadline"
        else:
            return None
        self.service.metrics.shed.labels(reason).inc()
        status, body, content_type, _ = refusal(503, f"overloaded ({reason}); retry")
        return status, body, content_type, [(b"retry-after", RETRY_AFTER)]

    def score(self, endpoint: str, model, headers, body: bytes):
        """A scoring request's answer, from its complete body: the one function both the
        ASGI path and the protocol's fast path call (synchronous: scoring never waits)."""
        service = self.service
        try:
            if endpoint == "/predict":
                status, answer = service.predict(body)
                return status, orjson.dumps(answer), JSON, None
            name, version = model
            v2.check_model(service, name, version)  # an unknown model is a 404, whatever the body
            doc, tail = binary.split(body, header(headers, binary.HEADER))
            wanted = binary.wanted(doc)
            request = v2.request_from_json(binary.attach(doc, tail))
            answer = v2.infer(service, name, version, request)
        except RequestError as exc:
            return refusal(exc.status, exc.message, endpoint, exc.field, exc.row)
        raw = {t.name: t.data for t in answer.outputs}
        out, head = binary.answer(v2.response_to_json(answer), raw, wanted)
        if head is None:
            return 200, out, JSON, None
        return 200, out, OCTETS, [(b"inference-header-content-length", b"%d" % head)]

    def _endpoint(self, endpoint, model):
        """The answer of an endpoint that reads no body."""
        service = self.service
        if endpoint == "/health":
            return 200, b'{"status":"ok"}', JSON, None
        if endpoint == "/ready":
            status, answer = service.readiness()
            return status, orjson.dumps(answer), JSON, None
        if endpoint == "/metrics":
            return 200, service.metrics.render(), CONTENT_TYPE_LATEST.encode(), None
        return self._v2(endpoint, model)

    def _v2(self, endpoint, model):
        service = self.service
        if endpoint == "/v2":
            return ok(v2.server_metadata())
        if endpoint == "/v2/health/live":
            return ok({"live": True})
        if endpoint == "/v2/health/ready":
            ready = service.readiness()[0] == 200
            return (200 if ready else 503), orjson.dumps({"ready": ready}), JSON, None
        name, version = model
        if endpoint == "/v2/models/{name}":
            return ok(v2.model_metadata(service, name, version))
        ready = v2.model_ready(service, name, version)
        return (200 if ready else 503), orjson.dumps({"name": name, "ready": ready}), JSON, None


CLOSE = [(b"connection", b"close")]


def ok(answer: dict):
    return 200, orjson.dumps(answer), JSON, None


def refusal(status, message, endpoint="", field=None, row=None):
    """A refusal in the endpoint's own shape: V2's {"error"}, else {"error", "field",
    "row"}. A refusal before the body was read closes the connection (the unread body
    would be read as the next request)."""
    if endpoint.startswith("/v2"):
        answer = {"error": message if field is None else f"{field}: {message}"}
    else:
        answer = {"error": message, "field": field, "row": row}
    extra = CLOSE if status in (404, 405, 411, 413) else None
    return status, orjson.dumps(answer), JSON, extra


async def read_body(scope, receive, limit: int) -> bytes:
    """The request body; 411 without a Content-Length (or with chunked encoding), 400 for
    a malformed one, 413 past `limit`, all before a byte of it is read."""
    lengths, chunked = [], False
    for name, value in scope["headers"]:
        if name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            chunked = True
    if chunked:
        raise RequestError(
            411, "send the body with Content-Length (chunked transfer encoding is not supported)"
        )
    if not lengths:
        raise RequestError(411, "Content-Length required")
    if len(set(lengths)) != 1 or not lengths[0].isdigit():
        raise RequestError(400, "Content-Length must be one non-negative integer")
    length = int(lengths[0])
    if length > limit:
        raise RequestError(413, f"body of {length} bytes; at most {limit}")
    message = await receive()
    body = message.get("body", b"")
    while message.get("more_body"):
        message = await receive()
        body += message.get("body", b"")
    if message["type"] == "http.disconnect" or len(body) < length:
        raise ClientGone
    return body


class ClientGone(Exception):
    """The client went away or stalled mid-body: nothing to answer."""
