"""Benchmark the column paths in process, on one thread: V2 feature tensors and /predict
candidate batches.

    python bench/candidates.py                   # models/package, rows from validation
    python bench/candidates.py --repeats 7 --seconds 1

1. V2 inference (v2.request_from_json + Service.infer) of 1,000-row feature tensors, as
   JSON decodes them (lists), rows/s; beside it the model's predict alone on the same
   matrix, and RowEncoder.encode of the same rows as dicts.
2. POST /predict bodies of one context and 100 candidates varying the campaign (raw
   fields, features looked up), Service.predict(body bytes) end to end, predictions/s;
   beside it the same merged rows as a {"rows": [...]} body.

Each figure is the best of --repeats runs of --seconds each (other work on the machine
only slows a run down). Without models/package it builds the tests' tiny package.
Targets: V2 >= 1,000,000 rows/s; candidates >= 500,000 predictions/s. Prints figures only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ctrpipe import paths
from ctrpipe.model import package
from ctrpipe.release.registry import ARTIFACT
from ctrpipe.serving import v2
from ctrpipe.serving.service import Service

TARGETS = {"v2_rows_s": 1_000_000, "candidates_predictions_s": 500_000}


def best_rate(fn, items: list, per_call: int, repeats: int, seconds: float) -> float:
    """The best of `repeats` runs of calls of `fn` cycling through `items`: units/s."""
    for item in items[:20]:
        fn(item)
    best = 0.0
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            fn(items[calls % len(items)])
            calls += 1
        best = max(best, calls * per_call / elapsed)
    return best


def feature_rows(service: Service, validation: Path, n: int) -> list[dict]:
    names = service.model.loaded.schema.names
    if validation.is_file():
        table = pq.read_table(validation).select(names)
        while table.num_rows < n:
            table = pa.concat_tables([table, table])
        return table.slice(0, n).to_pylist()
    from tests.support.models import traffic

    return traffic(n * 2, 3, sample=False).select(names).slice(0, n).to_pylist()


def v2_documents(service: Service, rows: list[dict], size: int) -> list[dict]:
    """V2 JSON requests of `size` rows each, as the JSON decoder gives them."""
    schema = service.model.loaded.schema
    docs = []
    for start in range(0, len(rows) - size + 1, size):
        part = rows[start : start + size]
        inputs = [
            {
                "name": name,
                "datatype": "BYTES" if name in schema.categorical else "FP32",
                "shape": [size],
                "data": [r[name] for r in part],
            }
            for name in schema.names
        ]
        docs.append(json.loads(json.dumps({"inputs": inputs})))
    return docs


def raw_contexts(service: Service, n: int) -> list[dict]:
    """Raw records: the skew sample's, else the tests' tiny ones."""
    online = service.model.online
    sample = Path(paths.SKEW_SAMPLE)
    if sample.is_file():
        table = pq.read_table(sample).select(online.request)
        records = [
            {c: v.isoformat() if isinstance(v, dt.datetime) else v for c, v in r.items()}
            for r in table.to_pylist()
        ]
        return records[:n]
    from tests.serving.test_raw_requests import RECORDS

    return RECORDS


def candidate_bodies(service: Service, contexts: list[dict], size: int) -> tuple[list, list]:
    """Candidate batch bodies (campaigns from the snapshot, a few unseen) and the same
    merged rows as {"rows": ...} bodies."""
    rng = random.Random(0)
    online = service.model.online
    join = next(i for i, j in enumerate(online.joins) if j["base_keys"] == ["campaign_id"])
    campaigns = list(online.dims[join])[:200] + ["c-unseen-1", "c-unseen-2"]
    batches, rows = [], []
    for context in contexts:
        candidates = [{"campaign_id": rng.choice(campaigns)} for _ in range(size)]
        batches.append(json.dumps({"context": context, "candidates": candidates}).encode())
        rows.append(json.dumps({"rows": [context | c for c in candidates]}).encode())
    return batches, rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--package", default=paths.PACKAGE)
    parser.add_argument("--validation", default=paths.VALIDATION)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rows", type=int, default=1000, help="rows per V2 request")
    parser.add_argument("--candidates", type=int, default=100, help="candidates per batch")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path, validation = Path(args.package), Path(args.validation)
        if not (path / package.MANIFEST).is_file():
            from tests.support.models import build_packages

            print(f"{path}: no package; building the tests' tiny package")
            path, validation = build_packages(Path(tmp))[0]["a"], Path(tmp) / "none"
        service = Service(max_batch=max(args.rows, args.candidates))
        model = service.load(path)
        names = model.loaded.schema.names
        print(f"package {model.loaded.digest[:12]}: {len(names)} features, {model.backend}")

        rows = feature_rows(service, validation, args.rows * 10)
        docs = v2_documents(service, rows, args.rows)
        r = args.repeats, args.seconds

        def v2_infer(doc):
            return service.infer(ARTIFACT, None, v2.request_from_json(doc))

        x = model.encoder.encode(rows[: args.rows])
        parts = [rows[i : i + args.rows] for i in range(0, len(rows), args.rows)]
        figures = {
            "V2 infer, request_from_json included": best_rate(v2_infer, docs, args.rows, *r),
            "  the model's predict alone": best_rate(model.predict, [x], args.rows, *r),
            "  RowEncoder.encode + predict (dict rows)": best_rate(
                model.score, parts, args.rows, *r
            ),
        }
        print(f"\n{args.rows}-row V2 feature tensors (rows/s, best of {args.repeats})")
        for name, rate in figures.items():
            print(f"  {name:44} {rate:12,.0f}")
        v2_rate = figures["V2 infer, request_from_json included"]
        target = TARGETS["v2_rows_s"]
        print(f"  target {target:,}: {'met' if v2_rate >= target else 'NOT met'}")

        if model.online is None:
            print("\nno online snapshot: no raw candidate batches to time")
            return
        batches, merged = candidate_bodies(service, raw_contexts(service, 50), args.candidates)
        assert all(service.predict(b)[0] == 200 for b in batches[:5])
        batch_rate = best_rate(service.predict, batches, args.candidates, *r)
        rows_rate = best_rate(service.predict, merged, args.candidates, *r)
        print(f"\n{args.candidates}-candidate /predict bodies, raw (predictions/s)")
        print(f"  {'Service.predict, context + candidates':44} {batch_rate:12,.0f}")
        print(f"  {'  the same merged rows as rows':44} {rows_rate:12,.0f}")
        target = TARGETS["candidates_predictions_s"]
        print(f"  target {target:,}: {'met' if batch_rate >= target else 'NOT met'}")


if __name__ == "__main__":
    main()
