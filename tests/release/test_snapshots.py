"""Refreshed snapshots through the DVC remote (ctrpipe/release/snapshots.py): published
to a real S3 server (SeaweedFS on loopback), brought down byte for byte, the newest cut
of the model's feature config chosen, a tampered or missing file refused with nothing
left behind, and a service following production swapping to what came down."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest
import s3fs

from ctrpipe.errors import DataError
from ctrpipe.online import store
from ctrpipe.release import remote, snapshots
from ctrpipe.serving.follow import Follower
from ctrpipe.serving.service import Service
from tests.conftest import ROOT, make_data
from tests.support import snapshots as made
from tests.support.project import folder_files

pytestmark = pytest.mark.integration


@pytest.fixture
def repo(tmp_path, s3, monkeypatch) -> Path:
    """A git and DVC repository with the project's remote, under a prefix of its own."""
    monkeypatch.setenv("CTRPIPE_S3_PREFIX", tmp_path.name)
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=root, check=True)
    shutil.copy(ROOT / ".dvc/config", root / ".dvc/config")
    return root


def snapshot_at(folder: Path, days: int, budget: float = 100.0, data=None) -> store.Snapshot:
    tables = made.dimensions()
    campaigns = store.dimension_file("campaigns")
    tables[campaigns] = tables[campaigns].set_column(
        3, "daily_budget", pa.array([budget] * tables[campaigns].num_rows)
    )
    cut = made.CUT + dt.timedelta(days=days)
    return store.load(made.write(folder, data or made.tiny_data(), tables, cut))


def bucket(s3) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(
        endpoint_url=s3.endpoint, key=s3.access_key, secret=s3.secret_key, skip_instance_cache=True
    )


def test_published_snapshots_come_down_byte_for_byte_and_the_newest_cut_wins(repo, tmp_path):
    where, into = remote.resolve(repo), tmp_path / "into"
    older = snapshot_at(tmp_path / "older", days=0)
    assert snapshots.sync(repo, where, older.config, into) is None  # nothing published yet

    snapshots.publish(repo, where, older.path)
    got = snapshots.sync(repo, where, older.config, into)
    assert got == into / older.digest
    assert folder_files(got) == folder_files(older.path)

    newer = snapshot_at(tmp_path / "newer", days=1, budget=250.0)
    snapshots.publish(repo, where, newer.path)
    other = make_data(
        features={"categorical": ["device"], "numeric": ["floor_price"], "time": []},
        history={"keys": []},
        slices=["device"],
    )
    elsewhere = snapshot_at(tmp_path / "other", days=5, data=other)
    snapshots.publish(repo, where, elsewhere.path)  # another feature config, later
    assert elsewhere.config != newer.config
    got = snapshots.sync(repo, where, newer.config, into)
    assert got == into / newer.digest
    assert folder_files(got) == folder_files(newer.path)
    assert store.load(got).cut == made.CUT + dt.timedelta(days=1)
    assert snapshots.sync(repo, where, newer.config, into) == got  # there already


def test_a_tampered_or_missing_file_is_refused_and_nothing_is_left(repo, s3, tmp_path):
    where, into = remote.resolve(repo), tmp_path / "into"
    published = snapshot_at(tmp_path / "s", days=2, budget=321.0)
    snapshots.publish(repo, where, published.path)
    md5 = snapshots._md5((published.path / store.dimension_file("campaigns")).read_bytes())
    with remote.open_repo(repo, where) as dvc_repo:
        key = dvc_repo.cloud.get_remote_odb(where.name, "x").oid_to_path(md5)

    fs = bucket(s3)
    fs.pipe_file(key, b"not the table")
    with pytest.raises(DataError, match="campaigns.parquet is not the file its index lists"):
        snapshots.sync(repo, where, published.config, into)
    assert not into.exists() or list(into.iterdir()) == []

    fs.rm_file(key)
    with pytest.raises(remote.RemoteError, match="cannot download snapshot"):
        snapshots.sync(repo, where, published.config, into)
    assert not into.exists() or list(into.iterdir()) == []


def test_wrong_credentials_are_one_line_not_an_empty_remote(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(remote.RemoteError, match="DVC remote s3://"):
        snapshots.sync(repo, remote.resolve(repo), "0" * 64, tmp_path / "into")


def test_a_following_service_swaps_to_the_snapshot_published_for_its_model(
    repo, packages, tmp_path
):
    folders, _ = packages
    into = tmp_path / "snapshots"
    into.mkdir()
    service = Service(snapshot=into)
    own = service.load(folders["a"]).online.snapshot  # nothing in the folder: its own
    assert own.path.parent == folders["a"]
    newer = snapshot_at(tmp_path / "newer", days=3, budget=999.0)
    assert newer.config == own.config
    snapshots.publish(repo, remote.resolve(repo), newer.path)

    follower = Follower(service, repo, interval=3600, snapshots=into)
    try:
        assert follower.check() is None  # no production tag: only the snapshot moves
        assert service.refresh_online()
        assert service.model.online.snapshot.digest == newer.digest
    finally:
        service.close()
