"""Benchmark the serving fleet's figures (issue 25): the baseline server and HEAD's, side by
side in one run, over loopback.

    python bench/fleet.py                                # all figures, baseline /tmp/fleet-base
    python bench/fleet.py --only 1,2 --duration 5 --out /tmp/fleet.md
    git worktree add /tmp/fleet-base 0bc8fef             # the baseline (ThreadingHTTPServer)

Each server is `python -m ctrpipe serve --package P --port 0 --workers 1 --sample-rate 0`
in a subprocess started from its own tree (the baseline's from --baseline-dir, skipped when
that folder is absent; HEAD's from this one), measured once it answers GET /ready, and
stopped after. The servers alternate (baseline, HEAD, baseline, HEAD, for --runs runs);
each run is printed, and the table has the median of the runs.

1. Single-row raw requests (records from the skew sample, as bench/online.py's `records()`
   builds them), most answered: wrk -t2 -c8 for --duration s, a Lua script cycling
   through the bodies. Both servers. [>= 3x baseline and >= 10,000/s]
2. p99 at 5,000 raw requests/s: hey -z <duration>s -c 50 -q 100 (hey's -q is per
   connection) -o csv; p50 / p99 from its per-request latencies, errors = statuses other
   than 200. hey leaves failed requests out of its CSV, so the answered count against the
   scheduled one is printed too. hey waits for each answer before its next tick, so its
   latency does not charge a stall to the requests behind it. Both. [<= 5 ms, 0 errors]
3. Candidate batches of 100 (one raw impression as `context`, 100 `campaign_id`s) on
   POST /predict: predictions/s = requests/s x 100, wrk -t2 -c8. HEAD. [>= 500,000/s]
4. V2 REST infer (POST /v2/models/model/infer), 1,000-row tensors, one per model feature
   (numeric FP32, categorical BYTES): rows/s, wrk -t2 -c4. HEAD. [>= 1,000,000/s]
5. gRPC ModelInfer, single row (the features contract), with `serve --grpc-port 0`:
   tritonclient.grpc's InferenceServerClient, blocking `infer` in a loop, in
   --grpc-clients processes for --duration s. HEAD. [>= 4,000/s]
6. 2x saturation: hey -c 256 -q <rate/256> -z <saturation-seconds>s at twice figure 1's
   HEAD rate (the same offered rate for both servers): p99 of the answered (200) requests,
   the 503s (shed) and other statuses, and the server's resident memory (its process and
   children, psutil) just before and just after, after a 2 s warm-up. Both.
   [p99 <= 50 ms, RSS growth <= 10%]

Also the cost of a million single-row requests/s in cores, 1e6 / figure 1 (one worker is
at most about one core busy; the server's own CPU during figure 1 is printed beside it).
A figure whose endpoint does not answer yet (a probe request before it is measured) says
why instead. The load generators run on the same machine as the server.

Prints figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ctrpipe import paths

TARGETS = {
    "raw_rps": 10_000,
    "raw_vs_baseline": 3,
    "p99_ms": 5,
    "candidate_predictions_s": 500_000,
    "v2_rows_s": 1_000_000,
    "grpc_rps": 4_000,
    "saturation_p99_ms": 50,
    "rss_growth": 0.10,
}
FIGURES = (1, 2, 3, 4, 5, 6)
BOTH = (1, 2, 6)  # the figures measured on the baseline too
CANDIDATES = 100
V2_ROWS = 1000
PACED_RATE = 5000  # figure 2: requests/s, over PACED_CONNECTIONS connections
PACED_CONNECTIONS = 50
SATURATION_CONNECTIONS = 256
START_TIMEOUT = 180.0  # seconds for a server to answer /ready
JSON_HEADERS = {"Content-Type": "application/json"}


# ---------------------------------------------------------------- request bodies


def request_bodies(package: Path, sample: Path, golden: Path) -> dict:
    """The bodies every figure sends: raw single rows, a candidate batch, a V2 request
    of V2_ROWS rows and the single-row features (for gRPC)."""
    from online import records  # bench/online.py, this folder

    from ctrpipe.serving.service import Service

    service = Service()
    model = service.load(package)
    if model.online is None:
        raise SystemExit(f"{package}: no online snapshot; run `dvc repro package`")
    raw, features = records(model, sample, golden, V2_ROWS)
    schema = model.loaded.schema
    numeric = set(schema.numeric)
    names = list(schema.names)
    service.close()

    context = {k: v for k, v in raw[0].items() if k != "campaign_id"}
    campaigns = list(dict.fromkeys(r["campaign_id"] for r in raw))
    candidates = [{"campaign_id": campaigns[i % len(campaigns)]} for i in range(CANDIDATES)]
    rows = (features * (V2_ROWS // len(features) + 1))[:V2_ROWS]
    inputs = [
        {
            "name": name,
            "datatype": "FP32" if name in numeric else "BYTES",
            "shape": [V2_ROWS],
            "data": [r[name] for r in rows],
        }
        for name in names
    ]
    return {
        "raw": [json.dumps({"row": r}).encode() for r in raw],
        "candidates": json.dumps({"context": context, "candidates": candidates}).encode(),
        "v2": json.dumps({"inputs": inputs}).encode(),
        "features": [(n, "FP32" if n in numeric else "BYTES", features[0][n]) for n in names],
    }


# ---------------------------------------------------------------- servers


class Served:
    """`python -m ctrpipe serve` from `tree` on a free port, once it answers /ready."""

    def __init__(self, tree: Path, package: Path, grpc: bool = False) -> None:
        command = [sys.executable, "-m", "ctrpipe", "serve", "--package", str(package)]
        command += ["--port", "0", "--workers", "1", "--sample-rate", "0"]
        command += ["--grpc-port", "0"] if grpc else []
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(tree)}
        self.lines: deque[str] = deque(maxlen=200)
        self.proc = subprocess.Popen(
            command,
            cwd=tree,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.port = self.grpc_port = None
        try:
            self._wait(grpc)
        except BaseException:
            self.stop()
            raise

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def _wait(self, grpc: bool) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited: {''.join(self.lines)}")
            for line in list(self.lines):
                if self.port is None and line.startswith("listening on http://127.0.0.1:"):
                    self.port = int(line.split("127.0.0.1:")[1].split(";")[0])
                if self.grpc_port is None and line.startswith("grpc: listening on"):
                    self.grpc_port = int(line.rsplit(":", 1)[1])
            if self.port is not None and (self.grpc_port is not None or not grpc):
                if get(self.port, "/ready")[0] == 200:
                    return
            time.sleep(0.2)
        raise SystemExit(f"the server did not answer /ready in {START_TIMEOUT:g} s")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def processes(self) -> list[psutil.Process]:
        try:
            me = psutil.Process(self.proc.pid)
            return [me, *me.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        total = 0
        for p in self.processes():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.reader.join(timeout=5)


def get(port: int, path: str) -> tuple[int, bytes]:
    return post(port, path, None)


def post(port: int, path: str, body: bytes | None) -> tuple[int, bytes]:
    """(status, body) of one request; status 0 when the connection failed."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers=JSON_HEADERS if body else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:
        return 0, repr(exc).encode()


