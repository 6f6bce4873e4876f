"""The prediction service over HTTP/1.1 with keep-alive: the transport around service.py.

    POST /predict   {"rows": [{feature: value, ...}, ...]} or {"row": {...}}
                    -> {"model": {"version", "digest"}, "predictions": [p, ...]}
                    (the request contract is in ctrpipe/serving/payload.py; version is
                    null for a package served from a folder rather than the registry)
    GET  /health    200 while the process is up
    GET  /ready     200 once a model is loaded and agreed with XGBoost on probe rows;
                    503 before, after a failed first load, and while shutting down
    GET  /metrics   Prometheus text: latency histogram, requests and errors by endpoint
                    and status, the model's version and digest, process memory and CPU

A bad request is a 4xx naming the field; the body needs a Content-Length (411 without
one: chunked bodies are not read) of at most `default_max_body` (413). An unexpected
failure is a 500 with a generic message, logged and counted.

Why the standard library's ThreadingHTTPServer: it meets the latency target (see
bench/serve.py), keeps the dependency list as it is, and a thread per connection suits
the compiled model and ONNX Runtime, which release the GIL while they compute. aiohttp
is installed, but only as a dependency of the S3 client, not pinned for us.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import socketserver
import sys
import threading
import time
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST

from ctrpipe.errors import ConfigError, DataError
from ctrpipe.online import store
from ctrpipe.serving.metrics import ENDPOINTS
from ctrpipe.serving.payload import RequestError
from ctrpipe.serving.service import Service
from ctrpipe.serving.settings import Serve
from ctrpipe.serving.workers import Team

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 30.0  # seconds a keep-alive connection may wait for its next request
GRACE = 10.0  # seconds a shutdown waits for requests in flight
LINGER_BYTES = 64 << 20  # read and dropped after refusing a body, so the client sees why
LINGER_SECONDS = 5.0  # ... for at most this long
JSON_TYPE = "application/json"
GENERIC_500 = {"error": "internal error; it was logged", "field": None, "row": None}


class _Closed(Exception):
    """The client went away or stalled mid-request: nothing to answer."""


class _InFlight:
    """Counts requests being handled, so a shutdown can wait for them to finish."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self):
        with self._idle:
            self._count += 1

    def __exit__(self, *exc):
        with self._idle:
            self._count -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)


_date = [0, ""]  # [second, Date header value]: formatting it costs more than a request


def http_date() -> str:
    now = int(time.time())
    if _date[0] != now:
        _date[:] = [now, formatdate(now, usegmt=True)]
    return _date[1]


