"""Raw requests over real HTTP: the service looks up what an ad server does not know
from the package's online snapshot, answers as it does for the features themselves,
labels the contract on its metrics, logs the raw record beside the looked-up features,
and refuses a bad record or a mismatched snapshot without dropping what it serves."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctrpipe import manifest
from ctrpipe.errors import DataError
from ctrpipe.online import store
from ctrpipe.serving.rest.server import Server
from ctrpipe.serving.service import Service
from ctrpipe.serving.settings import RequestLog
from tests.conftest import make_data
from tests.serving.test_serve import metric_samples
from tests.support import snapshots
from tests.support.client import UNSHED, Client, Load
from tests.support.models import close, expected

pytestmark = pytest.mark.integration

RECORDS = [
    {
        "ts": "2026-01-14T10:30:00Z",
        "campaign_id": "c1",
        "slot_id": "s2",
        "device": "mobile",
        "floor_price": 1.5,
        "user_id": "u1",
        "country": "US",
    },
    # unknown campaign and slot (no position: the left join's null), a null price
    {
        "ts": "2026-01-14T11:00:00Z",
        "campaign_id": "c-new",
        "slot_id": "s-new",
        "device": "ctv",
        "floor_price": None,
    },
]
# What the tiny snapshot's slots give: position = index % 5 + 1
FEATURES = [
    {"device": "mobile", "campaign_id": "c1", "floor_price": 1.5, "position": 3.0},
    {"device": "ctv", "campaign_id": "c-new", "floor_price": None, "position": None},
]


@pytest.fixture(scope="module")
def server(packages, tmp_path_factory):
    folders, _ = packages
    logs = tmp_path_factory.mktemp("logs")
    service = Service(max_batch=50, log=RequestLog(dir=str(logs), sample_rate=1.0))
    service.load(folders["a"], "v1.0.0")
    srv = Server(("127.0.0.1", 0), service).start()
    yield srv
    srv.stop(grace=5)


def test_a_raw_request_is_answered_as_its_looked_up_features_are(server, packages):
    folders, _ = packages
    client = Client(server)
    status, raw = client.predict({"rows": RECORDS, "ids": ["r1", "r2"]})
    assert status == 200, raw
    assert raw["predictions"] == close(expected(folders["a"], FEATURES))
    status, sent = client.predict({"rows": FEATURES})
    assert (status, sent["predictions"]) == (200, raw["predictions"])


def test_metrics_label_the_contract_and_show_the_snapshot(server, packages):
    client = Client(server)
    before = metric_samples(client)
    assert client.predict({"rows": RECORDS})[0] == 200
    assert client.predict({"row": FEATURES[0]})[0] == 200
    after = metric_samples(client)
    rows = "ctrpipe_predicted_rows_total"
    for contract, n in (("raw", 2), ("features", 1)):
        key = (rows, (("contract", contract),))
        assert after[key] - before.get(key, 0) == n
    cut = after[("ctrpipe_snapshot_cut_timestamp_seconds", ())]
    assert cut == snapshots.CUT.replace(tzinfo=dt.timezone.utc).timestamp()
    (info,) = [dict(labels) for (name, labels) in after if name == "ctrpipe_snapshot_info"]
    assert info["digest"] == store.load(packages[0]["a"] / store.FOLDER).digest


def test_the_request_log_keeps_the_raw_record_and_the_looked_up_values(server):
    client = Client(server)
    assert client.predict({"rows": RECORDS, "ids": ["log1", "log2"]})[0] == 200
    server.service.log.flush()
    rows = [
        r
        for f in sorted(server.service.log.dir.glob("requests-*.parquet"))
        for r in pq.read_table(f).to_pylist()
        if r["id"] in ("log1", "log2")
    ]
    assert [r["position"] for r in rows] == [3.0, None]
    assert json.loads(rows[0]["raw"]) == RECORDS[0]


@pytest.mark.parametrize(
    "change, field",
    [({"ts": "soon"}, "ts"), ({"slot_id": 5}, "slot_id"), ({"camp": "c1"}, "camp")],
)
def test_a_bad_raw_row_is_a_422_naming_field_and_row(server, change, field):
    client = Client(server)
    records = [RECORDS[0], RECORDS[0] | change]
    status, answer = client.predict({"rows": records})
    assert (status, answer["field"], answer["row"]) == (422, field, 1), answer
    missing = {k: v for k, v in RECORDS[0].items() if k != "ts"}
    status, answer = client.predict({"row": missing})
    assert (status, answer["field"]) == (422, "ts")


def test_a_mismatched_snapshot_is_refused_and_the_served_one_stays(server, packages, tmp_path):
    folders, _ = packages
    client = Client(server)
    # built with other features (the default data config's, with history and time)
    other = snapshots.write(tmp_path / "other", make_data(), snapshots.full(make_data()))
    service = Service(snapshot=other)
    with pytest.raises(DataError, match=f"{other}: built with another feature config"):
        service.load(folders["a"])
    assert service.model is None

    tampered = tmp_path / "tampered"
    shutil.copytree(folders["a"], tampered)
    name = f"{store.FOLDER}/{store.dimension_file('slots')}"
    (tampered / name).write_bytes(b"PAR1")
    with pytest.raises(DataError, match=f"{name}: sha256 mismatch"):
        server.service.load(tampered)
    assert client.predict({"rows": RECORDS})[0] == 200  # the loaded package still serves
    assert server.service.model.loaded.path == folders["a"]


def test_a_package_without_a_snapshot_takes_features_only(packages, tmp_path):
    folders, _ = packages
    bare = tmp_path / "bare"
    shutil.copytree(folders["a"], bare)
    shutil.rmtree(bare / store.FOLDER)
    files = {p.name: p.read_bytes() for p in bare.iterdir() if p.name != "manifest.json"}
    manifest.write(bare, files)
    service = Service()
    service.load(bare)
    assert service.predict(json.dumps({"row": FEATURES[0]}).encode())[0] == 200
    status, answer = service.predict(json.dumps({"row": RECORDS[0]}).encode())
    assert (status, answer["field"]) == (422, "position")  # a feature it cannot look up


def refreshed(folder, cut: dt.datetime, position_shift: int) -> None:
    """A snapshot for the tiny model as `features refresh` lays it out (<folder>/<digest>),
    its slots' positions moved by `position_shift`."""
    tables = snapshots.dimensions()
    name = store.dimension_file("slots")
    slots = tables[name]
    moved = [p % 5 + 1 for p in (v + position_shift for v in slots["position"].to_pylist())]
    tables[name] = slots.set_column(2, "position", pa.array(moved, pa.int32()))
    staged = snapshots.write(folder / ".new", snapshots.tiny_data(), tables, cut)
    staged.rename(folder / manifest.digest(staged))


