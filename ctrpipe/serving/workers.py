"""`serve --workers N`: N processes answering on one port, for the cores one Python
process cannot use (the GIL holds a process to about one core of parsing and JSON).

The supervisor (`supervise`, in the `serve` command's process) reserves the port, then
starts each worker as `python -m ctrpipe.serving.workers <spec>`. A worker runs run.py's
service on a socket of its own, bound to that port with SO_REUSEPORT, and the kernel
spreads new connections across the workers. They share one temporary folder:

- `metrics/`: prometheus_client's multiprocess files (metrics.py), so the /metrics of any
  worker counts the requests of every one;
- `relay.json`: with --stage prod only the first worker follows production, so a publish
  or a rollback costs one git fetch and one download, not N racing in one repository.
  When it has swapped, it writes the version and folder here, and the others swap to it
  at their next look (every 0.2 s);
- `ready/<pid>`: a worker that has loaded its first model.

A worker listens only once its model is loaded, so no connection reaches a worker that
would answer 503; the supervisor says when every worker is ready. A worker that dies
after it loaded is started again, while the others keep answering.
One that dies before, such as on a package that fails its check, stops the service with
its exit status: another start would fail the same way. On SIGTERM or SIGINT every
worker finishes its requests in flight, then the supervisor exits. Request logs need
nothing shared: each file's name holds its process id.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ctrpipe.errors import ConfigError, exits_cleanly
from ctrpipe.serving.metrics import SHARED
from ctrpipe.serving.settings import Serve
from ctrpipe.serving.team import Team

log = logging.getLogger(__name__)

LOOK = 0.2  # seconds between the supervisor's looks at its workers
STOP_WAIT = 30.0  # seconds a worker may take to drain (rest.server.GRACE) and exit


def reserve(host: str, port: int) -> socket.socket:
    """A socket bound to the port (0: a free one) with SO_REUSEPORT and never listening:
    it holds the port for the workers, and the kernel gives it no connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def supervise(
    path: str | Path,
    version: str | None,
    settings: Serve,
    repo: Path | None = None,
    follow: bool = False,
    snapshot: Path | None = None,
) -> None:
    """Run `settings.workers` worker processes on one port until SIGTERM or SIGINT."""
    from prometheus_client.multiprocess import mark_process_dead

    reserved = [reserve(settings.host, settings.port)]
    port = reserved[0].getsockname()[1]
    grpc_port = settings.grpc_port
    if grpc_port is not None:  # gRPC binds with SO_REUSEPORT too (grpcio's default)
        reserved.append(reserve(settings.host, grpc_port))
        grpc_port = reserved[1].getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="ctrpipe-serve-"))
    (folder / "metrics").mkdir()
    (folder / "ready").mkdir()
    spec = {
        "path": str(path),
        "version": version,
        "settings": settings.model_copy(update={"port": port, "grpc_port": grpc_port}).model_dump(
            mode="json"
        ),
        "repo": str(repo) if repo is not None else None,
        "follow": follow,
        "snapshot": str(snapshot) if snapshot is not None else None,
        "folder": str(folder),
    }
    env = {**os.environ, SHARED: str(folder / "metrics")}

    def start(i: int) -> subprocess.Popen:
        argv = [sys.executable, "-m", __name__, json.dumps({**spec, "leader": i == 0})]
        return subprocess.Popen(argv, env=env)

    stop: list[int] = []  # see run.run: a signal handler must not take a lock
    previous = {
        sig: signal.signal(sig, lambda signum, _: stop.append(signum))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    team = Team(folder, leader=False)
    workers = [start(i) for i in range(settings.workers)]
    print(
        f"serve: {settings.workers} workers on http://{settings.host}:{port} "
        f"(pids {_pids(workers)})",
        flush=True,
    )
    failed, announced = None, set()
    try:
        while not stop and failed is None:
            time.sleep(LOOK)
            pids = {w.pid for w in workers}
            if pids != announced and all(team.had_loaded(pid) for pid in pids):
                print(f"serve: {len(pids)} workers ready (pids {_pids(workers)})", flush=True)
                announced = pids
            for i, worker in enumerate(workers):
                if worker.poll() is None:
                    continue
                mark_process_dead(worker.pid, str(folder / "metrics"))
                if not team.had_loaded(worker.pid):
                    failed = worker
                    break
                workers[i] = start(i)
                print(
                    f"serve: worker {worker.pid} exited ({exit_status(worker.returncode)}) "
                    f"after it served; started {workers[i].pid} in its place",
                    flush=True,
                )
    finally:
        stop_all(workers)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in reserved:
            sock.close()
        shutil.rmtree(folder, ignore_errors=True)
    if failed is not None:
        raise ConfigError(
            f"serve: worker {failed.pid} exited ({exit_status(failed.returncode)}) before it "
            f"loaded a model (its error is above); stopped the others"
        )
    print("serve: every worker stopped", flush=True)


def stop_all(workers: list[subprocess.Popen]) -> None:
    """SIGTERM each live worker (it drains), wait, and kill what outlives STOP_WAIT."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    for worker in workers:
        try:
            worker.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _pids(workers: list[subprocess.Popen]) -> str:
    return ", ".join(str(w.pid) for w in workers)


def exit_status(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    """A worker: the spec the supervisor wrote, served by run.run on the shared port."""
    from ctrpipe.serving import run  # the server: not for the supervisor's own process

    spec = json.loads((argv or sys.argv[1:])[0])
    team = Team(Path(spec["folder"]), leader=spec["leader"])
    path, version = team.relayed() or (spec["path"], spec["version"])  # a restart: the latest
    team.seen = (version, Path(path))
    run.run(
        path,
        version,
        Serve.model_validate(spec["settings"]),
        repo=Path(spec["repo"]) if spec["repo"] else None,
        follow=spec["follow"] and team.leader,
        snapshot=Path(spec["snapshot"]) if spec["snapshot"] else None,
        team=team,
    )


if __name__ == "__main__":
    main()
