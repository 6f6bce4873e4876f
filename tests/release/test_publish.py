"""Versions, the gate, publish, fetch and rollback end to end: a copy of the project in a
temp git repository with a bare `origin`, and a real S3 server (SeaweedFS) on loopback as
its DVC remote.

The tests share the repository and the server and run in file order: each builds on the
versions the previous ones published.
"""

from __future__ import annotations

import datetime as dt
import filecmp
import json
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import s3fs
import yaml

from ctrpipe import paths
from ctrpipe.online import store
from ctrpipe.release import fetch, publish, registry, remote
from tests.support.client import UNSHED
from tests.support.project import FEW_TREES, GATED, SMALL, attempt, copy_project, edit_conf, run
from tests.support.s3server import S3Server
from tests.support.served import Served

pytestmark = pytest.mark.slow

AUTHOR = ("Ada Publisher", "ada@example.com")
ONE_SHALLOW_TREE = [
    "model.num_boost_round=1",
    "sweep.n_trials=1",
    "sweep.space.max_depth.low=1",
    "sweep.space.max_depth.high=1",
]


@pytest.fixture(scope="module")
def repo(tmp_path_factory, s3) -> Path:
    root = tmp_path_factory.mktemp("publish")
    repo = copy_project(root / "project")
    edit_conf(repo, {**SMALL, "config.yaml": ("data: synthetic", "data: tiny")})
    run(["git", "init", "-q", "--bare", "-b", "main", str(root / "origin.git")], root)
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "config", "user.name", AUTHOR[0]], repo)
    run(["git", "config", "user.email", AUTHOR[1]], repo)
    run(["git", "remote", "add", "origin", str(root / "origin.git")], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "the project"], repo)  # dvclive needs a HEAD
    return repo


def build(repo: Path, *overrides: str) -> dict:
    """Compose params, `dvc repro`, commit: a candidate; its gate.json."""
    run([sys.executable, "-m", "ctrpipe.params", *GATED, *overrides], repo)
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", f"candidate {' '.join(overrides) or 'default'}"], repo)
    run(["git", "push", "-q", "origin", "main"], repo)
    return json.loads((repo / paths.GATE_REPORT).read_text())


def cli(repo: Path, *args: str, env: dict | None = None):
    return attempt([sys.executable, "-m", "ctrpipe", *args], repo, env)


def tags(repo: Path) -> set[str]:
    return set(run(["git", "tag"], repo).split())


def origin_tags(repo: Path) -> set[str]:
    return set(run(["git", "tag"], repo.parent / "origin.git").split())


@pytest.fixture(scope="module")
def kept(tmp_path_factory) -> Path:
    """Where a test keeps a copy of what it published, for a later test to compare."""
    return tmp_path_factory.mktemp("kept")


def where(repo: Path) -> remote.Remote:
    return remote.resolve(repo)


def test_first_model_passes_on_floors_and_is_published(repo, s3, kept):
    gate = build(repo, *FEW_TREES)
    assert gate["verdict"] == "pass", gate["reason"]
    assert gate["production"]["version"] is None
    assert {c["name"].split(".")[0] for c in gate["checks"]} == {"floor"}

    done = cli(repo, "publish")
    assert done.returncode == 0, done.stderr
    assert tags(repo) == origin_tags(repo) == {"model@v1.0.0", "model#prod#1"}
    # Everything dvc.lock lists is in the bucket, not only the model.
    lock = (repo / "dvc.lock").read_text()
    with remote.open_repo(repo, where(repo)) as dvc:
        head = registry.git(repo, "rev-parse", "HEAD").strip()
        assert remote.missing(dvc, where(repo), lock, registry.tracked(repo, head)) == []
    shutil.copytree(repo / paths.PACKAGE, kept / "v1.0.0")

    again = cli(repo, "publish")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert tags(repo) == {"model@v1.0.0", "model#prod#1"}


def test_production_is_an_input_of_the_gate(repo):
    out = run(["dvc", "repro"], repo)
    # production moved to v1.0.0, so the gate re-ran: now against itself, and failing.
    gate = json.loads((repo / paths.GATE_REPORT).read_text())
    assert gate["production"]["version"] == "v1.0.0"
    assert gate["verdict"] == "fail" and "production model" in gate["reason"]
    again = run(["dvc", "repro"], repo)
    assert "Running stage 'gate'" in out and "Running stage 'gate'" not in again
    assert [
        s
        for s in ("ingest", "generate", "train", "evaluate", "package")
        if f"Running stage '{s}'" in again
    ] == []
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "gate against v1.0.0"], repo)


