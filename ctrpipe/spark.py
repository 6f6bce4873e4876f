"""The one place a SparkSession is made, from the `spark` config group.

Start-up: about 3 of the driver's 5-6 s of start are the JVM loading Spark's classes.
`make setup` records them once in a class archive (the JVM's own AppCDS: a session's
classes dumped at its exit, `python -m ctrpipe.spark`), and every later session maps it
instead, which makes the start and the first job about 3 s shorter. The archive lives in
`$CTRPIPE_CACHE/spark` (default ~/.cache/ctrpipe/spark), named for the Java and the
class path (each jar's path and time), and its own size: the JVM crashes on a truncated
archive, so one whose size is not the one it was written with is never used. Without an
archive, sessions start as before; CTRPIPE_CLASS_ARCHIVE=off skips writing one.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ctrpipe import fileio
from ctrpipe.config import Spark
from ctrpipe.errors import ConfigError

MIN_JAVA = 17
JAVA_OPTIONS = "spark.driver.extraJavaOptions"


def java() -> tuple[str, str]:
    """The `java` PySpark will start and its `-version` text; ConfigError if none."""
    home = os.environ.get("JAVA_HOME")
    path = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not path or not os.path.exists(path):
        raise ConfigError(
            f"Java {MIN_JAVA} or newer is needed by PySpark and none was found "
            "(no `java` on PATH and no JAVA_HOME); install a JDK 17"
        )
    return path, subprocess.run([path, "-version"], capture_output=True, text=True).stderr


def java_version(path: str, out: str) -> int:
    """Major version of the Java at `path`, from its `-version` text."""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not found:
        raise ConfigError(f"cannot tell the version of {path}: {out.strip()[:80]}")
    major = int(found.group(1))
    return int(found.group(2)) if major == 1 else major  # "1.8" means Java 8


def archive_folder() -> Path:
    return fileio.cache_dir("spark")


def archive_key(java_path: str, version_text: str, jars: Path | None = None) -> str:
    """Names the archive for everything the JVM checks it against: the Java, and the
    class path as it is on disk (each jar's full path and modification time), so that
    another environment on the same machine gets an archive of its own."""
    import pyspark

    jars = jars or Path(pyspark.__file__).parent / "jars"
    found = [f"{p.resolve()} {p.stat().st_mtime_ns}" for p in sorted(jars.glob("*.jar"))]
    text = "\n".join([os.path.realpath(java_path), version_text, pyspark.__version__, *found])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def class_archive(key: str) -> Path | None:
    """The archive for `key`, if one is whole (its size is the one in its name)."""
    for path in archive_folder().glob(f"classes-{key}-*.jsa"):
        size = path.stem.rsplit("-", 1)[1]
        if size.isdigit() and path.stat().st_size == int(size):
            return path
    return None


def build_class_archive() -> Path:
    """Write the class archive for this Java and pyspark unless it exists; its path.

    A session in a child process runs one small job and dumps its classes when its JVM
    exits. Only a dump whose JVM exited cleanly is renamed into place, so a reader never
    sees a partial file."""
    path, version_text = java()
    key = archive_key(path, version_text)
    found = class_archive(key)
    if found is not None:
        return found
    folder = archive_folder()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".classes-", dir=folder) as tmp:
        dump = Path(tmp) / "classes.jsa"
        child = subprocess.run(
            [sys.executable, "-m", "ctrpipe.spark", "--dump", str(dump)],
            capture_output=True,
            text=True,
        )
        if child.returncode != 0 or not dump.exists():
            raise ConfigError(
                f"could not write Spark's class archive: {child.stderr.strip()[-300:]}"
            )
        final = folder / f"classes-{key}-{dump.stat().st_size}.jsa"
        os.replace(dump, final)
    return final


def session(cfg: Spark, app: str = "ctrpipe", dump_classes: Path | None = None):
    """A SparkSession from the config; with `dump_classes`, its driver writes the class
    archive there when it exits (build_class_archive)."""
    path, version_text = java()
    version = java_version(path, version_text)
    if version < MIN_JAVA:
        raise ConfigError(f"Java {version} found; PySpark 4 needs Java {MIN_JAVA} or newer")
    # Loopback only, and workers run the same interpreter as the driver.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(cfg.master)
        .appName(app)
        .config("spark.driver.memory", cfg.driver_memory)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.parquet.compression.codec", "snappy")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        # A small machine is short of CPU, not of disk or memory: skip compressing what
        # is cached or shuffled.
        .config("spark.sql.inMemoryColumnarStorage.compressed", "false")
        .config("spark.shuffle.compress", "false")
        .config("spark.shuffle.spill.compress", "false")
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .config("spark.hadoop.parquet.enable.summary-metadata", "false")
    )
    for key, value in cfg.conf.items():
        builder = builder.config(key, str(value))
    if dump_classes is not None:
        archive = f"-XX:ArchiveClassesAtExit={dump_classes}"
    else:
        found = class_archive(archive_key(path, version_text))
        archive = f"-XX:SharedArchiveFile={found}" if found else ""
    if archive:
        options = " ".join(filter(None, [str(cfg.conf.get(JAVA_OPTIONS, "")), archive]))
        builder = builder.config(JAVA_OPTIONS, options)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if not cfg.master.startswith("local"):
        spark.sparkContext.addPyFile(str(package_archive()))
    return spark


def package_archive() -> Path:
    """The ctrpipe package's sources in a zip, for a cluster's executors: Python tasks
    (the sweep's trials) import it there, where only the installed libraries are
    (Spark's --py-files). Removed when this process exits."""
    folder = Path(tempfile.mkdtemp(prefix="ctrpipe-pyfiles-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    package = Path(__file__).resolve().parent
    archive = folder / "ctrpipe.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for source in sorted(package.rglob("*.py")):
            zf.write(source, source.relative_to(package.parent).as_posix())
    return archive


def _dump(path: Path) -> None:
    """The child of build_class_archive: a session, a job, and a JVM that exits."""
    from pyspark import SparkContext

    spark = session(
        Spark(
            master="local[1]",
            driver_memory="1g",
            shuffle_partitions=1,
            broadcast_max_rows=0,
            slots_wait_seconds=0,
            conf={},
        ),
        app="class-archive",
        dump_classes=path,
    )
    spark.range(1000).selectExpr("sum(id)").collect()
    spark.stop()
    gateway = SparkContext._gateway
    gateway.shutdown()
    gateway.proc.stdin.close()  # the JVM exits when its stdin closes, and dumps then
    if gateway.proc.wait(timeout=300) != 0:
        sys.exit(f"the JVM exited with {gateway.proc.returncode} while writing {path}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--dump"]:
        _dump(Path(argv[1]))
        return
    if os.environ.get("CTRPIPE_CLASS_ARCHIVE") == "off":
        # A runner whose workspace moves on every run (act) would write one per run.
        print("no Spark class archive (CTRPIPE_CLASS_ARCHIVE=off)")
        return
    try:
        path, version_text = java()
        if class_archive(archive_key(path, version_text)) is None:
            print(f"wrote Spark's class archive {build_class_archive()}")
    except (ConfigError, OSError) as exc:
        # Only start-up time depends on it: say why, and let set-up go on.
        print(f"no Spark class archive ({exc})", file=sys.stderr)


if __name__ == "__main__":
    main()
