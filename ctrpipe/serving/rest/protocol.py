"""uvicorn's httptools connection, with what the service needs of it beyond ASGI:

- the fast path: a scoring request (POST /predict, V2 infer) with a Content-Length within
  the limit is answered right here, when its last byte is parsed, through the same
  `App.score` the ASGI path calls, without an asyncio task, ASGI messages or uvicorn's
  response writer. Measured on the same handler, that took one worker from 9,000-9,300
  to 16,600-17,000 raw single-row requests/s (2026-12-07, wrk, 8 connections):
  ASGI's per-request machinery cost more than the model, the lookup and JSON together.
  Anything else (GETs, refusals, `Expect: 100-continue`, a request pipelined behind one
  still answering) takes uvicorn's ASGI path, which stays the reference;

- the time a request's first byte was parsed and how many requests were already waiting
  for the event loop, in the scope (`ARRIVED`), so the app can shed a request that cannot
  start before its deadline (app.py) without scoring it;
- refusals as JSON naming the problem, with the status that fits (400, 405 for a method
  no endpoint takes, 414 / 431 past the size limits), where uvicorn answers a plain-text
  400 to anything its parser refuses;
- a request line and headers of at most `LINE_LIMIT` bytes each (httptools sets none);
- a client that stops sending mid-body is disconnected after `BODY_TIMEOUT` seconds, so
  it holds no request slot (an idle keep-alive connection closes after uvicorn's
  `timeout_keep_alive`).

This leans on uvicorn's `HttpToolsProtocol` methods (on_message_begin, on_url, on_header,
data_received, send_400_response), which `uvicorn.Config(http=...)` accepts as a class;
uvicorn is pinned, and tests/serving/test_serve.py's protocol cases cover each.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ctrpipe.serving.rest.routes import SCORING, content_length, route

log = logging.getLogger(__name__)

ARRIVED = "ctrpipe.arrived"  # scope key: (perf_counter at the first byte, requests queued)
LINE_LIMIT = 64 << 10  # bytes of the request line, and of the headers
BODY_TIMEOUT = 30.0  # seconds a started body may take to arrive
REASONS = {400: "Bad Request", 405: "Method Not Allowed", 414: "URI Too Long"}
REASONS[431] = "Request Header Fields Too Large"
GENERIC = {"error": "internal error; it was logged", "field": None, "row": None}


class _TooLong(Exception):
    def __init__(self, status: int, what: str):
        super().__init__(what)
        self.status = status


def status_line(status: int) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")


STATUS = {code: status_line(code) for code in (200, 400, 404, 413, 422, 500, 503)}
GENERIC_500 = (500, orjson.dumps(GENERIC), b"application/json", [(b"connection", b"close")])


def _is_request_line(data: bytes) -> bool:
    """Whether `data` starts as `METHOD target HTTP/x.y`: an unknown method is then the
    client's choice of method (405), anything else garbage (400)."""
    parts = data.split(b"\r\n", 1)[0].split(b" ")
    return len(parts) == 3 and parts[0].isalpha() and parts[2].startswith(b"HTTP/")


