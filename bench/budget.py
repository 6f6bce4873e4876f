"""Hold the line: the figures users feel, on a baseline commit and on HEAD, side by side,
held to the budget lines in bench/budget.yaml.

    python bench/budget.py --baseline 829f285                # full: about 12-15 minutes
    python bench/budget.py --baseline 0bc8fef --quick        # figures 2, 3, 5, 6, 7
    python bench/budget.py --out /tmp/budget.md --json /tmp/budget.json
    python bench/budget.py --ci                              # also .ci/run: +40 minutes
    python bench/budget.py --ci-seconds REF=1146,HEAD=1173   # .ci/run's, measured elsewhere

Two trees, each in a temporary folder with its own set-up: REF (--baseline, default the
one in budget.yaml) and HEAD (this repository's HEAD commit with the working tree's
uncommitted changes to tracked files applied, so that nothing is ever written into this
tree; or --head, another commit). Each tree runs its own `make setup` (old trees' set-up
may differ: that is part of what is measured), and every command runs with the tree's
.venv/bin first on PATH, SPARK_LOCAL_IP=127.0.0.1, PYTHONHASHSEED=0 and
DVC_NO_ANALYTICS=1, as the Makefile exports.

Figures: the median of each one's runs (--runs overrides them all). The two trees
alternate, REF HEAD HEAD REF ..., so a drift of the machine's speed falls on both.

1. fresh-clone repro (1 run): wall time of `make repro`, set-up included, in a fresh
   `git clone` of the tree's commit, whose DVC cache is empty (a clone has none).
2. no-op `dvc repro` (3 runs; `production` always runs: it reads a git tag).
3. `dvc status` (3 runs).
4. generate at 1M rows (2 runs): `dvc repro --force --single-item generate`.
5. single-row predict p50 in microseconds, in process (3 runs): Service.predict on a
   single-row JSON body, PROBE_CALLS calls cycling through 1,000 bodies after a warm-up,
   in a `python -c` program of the tree's own python and code. The bodies are raw records
   from the skew sample where both trees have an online snapshot, else golden feature
   rows on both: the same work on each side.
6. one worker's most answered requests/s (3 runs): `python -m ctrpipe serve --package
   models/package --port P --sample-rate 0` started from the tree, wrk -t2 -c8 -d10s with
   a Lua script POSTing those bodies in turn, after a 1 s warm-up; 200s only.
7. p99 at 2,000 requests/s, on the same server after figure 6: hey -z 10s -c 20 -q 100
   -o csv (hey's -q is per connection), p99 of the 200s; and the count of non-200s. hey
   leaves failed connections out of its CSV, so a run that recorded 2% fewer requests
   than it scheduled is named in the notes.
8. `.ci/run`'s wall time in a fresh clone (1 run), only with --ci (about 20 minutes a
   tree); else taken from --ci-seconds, else left out with a note.

Without --quick, figures 2-7 run in each tree's fresh clone from figure 1 (generate last,
as it rewrites outputs). --quick measures only 2, 3, 5, 6 and 7, in git worktrees instead
of clones; their outputs come first from `dvc pull` out of this repository's DVC cache
(read as a local remote, never written) and one `dvc repro`, both set-up, not measured;
the notes say what that repro re-ran.

Each server answers on 127.0.0.1 only and is stopped after its run (on Ctrl-C too);
every command has a timeout. The worktrees and clones are under one temporary folder,
removed at the end unless --keep; --reuse DIR measures again in the worktrees that a
--quick --keep run left in DIR (their `make setup` and `dvc repro` are then no-ops of
seconds). wrk and hey are optional (`apt install wrk hey`): without them figures 6 and 7
are skipped, and the table says so.

The table's ratio is HEAD/REF for times and latencies and REF/HEAD for throughput, so
above 1.00x is always worse. Exit status: 0 when every measured figure is within its
line, 1 when one is worse, 2 when one could not be measured (its command failed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUDGET = Path(__file__).with_name("budget.yaml")
sys.path.insert(0, str(ROOT))
from fleet import cpu_model, lua_script  # noqa: E402  bench/fleet.py, this folder

from ctrpipe import paths  # noqa: E402  this tree's declared paths; older trees used the same

PACKAGE = paths.PACKAGE
TREE_ENV = {"SPARK_LOCAL_IP": "127.0.0.1", "PYTHONHASHSEED": "0", "DVC_NO_ANALYTICS": "1"}
PROBE_CALLS = 20_000
PROBE_DATA = (paths.SKEW_SAMPLE, paths.GOLDEN)  # raw records, else feature rows
WRK_SECONDS, WRK_WARMUP = 10, 1
HEY_SECONDS, HEY_CONNECTIONS, HEY_PER_CONNECTION = 10, 20, 100  # 2,000 requests/s
START_TIMEOUT = 180  # seconds for a server to answer /ready
# timeouts (seconds) of the commands
SETUP_TIMEOUT, REPRO_TIMEOUT, CI_TIMEOUT, SHORT_TIMEOUT = 1800, 1800, 3600, 300


@dataclass(frozen=True)
class Figure:
    number: int
    key: str  # its line in budget.yaml
    label: str
    unit: str
    spec: str  # format of its values
    runs: int = 3
    higher_is_better: bool = False


FIGURES = (
    Figure(1, "fresh_clone_repro", "fresh-clone `make repro` (set-up included)", "s", ".1f", 1),
    Figure(2, "noop_repro", "no-op `dvc repro`", "s", ".2f"),
    Figure(3, "dvc_status", "`dvc status`", "s", ".2f"),
    Figure(4, "generate", "generate at 1M rows", "s", ".1f", 2),
    Figure(5, "predict_p50", "single-row predict p50, in process", "µs", ".1f"),
    Figure(6, "serve_rps", "one worker's most answered requests/s (wrk)", "/s", ",.0f", 3, True),
    Figure(7, "serve_p99", "p99 at 2,000 requests/s (hey)", "ms", ".2f"),
    Figure(7, "serve_errors", "non-200s at 2,000 requests/s", "", ",.0f"),
    Figure(8, "ci_run", "`.ci/run` wall time", "s", ",.0f", 1),
)
BY_KEY = {f.key: f for f in FIGURES}
QUICK = {2, 3, 5, 6, 7}
SIDES = ("REF", "HEAD")

# Figure 5, run by each tree's python in the tree: prints one JSON line; with calls 0 it
# only writes the bodies (a JSON list of strings) for the HTTP figures.
PROBE = r"""
import datetime as dt, json, sys, time
import pyarrow.parquet as pq
try:
    from ctrpipe.serving.service import Service