# ---------------------------------------------------------------- load generators


def lua_script(folder: Path, name: str, path: str, bodies: list[bytes]) -> Path:
    """A wrk script POSTing `bodies` to `path` in turn (formatted once, in init)."""
    literals = ",\n".join(f"[==[{b.decode()}]==]" for b in bodies)
    script = folder / f"{name}.lua"
    script.write_text(
        f"local bodies = {{\n{literals}\n}}\n"
        "local requests = {}\n"
        "local i = 0\n"
        "function init(args)\n"
        "  for k, b in ipairs(bodies) do\n"
        f'    requests[k] = wrk.format("POST", "{path}", '
        '{["Content-Type"] = "application/json"}, b)\n'
        "  end\n"
        "end\n"
        "function request()\n"
        "  i = i % #requests + 1\n"
        "  return requests[i]\n"
        "end\n"
    )
    return script


def to_ms(text: str) -> float:
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 6e4)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


class Usage:
    """CPU (cores busy) over a measurement: the server's, the load generator's (this
    process's finished children: wrk, hey) and everything else on the machine's (other
    people's work; it competes with both for the cores)."""

    def __init__(self, server: Served) -> None:
        self.server = server
        self.start = time.perf_counter()
        self.served = server.cpu_seconds()
        self.children = self._children()
        self.busy = self._busy()

    @staticmethod
    def _children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)

    def cores(self) -> dict:
        wall = time.perf_counter() - self.start
        server = (self.server.cpu_seconds() - self.served) / wall
        load = (self._children() - self.children) / wall
        busy = (self._busy() - self.busy) / wall
        return {"cores": server, "loadgen": load, "others": max(busy - server - load, 0.0)}