def test_a_worse_candidate_is_rejected_with_the_failing_checks_named(repo):
    gate = build(repo, *ONE_SHALLOW_TREE)
    assert gate["verdict"] == "fail"
    failed = [c["name"] for c in gate["checks"] if not c["passed"]]
    assert {"margin.absolute", "significance"} <= set(failed), failed
    assert all(name in gate["reason"] for name in failed[:3]), gate["reason"]
    refused = cli(repo, "publish")
    assert refused.returncode == 1 and "did not pass" in refused.stderr
    assert tags(repo) == {"model@v1.0.0", "model#prod#1"}


def test_server_stopped_in_the_middle_of_a_publish_leaves_no_tag(repo, s3, monkeypatch):
    gate = build(repo)  # the default model: better than three shallow trees
    assert gate["verdict"] == "pass", gate["reason"]
    real_missing = remote.missing

    def stop_then_check(*args, **kwargs):  # after the push, before it is verified
        s3.stop()
        return real_missing(*args, **kwargs)

    monkeypatch.setattr(remote, "missing", stop_then_check)
    with pytest.raises(remote.RemoteError, match="cannot connect"):
        publish.publish(repo, where(repo))
    assert tags(repo) == origin_tags(repo) == {"model@v1.0.0", "model#prod#1"}

    s3.start()
    monkeypatch.setattr(remote, "missing", real_missing)
    # The tags' own push failing takes back the tags made locally too.
    origin = run(["git", "remote", "get-url", "origin"], repo).strip()
    run(["git", "remote", "set-url", "origin", str(repo.parent / "gone.git")], repo)
    with pytest.raises(registry.RegistryError, match="git push failed"):
        publish.publish(repo, where(repo))
    run(["git", "remote", "set-url", "origin", origin], repo)
    assert tags(repo) == origin_tags(repo) == {"model@v1.0.0", "model#prod#1"}

    outcome = publish.publish(repo, where(repo))
    assert outcome.version == "v1.1.0"  # same feature schema: a minor bump
    assert (
        tags(repo)
        == origin_tags(repo)
        == {"model@v1.0.0", "model#prod#1", "model@v1.1.0", "model#prod#2"}
    )


def test_wrong_credentials_are_a_clear_error(repo):
    refused = cli(repo, "rollback", env={"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ") and "access denied" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "model#prod#3" not in tags(repo)


def test_versions_and_history_read_from_git(repo):
    listed = json.loads(cli(repo, "versions", "--json").stdout)
    assert [v["version"] for v in listed] == ["v1.0.0", "v1.1.0"]
    assert [v["prod"] for v in listed] == ["", "*"]
    assert listed[1]["roc_auc"] > listed[0]["roc_auc"]
    assert all(len(v["train_md5"]) == 32 and len(v["package"]) == 64 for v in listed)
    trail = json.loads(cli(repo, "history", "--json").stdout)
    assert [(t["version"], t["author"], t["email"]) for t in trail] == [
        ("v1.0.0", *AUTHOR),
        ("v1.1.0", *AUTHOR),
    ]


def test_rollback_then_fetch_from_a_fresh_clone_is_byte_identical(repo, s3, kept, tmp_path):
    done = cli(repo, "rollback", "--reason", "p99 latency alarm")
    assert done.returncode == 0, done.stderr
    assert registry.production(repo).version == "v1.0.0"
    trail = registry.assignments(repo)
    assert [e.version for e in trail] == ["v1.0.0", "v1.1.0", "v1.0.0"]
    assert trail[-1].message == "rollback from v1.1.0 to v1.0.0: p99 latency alarm"
    assert "model#prod#3" in origin_tags(repo)
    # CI re-run on v1.1.0's commit must not undo the rollback.
    again = cli(repo, "publish")
    assert again.returncode == 0 and "not in production" in again.stdout, again.stderr
    assert registry.production(repo).version == "v1.0.0" and "model#prod#4" not in tags(repo)
    # gto, reading the same tags, agrees on what is in production.
    assert run(["gto", "show", "model#prod", "--version"], repo).strip() == "v1.0.0"

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo.parent / "origin.git"), str(clone)], tmp_path)
    fetched = cli(clone, "fetch", "--stage", "prod", "--out", str(tmp_path / "prod"))
    assert fetched.returncode == 0, fetched.stderr
    # DVC's own `artifacts get` finds it by name and stage through the same tags.
    run(["dvc", "remote", "modify", "--local", "storage", "endpointurl", s3.endpoint], clone)
    run(
        [
            "dvc",
            "artifacts",
            "get",
            ".",
            "model",
            "--stage",
            "prod",
            "-o",
            str(tmp_path / "dvc-get"),
        ],
        clone,
    )

    def files(folder: Path) -> list[str]:  # the snapshot is a folder of its own
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())

    names = files(kept / "v1.0.0")
    assert "snapshot/manifest.json" in names
    for folder in (tmp_path / "prod", tmp_path / "dvc-get"):
        assert files(folder) == names
        for name in names:
            assert filecmp.cmp(folder / name, kept / "v1.0.0" / name, shallow=False), name


