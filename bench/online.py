"""Benchmark raw requests: what looking up the online features costs the service.

    python bench/online.py                       # models/package, records from the skew sample
    python bench/online.py --rate 2000 --duration 20 --keys 1000000

1. In process, one row at a time: `Service.predict` on a single-row body, with the
   features sent and with the raw record (the same golden rows, from
   data/online/skew_sample.parquet), and `Lookup.features_of` alone. p50 / p99 over
   --calls calls, cycling through the rows; the raw path's p50 minus the features
   path's is the lookup's cost to a request.
2. Over HTTP: `python -m ctrpipe serve` in a subprocess, raw single-row requests from an
   open-loop client at --rate requests/s (bench/serve.py's; latency from the scheduled
   send), hey paced at the same rate if installed, then wrk's closed loop if installed
   (`apt install hey wrk`) for the most the server answers; then the same with the
   features sent; all of it for each `serve --workers` count in --workers (1 and 2).
3. Memory: a snapshot of --keys values of one history key (and the package's own
   dimensions) loaded into a Lookup, resident memory before and after.

Targets (issue 16): the lookup adds <= 5 us at p50; 2,000 raw requests/s with p99 <= 5 ms.
Prints figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from predict import timed  # bench/predict.py, this folder
from serve import open_loop, percentiles, start_server

from ctrpipe import manifest, paths
from ctrpipe.online import store
from ctrpipe.online.lookup import Lookup
from ctrpipe.serving.service import Service


def records(model, sample: Path, golden: Path, n: int) -> tuple[list[dict], list[dict]]:
    """The sample's raw records (as JSON sends them) and their golden feature rows."""
    spec = model.online.snapshot.spec
    table = pq.read_table(sample)
    key = table.column_names[0]
    raw = [
        {c: v.isoformat() if isinstance(v, dt.datetime) else v for c, v in r.items()}
        for r in table.select(spec["request"]).to_pylist()
    ]
    ids = table[key].to_pylist()
    by_id = {r[key]: r for r in pq.read_table(golden).to_pylist()}
    features = [{c: by_id[i][c] for c in model.loaded.schema.names} for i in ids]
    return raw[:n], features[:n]


def in_process(service: Service, raw: list[dict], features: list[dict], calls: int) -> float:
    model = service.model
    sent = timed(service.predict, [json.dumps({"row": r}).encode() for r in features], calls)
    looked = timed(service.predict, [json.dumps({"row": r}).encode() for r in raw], calls)
    alone = timed(model.online.features_of, raw, calls)
    print(f"single-row request, in process (us), {model.backend} model")
    print(f"  features sent                   {percentiles(sent)}")
    print(f"  raw record, features looked up  {percentiles(looked)}")
    print(f"  Lookup.features_of alone        {percentiles(alone)}")
    added = float(np.percentile(looked, 50) - np.percentile(sent, 50))
    print(f"  the lookup adds at p50          {added:8.1f} us")
    return added


