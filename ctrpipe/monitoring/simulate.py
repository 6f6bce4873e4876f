"""Replay labelled rows as traffic against a running service, with or without drift.

`simulate` (cli.py) uses these to show the monitoring loop end to end: clean traffic
from the validation set, then the same rows with a configured drift (conf/simulate/),
each followed by `monitor`. The rows' event ids go with them as request ids, and their
labels are written as the delayed clicks, so the monitor can join them.
"""

from __future__ import annotations

import http.client
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ctrpipe import paths
from ctrpipe.errors import ConfigError, DataError
from ctrpipe.model.encoding import FeatureSchema


@dataclass(frozen=True)
class Replay:
    rows: int
    requests: int
    statuses: dict[int, int]
    seconds: float


def sample(table: pa.Table, rows: int, seed: int) -> pa.Table:
    """`rows` rows of `table` drawn without replacement (all of them if it has fewer)."""
    if table.num_rows == 0:
        raise DataError("no rows to replay")
    if rows >= table.num_rows:
        return table
    index = np.sort(np.random.default_rng(seed).choice(table.num_rows, rows, replace=False))
    return table.take(pa.array(index))


def default_drift(table: pa.Table, schema: FeatureSchema, gain: dict[str, float]) -> dict:
    """A drift any package shows, built from its own features: the first categorical
    feature's rarest value given to 60% of the rows, and the numeric feature the model
    leans on most (by total gain) moved by two standard deviations."""
    spec = {}
    if schema.categorical:
        name = next(iter(schema.categorical))
        known = set(schema.categorical[name])  # a value the model has a code for
        counts = [
            c
            for c in pc.value_counts(table.column(name).drop_null()).to_pylist()
            if c["values"] in known
        ]
        if counts:
            rarest = min(counts, key=lambda c: (c["counts"], str(c["values"])))
            spec[name] = {"set": rarest["values"], "fraction": 0.6}
    if schema.numeric:
        name = max(schema.numeric, key=lambda n: (gain.get(n, 0.0), n))
        spread = pc.stddev(table.column(name).cast(pa.float64())).as_py() or 1.0
        spec[name] = {"shift": round(2 * spread, 6)}
    return spec


def check_drift(spec: dict, schema: FeatureSchema) -> None:
    unknown = [name for name in spec if name not in schema.names]
    if unknown:
        raise ConfigError(
            f"simulate.drift: '{unknown[0]}' is not a feature of the package (its features: "
            f"{', '.join(schema.names)})"
        )


def drifted(table: pa.Table, spec: dict, seed: int) -> pa.Table:
    """`table` with a drift applied, per column of `spec`:
    {"set": value, "fraction": f}   a fraction f of the rows get this value (a new
                                    device mix, a new country ...)
    {"scale": k}                    numbers multiplied by k (a shifted price)
    {"shift": d}                    numbers moved by d
    """
    rng = np.random.default_rng(seed)
    for name, change in spec.items():
        if name not in table.column_names:
            raise ConfigError(f"simulate.drift: no column '{name}' in the replayed rows")
        column = table.column(name)
        if "set" in change:
            hit = rng.random(table.num_rows) < float(change.get("fraction", 1.0))
            value = pa.scalar(change["set"]).cast(column.type)
            column = pc.if_else(pa.array(hit), value, column)
        elif "scale" in change or "shift" in change:
            if not pa.types.is_floating(column.type) and not pa.types.is_integer(column.type):
                raise ConfigError(
                    f"simulate.drift.{name}: scale and shift need a numeric "
                    f"column; '{name}' is {column.type}"
                )
            column = pc.add(
                pc.multiply(column.cast(pa.float64()), change.get("scale", 1.0)),
                change.get("shift", 0.0),
            )
        else:
            raise ConfigError(
                f"simulate.drift.{name}: give 'set' (with 'fraction'), 'scale' or 'shift'"
            )
        table = table.set_column(table.column_names.index(name), name, column)
    return table


