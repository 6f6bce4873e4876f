"""Benchmark the prediction service: in process, in batches, and over HTTP on loopback.

    python bench/serve.py                        # models/package, rows from validation
    python bench/serve.py --duration 5 --rate 500 --connections 8

1. In process, one row at a time, as a /predict request does it: RowEncoder.encode of a
   parsed row, then the model the service chose (the compiled model, or ONNX Runtime
   without a compiler; one thread). p50 / p99 over --calls
   calls, cycling through 1,000 rows; encode and ONNX alone for the split, and the whole
   request path without HTTP (JSON parse + encode + predict + answer dict).
2. Batches of 10,000 rows: rows/s of encode + predict, the split, the same through a
   pyarrow table (FeatureSchema.encode, the path the encoder replaces), and ONNX Runtime
   with --batch-threads intra-op threads.
3. Over HTTP: `python -m ctrpipe serve` in a subprocess, and an open-loop client at
   --rate requests/s for --duration seconds over --connections keep-alive connections.
   Each request has a scheduled send time and its latency counts from that time, so a
   slow answer also charges the requests queued behind it (no coordinated omission).
   Reports p50 / p99 / max, errors, and the server's own mean from /metrics.

Targets: in-process p50 <= 15 us, batch >= 2M rows/s, HTTP p99 <= 5 ms at 500 rps with
no errors. Prints figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from predict import random_package, timed  # bench/predict.py, this folder

from ctrpipe import paths
from ctrpipe.model import onnx_export, package
from ctrpipe.serving import compiled
from ctrpipe.serving.service import Service

TARGETS = {"single_p50_us": 15, "batch_rows_s": 2_000_000, "http_p99_ms": 5}


def request_rows(loaded: package.Loaded, validation: Path, n: int) -> list[dict]:
    """Rows as a client would send them: the validation split's raw feature values."""
    table = pq.read_table(validation).select(loaded.schema.names)
    while table.num_rows < n:  # a small split (the random package's) is repeated
        table = pa.concat_tables([table, table])
    return table.slice(0, n).to_pylist()


def percentiles(us: np.ndarray) -> str:
    return f"p50 {np.percentile(us, 50):8.1f}   p99 {np.percentile(us, 99):8.1f}"


def in_process(service: Service, rows: list[dict], calls: int, threads: int) -> float:
    model = service.model
    singles = [[r] for r in rows[:1000]]
    encoded = [model.encoder.encode(s) for s in singles]
    bodies = [json.dumps({"row": r}).encode() for r in rows[:1000]]
    both = timed(model.score, singles, calls)
    onnx = timed(lambda x: onnx_export.predict(model.loaded.session, x), encoded, calls)
    print(f"single row, encode + {model.backend:8} (us) {percentiles(both)}   (Model.score)")
    print(
        f"  encode only                       "
        f"{percentiles(timed(model.encoder.encode, singles, calls))}"
    )
    print(
        f"  {model.backend} model only              "
        f"{percentiles(timed(model.predict, encoded, calls))}"
    )
    print(f"  ONNX only                         {percentiles(onnx)}")
    print(
        f"  ONNX only through Loaded.predict  "
        f"{percentiles(timed(model.loaded.predict, encoded, calls))}"
    )
    if threads > 1:
        wide = onnx_export.session((model.loaded.path / "model.onnx").read_bytes(), threads)
        print(
            f"  ONNX only, {threads} intra-op threads    "
            f"{percentiles(timed(lambda x: onnx_export.predict(wide, x), encoded, calls))}"
        )
    print(
        f"  request path without HTTP         "
        f"{percentiles(timed(service.predict, bodies, calls))}   (JSON in and out)"
    )
    return float(np.percentile(both, 50))


