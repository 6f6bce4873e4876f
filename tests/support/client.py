"""An HTTP client for the service under test: one keep-alive connection, and a load of
threads posting one body until stopped."""

from __future__ import annotations

import http.client
import json
import threading
import time

from ctrpipe.serving.rest.server import Server

# A deadline no request reaches, for the tests that load a server while it swaps and
# count every answer: on a busy test machine the event loop can wait past the default
# 50 ms, which would shed requests (test_shedding.py tests that on purpose).
UNSHED = 600_000.0


class Client:
    """One keep-alive connection (http.client reopens it after a close)."""

    def __init__(self, srv: Server):
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.server_port, timeout=30)

    def call(self, method: str, path: str, body=None, headers=None):
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        data = response.read()
        is_json = response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(data) if is_json else data.decode()

    def predict(self, body):
        return self.call("POST", "/predict", body)

    def close(self):
        self.conn.close()


class Load:
    """Threads posting one body on keep-alive connections until stopped (each at most
    20,000 requests, whatever happens); `results` collects (status, answer)."""

    def __init__(self, srv: Server, body: dict, threads: int):
        self.results: list = []
        self._done, self._lock = threading.Event(), threading.Lock()
        self._threads = [
            threading.Thread(target=self._post, args=(srv, body)) for _ in range(threads)
        ]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._done.set()
        for t in self._threads:
            t.join(timeout=60)

    def wait_for(self, more: int) -> None:
        """Until `more` further answers are in (bounded: 10 s)."""
        seen = len(self.results)
        for _ in range(10_000):
            if len(self.results) >= seen + more or not any(t.is_alive() for t in self._threads):
                return
            time.sleep(0.001)

    def _post(self, srv: Server, body: dict) -> None:
        client = Client(srv)
        for _ in range(20_000):
            if self._done.is_set():
                break
            answer = client.predict(body)
            with self._lock:
                self.results.append(answer)
        client.close()