def bucket_object(s3: S3Server, repo: Path, version: str, name: str) -> str:
    """The S3 key of one file of a version's package."""
    lock = yaml.safe_load(registry.show(repo, registry.find(repo, version).commit, "dvc.lock"))
    dir_md5 = next(
        o["md5"]
        for s in lock["stages"].values()
        for o in s.get("outs", [])
        if o["path"] == paths.PACKAGE
    )
    listing = json.loads(s3fs_of(s3).cat(f"{s3.bucket}/dvc/files/md5/{dir_md5[:2]}/{dir_md5[2:]}"))
    md5 = next(e["md5"] for e in listing if e["relpath"] == name)
    return f"{s3.bucket}/dvc/files/md5/{md5[:2]}/{md5[2:]}"


def s3fs_of(s3: S3Server):
    return s3fs.S3FileSystem(
        endpoint_url=s3.endpoint, key=s3.access_key, secret=s3.secret_key, skip_instance_cache=True
    )


def test_a_tampered_package_file_is_refused_by_fetch(repo, s3, tmp_path):
    key = bucket_object(s3, repo, "v1.1.0", "model.onnx")
    fs = s3fs_of(s3)
    original = fs.cat(key)
    fs.pipe(key, original[:-16] + b"\0" * 16)
    try:
        clone = tmp_path / "clone"
        run(["git", "clone", "-q", str(repo.parent / "origin.git"), str(clone)], tmp_path)
        refused = cli(clone, "fetch", "--version", "v1.1.0", "--out", str(tmp_path / "pkg"))
        assert refused.returncode == 1
        assert "model.onnx" in refused.stderr and "refusing" in refused.stderr, refused.stderr
        assert not (tmp_path / "pkg").exists()
    finally:
        fs.pipe(key, original)


def test_rollback_to_a_version_missing_from_the_remote_is_refused(repo, s3):
    key = bucket_object(s3, repo, "v1.1.0", "model.ubj")
    fs = s3fs_of(s3)
    original = fs.cat(key)
    fs.rm(key)
    try:
        refused = cli(repo, "rollback", "--to", "v1.1.0")
        assert refused.returncode == 1
        assert "lacks" in refused.stderr and paths.PACKAGE in refused.stderr
        assert "refusing" in refused.stderr
        assert registry.production(repo).version == "v1.0.0"
    finally:
        fs.pipe(key, original)
    assert cli(repo, "rollback", "--to", "v1.1.0").returncode == 0
    assert registry.production(repo).version == "v1.1.0"