class Handler(BaseHTTPRequestHandler):
    """One connection: requests one after another (keep-alive) until the client closes,
    idles past IDLE_TIMEOUT, or a response has to close it."""

    protocol_version = "HTTP/1.1"
    server_version = "ctrpipe-serve"
    timeout = IDLE_TIMEOUT
    # Headers and body go out in one write, and without Nagle a small response is not
    # held back waiting for the client's delayed ACK (a 40 ms stall on keep-alive).
    disable_nagle_algorithm = True
    server: Server

    def parse_request(self) -> bool:
        self.started = time.perf_counter()
        self.path = ""  # a refused request line must not be counted under the last path
        return super().parse_request()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        endpoint, unread = self._endpoint(), False
        with self.server.in_flight:
            try:
                code, body, content_type = self._route(method, endpoint)
            except _Closed:
                self.close_connection = True
                return
            except RequestError as exc:  # refused before the body was read
                code, body, content_type = exc.status, _json(exc.body()), JSON_TYPE
                self.close_connection = unread = True
            except Exception:
                log.exception("error answering %s %s", method, endpoint)
                code, body, content_type = 500, _json(GENERIC_500), JSON_TYPE
                self.close_connection = True
            self._send(endpoint, code, body, content_type)
            if unread:
                self._linger()

    def _route(self, method: str, endpoint: str) -> tuple[int, bytes, str]:
        service = self.server.service
        if endpoint == "other":
            self._unread_body_closes()
            return (
                404,
                _json(
                    {
                        "error": f"no such endpoint; try {', '.join(ENDPOINTS)}",
                        "field": None,
                        "row": None,
                    }
                ),
                JSON_TYPE,
            )
        if ENDPOINTS[endpoint] != method:
            self._unread_body_closes()
            return (
                405,
                _json(
                    {"error": f"{endpoint} takes {ENDPOINTS[endpoint]}", "field": None, "row": None}
                ),
                JSON_TYPE,
            )
        if endpoint == "/predict":
            code, answer = service.predict(self._read_body())
        elif endpoint == "/health":
            code, answer = 200, {"status": "ok"}
        elif endpoint == "/ready":
            code, answer = service.readiness()
        else:
            return 200, service.metrics.render(), CONTENT_TYPE_LATEST
        return code, _json(answer), JSON_TYPE

    def _endpoint(self) -> str:
        """The path as a metrics label: known endpoints only, so a scanner trying a
        million paths cannot grow the label set."""
        path = getattr(self, "path", "").split("?", 1)[0]
        return path if path in ENDPOINTS else "other"

    def _read_body(self) -> bytes:
        if "Transfer-Encoding" in self.headers:
            raise RequestError(
                411,
                "send the body with Content-Length (chunked transfer encoding is not supported)",
            )
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise RequestError(411, "Content-Length required")
        if len(set(lengths)) != 1 or not (lengths[0].isascii() and lengths[0].isdigit()):
            raise RequestError(400, "Content-Length must be one non-negative integer")
        length = int(lengths[0])
        limit = self.server.service.max_body
        if length > limit:
            raise RequestError(413, f"body of {length} bytes; at most {limit}")
        try:
            body = self.rfile.read(length)
        except OSError:  # includes the socket timeout of a client that stalls
            raise _Closed from None
        if len(body) < length:
            raise _Closed
        return body

    def _unread_body_closes(self) -> None:
        """A request we answer without reading its body must end the connection, or
        the body would be read as the next request."""
        if (
            self.headers.get("Content-Length", "0").strip() != "0"
            or "Transfer-Encoding" in self.headers
        ):
            self.close_connection = True

    def _send(self, endpoint: str, code: int, body: bytes, content_type: str) -> None:
        if self.server.service.draining:
            self.close_connection = True
        lines = [
            f"{self.protocol_version} {code} {_reason(code)}",
            f"Server: {self.server_version}",
            f"Date: {http_date()}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
        ]
        if self.close_connection:
            lines.append("Connection: close")
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:
            self.close_connection = True
        started = getattr(self, "started", None) or time.perf_counter()
        self.started = None  # a refusal before the next request line must not reuse it
        self.server.service.metrics.observe(endpoint, code, time.perf_counter() - started)

    def _linger(self) -> None:
        """After refusing a body without reading it, read and drop what the client
        still sends (bounded), so closing does not reset the connection before the
        client has read the refusal."""
        deadline = time.monotonic() + LINGER_SECONDS
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            left = LINGER_BYTES
            while left > 0 and time.monotonic() < deadline:
                chunk = self.connection.recv(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def send_error(self, code, message=None, explain=None) -> None:
        """http.server's own refusals (request line, headers, unknown method) as JSON.
        A method it has no handler for is a 405, not its 501, and an HTTP version it
        does not speak a 400, not 505: both are the client's input, never a 5xx."""
        code = {501: 405, 505: 400}.get(int(code), int(code))
        self.close_connection = True
        error = message or HTTPStatus(code).phrase
        self._send(
            self._endpoint(), code, _json({"error": error, "field": None, "row": None}), JSON_TYPE
        )

    def log_message(self, format, *args) -> None:
        """No access log: at thousands of requests a second it would cost more than the
        request, and /metrics counts every one."""


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def _json(obj) -> bytes:
    return json.dumps(obj, allow_nan=False).encode("utf-8")


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with the Service attached, quiet about clients that hang up,
    and a shutdown that lets requests in flight finish."""

    daemon_threads = True  # idle keep-alive connections must not hold up the exit
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], service: Service, reuse_port: bool = False
    ) -> None:
        self.service = service
        self.allow_reuse_port = reuse_port  # a worker of `serve --workers N` (workers.py)
        self.in_flight = _InFlight()
        self.thread: threading.Thread | None = None
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer looks the host up with getfqdn, a reverse DNS query that can take
        # seconds where there is no resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # a client hanging up is no error
            return
        log.exception("error on the connection from %s", client_address)

    def start(self) -> Server:
        self.thread = threading.Thread(
            target=self.serve_forever,
            name="ctrpipe-serve",
            kwargs={"poll_interval": 0.2},
            daemon=True,
        )
        self.thread.start()
        return self

    def stop(self, grace: float = GRACE) -> bool:
        """Stop accepting, let requests in flight finish (up to `grace` seconds), close.
        Whether they all finished."""
        self.service.drain()
        self.shutdown()
        finished = self.in_flight.wait_idle(grace)
        self.server_close()
        self.service.close()
        return finished

    @property
    def url(self) -> str:
        return f"http://{self.server_name}:{self.server_port}"


def look_for_snapshot(service: Service) -> None:
    """Swap to a newer snapshot in --snapshot's folder (`features refresh` wrote one);
    a refused one keeps the served one and is counted."""
    try:
        if service.refresh_online():
            online = service.model.online.snapshot
            print(f"now serving snapshot {online.path} (cut {online.cut})", flush=True)
    except DataError as exc:
        service.metrics.snapshot_errors.inc()
        print(f"snapshot refused, still serving the last one: {exc}", flush=True)


def listen(settings: Serve, service: Service, reuse_port: bool = False) -> Server:
    try:
        server = Server((settings.host, settings.port), service, reuse_port=reuse_port)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc})"
        ) from None
    return server.start()


def run(
    path: str | Path,
    version: str | None,
    settings: Serve,
    repo: Path | None = None,
    follow: bool = False,
    snapshot: Path | None = None,
    team: Team | None = None,
) -> None:
    """`python -m ctrpipe serve`: listen first (so /health answers while the model
    loads), load and check the package, serve until SIGTERM or SIGINT, then drain.
    With `follow`, swap to whatever version `repo`'s production tag names (follow.py).
    Raw requests are served from `snapshot`, else from the package's own. A `team`
    makes this process one worker of several on the port (workers.py)."""
    log_settings = settings.log if settings.log.sample_rate > 0 else None
    if log_settings is not None and repo is not None:
        log_settings = log_settings.model_copy(update={"dir": str(repo / log_settings.dir)})
    service = Service(
        max_batch=settings.max_batch,
        threads=settings.threads,
        log=log_settings,
        backend=settings.backend,
        snapshot=snapshot,
    )
    # The handler only appends to a list: Event.set() takes a lock, and a signal that
    # lands while the main thread holds that lock inside Event.wait() deadlocks it.
    stop: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _: stop.append(signum))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    server = follower = None
    try:
        if team is None:  # listen first, so that /health answers while the model loads
            server = listen(settings, service)
            print(f"listening on {server.url}; loading {path}", flush=True)
        model = service.load(path, version)
        if team is not None:  # a worker takes connections once it can answer them
            server = listen(settings, service, reuse_port=True)
            team.loaded()
        print(
            f"serving {version or 'an unversioned package'} (manifest sha256 "
            f"{model.loaded.digest[:12]}; ONNX agrees with XGBoost to "
            f"{model.parity:.1e} on the probe rows; predicting with the "
            f"{model.backend} model) on {server.url}",
            flush=True,
        )
        if model.online is not None:
            online = model.online.snapshot
            print(
                f"raw requests: online snapshot {online.path} (sha256 {online.digest[:12]}, "
                f"cut {online.cut})",
                flush=True,
            )
        if log_settings is not None:
            print(f"logging {log_settings.sample_rate:g} of rows to {log_settings.dir}", flush=True)
        if follow and repo is not None:
            from ctrpipe.serving.follow import Follower  # needs git and the registry

            relay = team.relay if team is not None else None
            published = snapshot if snapshot is not None and store.is_folder(snapshot) else None
            follower = Follower(
                service, repo, settings.follow_seconds, on_swap=relay, snapshots=published
            ).start()
            print(f"following production every {settings.follow_seconds:g} s", flush=True)
        next_look = time.monotonic() + settings.follow_seconds
        while not stop:
            time.sleep(0.2)
            service.metrics.refresh()
            if team is not None and not team.leader:
                team.follow(service)
            if snapshot is not None and time.monotonic() >= next_look:
                look_for_snapshot(service)
                next_look = time.monotonic() + settings.follow_seconds
        print("stopping: finishing the requests in flight", flush=True)
    finally:
        if follower is not None:
            follower.stop()
        if server is not None:
            finished = server.stop()
        else:
            service.close()
            finished = True
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(
        "stopped" if finished else f"stopped after {GRACE:g} s with requests unfinished", flush=True
    )
