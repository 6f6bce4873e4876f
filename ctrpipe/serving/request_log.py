"""Sampled requests and their predictions, in rotating Parquet files that `monitor` reads.

The request path only decides which rows to keep and, when it keeps any, puts one tuple
of references on a bounded queue (about a microsecond). A writer thread turns the tuples
into columns and writes a file once it holds `rotate_rows` rows or its oldest row is
`rotate_seconds` old, and on close. A full queue or a failed write drops the sample and
counts it (`ctrpipe_request_log_dropped_rows`): monitoring data is never worth a slower
or failed request.

Files are `<dir>/requests-<UTC time>-<pid>-<seq>.parquet`, written under a hidden name
and renamed, so a reader never sees half a file. Columns:

    ts            timestamp[ms, UTC]  when the request was answered
    id            string              the client's id of the row (`ids` / `id`), or null
    version       string              the model version served; null for a folder
    digest        string              the served package's manifest sha256
    prediction    double              the click probability answered
    <numeric>     double              each numeric feature; null = missing
    <categorical> string              each categorical feature as sent (also values the
                                      model does not know); null = missing
    raw           string              a raw request's record as sent (JSON), whose looked-up
                                      features are the columns above; null when the
                                      client sent the features
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from prometheus_client import CollectorRegistry, Counter

from ctrpipe.errors import ConfigError
from ctrpipe.model.encoding import FeatureSchema
from ctrpipe.serving.settings import RequestLog as Settings

log = logging.getLogger(__name__)

PATTERN = "requests-*.parquet"
_STOP = object()


def arrow_schema(schema: FeatureSchema) -> pa.Schema:
    return pa.schema(
        [
            ("ts", pa.timestamp("ms", tz="UTC")),
            ("id", pa.string()),
            ("version", pa.string()),
            ("digest", pa.string()),
            ("prediction", pa.float64()),
            *((name, pa.float64()) for name in schema.numeric),
            *((name, pa.string()) for name in schema.categorical),
            ("raw", pa.string()),
        ]
    )


class RequestLog:
    """Samples rows on the request path; writes them from a thread of its own."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None):
        self.settings = settings
        self.dir = Path(settings.dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"request log: cannot create {self.dir} ({exc.strerror})") from None
        self._queue: queue.Queue = queue.Queue(settings.queue)
        self._seq = 0
        self.written = Counter(
            "ctrpipe_request_log_rows", "Sampled rows written to the request log", registry=registry
        )
        self.dropped = Counter(
            "ctrpipe_request_log_dropped_rows",
            "Sampled rows dropped (queue full or write failed)",
            registry=registry,
        )
        self.files = Counter(
            "ctrpipe_request_log_files", "Request log files written", registry=registry
        )
        self._thread = threading.Thread(target=self._run, name="ctrpipe-request-log", daemon=True)
        self._thread.start()

    def offer(
        self,
        rows: list,
        ids: list | None,
        predictions: list,
        schema: FeatureSchema,
        answer: dict,
        raw: list | None = None,
    ) -> None:
        """Keep each row with probability sample_rate (called after a 200 answer, with
        the schema and the {"version", "digest"} of the model that answered). `rows` are
        feature rows; `raw`, for a raw request, the records they were looked up from."""
        rate = self.settings.sample_rate
        n = len(rows)
        if n == 1:
            if random.random() >= rate:
                return
            keep = None
        else:
            k = np.random.binomial(n, rate) if rate < 1 else n
            if k == 0:
                return
            keep = None if k == n else sorted(random.sample(range(n), k))
        if keep is not None:
            rows = [rows[i] for i in keep]
            predictions = [predictions[i] for i in keep]
            ids = [ids[i] for i in keep] if ids is not None else None
            raw = [raw[i] for i in keep] if raw is not None else None
        try:
            self._queue.put_nowait((time.time(), rows, ids, predictions, schema, answer, raw))
        except queue.Full:
            self.dropped.inc(len(rows))

    def flush(self, timeout: float = 10.0) -> bool:
        """Write every row offered so far now; whether the writer finished in time."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is buffered and stop the writer."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        pending: list = []
        rows = 0
        deadline = None
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if isinstance(item, threading.Event):  # flush(): write now, then say so
                if pending:
                    self._write(pending, rows)
                    pending, rows, deadline = [], 0, None
                item.set()
                continue
            if item is not None and item is not _STOP:
                if pending and item[4].names != pending[0][4].names:
                    self._write(pending, rows)  # one file, one set of columns
                    pending, rows = [], 0
                if not pending:
                    deadline = time.monotonic() + self.settings.rotate_seconds
                pending.append(item)
                rows += len(item[1])
            if pending and (item is None or item is _STOP or rows >= self.settings.rotate_rows):
                self._write(pending, rows)
                pending, rows, deadline = [], 0, None
            if item is _STOP:
                return

    def _write(self, pending: list, rows: int) -> None:
        try:
            table = to_table(pending)
            self._seq += 1
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(pending[0][0]))
            target = self.dir / f"requests-{stamp}-{os.getpid()}-{self._seq:06d}.parquet"
            tmp = target.with_name(f".{target.name}.tmp")
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, target)
        except Exception:  # a full disk must not stop serving: count and go on
            log.exception("request log: dropping %d sampled rows", rows)
            self.dropped.inc(rows)
            return
        self.written.inc(rows)
        self.files.inc()


def to_table(pending: list) -> pa.Table:
    """The Arrow table of queued (time, rows, ids, predictions, schema, answer, raw)
    tuples, which share one schema."""
    schema = pending[0][4]
    times, ids, versions, digests, predictions, rows, raws = [], [], [], [], [], [], []
    for ts, batch, batch_ids, scores, _, answer, raw in pending:
        n = len(batch)
        times += [int(ts * 1000)] * n
        ids += batch_ids if batch_ids is not None else [None] * n
        versions += [answer["version"]] * n
        digests += [answer["digest"]] * n
        predictions += scores
        rows += batch
        raws += [json.dumps(r, separators=(",", ":")) for r in raw] if raw else [None] * n
    columns = {
        "ts": times,
        "id": ids,
        "version": versions,
        "digest": digests,
        "prediction": predictions,
    }
    # float() first: the request check lets through any int that fits float32, such as
    # 2**64, which Arrow refuses to convert on its own, and one such row would cost the
    # whole buffer.
    columns |= {
        name: [None if (v := row[name]) is None else float(v) for row in rows]
        for name in schema.numeric
    }
    columns |= {name: [row[name] for row in rows] for name in schema.categorical}
    columns["raw"] = raws
    return pa.Table.from_pydict(columns, schema=arrow_schema(schema))
