"""The one place a SparkSession is made, from the `spark` config group."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from ctrpipe.config import Spark
from ctrpipe.errors import ConfigError

MIN_JAVA = 17


def java_version() -> int:
    """Major version of the Java that PySpark will start; ConfigError if there is none."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise ConfigError(f"Java {MIN_JAVA} or newer is needed by PySpark and none was found "
                          "(no `java` on PATH and no JAVA_HOME); install a JDK 17")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not found:
        raise ConfigError(f"cannot tell the version of {java}: {out.strip()[:80]}")
    major = int(found.group(1))
    return int(found.group(2)) if major == 1 else major  # "1.8" means Java 8


def session(cfg: Spark, app: str = "ctrpipe"):
    version = java_version()
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
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