def over_http(
    path: Path, raw: list[dict], features: list[dict], args, workers: int
) -> dict[str, float]:
    """p99 (ms) of the open loop, raw records and features sent, side by side."""
    proc, port = start_server(path, workers)
    p99 = {}
    try:
        for contract, rows in (("raw", raw), ("features", features)):
            bodies = [json.dumps({"row": r}).encode() for r in rows]
            result = open_loop(
                port, bodies, args.rate, args.duration, args.connections, args.warmup
            )
            paced = hey(port, bodies[0], args) if shutil.which("hey") else None
            closed = wrk(port, bodies[0], args.duration) if shutil.which("wrk") else None
            print(
                f"HTTP, {workers} serve process(es), {contract} single-row requests, open "
                f"loop at {args.rate:g} rps for {args.duration:g} s"
            )
            print(
                f"  {result['requests']:,} requests at {result['rate']:.0f}/s, "
                f"{result['errors']} errors"
            )
            print(
                f"  latency from scheduled send (ms): p50 {result['p50']:.3f}   "
                f"p99 {result['p99']:.3f}   max {result['max']:.3f}"
            )
            print(f"  hey at {args.rate:g} rps: {paced or 'not installed'}")
            print(f"  wrk, closed loop (the most it answers): {closed or 'not installed'}")
            p99[contract] = result["p99"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return p99


def hey(port: int, body: bytes, args) -> str:
    """hey at --rate over --connections workers (each paced at its share): requests/s
    and its latency percentiles. hey waits for each answer before the next request, so
    a stall delays what follows instead of showing in the tail (the open loop above
    does not)."""
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
        f.write(body)
    out = subprocess.run(
        [
            "hey",
            "-z",
            f"{int(args.duration)}s",
            "-c",
            str(args.connections),
            "-q",
            f"{args.rate / args.connections:g}",
            "-m",
            "POST",
            "-T",
            "application/json",
            "-D",
            f.name,
            f"http://127.0.0.1:{port}/predict",
        ],
        capture_output=True,
        text=True,
        timeout=args.duration + 60,
    ).stdout
    Path(f.name).unlink()
    rate = next(line.split()[1] for line in out.splitlines() if "Requests/sec" in line)
    pct = {
        line.split()[0]: float(line.split()[2]) * 1e3
        for line in out.splitlines()
        if line.strip().startswith(("50%", "99%"))
    }
    codes = [line.strip() for line in out.splitlines() if line.strip().startswith("[")]
    return (
        f"{float(rate):,.0f} requests/s, p50 {pct.get('50%', 0):.2f} ms, "
        f"p99 {pct.get('99%', 0):.2f} ms, statuses {' '.join(codes)}"
    )


def wrk(port: int, body: bytes, duration: float) -> str:
    """wrk's requests/s and latency percentiles, 1 thread, 8 connections, one body."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body.decode())}\n"
        )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c8",
            f"-d{int(duration)}s",
            "--latency",
            "-s",
            script.name,
            f"http://127.0.0.1:{port}/predict",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
    ).stdout
    Path(script.name).unlink()
    lines = {
        line.split()[0]: line.split()[1]
        for line in out.splitlines()
        if line.strip()[:3] in ("50%", "99%")
    }
    rate = next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec"))
    return f"{float(rate):,.0f} requests/s, p50 {lines.get('50%')}, p99 {lines.get('99%')}"


def resident() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


def memory(own: store.Snapshot, keys: int) -> None:
    """Resident bytes a Lookup takes for `keys` values of the user key (the package's own
    snapshot with its user table replaced by a synthetic one of that many users)."""
    rng = np.random.default_rng(0)
    users = pa.table(
        {
            "user_id": [f"u{i:08d}" for i in range(keys)],
            "hist_user_id_n": rng.integers(0, 500, keys).astype(float),
            "hist_user_id_ctr": rng.random(keys),
            "hist_user_id_recent": rng.integers(0, 50, keys).astype(float),
        }
    )
    tables = {**own.tables, store.history_file("user_id"): users}
    with tempfile.TemporaryDirectory() as tmp:
        manifest.write(Path(tmp) / "s", store.files(tables, own.spec, own.cut))
        del users, tables
        snapshot = store.load(Path(tmp) / "s")
        gc.collect()
        before = resident()
        lookup = Lookup(snapshot)
        gc.collect()
        after = resident()
    arrow_mb = sum(t.nbytes for t in snapshot.tables.values()) / 1e6
    print(
        f"memory: a Lookup of {keys:,} user keys takes {(after - before) / 1e6:,.0f} MB resident "
        f"({(after - before) / keys:.0f} bytes a key; its Arrow tables {arrow_mb:,.0f} MB)"
    )
    assert len(lookup.values["user_id"]) == keys


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--package", default=paths.PACKAGE)
    parser.add_argument("--sample", default=paths.SKEW_SAMPLE)
    parser.add_argument("--golden", default=paths.GOLDEN)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="`serve --workers`, side by side"
    )
    args = parser.parse_args(argv)

    service = Service()
    model = service.load(ROOT / args.package)
    if model.online is None:
        raise SystemExit(f"{args.package}: no online snapshot; run `dvc repro package`")
    raw, features = records(model, ROOT / args.sample, ROOT / args.golden, 1000)
    print(f"package {model.loaded.digest[:12]}, snapshot {model.online.snapshot.digest[:12]}")
    added = in_process(service, raw, features, args.calls)
    p99 = {n: over_http(ROOT / args.package, raw, features, args, n) for n in args.workers}
    memory(model.online.snapshot, args.keys)
    print(f"targets: lookup adds {added:.1f} us at p50 (<= 5)")
    for n, got in p99.items():
        print(
            f"  {n} process(es): raw HTTP p99 {got['raw']:.2f} ms at {args.rate:g} rps "
            f"(<= 5; features sent: {got['features']:.2f} ms)"
        )


if __name__ == "__main__":
    main()
