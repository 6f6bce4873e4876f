"""Candidate batches: one impression's fields once (the context), the fields that vary
per ad (the candidates), one prediction per candidate, exactly the merged rows' when
sent one by one; the lookup computes what the context decides once and the rest per
candidate, to the same values features_of gives each record."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow.parquet as pq
import pytest

from ctrpipe.model.encoding import FeatureSchema
from ctrpipe.online import store
from ctrpipe.online.lookup import FieldError, Lookup
from ctrpipe.serving.payload import RowEncoder, split
from ctrpipe.serving.service import Service
from ctrpipe.serving.settings import RequestLog
from tests.conftest import make_data
from tests.online.test_lookup import RECORD
from tests.online.test_lookup import tables as history_tables
from tests.serving.test_raw_requests import FEATURES, RECORDS
from tests.support import snapshots

pytestmark = pytest.mark.unit

MAX_BATCH = 40
CAMPAIGNS = ["c0", "c1", "c2", "c3", "c4", "c-new", "c9"]  # the last two unseen
SLOTS = ["s0", "s1", "s5", "s-new"]


@pytest.fixture(scope="module")
def service(packages, tmp_path_factory):
    """The tiny package, ONNX Runtime serving (no compiler), every row logged."""
    folders, _ = packages
    logs = tmp_path_factory.mktemp("logs")
    service = Service(
        max_batch=MAX_BATCH, backend="onnx", log=RequestLog(dir=str(logs), sample_rate=1.0)
    )
    service.load(folders["a"], "v1.0.0")
    yield service
    service.close()


def predict(service, body) -> tuple[int, dict]:
    return service.predict(json.dumps(body).encode())


def one_by_one(service, context: dict, candidates: list[dict]) -> list[float]:
    out = []
    for candidate in candidates:
        status, answer = predict(service, {"row": context | candidate})
        assert status == 200, answer
        out += answer["predictions"]
    return out


def random_candidates(rng: random.Random, n: int) -> list[dict]:
    """Candidates that vary the campaign (a join and history key), some the slot (a
    join key), some override a context field (device, floor_price), with unseen keys."""
    out = []
    for _ in range(n):
        candidate = {"campaign_id": rng.choice(CAMPAIGNS)}
        if rng.random() < 0.3:
            candidate["slot_id"] = rng.choice(SLOTS)
        if rng.random() < 0.2:
            candidate["device"] = rng.choice(["mobile", "ctv", "never-seen"])
        if rng.random() < 0.2:
            candidate["floor_price"] = rng.choice([None, 0.5, 2, 1e-3])
        out.append(candidate)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_a_candidate_batch_is_its_merged_rows_one_by_one_bit_for_bit(service, seed):
    rng = random.Random(seed)
    candidates = random_candidates(rng, rng.randint(1, MAX_BATCH))
    context = RECORDS[rng.randint(0, 1)]
    status, answer = predict(service, {"context": context, "candidates": candidates})
    assert status == 200, answer
    assert answer["predictions"] == one_by_one(service, context, candidates)
    # and the matrices, bit for bit
    model = service.model
    rows = [model.online.features_of(context | c) for c in candidates]
    shared, columns = split(context, candidates)
    together = model.encoder.encode_columns(
        *model.online.columns_of(shared, columns, len(rows)), len(rows)
    )
    assert together.tobytes() == model.encoder.encode(rows).tobytes()


def test_features_sent_as_context_and_candidates_are_the_rows_one_by_one(service):
    context = {k: v for k, v in FEATURES[0].items() if k != "campaign_id"}
    candidates = [{"campaign_id": c} for c in CAMPAIGNS] + [{"campaign_id": None}]
    status, answer = predict(service, {"context": context, "candidates": candidates})
    assert status == 200, answer
    assert answer["predictions"] == one_by_one(service, context, candidates)


def test_the_context_may_be_empty_and_ids_go_one_per_candidate(service):
    candidates = [RECORDS[0], RECORDS[1]]
    status, answer = predict(service, {"candidates": candidates, "ids": ["a", "b"]})
    assert status == 200, answer
    assert answer["predictions"] == one_by_one(service, {}, candidates)


def test_the_request_log_keeps_each_candidate_as_its_merged_row(service):
    context = RECORDS[0]
    candidates = [{"campaign_id": "c2"}, {"campaign_id": "c-new", "floor_price": None}]
    ids = ["cand-1", "cand-2"]
    body = {"context": context, "candidates": candidates, "ids": ids}
    assert predict(service, body)[0] == 200
    for candidate, id_ in zip(candidates, ids, strict=True):
        row = {"row": context | candidate, "id": f"single-{id_}"}
        assert predict(service, row)[0] == 200
    service.log.flush()
    logged = {
        r["id"]: r
        for f in sorted(service.log.dir.glob("requests-*.parquet"))
        for r in pq.read_table(f).to_pylist()
    }
    for i, id_ in enumerate(ids):
        batch, single = logged[id_], logged[f"single-{id_}"]
        assert json.loads(batch["raw"]) == context | candidates[i]
        assert batch["raw"] == single["raw"]
        drop = ("ts", "id")
        assert {k: v for k, v in batch.items() if k not in drop} == {
            k: v for k, v in single.items() if k not in drop
        }


BAD = {  # name -> (body, status, field, row, words)
    "empty candidates": (
        {"context": RECORDS[0], "candidates": []},
        400,
        "candidates",
        None,
        "empty",
    ),
    "candidates not a list": ({"candidates": {"a": 1}}, 400, "candidates", None, "non-empty list"),
    "context only": ({"context": RECORDS[0]}, 400, "candidates", None, "non-empty list"),
    "context not an object": ({"context": [1], "candidates": [{}]}, 400, "context", None, "object"),
    "candidate not an object": (
        {"context": RECORDS[0], "candidates": [{}, 7]},
        400,
        None,
        1,
        "each candidate",
    ),
    "too many": (
        {"context": RECORDS[0], "candidates": [{}] * (MAX_BATCH + 1)},
        413,
        "candidates",
        None,
        f"at most {MAX_BATCH}",
    ),
    "unknown top-level key": (
        {"context": {}, "candidates": [{}], "rows": []},
        400,
        "rows",
        None,
        "unknown",
    ),
    "id beside candidates": ({"candidates": [RECORDS[0]], "id": "x"}, 400, "id", None, "unknown"),
    "ids of another length": (
        {"candidates": [RECORDS[0]], "ids": ["a", "b"]},
        400,
        "ids",
        None,
        "one id per row",
    ),
    "another JSON type than the context": (
        {"context": RECORDS[0], "candidates": [{}, {"floor_price": "1.5"}]},
        400,
        "floor_price",
        1,
        "a string where the context sends a number",
    ),
    "a bad candidate value": (
        {
            "context": {k: v for k, v in RECORDS[0].items() if k != "slot_id"},
            "candidates": [{"slot_id": "s1"}, {"slot_id": "s2"}, {"slot_id": 5}],
        },
        422,
        "slot_id",
        2,
        "expected string",
    ),
    "a bad context value": (
        {"context": RECORDS[0] | {"ts": "soon"}, "candidates": [{}]},
        422,
        "ts",
        None,
        "not a time",
    ),
    "a field no one gives": (
        {
            "context": {k: v for k, v in RECORDS[0].items() if k != "campaign_id"},
            "candidates": [{"campaign_id": "c1"}, {}],
        },
        422,
        "campaign_id",
        1,
        "missing",
    ),
    "unknown field in a candidate": (
        {"context": RECORDS[0], "candidates": [{"camp": "c1"}]},
        422,
        "camp",
        None,
        "unknown field",
    ),
    "a bad feature among features": (
        {
            "context": {k: v for k, v in FEATURES[0].items() if k != "device"},
            "candidates": [{"device": "mobile"}, {"device": 3}],
        },
        422,
        "device",
        1,
        "expected a string",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_candidate_batch_is_a_4xx_naming_the_field(service, case):
    body, status, field, row, words = BAD[case]
    got, answer = predict(service, body)
    assert (got, answer["field"], answer["row"]) == (status, field, row), answer
    assert words in answer["error"]


# The lookup on its own, with history keys and time features: the data config's full
# feature set (tests/online/test_lookup.py's snapshot), user_id nullable.
@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Lookup:
    data = make_data(tables={"impressions": {"columns": {"user_id": {"nullable": True}}}})
    folder = snapshots.write(tmp_path_factory.mktemp("snapshot") / "s", data, history_tables())
    return Lookup(store.load(folder))


def full_candidates(rng: random.Random, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        candidate = {"campaign_id": rng.choice(CAMPAIGNS)}
        for field, choices, p in (
            ("slot_id", ["s3", "s0", "s-new"], 0.3),
            ("user_id", ["u1", "u-new", None], 0.2),
            ("ts", ["2026-01-04T01:15:00+02:00", "2026-01-14 09:00:00"], 0.2),
            ("floor_price", [None, 3, 0.25], 0.2),
            ("country", ["US", "FR"], 0.1),
        ):
            if rng.random() < p:
                candidate[field] = rng.choice(choices)
        out.append(candidate)
    return out


def schema_of(lookup: Lookup) -> FeatureSchema:
    """A schema over the lookup's features, small vocabularies (so `other` is used)."""
    categorical = lookup.snapshot.spec["features"]["categorical"]
    numeric = lookup.snapshot.spec["features"]["numeric"]
    vocab = {"campaign_id": ["c1", "c2"], "slot_id": ["s3"], "device": ["mobile"]}
    return FeatureSchema(
        numeric=numeric,
        categorical={name: vocab.get(name, ["US", "a0", "retail", "p0"]) for name in categorical},
        id="event_id",
        time="ts",
        label="label",
        weight="weight",
    )