def requests(table: pa.Table, schema: FeatureSchema, batch: int) -> list[bytes]:
    """POST /predict bodies of `batch` rows each, the schema's id column as their ids."""
    missing = [c for c in [*schema.names, schema.id] if c not in table.column_names]
    if missing:
        raise DataError(f"replayed rows: column '{missing[0]}' missing")
    columns = {name: table.column(name).to_pylist() for name in schema.names}
    ids = [str(i) for i in table.column(schema.id).to_pylist()]
    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    for row in rows:  # the service takes null, not NaN, for a missing number
        for name in schema.numeric:
            if row[name] is not None and row[name] != row[name]:
                row[name] = None
    return [
        json.dumps({"rows": rows[i : i + batch], "ids": ids[i : i + batch]}).encode()
        for i in range(0, len(rows), batch)
    ]


def model_gain(folder: Path) -> dict[str, float]:
    """Each feature's total gain in the package's model."""
    from ctrpipe.model import package

    booster = package.load_booster((folder / "model.ubj").read_bytes(), "model.ubj")
    return booster.get_score(importance_type="total_gain")


def replay(url: str, bodies: list[bytes], timeout: float = 30.0) -> Replay:
    """Send each body as POST /predict on one keep-alive connection; count statuses."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    statuses: dict[int, int] = {}
    rows = 0
    started = time.perf_counter()
    try:
        for body in bodies:
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            answer = conn.getresponse()
            payload = answer.read()
            statuses[answer.status] = statuses.get(answer.status, 0) + 1
            if answer.status == 200:
                rows += len(json.loads(payload)["predictions"])
    finally:
        conn.close()
    return Replay(rows, len(bodies), statuses, time.perf_counter() - started)


def labels(table: pa.Table, schema: FeatureSchema) -> pa.Table:
    """The delayed clicks of the replayed rows: (id, clicked)."""
    return pa.table(
        {
            "id": pc.cast(table.column(schema.id), pa.string()),
            "clicked": pc.cast(table.column(schema.label), pa.int8()),
        }
    )


def walkthrough(
    repo: Path, ops, folder: Path, version: str | None, spark, say=print
) -> dict[str, dict]:
    """Serve `folder`, replay clean and then drifted rows at it with every row logged,
    and run the monitor (with its actions) after each phase; the two results."""
    import pyarrow.parquet as pq

    from ctrpipe.config import updated
    from ctrpipe.model import package
    from ctrpipe.monitoring import run
    from ctrpipe.serving.http import Server
    from ctrpipe.serving.service import Service
    from ctrpipe.serving.settings import RequestLog

    s = ops.simulate
    source = (
        repo
        / {"train": paths.TRAIN, "validation": paths.VALIDATION, "golden": paths.GOLDEN}[s.source]
    )
    if not source.exists():
        raise DataError(
            f"{source}: not found; run `dvc repro` first (simulate replays the validation rows)"
        )
    rows = sample(pq.read_table(source), s.rows, s.seed)
    schema = package.load(folder).schema
    check_drift(s.drift, schema)
    spec = s.drift or default_drift(rows, schema, model_gain(folder))
    say(f"drifted phase: {json.dumps(spec, sort_keys=True)}")
    command = [sys.executable if w == "python" else w for w in s.retrain_command]
    results = {}
    for phase, table in (("clean", rows), ("drifted", drifted(rows, spec, s.seed + 1))):
        out = repo / s.out / phase
        shutil.rmtree(out, ignore_errors=True)
        service = Service(log=RequestLog(dir=str(out / "logs"), sample_rate=1.0))
        server = Server(("127.0.0.1", 0), service).start()
        try:
            service.load(folder, version)
            sent = replay(server.url, requests(table, schema, s.batch))
            service.log.flush()
            say(
                f"{phase}: replayed {sent.rows} rows in {sent.requests} requests to "
                f"{server.url} ({sent.seconds:.1f} s; statuses {sent.statuses})"
            )
            pq.write_table(labels(table, schema), out / "labels.parquet")
            retrain = {"kind": "command", "command": command} if command else {}
            settings = updated(
                ops.monitor,
                {
                    "logs": str(out / "logs"),
                    "labels": str(out / "labels.parquet"),
                    "out": str(out),
                    "engineering": {"metrics_url": f"{server.url}/metrics"},
                    "actions": {"retrain": retrain},
                },
            )
            results[phase], _ = run.monitor(
                run.Options(repo, settings, package=folder), spark=spark
            )
        finally:
            server.stop()
    return results