def usage(r: dict) -> str:
    return (
        f"cores: server {r['cores']:.2f}, load generator {r['loadgen']:.2f}, "
        f"others {r['others']:.2f}"
    )


def wrk(server: Served, script: Path, path: str, duration: float, connections: int) -> dict:
    """wrk -t2's closed loop: requests/s, p50 / p99 (ms), non-2xx answers and socket
    errors, and the server's CPU (cores busy) over the run."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{int(duration)}s", "--latency"]
    command += ["-s", str(script), server.url(path)]
    use = Usage(server)
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60).stdout
    result = {"rps": 0.0, "p50": float("nan"), "p99": float("nan"), "non2xx": 0, "socket": 0}
    result |= use.cores()
    for line in out.splitlines():
        words = line.split()
        if line.startswith("Requests/sec"):
            result["rps"] = float(words[1])
        elif words[:1] == ["50%"]:
            result["p50"] = to_ms(words[1])
        elif words[:1] == ["99%"]:
            result["p99"] = to_ms(words[1])
        elif line.strip().startswith("Non-2xx"):
            result["non2xx"] = int(words[-1])
        elif line.strip().startswith("Socket errors"):
            result["socket"] = sum(int(w.rstrip(",")) for w in words[3::2])
    if not result["rps"]:
        result["error"] = out[-500:]
    return result


def hey(server: Served, body_file: Path, seconds: float, connections: int, rate: float) -> dict:
    """hey at `rate` requests/s over `connections` connections (-q rate/connections
    each) for `seconds`, -o csv: latencies (ms) and statuses of what it recorded."""
    command = ["hey", "-z", f"{int(seconds)}s", "-c", str(connections)]
    command += ["-q", f"{rate / connections:.4f}", "-m", "POST", "-T", "application/json"]
    command += ["-D", str(body_file), "-o", "csv", server.url("/predict")]
    use = Usage(server)
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120).stdout
    cores = use.cores()
    lines = out.splitlines()[1:]
    ms = np.empty(len(lines))
    statuses = np.empty(len(lines), dtype=np.int32)
    for k, line in enumerate(lines):
        fields = line.split(",")
        ms[k] = float(fields[0]) * 1e3
        statuses[k] = int(fields[6])
    return {"ms": ms, "statuses": statuses, "scheduled": int(rate * int(seconds))} | cores


def pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


# ---------------------------------------------------------------- gRPC clients


def infer_inputs(features: list) -> list:
    """tritonclient.grpc's inputs for one row: (name, datatype, value) per feature."""
    import tritonclient.grpc as grpcclient

    inputs = []
    for name, datatype, value in features:
        tensor = grpcclient.InferInput(name, [1], datatype)
        if datatype == "BYTES":
            tensor.set_data_from_numpy(np.array([str(value).encode()], dtype=object))
        else:
            tensor.set_data_from_numpy(np.array([value], dtype=np.float32))
        inputs.append(tensor)
    return inputs


