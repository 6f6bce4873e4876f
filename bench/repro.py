"""Benchmark `dvc repro` from a clean state: wall time per stage and peak memory.

    python bench/repro.py            # clones this repository's HEAD into a temp folder

The clone has no outputs (committed metrics and plots removed too) and an empty DVC
cache, as on a fresh machine; peak memory is
the whole process tree (DVC, each stage's Python and Spark's JVM), sampled every 0.1 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def peak_rss(pid: int, stop: threading.Event, result: list) -> None:
    root, peak = psutil.Process(pid), 0
    while not stop.is_set():
        try:
            peak = max(
                peak, sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            )
        except psutil.Error:
            pass
        time.sleep(0.1)
    result.append(peak)


def main() -> None:
    venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "DVC_NO_ANALYTICS": "1",
    }
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        # Metrics and plots are committed (cache: false); without them every stage runs.
        for tracked in ("metrics", "reports"):
            subprocess.run(["git", "rm", "-rq", tracked], cwd=clone, check=True)
        started = time.perf_counter()
        proc = subprocess.Popen(
            ["dvc", "repro"],
            cwd=clone,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        stop, peak = threading.Event(), []
        watcher = threading.Thread(target=peak_rss, args=(proc.pid, stop, peak))
        watcher.start()
        stages, current = {}, None
        for line in proc.stdout:
            if line.startswith("Running stage"):
                now = time.perf_counter()
                if current:
                    stages[current] = now - stages[current]
                current = line.split("'")[1]
                stages[current] = now
        proc.wait()
        if current:
            stages[current] = time.perf_counter() - stages[current]
        total = time.perf_counter() - started
        stop.set()
        watcher.join()
        if proc.returncode != 0:
            raise SystemExit("dvc repro failed")
    print(
        f"dvc repro from a clean clone: {total:.1f} s wall, "
        f"peak memory {peak[0] / 2**30:.2f} GiB (process tree)"
    )
    for name, seconds in stages.items():
        print(f"  {name:<10} {seconds:6.1f} s")


if __name__ == "__main__":
    main()
