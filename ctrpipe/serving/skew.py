"""The skew check: golden rows served from their raw records through the service's own
request path equal generate's rows, feature for feature and prediction for prediction.

Each sampled row is sent as a raw request body to `Service.predict`, with a snapshot
cut at the row's own time (the snapshot stage's skew sample holds each key's aggregates
at that time, from the function the snapshot's tables come from). Its looked-up features
are compared with the golden file's, bit for bit, and its answer with
`package.load().predict` on the golden row. Any difference is skew.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from ctrpipe.errors import DataError
from ctrpipe.serving import payload
from ctrpipe.serving.service import Service


def check(package_path, sample: pa.Table, golden: pa.Table) -> dict:
    """Skew figures for the `sample` rows (the first column is the golden id)."""
    service = Service(backend="onnx")  # the package's own predict is ONNX Runtime's
    model = service.load(package_path)
    if model.online is None:
        raise DataError(f"{package_path}: no online snapshot to check")
    key = sample.column_names[0]
    records = sample.to_pylist()
    ids = [r[key] for r in records]
    expected = golden.filter(pc.is_in(golden[key], pa.array(ids)))
    if expected.num_rows != len(ids):
        raise DataError(f"golden: {expected.num_rows} of the sample's {len(ids)} ids found")
    order = {v: i for i, v in enumerate(expected[key].to_pylist())}
    rows = expected.to_pylist()
    scores = model.loaded.predict(expected).tolist()
    spec = model.online.snapshot.spec
    columns = spec["history"]["columns"]

    differ = {name: 0 for name in model.loaded.schema.names}
    rows_different = predictions_different = 0
    largest = 0.0
    for record in records:
        at = model.online.at(
            {
                k: {record[k]: tuple(record[c] for c in columns[k])}
                for k in spec["history"]["keys"]
                if record[k] is not None
            }
        )
        raw = {c: payload.json_value(record[c]) for c in spec["request"]}
        status, answer = service.predict(json.dumps({"row": raw}).encode(), online=at)
        if status != 200:
            raise DataError(f"golden row {record[key]}: the service answered {status}: {answer}")
        looked_up = at.features_of(raw)
        golden_row = rows[order[record[key]]]
        wrong = [n for n in differ if not _same(looked_up[n], golden_row[n])]
        for name in wrong:
            differ[name] += 1
        served, wanted = answer["predictions"][0], scores[order[record[key]]]
        rows_different += bool(wrong) or served != wanted
        predictions_different += served != wanted
        largest = max(largest, abs(served - wanted))
    return {
        "rows_checked": len(records),
        "rows_different": rows_different,
        "predictions_different": predictions_different,
        "max_prediction_difference": largest,
        "features_different": {n: c for n, c in differ.items() if c},
        "snapshot": model.online.snapshot.digest,
    }


def _same(a, b) -> bool:
    """Equal values of the same type: 1.0 is not "1.0", and floats compare exactly."""
    return a is None and b is None or type(a) is type(b) and a == b
