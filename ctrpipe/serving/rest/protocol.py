"""uvicorn's httptools connection, with what the service needs of it beyond ASGI:

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

import time

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ARRIVED = "ctrpipe.arrived"  # scope key: (perf_counter at the first byte, requests queued)
LINE_LIMIT = 64 << 10  # bytes of the request line, and of the headers
BODY_TIMEOUT = 30.0  # seconds a started body may take to arrive
REASONS = {400: "Bad Request", 405: "Method Not Allowed", 414: "URI Too Long"}
REASONS[431] = "Request Header Fields Too Large"


class _TooLong(Exception):
    def __init__(self, status: int, what: str):
        super().__init__(what)
        self.status = status


def _is_request_line(data: bytes) -> bool:
    """Whether `data` starts as `METHOD target HTTP/x.y`: an unknown method is then the
    client's choice of method (405), anything else garbage (400)."""
    parts = data.split(b"\r\n", 1)[0].split(b" ")
    return len(parts) == 3 and parts[0].isalpha() and parts[2].startswith(b"HTTP/")


class Protocol(HttpToolsProtocol):
    """One client connection (uvicorn runs one per connection, on the event loop)."""

    _header_bytes = 0
    _body_timer = None

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
        if cycle is not None and cycle.more_body and not cycle.response_complete:
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