def test_a_refreshed_snapshot_is_swapped_in_under_load_failing_nothing(server, packages, tmp_path):
    folders, _ = packages
    kept = tmp_path / "snapshots"
    kept.mkdir()
    refreshed(kept, snapshots.CUT + dt.timedelta(days=1), 1)
    # Built for other features: never chosen, however new.
    snapshots.write(
        kept / "other", make_data(), snapshots.dimensions(), snapshots.CUT + dt.timedelta(days=9)
    )
    service = Service(snapshot=kept)
    service.load(folders["a"], "v1.0.0")
    assert service.model.online.snapshot.cut == snapshots.CUT + dt.timedelta(days=1)
    assert service.refresh_online() is False  # nothing newer

    body = json.dumps({"row": RECORDS[0]}).encode()
    srv = Server(("127.0.0.1", 0), service, deadline_ms=UNSHED).start()
    try:
        before = Client(srv).predict(json.loads(body))[1]["predictions"]
        with Load(srv, json.loads(body), threads=4) as load:
            load.wait_for(20)
            refreshed(kept, snapshots.CUT + dt.timedelta(days=2), 2)
            assert service.refresh_online() is True
            load.wait_for(20)
            load.stop()
        after = Client(srv).predict(json.loads(body))[1]["predictions"]
    finally:
        srv.stop(grace=5)
    assert all(status == 200 for status, _ in load.results), load.results[:3]
    assert service.model.online.snapshot.cut == snapshots.CUT + dt.timedelta(days=2)
    assert after != before  # slot s2's position moved with the snapshot
    answers = {tuple(a["predictions"]) for _, a in load.results}
    assert answers <= {tuple(before), tuple(after)}


def test_a_broken_newer_snapshot_is_refused_and_the_served_one_stays(packages, tmp_path):
    folders, _ = packages
    kept = tmp_path / "snapshots"
    kept.mkdir()
    refreshed(kept, snapshots.CUT + dt.timedelta(days=1), 1)
    service = Service(snapshot=kept)
    service.load(folders["a"])
    served = service.model.online.snapshot.digest
    refreshed(kept, snapshots.CUT + dt.timedelta(days=2), 2)
    newest = store.newest(kept, service.model.online.snapshot.config)
    (newest / store.dimension_file("slots")).write_bytes(b"PAR1")
    with pytest.raises(DataError, match="sha256 mismatch"):
        service.refresh_online()
    assert service.model.online.snapshot.digest == served
    assert service.predict(json.dumps({"row": RECORDS[0]}).encode())[0] == 200
