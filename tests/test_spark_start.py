"""Spark's class archive (ctrpipe/spark.py): only a whole archive is used, and a session
started with the one set-up wrote runs a job."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ctrpipe import spark
from tests.conftest import ROOT
from tests.support.project import attempt

pytestmark = pytest.mark.integration


def test_an_archive_whose_size_is_not_its_own_is_never_used(tmp_path, monkeypatch):
    monkeypatch.setenv("CTRPIPE_CACHE", str(tmp_path))
    folder = spark.archive_folder()
    folder.mkdir(parents=True)
    assert spark.class_archive("k") is None
    (folder / "classes-k-10.jsa").write_bytes(b"x" * 7)  # cut short
    assert spark.class_archive("k") is None
    (folder / "classes-k-9.jsa").write_bytes(b"x" * 9)
    assert spark.class_archive("k") == folder / "classes-k-9.jsa"
    assert spark.class_archive("other") is None


def test_the_key_follows_the_java_and_pyspark():
    path, text = spark.java()
    assert spark.archive_key(path, text) == spark.archive_key(path, text)
    assert spark.archive_key(path, text) != spark.archive_key(path, text + " other build")


def test_another_environment_gets_an_archive_of_its_own(tmp_path):
    """The JVM refuses an archive dumped with another class path (jar paths and times):
    a second clone or CI workspace must not share the first one's key."""
    path, text = spark.java()
    for env in ("one", "two"):
        (tmp_path / env).mkdir()
        (tmp_path / env / "spark-core.jar").write_bytes(b"same bytes")
    one, two = (spark.archive_key(path, text, tmp_path / env) for env in ("one", "two"))
    assert one != two
    jar = tmp_path / "one" / "spark-core.jar"
    os.utime(jar, ns=(jar.stat().st_atime_ns, jar.stat().st_mtime_ns + 10**9))
    assert spark.archive_key(path, text, tmp_path / "one") != one


def test_off_writes_no_archive(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CTRPIPE_CACHE", str(tmp_path))
    monkeypatch.setenv("CTRPIPE_CLASS_ARCHIVE", "off")
    spark.main([])
    assert "CTRPIPE_CLASS_ARCHIVE=off" in capsys.readouterr().out
    assert not list(tmp_path.rglob("*.jsa"))


def python(*args: str) -> subprocess.CompletedProcess:
    """This venv's Python on `args`, with the class archive allowed."""
    done = attempt([sys.executable, *args], ROOT, {"CTRPIPE_CLASS_ARCHIVE": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_a_session_starts_with_the_setups_archive_and_runs_a_job():
    """The archive `make setup` wrote (python -m ctrpipe.spark: written when absent, which
    the README's set-up runs before the tests; building one here again cost a minute of
    the suite): a second call has nothing to do, and a session starts with it and runs."""
    python("-m", "ctrpipe.spark")
    assert python("-m", "ctrpipe.spark").stdout == ""  # nothing to do once it is there
    archive = spark.class_archive(spark.archive_key(*spark.java()))
    assert archive is not None
    script = (
        "from ctrpipe import config, spark\n"
        "s = spark.session(config.Spark(master='local[1]', driver_memory='1g',"
        " shuffle_partitions=1, broadcast_max_rows=0, slots_wait_seconds=0, conf={}))\n"
        "bean = s._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()\n"
        "print(list(bean.getInputArguments()))\n"
        "print(s.range(100).selectExpr('sum(id)').collect()[0][0])\n"
        "s.stop()\n"
    )
    arguments, total = python("-c", script).stdout.strip().splitlines()[-2:]
    assert f"-XX:SharedArchiveFile={archive}" in arguments
    assert total == "4950"