@pytest.mark.parametrize("seed", range(8))
def test_columns_of_gives_features_of_for_each_record(full, seed):
    rng = random.Random(seed)
    candidates = full_candidates(rng, rng.randint(1, 60))
    context = RECORD if seed % 2 else {k: v for k, v in RECORD.items() if k != "event_id"}
    shared, columns = split(context, candidates)
    shared_features, varying = full.columns_of(shared, columns, len(candidates))
    rows = [full.features_of(context | c) for c in candidates]
    assert "campaign_id" in varying
    for i, row in enumerate(rows):
        got = {
            name: varying[name][i] if name in varying else shared_features[name]
            for name in full.features
        }
        assert got == row
        assert [type(v) for v in got.values()] == [type(v) for v in row.values()]
    encoder = RowEncoder(schema_of(full))
    matrix = encoder.encode_columns(shared_features, varying, len(rows))
    assert matrix.tobytes() == encoder.encode(rows).tobytes()


def test_what_only_the_context_decides_is_looked_up_once(full):
    shared, columns = split(RECORD, [{"campaign_id": "c2"}, {"campaign_id": "c9"}])
    shared_features, varying = full.columns_of(shared, columns, 2)
    assert set(varying) == {
        "campaign_id",
        "advertiser_id",
        "category",
        "daily_budget",
        "hist_campaign_id_n",
        "hist_campaign_id_ctr",
        "hist_campaign_id_recent",
    }
    assert shared_features["hour"] == 10.0 and shared_features["hist_user_id_n"] == 12.0
    assert list(varying["hist_campaign_id_n"]) == [400.0, 0.0]  # c9 unseen: the prior's