class Protocol(HttpToolsProtocol):
    """One client connection (uvicorn runs one per connection, on the event loop)."""

    _header_bytes = 0
    _body_timer = None
    _fast = None  # (endpoint, model, arrived, queued, keep-alive) of a fast request
    _close_after = False  # a shutdown came while a fast request was still arriving

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[ARRIVED] = (time.perf_counter(), len(self.tasks))
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > LINE_LIMIT:
            raise _TooLong(414, f"request line over {LINE_LIMIT} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > LINE_LIMIT:
            raise _TooLong(431, f"headers over {LINE_LIMIT} bytes")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        fast = self._fast_request()
        if fast is None:
            super().on_headers_complete()
            return
        self._fast, self._body = fast, []
        self.app.in_flight += 1

    def _fast_request(self):
        """The fast path's record of this request, or None for the ASGI path."""
        if self.parser.get_method() != b"POST" or self.expect_100_continue:
            return None
        if self.pipeline or (self.cycle is not None and not self.cycle.response_complete):
            return None  # answers must leave in order: behind an ASGI answer, wait
        path = self.url.split(b"?", 1)[0]
        if b"%" in path:
            return None  # percent-decoded by uvicorn on the ASGI path
        endpoint, model = route(path.decode("latin-1"))
        if endpoint not in SCORING or content_length(self.headers) is None:
            return None
        if content_length(self.headers) > self.app.service.max_body:
            return None  # refused by the ASGI path, with its reason
        http_version = self.parser.get_http_version()
        keep_alive = http_version != "1.0" and self.parser.should_keep_alive()
        arrived, queued = self.scope[ARRIVED]
        return endpoint, model, arrived, queued, keep_alive

    def on_body(self, body: bytes) -> None:
        if self._fast is None:
            super().on_body(body)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._fast is None:
            super().on_message_complete()
            return
        endpoint, model, arrived, queued, keep_alive = self._fast
        self._fast = None
        app = self.app
        try:
            answer = app.shed(arrived, max(queued, app.lag.ahead))
            app.lag.ahead += 1
            if answer is None:
                answer = app.score(endpoint, model, self.headers, b"".join(self._body))
        except Exception:
            log.exception("error answering POST %s", endpoint)
            answer = GENERIC_500
        finally:
            app.in_flight -= 1
            self._body = []
        keep_alive = keep_alive and not (self._close_after or app.service.draining)
        self._write(answer, keep_alive)
        app.service.metrics.observe(endpoint, answer[0], time.perf_counter() - arrived)
        if not keep_alive:
            self.transport.close()
        elif not self.transport.is_closing():
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def _write(self, answer, keep_alive: bool) -> None:
        status, body, content_type, extra = answer
        head = [STATUS[status] if status in STATUS else status_line(status)]
        for name, value in self.server_state.default_headers:  # date, as uvicorn sends
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: ", content_type, b"\r\ncontent-length: %d\r\n" % len(body)]
        for name, value in extra or ():
            head += [name, b": ", value, b"\r\n"]
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head += [b"\r\n", body]
        self.transport.write(b"".join(head))

    def shutdown(self) -> None:
        """uvicorn's drain closes a connection with no ASGI request in progress; one with
        a fast request still arriving is closed once it is answered instead."""
        if self._fast is not None:
            self._close_after = True
        else:
            super().shutdown()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserInvalidMethodError:
            if _is_request_line(data):
                self.refuse(405, "unknown method; the endpoints take GET or POST")
            else:
                self.refuse(400, "malformed HTTP request line")
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _TooLong):
                self.refuse(cause.status, str(cause))
            else:
                self.refuse(400, "malformed HTTP request")
            return
        except httptools.HttpParserError as exc:
            self.refuse(400, f"malformed HTTP request ({exc})")
            return
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
        self._watch_body()

    def _watch_body(self) -> None:
        """A body still arriving gets BODY_TIMEOUT seconds; checked once per read, so the
        usual request (headers and body in one read) costs no timer."""
        cycle = self.cycle
        arriving = self._fast is not None or (
            cycle is not None and cycle.more_body and not cycle.response_complete
        )
        if arriving:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(BODY_TIMEOUT, self._stalled)
        elif self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _stalled(self) -> None:
        self._body_timer = None
        if not self.transport.is_closing():
            self.transport.close()  # the app's receive() then sees http.disconnect

    def send_400_response(self, msg: str) -> None:
        self.refuse(400, msg)

    def refuse(self, status: int, message: str) -> None:
        """Answer a request the parser refused, and close: what follows it on the
        connection cannot be read as the next request."""
        body = orjson.dumps({"error": message, "field": None, "row": None})
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode("latin-1") + body)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().connection_lost(exc)