def grpc_client(job: tuple) -> tuple[int, int, np.ndarray, str]:
    """One client process: blocking infer in a loop from `start_at` (time.time) for
    `seconds`, after warming up until then. (answers, errors, latencies ms, first error)."""
    port, features, start_at, seconds = job
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    inputs = infer_inputs(features)
    first = ""
    while time.time() < start_at:
        try:
            client.infer("model", inputs)
        except InferenceServerException as exc:
            first = first or str(exc)
            time.sleep(0.05)
    answers = errors = 0
    latencies = []
    end = start_at + seconds
    while True:
        t0 = time.perf_counter()
        if time.time() >= end:
            break
        try:
            client.infer("model", inputs)
            answers += 1
        except InferenceServerException as exc:
            errors += 1
            first = first or str(exc)
        latencies.append(time.perf_counter() - t0)
    client.close()
    return answers, errors, np.array(latencies) * 1e3, first


def grpc_probe(port: int, features: list) -> str | None:
    """None when one gRPC ModelInfer of a row answers a probability, else why not."""
    try:
        import tritonclient.grpc as grpcclient
    except ImportError as exc:
        return f"tritonclient is not installed ({exc})"
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        inputs = infer_inputs(features)
        answer = client.infer("model", inputs).as_numpy("probability")
        if answer is None or answer.shape != (1,):
            return f"ModelInfer answered {answer!r}, not one probability"
        return None
    except Exception as exc:  # the probe's whole point is to say why it failed
        return f"ModelInfer failed: {str(exc)[:200]}"
    finally:
        client.close()


# ---------------------------------------------------------------- figures


def probe(server: Served, path: str, body: bytes, expect) -> str | None:
    """None when `body` on `path` answers 200 and `expect(answer)`, else why not."""
    status, answer = post(server.port, path, body)
    if status != 200:
        return f"POST {path} answered {status}: {answer[:200].decode(errors='replace')}"
    try:
        ok = expect(json.loads(answer))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"POST {path} answered 200 but not as expected ({exc!r})"
    return None if ok else f"POST {path} answered 200 but not as expected: {answer[:200]!r}"


def figure1(server: Served, files: dict, args) -> dict:
    r = wrk(server, files["raw.lua"], "/predict", args.duration, 8)
    print(
        f"    1. raw single rows, wrk -t2 -c8: {r['rps']:,.0f} requests/s, p50 {r['p50']:.2f} ms,"
        f" p99 {r['p99']:.2f} ms, non-2xx {r['non2xx']}, socket errors {r['socket']};"
        f" {usage(r)}" + (f"; {r['error']!r}" if "error" in r else "")
    )
    return r


def figure2(server: Served, files: dict, args) -> dict:
    r = hey(server, files["raw.json"], args.duration, PACED_CONNECTIONS, PACED_RATE)
    ms, statuses = r["ms"], r["statuses"]
    out = {
        "p50": pct(ms, 50),
        "p99": pct(ms, 99),
        "max": float(ms.max()) if len(ms) else float("nan"),
        "errors": int((statuses != 200).sum()),
        "answered": len(ms),
        "scheduled": r["scheduled"],
    } | {k: r[k] for k in ("cores", "loadgen", "others")}
    print(
        f"    2. {PACED_RATE:,}/s paced, hey -c {PACED_CONNECTIONS} -q "
        f"{PACED_RATE // PACED_CONNECTIONS}: p50 {out['p50']:.2f} ms, p99 {out['p99']:.2f} ms, "
        f"max {out['max']:.1f} ms, errors {out['errors']}; recorded {out['answered']:,} of "
        f"{out['scheduled']:,} scheduled ({out['answered'] / args.duration:,.0f}/s); {usage(out)}"
    )
    return out


