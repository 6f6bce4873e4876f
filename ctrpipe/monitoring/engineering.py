"""The service's own engineering figures, read from its Prometheus /metrics.

The counters and the histogram are cumulative since the service started, so every
figure here is over that span: p50 and p99 of POST /predict by linear interpolation
within the histogram's buckets (as Prometheus' histogram_quantile does), the share of
5xx and of 4xx answers, resident memory, and CPU seconds per second of uptime. One is a
figure of now: the age of the online snapshot being served (now minus its cut time).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from ctrpipe.errors import DataError

ENDPOINT = "/predict"


def scrape(url: str, timeout: float = 5.0) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.read().decode("utf-8")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DataError(
            f"{url}: cannot read the service's metrics ({getattr(exc, 'reason', exc)})"
        ) from None


def figures(text: str, now: float | None = None) -> dict:
    """p50_ms, p99_ms, error_rate, client_error_rate, memory_mib, cpu_cores, requests,
    snapshot_age_hours of a /metrics page (None where the page has no such figure, no
    requests yet or no snapshot)."""
    samples: dict[str, list] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples.setdefault(s.name, []).append(s)
    except ValueError as exc:
        raise DataError(f"the metrics page is not Prometheus text ({exc})") from None
    buckets = sorted(
        (float(s.labels["le"]), s.value)
        for s in samples.get("ctrpipe_request_duration_seconds_bucket", [])
        if s.labels.get("endpoint") == ENDPOINT
    )
    codes = [
        (s.labels["code"], s.value)
        for s in samples.get("ctrpipe_requests_total", [])
        if s.labels.get("endpoint") == ENDPOINT
    ]
    total = sum(v for _, v in codes)
    memory = _one(samples, "process_resident_memory_bytes")
    cpu = _one(samples, "process_cpu_seconds_total")
    start = _one(samples, "process_start_time_seconds")
    now = now or time.time()
    uptime = now - start if start else None
    cut = _one(samples, "ctrpipe_snapshot_cut_timestamp_seconds")
    return {
        "requests": int(total),
        "p50_ms": _ms(quantile(buckets, 0.5)),
        "p99_ms": _ms(quantile(buckets, 0.99)),
        "error_rate": sum(v for c, v in codes if c.startswith("5")) / total if total else None,
        "client_error_rate": sum(v for c, v in codes if c.startswith("4")) / total
        if total
        else None,
        "memory_mib": memory / 2**20 if memory is not None else None,
        "cpu_cores": cpu / uptime if cpu is not None and uptime and uptime > 0 else None,
        "snapshot_age_hours": (now - cut) / 3600 if cut else None,
    }


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile of a cumulative histogram [(upper bound, count), ...], sorted."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower  # past the last finite bound: its bound is all we know
            return (
                lower + (upper - lower) * (rank - below) / (count - below)
                if count > below
                else upper
            )
        lower, below = upper, count
    return lower


def _one(samples: dict, name: str) -> float | None:
    found = samples.get(name)
    return found[0].value if found else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