NO_SLOT = {k: v for k, v in RECORD.items() if k != "slot_id"}


@pytest.mark.parametrize(
    "context, candidates, field, row",
    [
        (RECORD, [{}, {"ts": "soon"}], "ts", 1),
        (RECORD | {"ts": "soon"}, [{}], "ts", None),
        (RECORD, [{"floor_price": 10**400}], "floor_price", 0),
        (RECORD, [{}, {}, {"campaign_id": None}], "campaign_id", 2),  # not nullable
        (NO_SLOT, [{"user_id": None, "slot_id": "s1"}, {"slot_id": 1}], "slot_id", 1),
        ({k: v for k, v in RECORD.items() if k != "device"}, [{"device": "a"}, {}], "device", 1),
    ],
)
def test_columns_of_names_the_field_and_the_record(full, context, candidates, field, row):
    with pytest.raises(FieldError) as caught:
        full.columns_of(*split(context, candidates), len(candidates))
    assert (caught.value.field, caught.value.row) == (field, row)


def test_encode_columns_is_encode_bit_for_bit_on_awkward_values(packages):
    folders, validation = packages
    from ctrpipe.model import package
    from tests.support.models import request_rows

    schema = package.load(folders["a"]).schema
    encoder = RowEncoder(schema)
    extremes = [3.4e38, -3.4e38, 1e-45, 2**60 + 12345, 16777217, -0.0, 0, 1, 0.0, 1.0]
    for n in (1, 7, 32, 300):
        rows = request_rows(validation, schema, n) if n >= 4 else [{k: None for k in schema.names}]
        for i, row in enumerate(rows):
            row["floor_price"] = extremes[i % len(extremes)]
        columns = {name: [r[name] for r in rows] for name in schema.names}
        assert encoder.encode_columns({}, columns, n).tobytes() == encoder.encode(rows).tobytes()
        shared = {"device": rows[0]["device"], "position": rows[0]["position"]}
        merged = [r | shared for r in rows]
        varying = {k: v for k, v in columns.items() if k not in shared}
        got = encoder.encode_columns(shared, varying, n)
        assert got.tobytes() == encoder.encode(merged).tobytes()
    assert np.isnan(encoder.encode_columns({k: None for k in schema.names}, {}, 3)).all()