def figure3(server: Served, files: dict, bodies: dict, args) -> dict:
    why = probe(
        server,
        "/predict",
        bodies["candidates"],
        lambda a: len(a["predictions"]) == CANDIDATES,
    )
    if why:
        print(f"    3. candidate batches: not measured: {why}")
        return {"why": why}
    r = wrk(server, files["candidates.lua"], "/predict", args.duration, 8)
    r["predictions"] = r["rps"] * CANDIDATES
    print(
        f"    3. candidate batches of {CANDIDATES}, wrk -t2 -c8: {r['rps']:,.0f} requests/s = "
        f"{r['predictions']:,.0f} predictions/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
        f"non-2xx {r['non2xx']}; {usage(r)}"
    )
    return r


def figure4(server: Served, files: dict, bodies: dict, args) -> dict:
    path = "/v2/models/model/infer"
    why = probe(server, path, bodies["v2"], lambda a: a["outputs"][0]["shape"] in ([V2_ROWS],))
    if why:
        print(f"    4. V2 REST infer: not measured: {why}")
        return {"why": why}
    r = wrk(server, files["v2.lua"], path, args.duration, 4)
    r["rows"] = r["rps"] * V2_ROWS
    print(
        f"    4. V2 REST infer, {V2_ROWS:,}-row tensors, wrk -t2 -c4: {r['rps']:,.0f} requests/s"
        f" = {r['rows']:,.0f} rows/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, non-2xx "
        f"{r['non2xx']}; {usage(r)}"
    )
    return r


def figure5(server: Served, bodies: dict, args) -> dict:
    if server.grpc_port is None:
        why = "the server printed no `grpc: listening on` line"
        print(f"    5. gRPC: not measured: {why}")
        return {"why": why}
    why = grpc_probe(server.grpc_port, bodies["features"])
    if why:
        print(f"    5. gRPC ModelInfer: not measured: {why}")
        return {"why": why}
    start_at = time.time() + 5  # the clients' imports and a warm-up first
    jobs = [(server.grpc_port, bodies["features"], start_at, args.duration)] * args.grpc_clients
    use = Usage(server)
    with multiprocessing.get_context("spawn").Pool(args.grpc_clients) as pool:
        results = pool.map(grpc_client, jobs, chunksize=1)
    cores = use.cores()
    answers = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    ms = np.concatenate([r[2] for r in results])
    first = next((r[3] for r in results if r[3]), "")
    out = {"rps": answers / args.duration, "errors": errors, "p50": pct(ms, 50), "p99": pct(ms, 99)}
    out |= cores
    print(
        f"    5. gRPC ModelInfer, single row, {args.grpc_clients} processes of "
        f"tritonclient.grpc InferenceServerClient.infer in a loop: {out['rps']:,.0f} requests/s,"
        f" p50 {out['p50']:.2f} ms, p99 {out['p99']:.2f} ms, errors {errors}"
        + (f" ({first[:120]})" if first else "")
        + f"; {usage(out)} (over the clients' start and warm-up too)"
    )
    return out


