"""The HTTP front end: uvicorn (httptools parser, uvloop event loop) running app.py on a
socket of our own, in a thread, so the process's main thread stays free for the
production follower and the workers' relay (run.py).

Why uvicorn: measured side by side on this 2-core machine with the same handler
(`Service.predict` of a raw single-row request, wrk with 8 connections, two runs each,
2026-12-07), the standard library's ThreadingHTTPServer answered 4,290-4,380 requests/s,
granian 2.8.7's RSGI 11,300-11,500/s with a maximum latency of 83-89 ms, and uvicorn
0.54 with httptools and uvloop 11,400-11,800/s with a maximum of 5.5 ms (bench/fleet.py
has today's figures). Both fast servers parse in native code; uvicorn's tail was the
shorter, and it takes a socket, a protocol class and a graceful shutdown as they are.

Our socket, not uvicorn's: port 0 must tell the caller which port it got, and a worker
of `serve --workers N` binds the shared port with SO_REUSEPORT (workers.py).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn
import uvloop

from ctrpipe.errors import ConfigError
from ctrpipe.serving.rest.app import App
from ctrpipe.serving.rest.protocol import Protocol
from ctrpipe.serving.service import Service

IDLE_TIMEOUT = 30  # seconds a keep-alive connection may wait for its next request
GRACE = 10.0  # seconds a shutdown waits for requests in flight
BACKLOG = 1024  # connections the kernel holds for accept(); a fleet's balancer opens many
START_TIMEOUT = 30.0  # seconds for the event loop to start listening


class Server:
    """The service over HTTP on `address`; `start()` serves from a thread, `stop()`
    drains it."""

    def __init__(
        self,
        address: tuple[str, int],
        service: Service,
        reuse_port: bool = False,
        deadline_ms: float = 50.0,
        max_queued: int = 128,
    ) -> None:
        self.service = service
        self.sock = bind(address, reuse_port)
        self.server_name, self.server_port = self.sock.getsockname()[:2]
        self.app = App(service, deadline=deadline_ms / 1000, max_queued=max_queued)
        config = uvicorn.Config(
            self.app,
            http=Protocol,
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,  # leave the process's logging as it is
            access_log=False,  # at thousands of requests a second; /metrics counts each
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=IDLE_TIMEOUT,
            timeout_graceful_shutdown=int(GRACE),
            backlog=BACKLOG,
        )
        self._uvicorn = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    def start(self) -> Server:
        self.thread = threading.Thread(target=self._serve, name="ctrpipe-serve", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._uvicorn.started and self.thread.is_alive():
            if time.monotonic() > deadline:
                raise ConfigError(f"{self.url}: the HTTP server did not start")
            time.sleep(0.005)
        return self

    def _serve(self) -> None:
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        self.app.lag.start(loop)
        try:
            loop.run_until_complete(self._uvicorn.serve(sockets=[self.sock]))
        finally:
            self.app.lag.stop()
            loop.close()

    def stop(self, grace: float = GRACE) -> bool:
        """Stop accepting, let requests in flight finish (up to `grace` seconds), close.
        Whether they all finished."""
        self.service.drain()
        self._uvicorn.config.timeout_graceful_shutdown = max(1, round(grace))
        self._uvicorn.should_exit = True
        if self.thread is not None:
            self.thread.join(grace + 10)
        self.sock.close()
        self.service.close()
        unfinished = self.app.cancelled or self.app.in_flight
        return not unfinished and not (self.thread and self.thread.is_alive())

    @property
    def url(self) -> str:
        return f"http://{self.server_name}:{self.server_port}"


def bind(address: tuple[str, int], reuse_port: bool) -> socket.socket:
    """A listening socket; a ConfigError in one line when the address cannot be had."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        host, port = address
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.setblocking(False)
    return sock