def best_of(fn, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def batches(service: Service, rows: list[dict], batch_threads: int) -> float:
    model = service.model
    x = model.encoder.encode(rows)
    n = len(rows)

    def line(label: str, seconds: float) -> None:
        print(f"{label:36}{seconds * 1e3:7.1f} ms  {n / seconds:11,.0f} rows/s")

    total = best_of(lambda: model.score(rows))
    line(f"batch of {n:,}, encode + {model.backend}", total)
    line("  encode only", best_of(lambda: model.encoder.encode(rows)))
    line(f"  {model.backend} model only, 1 thread", best_of(lambda: model.predict(x)))
    if batch_threads > 1 and model.backend == "compiled":
        wide = compiled.load(
            (model.loaded.path / "model.ubj").read_bytes(), x.shape[1], threads=batch_threads
        )
        line(f"  compiled model only, {batch_threads} threads", best_of(lambda: wide.predict(x)))
    one = model.loaded.session
    line("  ONNX only, 1 thread", best_of(lambda: onnx_export.predict(one, x)))
    if batch_threads > 1:
        wide = onnx_export.session((model.loaded.path / "model.onnx").read_bytes(), batch_threads)
        line(f"  ONNX only, {batch_threads} threads", best_of(lambda: onnx_export.predict(wide, x)))
    line(
        "  through a pyarrow table instead",
        best_of(lambda: model.loaded.predict(pa.Table.from_pylist(rows))),
    )
    return n / total


def start_server(path: Path, workers: int = 1) -> tuple[subprocess.Popen, int]:
    """`serve` on a free port, once it answers /ready (with workers: every one of them)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ctrpipe", "serve", "--package", str(path), "--port", "0"]
        + ["--workers", str(workers), "--sample-rate", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    first = proc.stdout.readline()
    if workers == 1:
        port = int(first.split(";")[0].rsplit(":", 1)[1])
        second = proc.stdout.readline()
        if not second.startswith("serving"):
            proc.kill()
            raise SystemExit(f"the server did not start: {first}{second}")
        return proc, port
    port = int(first.split("http://127.0.0.1:")[1].split()[0])
    for line in proc.stdout:  # until the supervisor says every worker has its model
        if "workers ready" in line:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # the rest
            return proc, port
    raise SystemExit(f"the server did not start: {first}")


def open_loop(
    port: int, bodies: list[bytes], rate: float, duration: float, connections: int, warmup: float
) -> dict:
    """Each connection sends every `connections`-th request of one schedule at `rate`."""
    start = time.perf_counter() + 0.2
    total = int(rate * (duration + warmup))
    latencies, errors, lock = [], [], threading.Lock()

    def worker(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine, failed = [], []
        for k in range(c, total, connections):
            due = start + k / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            try:
                conn.request(
                    "POST",
                    "/predict",
                    bodies[k % len(bodies)],
                    {"Content-Type": "application/json"},
                )
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException) as exc:
                ok = False
                conn.close()
                failed.append(repr(exc))
            if k / rate >= warmup:
                mine.append(time.perf_counter() - due)
                if not ok:
                    failed.append(k)
        with lock:
            latencies.extend(mine)
            errors.extend(failed)
        conn.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start - warmup
    ms = np.array(latencies) * 1e3
    return {
        "requests": len(ms),
        "errors": len(errors),
        "rate": len(ms) / elapsed,
        "p50": np.percentile(ms, 50),
        "p99": np.percentile(ms, 99),
        "max": ms.max(),
    }


def server_mean_ms(port: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("ctrpipe_request_duration_seconds_") and "/predict" in line
    }
    key = 'ctrpipe_request_duration_seconds_{}{{endpoint="/predict"}}'
    return values[key.format("sum")] / values[key.format("count")] * 1e3


def over_http(path: Path, rows: list[dict], args) -> float:
    bodies = [json.dumps({"row": r}).encode() for r in rows[:1000]]
    proc, port = start_server(path)
    try:
        result = open_loop(port, bodies, args.rate, args.duration, args.connections, args.warmup)
        mean = server_mean_ms(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    print(
        f"HTTP open loop, {args.rate:g} rps for {args.duration:g} s over "
        f"{args.connections} keep-alive connections (single-row requests)"
    )
    print(f"  {result['requests']:,} requests at {result['rate']:.0f}/s, {result['errors']} errors")
    print(
        f"  latency from scheduled send (ms): p50 {result['p50']:.3f}   "
        f"p99 {result['p99']:.3f}   max {result['max']:.3f}"
    )
    print(f"  server's own mean, /metrics (ms): {mean:.3f}")
    return result["p99"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--package", default=paths.PACKAGE)
    parser.add_argument("--validation", default=paths.VALIDATION)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--batch-threads", type=int, default=2)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path, validation = ROOT / args.package, ROOT / args.validation
        if not (path / package.MANIFEST).is_file():
            print(f"{path}: no package; building one from a 100-tree model on random data")
            path, validation = random_package(Path(tmp)), Path(tmp) / "rows.parquet"
        service = Service(max_batch=args.batch)
        model = service.load(path)
        rows = request_rows(model.loaded, validation, args.batch)
        print(
            f"package {model.loaded.digest[:12]}: {len(model.loaded.schema.names)} "
            f"features; parity on probe rows {model.parity:.1e}"
        )
        single = in_process(service, rows, args.calls, args.batch_threads)
        rate = batches(service, rows, args.batch_threads)
        p99 = over_http(path, rows, args)
    print(
        f"targets: single-row p50 {single:.1f} us (<= {TARGETS['single_p50_us']}), "
        f"batch {rate:,.0f} rows/s (>= {TARGETS['batch_rows_s']:,}), "
        f"HTTP p99 {p99:.2f} ms (<= {TARGETS['http_p99_ms']})"
    )


if __name__ == "__main__":
    main()