def figure6(server: Served, files: dict, rate: float, args) -> dict:
    wrk(server, files["raw.lua"], "/predict", 2, 8)  # steady state first
    peak = [server.rss()]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.5):
            peak.append(server.rss())

    watcher = threading.Thread(target=watch, daemon=True)
    before = server.rss()
    watcher.start()
    try:
        r = hey(server, files["raw.json"], args.saturation_seconds, SATURATION_CONNECTIONS, rate)
    finally:
        done.set()
        watcher.join(timeout=5)
    after = server.rss()
    ms, statuses = r["ms"], r["statuses"]
    ok = statuses == 200
    codes, counts = np.unique(statuses, return_counts=True)
    out = {
        "p99": pct(ms[ok], 99),
        "p50": pct(ms[ok], 50),
        "answered": int(ok.sum()),
        "shed": int((statuses == 503).sum()),
        "other": int((~ok & (statuses != 503)).sum()),
        "statuses": dict(zip(codes.tolist(), counts.tolist(), strict=True)),
        "recorded": len(ms),
        "scheduled": r["scheduled"],
        "rss_before": before,
        "rss_after": after,
        "rss_peak": max(peak + [after]),
        "growth": after / before - 1 if before else float("nan"),
        "shed_p99": pct(ms[statuses == 503], 99),
    } | {k: r[k] for k in ("cores", "loadgen", "others")}
    seconds = args.saturation_seconds
    print(
        f"    6. saturation at {rate:,.0f}/s offered (hey -c {SATURATION_CONNECTIONS} -q "
        f"{rate / SATURATION_CONNECTIONS:.1f}, {seconds:g} s): {out['answered']:,} answered 200 "
        f"({out['answered'] / seconds:,.0f}/s), p50 {out['p50']:.1f} ms, p99 {out['p99']:.1f} ms;"
        f" 503 (shed) {out['shed']:,} (p99 {out['shed_p99']:.1f} ms), other {out['other']:,}; "
        f"statuses {out['statuses']}; recorded {out['recorded']:,} of {out['scheduled']:,} "
        f"scheduled; RSS {before / 1e6:,.0f} -> {after / 1e6:,.0f} MB ({out['growth']:+.1%}, peak "
        f"{out['rss_peak'] / 1e6:,.0f} MB); {usage(out)}"
    )
    return out


# ---------------------------------------------------------------- the table


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if key in r and "why" not in r]
    return float(np.median(values)) if values else None


def why_not(runs: list[dict]) -> str:
    return next((r["why"] for r in runs if "why" in r), "not run")


def fmt(value: float | None, spec: str = ",.0f", unit: str = "") -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:{spec}}{unit}"


