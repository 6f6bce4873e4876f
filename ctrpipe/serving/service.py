"""The prediction service's data plane, apart from any transport (http.py carries it):
one model package, loaded, checked and swapped, and a request body in, predictions out.

`Service.predict` takes the body of a POST /predict and answers (status, JSON object): a
bad request is a 4xx naming the field (the contract is in payload.py). The model sits
behind one reference (`Service.swap`), read once per request, so a swap under load never
mixes two models in one answer. `Metrics` holds what GET /metrics shows.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)

from ctrpipe.errors import ConfigError, DataError
from ctrpipe.model import onnx_export, package
from ctrpipe.model.encoding import FeatureSchema
from ctrpipe.serving import compiled, request_log
from ctrpipe.serving.payload import RequestError, RowEncoder, ids_of, parse, rows_of

log = logging.getLogger(__name__)

ENDPOINTS = {"/predict": "POST", "/health": "GET", "/ready": "GET", "/metrics": "GET"}
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
PROBE_ROWS = 256


def default_max_body(max_batch: int) -> int:
    """A full batch of plain rows is about 0.6 KiB a row; allow 2 KiB, plus 1 MiB."""
    return (1 << 20) + 2048 * max_batch


@dataclass(frozen=True)
class Model:
    """A package ready to serve: everything a request needs, swapped as one object."""

    loaded: package.Loaded
    version: str | None
    encoder: RowEncoder
    parity: float  # the largest ONNX / XGBoost difference on the probe rows
    answer: dict  # {"version", "digest"}, as every prediction reports it
    backend: str  # "compiled" or "onnx"
    predict: Callable[[np.ndarray], np.ndarray]  # float32 matrix -> click probabilities

    def score(self, rows: list) -> np.ndarray:
        """Click probabilities of request rows; a RequestError for the first bad one."""
        x = self.encoder.encode(rows)
        if not len(x):
            return np.empty(0, dtype=np.float32)
        return self.predict(x)


class Metrics:
    """The service's Prometheus metrics, in a registry of its own: two services in one
    process (tests, a later blue/green swap) must not share counters."""

    def __init__(self) -> None:
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
        self.rows = Counter("ctrpipe_predicted_rows", "Rows scored", registry=r)
        self.model = Info("ctrpipe_model", "The model package being served", registry=r)
        self.ready = Gauge("ctrpipe_ready", "1 when /ready answers 200", registry=r)
        self.swaps = Counter("ctrpipe_model_swaps", "Models put in service", registry=r)
        ProcessCollector(registry=r)  # process_resident_memory_bytes, _cpu_seconds_total
        self._latency = {e: self.latency.labels(e) for e in [*ENDPOINTS, "other"]}

    def observe(self, endpoint: str, code: int, seconds: float) -> None:
        self._latency[endpoint].observe(seconds)
        self.requests.labels(endpoint, str(code)).inc()
        if code >= 400:
            self.errors.labels(endpoint, str(code)).inc()

    def serving(self, model: Model) -> None:
        self.model.info(
            {
                "version": model.version or "",
                "digest": model.loaded.digest,
                "backend": model.backend,
            }
        )
        self.swaps.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Service:
    """The model reference, its checks, and what each endpoint answers (no HTTP here)."""

    def __init__(
        self,
        max_batch: int = 10_000,
        max_body: int | None = None,
        threads: int = 1,
        log: request_log.Settings | None = None,
        backend: str = "auto",
    ) -> None:
        self.max_batch = max_batch
        self.max_body = max_body or default_max_body(max_batch)
        self.threads = threads
        self.backend = backend
        self.metrics = Metrics()
        self.log = request_log.RequestLog(log, self.metrics.registry) if log else None
        self.draining = False
        self.problem: str | None = None  # why the last load or swap was refused
        self._model: Model | None = None
        self._parity: dict[str, float] = {}  # digest -> checked difference
        self._compiled: dict[str, compiled.Compiled | None] = {}  # digest -> model
        self._swap_lock = threading.Lock()

    @property
    def model(self) -> Model | None:
        return self._model

    def load(self, path: str | Path, version: str | None = None) -> Model:
        """Open, check and serve the package in `path`; a DataError (and no change to
        what is served) when it is altered or ONNX disagrees with XGBoost."""
        try:
            return self.swap(package.load(path), version)
        except DataError as exc:
            self.problem = str(exc)
            raise

    def swap(self, loaded: package.Loaded, version: str | None = None) -> Model:
        """Serve `loaded` from the next request on. The parity check runs first, outside
        the request path; then one attribute assignment (atomic under the GIL) moves
        every new request to it. Requests in flight finish on the model they read."""
        with self._swap_lock:  # two swaps at once would race on the metrics' model info
            try:
                model = self._prepare(loaded, version)
            except DataError as exc:
                self.problem = str(exc)
                raise
            self._model = model
            self.problem = None
            self.metrics.serving(model)
            self.metrics.ready.set(0 if self.draining else 1)
            return model

    def _prepare(self, loaded: package.Loaded, version: str | None) -> Model:
        files = None
        if loaded.digest not in self._parity:  # content-addressed: checked once per digest
            files = verified_files(loaded)
            self._parity[loaded.digest] = check_parity(loaded.schema, files, str(loaded.path))
        fast = None
        if self.backend != "onnx":
            if loaded.digest not in self._compiled:
                # Only the newest version is kept: an old one holds a mapped library and,
                # with threads, idle workers. Swapping back loads it again, reusing the
                # library cached on disk (no compiler run).
                self._compiled = {loaded.digest: self._compile(loaded, files)}
            fast = self._compiled[loaded.digest]
        if fast is None and self.threads > 1:  # ONNX Runtime serves: give it the threads
            files = files or verified_files(loaded)
            loaded = dataclasses.replace(
                loaded, session=onnx_export.session(files["model.onnx"], self.threads)
            )
        return Model(
            loaded=loaded,
            version=version,
            encoder=RowEncoder(loaded.schema),
            parity=self._parity[loaded.digest],
            answer={"version": version, "digest": loaded.digest},
            backend="compiled" if fast else "onnx",
            predict=fast.predict
            if fast
            else functools.partial(onnx_export.predict, loaded.session),
        )

    def _compile(self, loaded: package.Loaded, files: dict | None) -> compiled.Compiled | None:
        """The model compiled to native code (checked against XGBoost), or None where
        it cannot be: no compiler, or a kind of model the generator does not handle.
        ONNX Runtime serves then; with backend "compiled" that is an error instead."""
        files = files or verified_files(loaded)
        try:
            return compiled.load(
                files["model.ubj"],
                len(loaded.schema.names),
                threads=self.threads,
                source_name=f"{loaded.path}/model.ubj",
                probe=probe_matrix(loaded.schema, json.loads(files["profile.json"])),
            )
        except ConfigError as exc:
            if self.backend == "compiled":
                raise DataError(str(exc)) from None
            log.warning("serving through ONNX Runtime: %s", exc)
            return None

    def predict(self, body: bytes) -> tuple[int, dict]:
        """Status and JSON answer of POST /predict for a request body."""
        model = self._model  # read once: encoding, scores and the answer share it
        if model is None:
            return 503, {"error": self.problem or "no model loaded yet", "field": None, "row": None}
        try:
            doc = parse(body)
            rows = rows_of(doc, self.max_batch)
            ids = ids_of(doc, len(rows))
            scores = model.score(rows).tolist()
        except RequestError as exc:
            return exc.status, exc.body()
        self.metrics.rows.inc(len(scores))
        if self.log is not None:
            self.log.offer(rows, ids, scores, model.loaded.schema, model.answer)
        return 200, {"model": model.answer, "predictions": scores}

    def readiness(self) -> tuple[int, dict]:
        model = self._model
        if self.draining or model is None:
            reason = "shutting down" if self.draining else self.problem or "no model loaded"
            return 503, {"ready": False, "reason": reason}
        return 200, {
            "ready": True,
            "model": model.answer,
            "parity": model.parity,
            "backend": model.backend,
        }

    def drain(self) -> None:
        """Stop being ready: a load balancer moves traffic away while requests finish."""
        self.draining = True
        self.metrics.ready.set(0)

    def close(self) -> None:
        """After the last request: write what the request log still buffers."""
        if self.log is not None:
            self.log.close()


def verified_files(loaded: package.Loaded) -> dict[str, bytes]:
    """The package's files as checked against its manifest, which must still be the
    one `loaded` was opened from (a refetch into the same folder would not be)."""
    digest = package.digest(loaded.path)
    if digest != loaded.digest:
        raise DataError(
            f"{loaded.path}: changed since it was loaded (manifest sha256 "
            f"{digest[:12]}, loaded {loaded.digest[:12]})"
        )
    return package.verify(loaded.path)


def check_parity(schema: FeatureSchema, files: dict[str, bytes], source: str) -> float:
    """ONNX Runtime here against XGBoost on the package's own model.ubj: the build
    checked this, but on the build's machine and onnxruntime. A DataError past 1e-6."""
    booster = package.load_booster(files["model.ubj"], f"{source}/model.ubj")
    package.check_features(booster, schema, f"{source}/model.ubj")
    booster.set_param({"nthread": 1})  # a swap runs beside requests: leave them a core
    x = probe_matrix(schema, json.loads(files["profile.json"]))
    return onnx_export.check_parity(booster, files["model.onnx"], x, source)


def probe_matrix(
    schema: FeatureSchema, profile: dict, rows: int = PROBE_ROWS, seed: int = 0
) -> np.ndarray:
    """Rows over the training range as profile.json records it, with the probes of
    `onnx_export.probe_rows` (each column missing, each categorical `other`). A package
    carries no data rows, so the profile's bin edges stand in for them: each numeric value
    is an edge, a midpoint between two, or beyond the outer ones; each categorical a
    code of its vocabulary or `other`. Seeded, so a check is the same on every start."""
    rng = np.random.default_rng(seed)
    x = np.empty((rows, len(schema.names)), dtype=np.float32)
    for j, name in enumerate(schema.numeric):
        edges = np.asarray(profile["features"].get(name, {}).get("edges") or [0.0], float)
        values = np.concatenate(
            [edges, (edges[:-1] + edges[1:]) / 2, [edges[0] - 1, edges[-1] + 1]]
        )
        x[:, j] = rng.choice(values, rows)
    for j, name in enumerate(schema.categorical, start=len(schema.numeric)):
        x[:, j] = rng.integers(0, schema.other_code(name) + 1, rows)
    other = {schema.names.index(n): schema.other_code(n) for n in schema.categorical}
    return onnx_export.probe_rows(x, other)
