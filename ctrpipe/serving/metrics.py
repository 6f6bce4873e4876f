"""What GET /metrics shows: the service's Prometheus metrics, in one process or across
the processes of `serve --workers N` (workers.py).

Across processes, prometheus_client's multiprocess mode keeps every value in a
memory-mapped file per process in the folder PROMETHEUS_MULTIPROC_DIR names (set by the
supervisor before a worker starts: the mode is chosen when prometheus_client is
imported), and any worker's /metrics adds them up. Its rules shape the metrics here:

- counters and the latency histogram are summed over every process that ever ran;
- info metrics do not work across processes, so the model and snapshot served are
  gauges set to 1 per label set (0 once a process stops serving it);
- `ctrpipe_ready` is the least over the live workers (1 only when each has a model), the
  snapshot's cut the oldest any live worker serves;
- the process figures, which the default collector reads from /proc for its own process
  only, become gauges each worker keeps current (`refresh`): resident memory summed over
  the live workers, CPU seconds over all, and the earliest start.
"""

from __future__ import annotations

import datetime as dt
import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

SHARED = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's name for the shared folder
# Every endpoint's label and method; a V2 model endpoint is labelled by its template.
ENDPOINTS = {
    "/predict": "POST",
    "/health": "GET",
    "/ready": "GET",
    "/metrics": "GET",
    "/v2": "GET",
    "/v2/health/live": "GET",
    "/v2/health/ready": "GET",
    "/v2/models/{name}": "GET",
    "/v2/models/{name}/ready": "GET",
    "/v2/models/{name}/infer": "POST",
}
# The gRPC methods (grpc/server.py), labelled `grpc.<method>` beside the REST endpoints.
RPCS = ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer")
LABELS = [*ENDPOINTS, *(f"grpc.{rpc}" for rpc in RPCS), "other"]
# Single-row predictions take tens of microseconds and batches tens of milliseconds.
BUCKETS = (
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    1e-2,
    2.5e-2,
    5e-2,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    """The service's Prometheus metrics, in a registry of its own: two services in one
    process (tests, a later blue/green swap) must not share counters."""

    def __init__(self) -> None:
        self.shared = os.environ.get(SHARED)
        self.registry = r = CollectorRegistry()
        self.latency = Histogram(
            "ctrpipe_request_duration_seconds",
            "Time from the parsed request line to the response written",
            ["endpoint"],
            buckets=BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "ctrpipe_requests", "Responses by endpoint and status", ["endpoint", "code"], registry=r
        )
        self.errors = Counter(
            "ctrpipe_request_errors",
            "Responses with status >= 400 by endpoint and status",
            ["endpoint", "code"],
            registry=r,
        )
        self.rows = Counter(
            "ctrpipe_predicted_rows",
            "Rows scored, by contract: raw (features looked up) or features (sent)",
            ["contract"],
            registry=r,
        )
        self.model = Labels(
            "ctrpipe_model_info",
            "The model package being served",
            ("version", "digest", "backend"),
            r,
        )
        self.ready = Gauge(
            "ctrpipe_ready", "1 when /ready answers 200", registry=r, multiprocess_mode="livemin"
        )
        self.shed = Counter(
            "ctrpipe_shed_requests",
            "Scoring requests answered 503 unscored: the queue was full, or the deadline "
            "passed before they could start",
            ["reason"],
            registry=r,
        )
        self.swaps = Counter("ctrpipe_model_swaps", "Models put in service", registry=r)
        self.snapshot = Labels(
            "ctrpipe_snapshot_info", "The online snapshot being served", ("digest", "cut"), r
        )
        self.snapshot_errors = Counter(
            "ctrpipe_snapshot_refresh_errors",
            "Newer snapshots refused (the served one stayed)",
            registry=r,
        )
        self.snapshot_cut = Gauge(
            "ctrpipe_snapshot_cut_timestamp_seconds",
            "The served snapshot's cut time (Unix seconds; 0 without a snapshot); its age "
            "is time() minus this",
            registry=r,
            multiprocess_mode="livemin",
        )
        # process_resident_memory_bytes, process_cpu_seconds_total, process_start_time_seconds
        if self.shared:
            self.process: ProcessGauges | None = ProcessGauges(r)
        else:
            ProcessCollector(registry=r)
            self.process = None
        self._latency = {e: self.latency.labels(e) for e in LABELS}
        self._counters: dict[tuple[str, int], list] = {}

    def observe(self, endpoint: str, code: int, seconds: float) -> None:
        self._latency[endpoint].observe(seconds)
        counters = self._counters.get((endpoint, code))
        if counters is None:  # labels() takes a lock and formats: once per pair
            counters = self._counters[endpoint, code] = [self.requests.labels(endpoint, str(code))]
            if code >= 400:
                counters.append(self.errors.labels(endpoint, str(code)))
        for counter in counters:
            counter.inc()

    def serving(self, version: str | None, digest: str, backend: str, snapshot) -> None:
        """A model put in service; `snapshot` is its online snapshot (store.Snapshot) or
        None. Plain values, so that metrics know nothing of the data plane's types."""
        self.model.set(version or "", digest, backend)
        self.swaps.inc()
        self.serving_snapshot(snapshot)

    def serving_snapshot(self, snapshot) -> None:
        cut = snapshot.cut if snapshot else None
        self.snapshot.set(snapshot.digest if snapshot else "", cut.isoformat() if cut else "")
        self.snapshot_cut.set(cut.replace(tzinfo=dt.timezone.utc).timestamp() if cut else 0)

    def refresh(self) -> None:
        """Bring this process's own figures up to date (across processes only)."""
        if self.process is not None:
            self.process.refresh()

    def render(self) -> bytes:
        if not self.shared:
            return generate_latest(self.registry)
        every = CollectorRegistry()
        MultiProcessCollector(every, path=self.shared)
        return generate_latest(every)


class Labels:
    """An info metric that works across processes: a gauge at 1 for the label set being
    served, its last one set to 0 and dropped (a stopped process's file keeps the 0)."""

    def __init__(self, name: str, doc: str, names: tuple[str, ...], registry) -> None:
        self._gauge = Gauge(name, doc, names, registry=registry, multiprocess_mode="livemax")
        self._current: tuple[str, ...] | None = None

    def set(self, *values: str) -> None:
        if values == self._current:
            return
        if self._current is not None:
            self._gauge.labels(*self._current).set(0)
            self._gauge.remove(*self._current)
        self._gauge.labels(*values).set(1)
        self._current = values


class ProcessGauges:
    """The default process collector's figures for this process, as gauges the other
    workers' /metrics can read."""

    def __init__(self, registry) -> None:
        self._source = ProcessCollector(registry=None)
        self._gauges = {
            "process_resident_memory_bytes": Gauge(
                "process_resident_memory_bytes",
                "Resident memory of the live workers, summed",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            "process_cpu_seconds_total": Gauge(
                "process_cpu_seconds_total",
                "CPU seconds of every worker that ran, summed",
                registry=registry,
                multiprocess_mode="sum",
            ),
            "process_start_time_seconds": Gauge(
                "process_start_time_seconds",
                "Start of the earliest worker (Unix seconds)",
                registry=registry,
                multiprocess_mode="min",
            ),
        }
        self.refresh()

    def refresh(self) -> None:
        for family in self._source.collect():
            for sample in family.samples:
                if sample.name in self._gauges:
                    self._gauges[sample.name].set(sample.value)