def test_an_alarm_on_a_baking_version_rolls_it_back_and_history_shows_it(repo, s3, spark, tmp_path):
    """v1.1.0 was just put back in production by a person, so it is baking: shifted
    traffic through a real service logging it, then `monitor`, rolls it back to v1.0.0
    through the same rollback as the CLI, and triggers the retrain command."""

    from ctrpipe.model import package
    from ctrpipe.monitoring import run as monitor
    from ctrpipe.monitoring import simulate
    from ctrpipe.monitoring.settings import Monitor
    from ctrpipe.serving.rest.server import Server
    from ctrpipe.serving.service import Service
    from ctrpipe.serving.settings import RequestLog

    assert registry.production(repo).version == "v1.1.0"
    _, _, folder = fetch.fetch(repo, where(repo), version="v1.1.0")
    service = Service(log=RequestLog(dir=str(repo / "logs"), sample_rate=1.0))
    service.load(folder, "v1.1.0")
    srv = Server(("127.0.0.1", 0), service, deadline_ms=UNSHED).start()
    try:
        rows = simulate.sample(pq.read_table(repo / paths.VALIDATION), 3000, 1)
        shifted = simulate.drifted(
            rows, {"device": {"set": "ctv", "fraction": 0.8}, "floor_price": {"scale": 4.0}}, 2
        )
        schema = service.model.loaded.schema
        replayed = simulate.replay(
            srv.url, simulate.requests(shifted, schema.names, schema.id, 300)
        )
    finally:
        srv.stop()
    assert replayed.statuses == {200: 10}
    marker = tmp_path / "retrain-ran"
    settings = Monitor.model_validate(
        {
            "logs": "logs",
            "window_hours": 1,
            "min_rows": 1000,
            "actions": {
                "retrain": {
                    "kind": "command",
                    "command": [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('x')"],
                },
                "rollback": {"checks": ["input_drift", "prediction_drift"]},
            },
        }
    )
    result, _ = monitor.monitor(monitor.Options(repo, settings), spark=spark)
    assert result["verdict"] == "alarm" and result["model"]["version"] == "v1.1.0"
    done = {a["action"]: a for a in result["actions"]}
    assert done["rollback"]["status"] == "done", done
    assert done["retrain"]["status"] == "done" and marker.exists()
    assert registry.production(repo).version == "v1.0.0"
    trail = json.loads(cli(repo, "history", "--json").stdout)
    assert trail[-1]["action"] == "rollback" and trail[-1]["version"] == "v1.0.0"
    assert "auto: monitor alarm on v1.1.0: device" in trail[-1]["message"]
    assert trail[-1]["tag"] in origin_tags(repo)

    again, _ = monitor.monitor(monitor.Options(repo, settings), spark=spark)
    rollback = next(a for a in again["actions"] if a["action"] == "rollback")
    assert rollback["status"] == "skipped" and "no longer in production" in rollback["detail"]
    assert registry.production(repo).version == "v1.0.0"
    assert package.digest(folder) == result["model"]["digest"]


def test_a_published_refresh_reaches_the_workers_following_production_on_a_clone(
    repo, s3, tmp_path
):
    """`features refresh --publish` where the data is; on a fresh clone elsewhere,
    `serve --stage prod --workers 2 --snapshot DIR` brings it down, and both workers
    swap to it."""
    version = registry.production(repo).version
    _, _, folder = fetch.fetch(repo, where(repo), version=version)
    own = store.load(folder / store.FOLDER)
    cut = own.cut - dt.timedelta(hours=12)  # another snapshot than the package's own
    done = cli(
        repo, "features", "refresh", "--package", str(folder), "--cut", cut.isoformat(), "--publish"
    )
    assert done.returncode == 0, done.stderr
    assert "published it to s3://" in done.stdout
    refreshed = store.load(next((repo / paths.SNAPSHOTS).iterdir()))
    assert refreshed.cut == cut and refreshed.digest != own.digest

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo.parent / "origin.git"), str(clone)], tmp_path)
    served = Served(
        "--stage", "prod", "--workers", "2", "--snapshot", str(tmp_path / "snapshots"),
        "--follow-seconds", "1", "--sample-rate", "0", cwd=clone,
    )  # fmt: skip
    try:
        served.wait_line("workers ready")
        served.wait_line("now serving snapshot", times=2)  # each worker
        got = served.metrics()
        status, _ = served.call("POST", "/predict", {"row": raw_record(repo, refreshed)})
    finally:
        code = served.stop()
    assert code == 0, "".join(served.lines)
    assert status == 200
    info = {dict(k[1])["digest"] for k, v in got.items() if k[0] == "ctrpipe_snapshot_info" and v}
    assert info == {refreshed.digest}
    cut_seconds = cut.replace(tzinfo=dt.timezone.utc).timestamp()
    assert got[("ctrpipe_snapshot_cut_timestamp_seconds", ())] == cut_seconds  # the oldest
    assert (tmp_path / "snapshots" / refreshed.digest / "manifest.json").is_file()


def raw_record(repo: Path, snapshot: store.Snapshot) -> dict:
    """A golden row's base record (the skew check's sample), as a client sends it."""
    table = pq.read_table(repo / paths.SKEW_SAMPLE).select(snapshot.spec["request"])
    row = table.slice(0, 1).to_pylist()[0]
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in row.items()}
