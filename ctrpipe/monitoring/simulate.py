"""Replay labelled rows as traffic against a running service, with or without drift.

`simulate` (cli.py) uses these to show the monitoring loop end to end: clean traffic
from the validation set, then the same rows with a configured drift (conf/simulate/),
each followed by `monitor`. The rows' event ids go with them as request ids, and their
labels are written as the delayed clicks, so the monitor can join them.

By default the requests are raw, as an ad server sends them: the replayed rows' base
records from data/raw, served with an online snapshot cut at the earliest of them, so
the service looks up what it would have known then and no row sees its own click.
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
from ctrpipe.serving import payload


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


def default_drift(
    table: pa.Table, schema: FeatureSchema, fields: list[str], gain: dict[str, float]
) -> dict:
    """A drift any package shows, built from its own features that the requests carry
    (`fields`): the first categorical feature's rarest value given to 60% of the rows,
    and the numeric feature the model leans on most (by total gain) moved by two
    standard deviations."""
    spec = {}
    categorical = [n for n in schema.categorical if n in fields]
    numeric = [n for n in schema.numeric if n in fields]
    if categorical:
        name = categorical[0]
        known = set(schema.categorical[name])  # a value the model has a code for
        counts = [
            c
            for c in pc.value_counts(table.column(name).drop_null()).to_pylist()
            if c["values"] in known
        ]
        if counts:
            rarest = min(counts, key=lambda c: (c["counts"], str(c["values"])))
            spec[name] = {"set": rarest["values"], "fraction": 0.6}
    if numeric:
        name = max(numeric, key=lambda n: (gain.get(n, 0.0), n))
        spread = pc.stddev(table.column(name).cast(pa.float64())).as_py() or 1.0
        spec[name] = {"shift": round(2 * spread, 6)}
    return spec


def check_drift(spec: dict, fields: list[str]) -> None:
    unknown = [name for name in spec if name not in fields]
    if unknown:
        raise ConfigError(
            f"simulate.drift: '{unknown[0]}' is not a feature of the package's requests "
            f"(they carry: {', '.join(fields)})"
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
            moved = pc.add(
                pc.multiply(column.cast(pa.float64()), change.get("scale", 1.0)),
                change.get("shift", 0.0),
            )
            # A raw record's integer field stays an integer: the service refuses 13.9
            # for an hour.
            whole = pa.types.is_integer(column.type)
            column = pc.round(moved).cast(column.type) if whole else moved
        else:
            raise ConfigError(
                f"simulate.drift.{name}: give 'set' (with 'fraction'), 'scale' or 'shift'"
            )
        table = table.set_column(table.column_names.index(name), name, column)
    return table


def requests(table: pa.Table, fields: list[str], id_column: str, batch: int) -> list[bytes]:
    """POST /predict bodies of `batch` rows each: `fields` of each row, `id_column` as
    their ids."""
    missing = [c for c in [*fields, id_column] if c not in table.column_names]
    if missing:
        raise DataError(f"replayed rows: column '{missing[0]}' missing")
    columns = [table.column(name).to_pylist() for name in fields]
    rows = [
        {name: payload.json_value(v) for name, v in zip(fields, values)} for values in zip(*columns)
    ]
    ids = [str(i) for i in table.column(id_column).to_pylist()]
    return [
        json.dumps({"rows": rows[i : i + batch], "ids": ids[i : i + batch]}).encode()
        for i in range(0, len(rows), batch)
    ]


def raw_traffic(repo: Path, folder: Path, rows: pa.Table, spark, out: Path) -> pa.Table:
    """The base records of `rows` (a split's) from the project's data/raw, as a client
    sends them, and an online snapshot cut at the earliest of them written to `out`:
    traffic after the cut, as a served snapshot meets it."""
    from ctrpipe import config, manifest
    from ctrpipe.data import dataset
    from ctrpipe.online import refresh, snapshot

    params = config.load(repo / config.PARAMS_FILE)
    data = refresh.matching_data(
        params,
        folder,
        "simulate replays raw records of the data config the model was built "
        "with (or set simulate.contract: features)",
    )
    labelled = dataset.label(
        spark, data, repo / paths.RAW, params.section("spark", config.Spark).broadcast_max_rows
    )
    key = labelled.key  # the splits' id column
    ids = rows.column(key).cast(pa.string()).to_pylist()
    found = snapshot.raw_records(labelled, data, ids)
    (records,) = snapshot.to_arrow({"records": found}, {"records": [key]}).values()
    if records.num_rows != len(ids):
        raise DataError(
            f"{repo / paths.RAW}: the records of {records.num_rows:,} of the {len(ids):,} "
            f"replayed rows found; the splits were built from other raw data (run `dvc repro`)"
        )
    cut = pc.min(rows.column(data.time)).as_py().replace(tzinfo=None) if data.time else None
    manifest.write(out, snapshot.build(labelled, data, cut))
    return records


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
    from ctrpipe.serving.rest.server import Server
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
    table, fields, snapshot = rows, schema.names, None
    if s.contract == "raw":
        snapshot = repo / s.out / "snapshot"
        shutil.rmtree(snapshot, ignore_errors=True)
        table = raw_traffic(repo, folder, rows, spark, snapshot)
        fields = [c for c in table.column_names if c != schema.id]
        say(f"raw requests ({', '.join(fields)}), snapshot cut at the earliest replayed row")
    check_drift(s.drift, fields)
    spec = s.drift or default_drift(table, schema, fields, model_gain(folder))
    say(f"drifted phase: {json.dumps(spec, sort_keys=True)}")
    command = [sys.executable if w == "python" else w for w in s.retrain_command]
    results = {}
    for phase, sent_rows in (("clean", table), ("drifted", drifted(table, spec, s.seed + 1))):
        out = repo / s.out / phase
        shutil.rmtree(out, ignore_errors=True)
        service = Service(log=RequestLog(dir=str(out / "logs"), sample_rate=1.0), snapshot=snapshot)
        server = Server(("127.0.0.1", 0), service).start()
        try:
            service.load(folder, version)
            sent = replay(server.url, requests(sent_rows, fields, schema.id, s.batch))
            service.log.flush()
            say(
                f"{phase}: replayed {sent.rows} rows in {sent.requests} requests to "
                f"{server.url} ({sent.seconds:.1f} s; statuses {sent.statuses})"
            )
            pq.write_table(labels(rows, schema), out / "labels.parquet")
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