def table(results: dict, rate: float | None, args) -> str:
    """The Markdown table of medians: figure, baseline, HEAD, target, met."""
    base, head = results["baseline"], results["head"]
    rows = []

    def met(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "**missed**")

    if 1 in args.only:
        b, h = median(base[1], "rps"), median(head[1], "rps")
        ratio = h / b if b and h else None
        ok = None if h is None else h >= TARGETS["raw_rps"] and (ratio is None or ratio >= 3)
        rows.append(
            (
                "1",
                "single-row raw requests, wrk -t2 -c8: requests/s",
                fmt(b),
                fmt(h) + (f" ({ratio:.1f}x)" if ratio else ""),
                "[>= 3x baseline and >= 10,000/s]",
                met(ok),
            )
        )
        rows.append(
            (
                "",
                "cost: cores per million single-row requests/s, 1e6 / figure 1",
                fmt(1e6 / b if b else None, ",.1f"),
                fmt(1e6 / h if h else None, ",.1f"),
                "",
                "",
            )
        )
    if 2 in args.only:
        b, h = median(base[2], "p99"), median(head[2], "p99")
        be, he = median(base[2], "errors"), median(head[2], "errors")
        ok = None if h is None else h <= TARGETS["p99_ms"] and he == 0
        rows.append(
            (
                "2",
                f"p99 at {PACED_RATE:,} raw requests/s (hey -c 50 -q 100), errors",
                f"{fmt(b, '.2f', ' ms')}, {fmt(be, ',.0f')} errors",
                f"{fmt(h, '.2f', ' ms')}, {fmt(he, ',.0f')} errors",
                "[<= 5 ms, 0 errors]",
                met(ok),
            )
        )
    head_only = (  # figure, its key in the runs, what it is, the target's text and value
        (3, "predictions", f"candidate batches of {CANDIDATES} on /predict, wrk -c8: "
         "predictions/s", "[>= 500,000]", TARGETS["candidate_predictions_s"]),
        (4, "rows", f"V2 REST infer, {V2_ROWS:,}-row tensors, wrk -c4: rows/s",
         "[>= 1,000,000]", TARGETS["v2_rows_s"]),
        (5, "rps", f"gRPC ModelInfer, single row, {args.grpc_clients} tritonclient.grpc "
         "processes: requests/s", "[>= 4,000/s]", TARGETS["grpc_rps"]),
    )  # fmt: skip
    for figure, key, what, target, least in head_only:
        if figure not in args.only:
            continue
        h = median(head[figure], key)
        measured = fmt(h) if h is not None else f"not measured: {why_not(head[figure])[:120]}"
        rows.append(
            (str(figure), what, "-", measured, target, met(None if h is None else h >= least))
        )
    if 6 in args.only:

        def sat(runs: list[dict]) -> str:
            p99 = median(runs, "p99")
            if p99 is None and not any("answered" in r for r in runs):
                return "n/a"
            return (
                f"p99 {fmt(p99, ',.1f', ' ms')}; {fmt(median(runs, 'answered'))} answered, "
                f"{fmt(median(runs, 'shed'))} shed (503), {fmt(median(runs, 'other'))} other; "
                f"RSS {fmt(median(runs, 'growth'), '+.1%')}"
            )

        p99, growth = median(head[6], "p99"), median(head[6], "growth")
        ok = None
        if p99 is not None and growth is not None:
            ok = p99 <= TARGETS["saturation_p99_ms"] and growth <= TARGETS["rss_growth"]
        rows.append(
            (
                "6",
                f"2x saturation, {fmt(rate)}/s offered for {args.saturation_seconds:g} s "
                f"(hey -c {SATURATION_CONNECTIONS}): answered p99, statuses, RSS growth",
                sat(base[6]),
                sat(head[6]),
                "[p99 <= 50 ms, RSS growth <= 10%]",
                met(ok),
            )
        )
    lines = [
        "| # | figure (median of runs) | baseline | HEAD | target | |",
        "|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def cpu_model() -> str:
    """The CPU's name as /proc/cpuinfo gives it (bench/budget.py prints it too)."""
    return next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({cpu_model()}), {memory:.0f} GiB"


def commit(tree: Path) -> str:
    """The tree's commit, and whether its working tree has edits (read-only git)."""

    def run(*a: str) -> str:
        command = ["git", "-C", str(tree), *a]
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip()

    edits = run("status", "--porcelain", "--untracked-files=no")
    return run("rev-parse", "--short", "HEAD") + (" with working-tree edits" if edits else "")


def wait_quiet(limit: float) -> None:
    """Wait (at most `limit` s) until the machine is quiet: under 0.3 cores busy over a
    second. Other people's work on these 2 cores competes with server and load generator."""
    if limit <= 0:
        return
    start = time.monotonic()
    while time.monotonic() - start < limit:
        busy = psutil.cpu_percent(interval=1.0) / 100 * (os.cpu_count() or 1)
        if busy < 0.3:
            break
    waited = time.monotonic() - start
    if waited > 1.5:
        quiet = "quiet" if busy < 0.3 else f"still {busy:.1f} cores busy"
        print(f"    (waited {waited:.0f} s for the machine to be quiet: {quiet})")


def measure(side: str, tree: Path, package: Path, figures: set, files, bodies, args, rate=None):
    """One server run: start it, the figures in `figures`, stop it."""
    head = side == "head"
    print(f"  {side} ({tree}):")
    server = Served(tree, package, grpc=head and 5 in figures)
    got = {}
    try:
        wrk(server, files["raw.lua"], "/predict", 2, 8)  # a warm-up
        steps = {
            1: lambda: figure1(server, files, args),
            2: lambda: figure2(server, files, args),
            3: lambda: figure3(server, files, bodies, args),
            4: lambda: figure4(server, files, bodies, args),
            5: lambda: figure5(server, bodies, args),
            6: lambda: figure6(server, files, rate, args),
        }
        for f, step in steps.items():
            if f in figures and (head or f in BOTH):
                wait_quiet(args.quiet_seconds)
                got[f] = step()
    finally:
        server.stop()
    return got


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--package", default=paths.PACKAGE)
    parser.add_argument("--sample", default=paths.SKEW_SAMPLE)
    parser.add_argument("--golden", default=paths.GOLDEN)
    parser.add_argument("--baseline-dir", default="/tmp/fleet-base")
    parser.add_argument("--duration", type=float, default=10, help="seconds per figure")
    parser.add_argument("--saturation-seconds", type=float, default=30)
    parser.add_argument(
        "--saturation-rate", type=float, help="figure 6's offered rate (default: 2x figure 1)"
    )
    parser.add_argument("--runs", type=int, default=2, help="runs of each server, alternating")
    parser.add_argument("--grpc-clients", type=int, default=4)
    parser.add_argument(
        "--quiet-seconds",
        type=float,
        default=30,
        help="before each figure, wait up to this long for the machine to be quiet; 0: never",
    )
    parser.add_argument("--only", default=",".join(map(str, FIGURES)), help="e.g. 1,2,6")
    parser.add_argument("--out", help="write the Markdown table to this file too")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so that every server started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(f"{Path(__file__).name}: terminated"))
    args.only = {int(f) for f in args.only.split(",") if f.strip()}
    unknown = args.only - set(FIGURES)
    if unknown:
        parser.error(f"no figure {sorted(unknown)}; figures are {FIGURES}")

    package = (ROOT / args.package).resolve()
    baseline = Path(args.baseline_dir)
    trees = {"head": ROOT}
    if (baseline / "ctrpipe").is_dir():
        trees = {"baseline": baseline, "head": ROOT}
    else:
        print(f"{baseline}: no baseline tree; baseline figures skipped")
    bodies = request_bodies(package, ROOT / args.sample, ROOT / args.golden)
    print(f"machine: {machine()}; {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    for side, tree in trees.items():
        print(f"{side}: {tree} at {commit(tree)}")
    print(
        f"package {package}; servers: serve --workers 1 --sample-rate 0; "
        f"{args.runs} runs each, alternating; load generators on the same machine"
    )

    results = {s: {f: [] for f in FIGURES} for s in ("baseline", "head")}
    rate = args.saturation_rate
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {
            "raw.lua": lua_script(tmp, "raw", "/predict", bodies["raw"]),
            "candidates.lua": lua_script(tmp, "candidates", "/predict", [bodies["candidates"]]),
            "v2.lua": lua_script(tmp, "v2", "/v2/models/model/infer", [bodies["v2"]]),
            "raw.json": tmp / "raw.json",
        }
        files["raw.json"].write_bytes(bodies["raw"][0])
        first = args.only - {6}
        if first:
            for run in range(1, args.runs + 1):
                print(f"run {run} of {args.runs}, figures {sorted(first)}:")
                for side, tree in trees.items():
                    got = measure(side, tree, package, first, files, bodies, args)
                    for f, r in got.items():
                        results[side][f].append(r)
        if 6 in args.only:
            if rate is None:
                single = median(results["head"][1], "rps")
                if single is None:
                    print("figure 6: figure 1 not in this run; measuring HEAD's rate first")
                    got = measure("head", ROOT, package, {1}, files, bodies, args)
                    single = got[1]["rps"]
                rate = 2 * single
            for run in range(1, args.runs + 1):
                print(f"run {run} of {args.runs}, figure 6 at {rate:,.0f} requests/s offered:")
                for side, tree in trees.items():
                    got = measure(side, tree, package, {6}, files, bodies, args, rate)
                    results[side][6].append(got[6])

    markdown = table(results, rate, args)
    print()
    print(markdown)
    if args.out:
        Path(args.out).write_text(markdown + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
