"""Overload is shed, not queued: a scoring request that cannot start within the deadline,
or that finds the queue full, gets a 503 with Retry-After without being scored, while
/health, /ready and /metrics still answer and every shed request is counted."""

from __future__ import annotations

import json
import threading

import pytest

from ctrpipe.serving.rest.server import Server
from ctrpipe.serving.service import Service
from tests.serving.test_serve import a_row, metric_samples
from tests.support.client import Client

pytestmark = pytest.mark.integration


def served(packages, **limits) -> Server:
    service = Service(max_batch=50)
    service.load(packages[0]["a"], "v1.0.0")
    return Server(("127.0.0.1", 0), service, **limits).start()


def shed_count(client: Client, reason: str) -> float:
    return metric_samples(client).get(("ctrpipe_shed_requests_total", (("reason", reason),)), 0)


def test_a_request_past_its_deadline_is_answered_503_unscored(packages):
    # A deadline of a nanosecond: no request can start within it.
    srv = served(packages, deadline_ms=1e-6)
    try:
        client = Client(srv)
        conn = client.conn
        conn.request("POST", "/predict", body=json.dumps({"row": a_row(packages)}))
        response = conn.getresponse()
        answer = response.read()
        assert response.status == 503 and b"overloaded (deadline)" in answer
        assert response.getheader("Retry-After") == "1"
        # Not scored, and counted; the cheap endpoints are never shed.
        samples = metric_samples(client)
        assert ("ctrpipe_predicted_rows_total", (("contract", "features"),)) not in samples
        assert shed_count(client, "deadline") == 1
        assert client.call("GET", "/health") == (200, {"status": "ok"})
        assert client.call("GET", "/ready")[0] == 200
        assert client.call("GET", "/v2/health/live") == (200, {"live": True})
    finally:
        srv.stop(grace=5)


def test_under_load_some_requests_are_shed_and_the_rest_answered(packages):
    # One request queued at most: with 16 connections posting at once, many find the
    # queue full. Each gets a 200 or a 503, never another status.
    srv = served(packages, max_queued=1)
    statuses: list[int] = []
    lock = threading.Lock()
    body = {"row": a_row(packages)}

    def post() -> None:
        client = Client(srv)
        for _ in range(200):
            status, _ = client.predict(body)
            with lock:
                statuses.append(status)
        client.close()

    threads = [threading.Thread(target=post) for _ in range(16)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        client = Client(srv)
        assert set(statuses) <= {200, 503} and len(statuses) == 16 * 200
        shed = statuses.count(503)
        assert 0 < shed < len(statuses)
        assert shed_count(client, "queue") == shed
        assert client.predict(body)[0] == 200  # once the load is gone, it answers again
    finally:
        srv.stop(grace=5)
