"""The prediction service's data plane, apart from any transport (rest/ and grpc/ carry it):
one model package, loaded, checked and swapped, and a request body in, predictions out.

`Service.predict` takes the body of a POST /predict and answers (status, JSON object): a
bad request is a 4xx naming the field (the contract is in payload.py). The model sits
behind one reference (`Service.swap`), read once per request, so a swap under load never
mixes two models in one answer. What GET /metrics shows is in metrics.py.
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

from ctrpipe import manifest
from ctrpipe.errors import ConfigError, DataError
from ctrpipe.model import onnx_export, package
from ctrpipe.model.encoding import FeatureSchema
from ctrpipe.online import store
from ctrpipe.online.lookup import FieldError, Lookup
from ctrpipe.serving import compiled, request_log
from ctrpipe.serving.metrics import Metrics
from ctrpipe.serving.payload import (
    RequestError,
    RowEncoder,
    candidates_of,
    contract_of,
    ids_of,
    is_candidates,
    parse,
    rows_from_columns,
    rows_of,
    split,
)

log = logging.getLogger(__name__)


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
    online: Lookup | None = None  # the snapshot raw requests are served from

    @property
    def snapshot(self) -> store.Snapshot | None:
        return self.online.snapshot if self.online else None

    def features(self, rows: list, online: Lookup | None = None) -> tuple[str, list]:
        """The request's contract, decided by its first row, and its rows as feature rows.
        With a snapshot, a row of base-table fields only is a raw record whose features
        are looked up ("raw"), even one that holds every feature (a base table that is all
        features, and a time); any other row is taken as the features ("features"), so a
        typo beside every feature is refused as an unknown feature."""
        online = online or self.online
        first = rows[0] if rows else None
        if (
            online is None
            or type(first) is not dict
            or contract_of(first.keys(), self.encoder.known, online.fields) == "features"
        ):
            return "features", rows
        looked_up = []
        for i, row in enumerate(rows):
            try:
                looked_up.append(online.features_of(row))
            except FieldError as exc:
                status = 400 if exc.field is None else 422
                raise RequestError(status, exc.message, field=exc.field, row=i) from None
        return "raw", looked_up

    def columns(
        self, shared: dict, columns: dict, n: int, online: Lookup | None = None
    ) -> tuple[str, tuple[dict, dict]]:
        """The contract of n rows given as shared values and columns (a candidate batch),
        decided by their fields as `features` decides by a row's, and their features as
        (shared, columns): looked up once for the shared part in the raw contract."""
        online = online or self.online
        keys = shared.keys() | columns.keys()
        if online is None or contract_of(keys, self.encoder.known, online.fields) == "features":
            return "features", (shared, columns)
        try:
            return "raw", online.columns_of(shared, columns, n)
        except FieldError as exc:
            status = 400 if exc.field is None else 422
            raise RequestError(status, exc.message, field=exc.field, row=exc.row) from None

    def score(self, rows: list) -> np.ndarray:
        """Click probabilities of feature rows; a RequestError for the first bad one."""
        x = self.encoder.encode(rows)
        if not len(x):
            return np.empty(0, dtype=np.float32)
        return self.predict(x)


class Service:
    """The model reference, its checks, and what each endpoint answers (no HTTP here)."""

    def __init__(
        self,
        max_batch: int = 10_000,
        max_body: int | None = None,
        threads: int = 1,
        log: request_log.Settings | None = None,
        backend: str = "auto",
        snapshot: str | Path | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.snapshot = Path(snapshot) if snapshot else None  # default: the package's own
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
        self._online: dict[str, Lookup] = {}  # snapshot digest -> lookup (the newest only)
        self._configs: dict[str, str] = {}  # package digest -> its snapshot's config
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
            self.metrics.serving(model.version, loaded.digest, model.backend, model.snapshot)
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
            online=self._lookup(loaded),
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

    def _lookup(self, loaded: package.Loaded) -> Lookup | None:
        """The snapshot raw requests are served from: --snapshot (a snapshot, or a folder
        of them, the newest built for this model), else the package's own, else none
        (such a package serves the features contract only). A snapshot from elsewhere
        must have been built with the package's feature config."""
        path = self._snapshot_path(loaded)
        if path is None:
            return None
        snapshot = store.load(path)
        if path == loaded.path / store.FOLDER:  # its own: the config to match, loaded once
            self._configs[loaded.digest] = snapshot.config
        expected = self._config(loaded)
        if snapshot.config != expected:
            raise DataError(
                f"{path}: built with another feature config ({snapshot.config[:12]}) "
                f"than the model's ({expected[:12]})"
            )
        if snapshot.digest not in self._online:
            self._online = {snapshot.digest: Lookup(snapshot)}
        lookup = self._online[snapshot.digest]
        lookup.check_model(loaded.schema.names, str(path))
        return lookup

    def _snapshot_path(self, loaded: package.Loaded) -> Path | None:
        own = loaded.path / store.FOLDER
        if self.snapshot is None:
            return own if own.is_dir() else None
        if not own.is_dir():
            raise DataError(f"{self.snapshot}: the package {loaded.path} has no snapshot to match")
        if store.is_folder(self.snapshot):
            return store.newest(self.snapshot, self._config(loaded)) or own
        return self.snapshot

    def _config(self, loaded: package.Loaded) -> str:
        """The feature config of the package's own snapshot (once per package)."""
        if loaded.digest not in self._configs:
            self._configs[loaded.digest] = store.load(loaded.path / store.FOLDER).config
        return self._configs[loaded.digest]

    def refresh_online(self) -> bool:
        """Serve the newest snapshot of the --snapshot folder if it is not the one being
        served (features refresh wrote a newer one); whether it swapped. The lookup is
        built before the one reference moves, as in a model swap: no request fails."""
        if self.snapshot is None or self._model is None:
            return False
        with self._swap_lock:
            model = self._model
            path = self._snapshot_path(model.loaded)
            served = model.online.snapshot.digest if model.online else None
            if path is None or manifest.digest(path) == served:
                return False  # only a manifest read on most polls
            try:
                online = self._lookup(model.loaded)
            except DataError as exc:
                self.problem = str(exc)
                raise
            if online is model.online:
                return False
            self._model = dataclasses.replace(model, online=online)
            self.metrics.serving_snapshot(online.snapshot)
            return True

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

    def predict(self, body: bytes, online: Lookup | None = None) -> tuple[int, dict]:
        """Status and JSON answer of POST /predict for a request body; raw rows are
        looked up in `online` if given (the skew check's), else in the model's snapshot."""
        model = self._model  # read once: encoding, scores and the answer share it
        if model is None:
            return 503, {"error": self.problem or "no model loaded yet", "field": None, "row": None}
        try:
            doc = parse(body)
            if is_candidates(doc):
                return self._candidates(model, doc, online)
            raw = rows_of(doc, self.max_batch)
            ids = ids_of(doc, len(raw))
            contract, rows = model.features(raw, online)
            scores = model.score(rows).tolist()
        except RequestError as exc:
            return exc.status, exc.body()
        self.metrics.rows.labels(contract).inc(len(scores))
        if self.log is not None:
            sent = raw if contract == "raw" else None
            self.log.offer(rows, ids, scores, model.loaded.schema, model.answer, sent)
        return 200, {"model": model.answer, "predictions": scores}

    def _candidates(self, model: Model, doc: dict, online: Lookup | None) -> tuple[int, dict]:
        """A candidate batch: the context's part of the features computed once, each
        candidate's part per candidate, encoded as columns. The answer and the logged rows
        are those of the merged rows (context | candidate) sent one by one."""
        context, candidates = candidates_of(doc, self.max_batch)
        ids = ids_of(doc, len(candidates))
        n = len(candidates)
        shared, columns = split(context, candidates)
        contract, features = model.columns(shared, columns, n, online)
        scores = model.predict(model.encoder.encode_columns(*features, n)).tolist()
        self.metrics.rows.labels(contract).inc(n)
        if self.log is not None:
            merged = [context | c for c in candidates]
            if contract == "raw":
                rows = rows_from_columns(*features, n)
                self.log.offer(rows, ids, scores, model.loaded.schema, model.answer, merged)
            else:
                self.log.offer(merged, ids, scores, model.loaded.schema, model.answer)
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