except ImportError:  # before the code moved into subpackages
    from ctrpipe.serve import Service
package, calls, bodies_out, sample, golden, wanted = sys.argv[1:7]
calls = int(calls)
service = Service()
model = service.load(package)
online = getattr(model, "online", None)
if online is not None and wanted != "features":
    table, contract = pq.read_table(sample).select(online.snapshot.spec["request"]), "raw"
else:
    table, contract = pq.read_table(golden).select(model.loaded.schema.names), "features"
rows = [
    {c: v.isoformat() if isinstance(v, dt.datetime) else v for c, v in r.items()}
    for r in table.slice(0, 1000).to_pylist()
]
bodies = [json.dumps({"row": r}).encode() for r in rows]
status, answer = service.predict(bodies[0])
if status != 200:
    raise SystemExit(f"Service.predict answered {status}: {answer}")
if bodies_out:
    with open(bodies_out, "w") as f:
        json.dump([b.decode() for b in bodies], f)
ns, clock, predict = [], time.perf_counter_ns, service.predict
for b in bodies[:200] if calls else []:  # warm-up
    predict(b)
for k in range(calls):
    b = bodies[k % len(bodies)]
    start = clock()
    predict(b)
    ns.append(clock() - start)
ns.sort()
p50 = ns[len(ns) // 2] / 1e3 if ns else None
print(json.dumps({"p50_us": p50, "contract": contract, "backend": model.backend}))
service.close()
"""


class Failed(Exception):
    """A command failed or timed out; the message has the tail of its output."""


# ---------------------------------------------------------------- processes


class Runner:
    """Every command of the run: its own process group (stopped whole on a timeout or an
    interrupt), its output in a log file under the temporary folder."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.count = 0
        self.servers: set[Server] = set()

    def log(self, name: str) -> Path:
        self.count += 1
        return self.logs / f"{self.count:03d}-{name}.log"

    def run(
        self, cmd: list[str], cwd: Path, env: dict, timeout: float, name: str, stdin: bytes = b""
    ) -> tuple[float, str]:
        """Wall seconds and output of `cmd`; Failed if it fails or times out."""
        log = self.log(name)
        with log.open("wb") as out:
            started = time.perf_counter()
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                proc.communicate(stdin, timeout=timeout)
            except subprocess.TimeoutExpired:
                stop_group(proc)
                raise Failed(f"{' '.join(cmd[:4])}: no answer in {timeout:g} s ({log})") from None
            except BaseException:
                stop_group(proc)
                raise
            seconds = time.perf_counter() - started
        output = log.read_text(errors="replace")
        if proc.returncode != 0:
            tail = "\n".join(output.splitlines()[-15:])
            raise Failed(f"{' '.join(cmd[:4])} exited {proc.returncode} ({log}):\n{tail}")
        return seconds, output

    def stop_servers(self) -> None:
        for server in list(self.servers):
            server.stop()


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group we started, then SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m ctrpipe serve` from a tree, on 127.0.0.1, until it answers /ready."""

    def __init__(self, runner: Runner, tree: Tree) -> None:
        self.runner, self.port = runner, free_port()
        cmd = [str(tree.bin("python")), "-m", "ctrpipe", "serve", "--package", PACKAGE]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--sample-rate", "0"]
        self.lines: deque[str] = deque(maxlen=50)
        self.proc = subprocess.Popen(
            cmd,
            cwd=tree.path,
            env=tree.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        runner.servers.add(self)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def __enter__(self) -> Server:
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failed(f"the server exited {self.proc.returncode}: {''.join(self.lines)}")
            if http_status(self.url("/ready")) == 200:
                return
            time.sleep(0.2)
        raise Failed(f"the server did not answer /ready in {START_TIMEOUT} s")

    def __exit__(self, *exc) -> None:
        self.stop()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # serve drains, then exits
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop_group(self.proc)
        self.runner.servers.discard(self)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


# ---------------------------------------------------------------- trees


def git(*args: str, cwd: Path = ROOT, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, timeout=300)
    if done.returncode != 0:
        raise Failed(f"git {' '.join(args[:3])}: {done.stderr.decode(errors='replace')[-500:]}")
    return done.stdout


@dataclass
class Side:
    """What one side measures: a commit, and the uncommitted changes on top (HEAD's)."""

    name: str  # REF or HEAD
    commit: str
    patch: bytes = b""

    @property
    def label(self) -> str:
        return f"`{self.commit[:7]}`" + (" + uncommitted changes" if self.patch else "")


@dataclass
class Tree:
    """A checkout of a side with its own .venv."""

    side: Side
    path: Path
    worktree: bool  # a `git worktree` of this repository (else a clone)
    bodies: Path | None = None
    contract: str = ""

    def bin(self, name: str) -> Path:
        return self.path / ".venv" / "bin" / name

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.path / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return env | TREE_ENV | {"VIRTUAL_ENV": str(self.path / ".venv")}


def resolve(ref: str) -> str:
    try:
        return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").decode().strip()
    except Failed:
        raise SystemExit(f"{ref}: not a commit of {ROOT}") from None


def checkout(tree: Tree) -> None:
    """A worktree of this repository, or a fresh clone, at the side's commit (and patch)."""
    side, path = tree.side, tree.path
    if tree.worktree:
        git("worktree", "add", "--detach", "--quiet", str(path), side.commit)
    else:
        git("clone", "--quiet", "--no-checkout", str(ROOT), str(path))
        git("checkout", "--quiet", "--detach", side.commit, cwd=path)
    if side.patch:
        git("apply", "--whitespace=nowarn", "-", cwd=path, stdin=side.patch)


def remove(tree: Tree) -> None:
    if tree.worktree:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(tree.path)],
            cwd=ROOT,
            capture_output=True,
            timeout=300,
        )
    shutil.rmtree(tree.path, ignore_errors=True)


def last_json(output: str) -> dict:
    """The probe's answer: the last line of its output that is a JSON object."""
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise Failed(f"no JSON answer in: {output[-500:]}")


def stages_run(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


class Bench:
    """The run's trees, results and notes."""

    def __init__(self, args, tmp: Path, sides: dict[str, Side], budget: dict) -> None:
        self.args, self.tmp, self.sides, self.budget = args, tmp, sides, budget
        self.runner = Runner(tmp / "logs")
        self.runner.logs.mkdir(exist_ok=True)
        self.measuring = 0.0  # perf_counter when the set-up was done
        self.trees: dict[str, Tree] = {}
        self.made: list[Tree] = []  # every tree made, to remove at the end
        self.values = {f.key: {s: [] for s in SIDES} for f in FIGURES}
        self.errors: dict[str, str] = {}
        self.skipped: dict[str, str] = {}
        self.notes: list[str] = []
        self.setup: dict[str, dict[str, float]] = {s: {} for s in SIDES}

    def run(self, tree: Tree, cmd: list, timeout: float, name: str) -> tuple[float, str]:
        return self.runner.run(
            [str(c) for c in cmd], tree.path, tree.env(), timeout, f"{tree.side.name}-{name}"
        )

    def new_tree(self, side: str, worktree: bool, name: str) -> Tree:
        tree = Tree(self.sides[side], self.tmp / f"{side.lower()}-{name}", worktree)
        if worktree and self.args.reuse and tree.path.is_dir():
            at = git("rev-parse", "HEAD", cwd=tree.path).decode().strip()
            if at != tree.side.commit:
                raise Failed(f"{tree.path} is at {at[:7]}, not {tree.side.commit[:7]}")
            return tree
        shutil.rmtree(tree.path, ignore_errors=True)  # a clone left by a kept run
        self.made.append(tree)  # removed at the end, even if its checkout fails
        checkout(tree)
        return tree

    # ------------------------------------------------------------ set-up (not measured)

    def set_up_worktree(self, side: str) -> None:
        """A worktree with its `make setup` and outputs: `dvc pull` from this repository's
        cache where it has them, then one `dvc repro` for the rest."""
        tree = self.new_tree(side, worktree=True, name="worktree")
        seconds, _ = self.run(tree, ["make", "setup"], SETUP_TIMEOUT, "setup")
        self.setup[side]["make setup"] = seconds
        cache = ROOT / ".dvc" / "cache"
        if cache.is_dir():
            dvc = tree.bin("dvc")
            self.run(tree, [dvc, "remote", "add", "--local", "-f", "seed", cache], 60, "remote")
            started = time.perf_counter()
            try:
                self.run(tree, [dvc, "pull", "-r", "seed"], REPRO_TIMEOUT, "pull")
                seeded = f"pulled from {cache} (read only)"
            except Failed:  # what the cache lacks, the repro below makes
                seeded = f"pulled from {cache} (read only) where it had the outputs"
            self.setup[side]["dvc pull"] = time.perf_counter() - started
        else:
            seeded = "empty (this repository has no DVC cache to pull from)"
        seconds, output = self.run(tree, [tree.bin("dvc"), "repro"], REPRO_TIMEOUT, "fill")
        self.setup[side]["dvc repro"] = seconds
        ran = stages_run(output)
        self.notes.append(
            f"{side} worktree: DVC cache its own, {seeded}; the set-up `dvc repro` "
            f"({seconds:.0f} s) ran {', '.join(ran) or 'nothing'}."
        )
        self.trees[side] = tree

    def prepare_bodies(self) -> None:
        """Each tree's request bodies, made by its own code: raw records where both trees
        have an online snapshot, else feature rows on both, so that figures 5-7 compare
        the same work (a raw request includes the online lookup; a tree with a snapshot
        answers feature rows too)."""
        for wanted in ("auto", "features"):
            for side, tree in self.trees.items():
                if wanted == "features" and tree.contract != "raw":
                    continue
                bodies = self.tmp / f"{side.lower()}-bodies.json"
                cmd = [tree.bin("python"), "-c", PROBE, PACKAGE, 0, bodies, *PROBE_DATA, wanted]
                try:
                    _, output = self.run(tree, cmd, SHORT_TIMEOUT, "bodies")
                except Failed as exc:
                    self.errors["request bodies"] = f"{side}: {exc}"
                    continue
                tree.bodies = bodies
                tree.contract = last_json(output)["contract"]
            if len({t.contract for t in self.trees.values()}) == 1:
                break
        self.notes.append(
            "Request bodies (figures 5-7): "
            + ", ".join(f"{s} {t.contract or '(none)'}" for s, t in self.trees.items())
            + ", 1,000 single rows from the tree's own outputs (raw: records of the skew "
            "sample, the features looked up in the online snapshot; features: golden rows, "
            "on both trees when one has no snapshot)."
        )

    # ------------------------------------------------------------ the figures

    def fresh_clone_repro(self, side: str, run: int) -> dict:
        """Figure 1: `make repro` in a new clone; that clone is the side's tree after."""
        tree = self.new_tree(side, worktree=False, name=f"clone{run}")
        seconds, _ = self.run(tree, ["make", "repro"], SETUP_TIMEOUT + REPRO_TIMEOUT, "repro")
        old = self.trees.get(side)
        self.trees[side] = tree
        if old is not None:
            remove(old)
            self.made.remove(old)
        return {"fresh_clone_repro": seconds}

    def noop_repro(self, side: str, run: int) -> dict:
        tree = self.trees[side]
        seconds, output = self.run(tree, [tree.bin("dvc"), "repro"], SHORT_TIMEOUT, "noop")
        # production runs on every repro: in dvc.yaml until 2026-12-08, then in its own file
        ran = [s for s in stages_run(output) if s.split(":")[-1] != "production"]
        if ran:
            self.notes.append(f"{side}'s no-op `dvc repro` (run {run + 1}) ran {', '.join(ran)}.")
        return {"noop_repro": seconds}

    def dvc_status(self, side: str, run: int) -> dict:
        tree = self.trees[side]
        seconds, _ = self.run(tree, [tree.bin("dvc"), "status"], SHORT_TIMEOUT, "status")
        return {"dvc_status": seconds}

    def generate(self, side: str, run: int) -> dict:
        tree = self.trees[side]
        cmd = [tree.bin("dvc"), "repro", "--force", "--single-item", "generate"]
        return {"generate": self.run(tree, cmd, REPRO_TIMEOUT, "generate")[0]}

    def predict_p50(self, side: str, run: int) -> dict:
        tree = self.trees[side]
        if tree.bodies is None:
            raise Failed("its package does not answer Service.predict (see the notes)")
        cmd = [tree.bin("python"), "-c", PROBE, PACKAGE, PROBE_CALLS, "", *PROBE_DATA]
        cmd.append(tree.contract)
        _, output = self.run(tree, cmd, SHORT_TIMEOUT, "predict")
        return {"predict_p50": last_json(output)["p50_us"]}

    def serving(self, side: str, run: int) -> dict:
        """Figures 6 and 7 on one server: wrk's closed loop, then hey paced."""
        tree = self.trees[side]
        if tree.bodies is None:
            raise Failed("no request bodies (see the notes)")
        bodies = json.loads(tree.bodies.read_text())
        got = {}
        with Server(self.runner, tree) as server:
            if 6 in self.figures and shutil.which("wrk"):
                encoded = [b.encode() for b in bodies]
                script = lua_script(self.tmp, side.lower(), "/predict", encoded)
                wrk(self, server, script, WRK_WARMUP)
                got["serve_rps"] = wrk(self, server, script, WRK_SECONDS)
            if 7 in self.figures and shutil.which("hey"):
                body = self.tmp / f"{side.lower()}-body.json"
                body.write_text(bodies[0])
                got |= hey(self, server, body)
        return got

    def ci_run(self, side: str, run: int) -> dict:
        tree = self.new_tree(side, worktree=False, name=f"ci{run}")
        try:
            return {"ci_run": self.run(tree, [".ci/run"], CI_TIMEOUT, "ci")[0]}
        finally:
            remove(tree)
            self.made.remove(tree)

    # ------------------------------------------------------------ alternating runs

    def alternate(self, measure, keys: list[str], needs_tree: bool = True) -> None:
        """`measure(side, run)` for each run, the sides in turn: REF HEAD, HEAD REF, ..."""
        runs = self.args.runs or max(BY_KEY[k].runs for k in keys)
        for run in range(runs):
            for side in SIDES if run % 2 == 0 else SIDES[::-1]:
                if needs_tree and side not in self.trees:
                    continue  # its set-up failed (an error already)
                try:
                    got = measure(side, run)
                except Failed as exc:
                    for k in keys:
                        self.errors.setdefault(k, f"{side}: {exc}")
                    print(f"  {side} run {run + 1}: failed: {exc}", flush=True)
                    continue
                for k, value in got.items():
                    self.values[k][side].append(value)
                shown = ", ".join(f"{k} {v:{BY_KEY[k].spec}}" for k, v in got.items())
                print(f"  {side} run {run + 1}/{runs}: {shown}", flush=True)

    @property
    def figures(self) -> set[int]:
        return self.args.only


def wrk(bench: Bench, server: Server, script: Path, seconds: int) -> float:
    """200 answers per second of wrk -t2 -c8 for `seconds`."""
    cmd = ["wrk", "-t2", "-c8", f"-d{seconds}s", "-s", str(script), server.url("/predict")]
    _, out = bench.runner.run(cmd, bench.tmp, dict(os.environ), seconds + 60, "wrk")
    answered = non2xx = 0
    elapsed = float(seconds)
    for line in out.splitlines():
        words = line.split()
        if len(words) > 3 and words[1:3] == ["requests", "in"]:  # "N requests in 10.00s, ..."
            answered, elapsed = int(words[0]), float(words[3].rstrip("s,"))
        elif line.strip().startswith("Non-2xx"):
            non2xx = int(words[-1])
    if not answered:
        raise Failed(f"wrk answered nothing: {out[-500:]}")
    return (answered - non2xx) / elapsed


def hey(bench: Bench, server: Server, body: Path) -> dict:
    """hey at 2,000 requests/s: p99 (ms) of the 200s, and the other answers or none."""
    cmd = ["hey", "-z", f"{HEY_SECONDS}s", "-c", str(HEY_CONNECTIONS)]
    cmd += ["-q", str(HEY_PER_CONNECTION), "-m", "POST", "-T", "application/json"]
    cmd += ["-D", str(body), "-o", "csv", server.url("/predict")]
    _, out = bench.runner.run(cmd, bench.tmp, dict(os.environ), HEY_SECONDS + 120, "hey")
    ok, other = [], 0
    for line in out.splitlines()[1:]:
        fields = line.split(",")
        if len(fields) < 7 or not fields[6].strip().isdigit():
            continue
        if int(fields[6]) == 200:
            ok.append(float(fields[0]) * 1e3)
        else:
            other += 1
    scheduled = HEY_SECONDS * HEY_CONNECTIONS * HEY_PER_CONNECTION
    unrecorded = max(scheduled - len(ok) - other, 0)
    if unrecorded > scheduled * 0.02:  # hey falls a little short of its schedule anyway
        bench.notes.append(
            f"hey recorded {len(ok) + other:,} of {scheduled:,} scheduled requests on "
            f"{server.url('')}: the rest failed or were never sent."
        )
    if not ok:
        raise Failed(f"hey recorded no 200s: {out[-500:]}")
    return {"serve_p99": percentile(ok, 99), "serve_errors": other}


def percentile(values: list[float], q: float) -> float:
    """numpy's default (linear) percentile."""
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# ---------------------------------------------------------------- the table


@dataclass
class Row:
    figure: Figure
    ref: list[float] = field(default_factory=list)
    head: list[float] = field(default_factory=list)
    ratio: float | None = None
    limit: float | None = None
    result: str = ""


def judge(figure: Figure, line: dict, ref: list, head: list, why_not: str) -> Row:
    """A row: medians, the worse-is-above-1 ratio, the worst HEAD the line allows, pass/fail."""
    row = Row(figure, ref, head)
    if why_not or not ref or not head:
        row.result = why_not or "not measured"
        return row
    r, h = statistics.median(ref), statistics.median(head)
    factor = line["max_ratio"] * (1 + line.get("noise", 0))
    slack = line.get("slack", 0)
    if figure.higher_is_better:
        row.ratio = r / h if h else None
        row.limit = r / factor - slack
        ok = h >= row.limit
    else:
        row.ratio = h / r if r else None
        row.limit = r * factor + slack
        ok = h <= row.limit
    row.result = "pass" if ok else "**fail**"
    return row


def show(values: list[float], figure: Figure) -> str:
    if not values:
        return "-"
    unit = f" {figure.unit}" if figure.unit not in ("", "/s") else figure.unit
    text = f"{statistics.median(values):{figure.spec}}{unit}"
    if len(values) > 1:
        text += f" ({', '.join(f'{v:{figure.spec}}' for v in values)})"
    return text


def budget_text(figure: Figure, line: dict, row: Row) -> str:
    sign = ">=" if figure.higher_is_better else "<="
    text = f"{line['max_ratio']:.2f}x"
    if line.get("noise"):
        text += f" + {line['noise']:.0%} noise"
    if line.get("slack"):
        text += f" + {line['slack']:g} {figure.unit}"
    if row.limit is not None:
        unit = f" {figure.unit}" if figure.unit not in ("", "/s") else figure.unit
        text += f": HEAD {sign} {row.limit:{figure.spec}}{unit}"
    return text


def table(rows: list[Row], budget: dict, sides: dict[str, Side]) -> str:
    lines = [
        f"| # | figure | REF {sides['REF'].label} | HEAD {sides['HEAD'].label} | ratio "
        "(above 1 is worse) | budget line | result |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        f = row.figure
        lines.append(
            f"| {f.number} | {f.label} | {show(row.ref, f)} | {show(row.head, f)} | "
            f"{ratio_text(row)} | {budget_text(f, budget['figures'][f.key], row)} | "
            f"{row.result} |"
        )
    return "\n".join(lines)


def ratio_text(row: Row) -> str:
    how = "REF/HEAD" if row.figure.higher_is_better else "HEAD/REF"
    return "-" if row.ratio is None else f"{row.ratio:.2f}x ({how})"


def one_line(text: str, limit: int = 600) -> str:
    text = " / ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def machine() -> str:
    return f"{len(os.sched_getaffinity(0))} cores (nproc), {cpu_model()}"


def report(bench: Bench, rows: list[Row], started: dt.datetime, load: tuple) -> str:
    sides, args = bench.sides, bench.args
    mode = f"figures {', '.join(str(n) for n in sorted(args.only))}"
    mode += ", --quick" if args.quick else ""
    setup = "; ".join(
        f"{side} " + ", ".join(f"{k} {v:.0f} s" for k, v in steps.items())
        for side, steps in bench.setup.items()
        if steps
    )
    notes = [*bench.notes]
    if setup:
        notes.append(f"Set-up, not measured: {setup}.")
    if sides["HEAD"].patch:
        notes.append(
            "HEAD is this tree: its commit with the uncommitted changes to tracked files "
            "applied (`git diff HEAD`); untracked files are not part of it."
        )
    if bench.budget.get("baseline") and not sides["REF"].commit.startswith(
        str(bench.budget["baseline"])
    ):
        notes.append(
            f"The lines were set against {bench.budget['baseline']}; here REF is "
            f"{sides['REF'].commit[:7]}, so each line is that ratio of this REF's figure."
        )
    for key, message in bench.errors.items():
        notes.append(f"error, {key}: {one_line(message)}")
    return "\n".join(
        [
            f"## Budget: HEAD against {sides['REF'].commit[:7]} ({mode})",
            "",
            f"{started:%Y-%m-%d %H:%M} UTC; machine: {machine()}; load average "
            f"{load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. Medians of the "
            "runs (each run in brackets), the two trees alternating. ratio: HEAD/REF for "
            "times and latencies, REF/HEAD for requests/s, so above 1.00x is worse. "
            "Lines from bench/budget.yaml.",
            "",
            table(rows, bench.budget, sides),
            "",
            *(f"- {n}" for n in notes),
            "",
        ]
    )


# ---------------------------------------------------------------- main


def parse_ci_seconds(text: str) -> dict[str, float]:
    try:
        pairs = dict(item.split("=", 1) for item in text.split(","))
        return {side: float(pairs[side]) for side in SIDES}
    except (ValueError, KeyError):
        raise SystemExit(f"--ci-seconds {text!r}: give REF=S,HEAD=S") from None


def load_budget() -> dict:
    budget = yaml.safe_load(BUDGET.read_text())
    for f in FIGURES:
        line = budget.get("figures", {}).get(f.key)
        if not line or "max_ratio" not in line or not line.get("why"):
            raise SystemExit(f"{BUDGET}: figures.{f.key} needs a max_ratio and a why")
    return budget


def arguments(argv, budget: dict) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default=str(budget.get("baseline", "")), help="REF")
    parser.add_argument("--head", help="measure this commit as HEAD instead of this tree")
    parser.add_argument("--quick", action="store_true", help="figures 2, 3, 5, 6, 7 only")
    parser.add_argument("--runs", type=int, help="runs of every figure (default: per figure)")
    parser.add_argument("--only", help="figure numbers, e.g. 2,3 (default: all, or --quick's)")
    parser.add_argument("--ci", action="store_true", help="also time .ci/run (+20 min a tree)")
    parser.add_argument("--ci-seconds", type=parse_ci_seconds, help="REF=S,HEAD=S")
    parser.add_argument("--out", type=Path, help="write the Markdown table here")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    parser.add_argument("--keep", action="store_true", help="keep the trees and logs")
    parser.add_argument("--tmp", type=Path, help="where the temporary folder goes")
    parser.add_argument("--reuse", type=Path, help="a --keep run's folder: its worktrees again")
    args = parser.parse_args(argv)
    if not args.baseline:
        parser.error("--baseline REF is required (budget.yaml names none)")
    if args.only:
        args.only = {int(n) for n in args.only.split(",")}
    else:
        args.only = set(QUICK) if args.quick else {1, 2, 3, 4, 5, 6, 7}
    if args.ci:
        args.only.add(8)
    return args


def sides_of(args) -> dict[str, Side]:
    ref = Side("REF", resolve(args.baseline))
    if args.head:
        return {"REF": ref, "HEAD": Side("HEAD", resolve(args.head))}
    patch = git("diff", "--binary", "HEAD")
    return {"REF": ref, "HEAD": Side("HEAD", resolve("HEAD"), patch)}


def measure(bench: Bench) -> None:
    """Set-up, then the figures in order (generate last: it rewrites outputs)."""
    only, args = bench.figures, bench.args
    if 1 in only:
        bench.measuring = time.perf_counter()  # the clones' set-up is part of figure 1
        print(f"1. {BY_KEY['fresh_clone_repro'].label}", flush=True)
        bench.alternate(bench.fresh_clone_repro, ["fresh_clone_repro"], needs_tree=False)
        bench.notes.append(
            "Figure 1 in fresh clones, DVC cache empty; figures 2-7 in the last clone of each "
            "side afterwards, its cache filled by that repro."
        )
    elif only - {8}:
        for side in SIDES:
            print(f"set-up: {side} worktree ({bench.sides[side].label})", flush=True)
            try:
                bench.set_up_worktree(side)
            except Failed as exc:
                bench.errors[f"{side} set-up"] = str(exc)
                print(f"  failed: {exc}", flush=True)
    if only & {5, 6, 7}:
        bench.prepare_bodies()
    bench.measuring = bench.measuring or time.perf_counter()
    steps = [
        (bench.noop_repro, ["noop_repro"]),
        (bench.dvc_status, ["dvc_status"]),
        (bench.predict_p50, ["predict_p50"]),
        (bench.serving, serving_keys(bench)),
        (bench.generate, ["generate"]),
    ]
    for step, keys in steps:
        keys = [k for k in keys if BY_KEY[k].number in only]
        if keys:
            print(f"{BY_KEY[keys[0]].number}. {BY_KEY[keys[0]].label}", flush=True)
            bench.alternate(step, keys)
    if 8 in only:
        print(f"8. {BY_KEY['ci_run'].label}", flush=True)
        bench.alternate(bench.ci_run, ["ci_run"], needs_tree=False)
    elif args.ci_seconds:
        bench.values["ci_run"] = {side: [args.ci_seconds[side]] for side in SIDES}
        bench.notes.append("Figure 8 from --ci-seconds: measured elsewhere, not in this run.")


def serving_keys(bench: Bench) -> list[str]:
    """Figures 6 and 7's keys that can run; the others' reasons in bench.skipped."""
    keys = []
    for number, tool, names in (
        (6, "wrk", ["serve_rps"]),
        (7, "hey", ["serve_p99", "serve_errors"]),
    ):
        if number not in bench.figures:
            continue
        if shutil.which(tool):
            keys += names
        else:
            print(f"{tool} is not installed (`apt install {tool}`): figure {number} skipped")
            for name in names:
                bench.skipped[name] = f"skipped: {tool} is not installed (`apt install {tool}`)"
    return keys


def why_not(bench: Bench, figure: Figure) -> str:
    """Why a figure has no verdict, or "" when it has its runs."""
    args = bench.args
    if figure.key in bench.errors:
        return "error (see the notes)"
    if figure.key in bench.skipped:
        return bench.skipped[figure.key]
    if figure.number == 8 and 8 not in args.only:
        return "" if args.ci_seconds else "not run: needs --ci (~20 min a tree) or --ci-seconds"
    if figure.number not in args.only:
        return "not run (--quick)" if args.quick else "not run (--only)"
    return ""


def rows_of(bench: Bench) -> list[Row]:
    rows = []
    for f in FIGURES:
        values, line = bench.values[f.key], bench.budget["figures"][f.key]
        rows.append(judge(f, line, values["REF"], values["HEAD"], why_not(bench, f)))
    return rows


def interrupted(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: the servers stopped, the trees removed


def main(argv=None) -> int:
    budget = load_budget()
    args = arguments(argv, budget)
    sides = sides_of(args)
    started, load = dt.datetime.now(dt.timezone.utc), os.getloadavg()
    tmp = args.reuse or Path(tempfile.mkdtemp(prefix="budget-", dir=args.tmp))
    args.keep = args.keep or bool(args.reuse)
    bench = Bench(args, tmp, sides, budget)
    signal.signal(signal.SIGTERM, interrupted)
    print(f"REF {sides['REF'].label}, HEAD {sides['HEAD'].label}; trees in {tmp}", flush=True)
    clock = time.perf_counter()
    try:
        measure(bench)
    except KeyboardInterrupt:
        print("interrupted: stopping the servers, removing the trees", file=sys.stderr)
        return 130
    finally:
        bench.runner.stop_servers()
        if args.keep:
            print(f"kept {tmp}; remove its worktrees with `git worktree remove --force`")
        else:
            for tree in bench.made:
                remove(tree)
            shutil.rmtree(tmp, ignore_errors=True)
    rows = rows_of(bench)
    text = report(bench, rows, started, load)
    end = time.perf_counter()
    setup = (bench.measuring or end) - clock
    print(f"\nset-up {setup:.0f} s, measuring {end - clock - setup:.0f} s\n\n{text}")
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(raw(bench, rows, started), indent=2) + "\n")
    if bench.errors:
        return 2
    return 1 if any(r.result == "**fail**" for r in rows) else 0


def raw(bench: Bench, rows: list[Row], started: dt.datetime) -> dict:
    return {
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "sides": {
            s: {"commit": v.commit, "uncommitted": bool(v.patch)} for s, v in bench.sides.items()
        },
        "quick": bench.args.quick,
        # The figures, and each as the table shows it (the pull-request report's section
        # renders these texts: ctrpipe/reporting/report.py reads no budget.yaml).
        "figures": {
            r.figure.key: {
                "number": r.figure.number,
                "label": r.figure.label,
                "unit": r.figure.unit,
                "REF": r.ref,
                "HEAD": r.head,
                "ratio": r.ratio,
                "head_limit": r.limit,
                "result": r.result.strip("*"),
                "shown": {
                    "REF": show(r.ref, r.figure),
                    "HEAD": show(r.head, r.figure),
                    "ratio": ratio_text(r),
                    "line": budget_text(r.figure, bench.budget["figures"][r.figure.key], r),
                },
            }
            for r in rows
        },
        "setup_seconds": bench.setup,
        "errors": bench.errors,
        "notes": bench.notes,
    }


if __name__ == "__main__":
    sys.exit(main())
