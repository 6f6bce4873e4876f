"""The `serve` command's process: the service behind its transports (REST always, gRPC
with `serve.grpc_port`), the production follower, the workers' relay and the snapshot
folder's look, until SIGTERM or SIGINT, then a drain.

One process, or one worker of `serve --workers N` (workers.py passes a `team`).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from ctrpipe.errors import DataError
from ctrpipe.online import store
from ctrpipe.serving.rest.server import GRACE, Server
from ctrpipe.serving.service import Service
from ctrpipe.serving.settings import Serve
from ctrpipe.serving.team import Team


def look_for_snapshot(service: Service) -> None:
    """Swap to a newer snapshot in --snapshot's folder (`features refresh` wrote one);
    a refused one keeps the served one and is counted."""
    try:
        if service.refresh_online():
            online = service.model.online.snapshot
            print(f"now serving snapshot {online.path} (cut {online.cut})", flush=True)
    except DataError as exc:
        service.metrics.snapshot_errors.inc()
        print(f"snapshot refused, still serving the last one: {exc}", flush=True)


def listen(settings: Serve, service: Service, reuse_port: bool = False) -> Server:
    server = Server(
        (settings.host, settings.port),
        service,
        reuse_port=reuse_port,
        deadline_ms=settings.deadline_ms,
        max_queued=settings.max_queued,
    )
    return server.start()


def listen_grpc(settings: Serve, service: Service):
    """The Open Inference Protocol over gRPC on `serve.grpc_port`, or None when it is off."""
    if settings.grpc_port is None:
        return None
    from ctrpipe.serving.grpc.server import GrpcServer  # grpcio: only when asked for

    server = GrpcServer(service, settings.host, settings.grpc_port, service.max_body).start()
    print(f"grpc: listening on {settings.host}:{server.port}", flush=True)
    return server


def run(
    path: str | Path,
    version: str | None,
    settings: Serve,
    repo: Path | None = None,
    follow: bool = False,
    snapshot: Path | None = None,
    team: Team | None = None,
) -> None:
    """`python -m ctrpipe serve`: listen first (so /health answers while the model
    loads), load and check the package, serve until SIGTERM or SIGINT, then drain.
    With `follow`, swap to whatever version `repo`'s production tag names (follow.py).
    Raw requests are served from `snapshot`, else from the package's own. A `team`
    makes this process one worker of several on the port (workers.py)."""
    log_settings = settings.log if settings.log.sample_rate > 0 else None
    if log_settings is not None and repo is not None:
        log_settings = log_settings.model_copy(update={"dir": str(repo / log_settings.dir)})
    service = Service(
        max_batch=settings.max_batch,
        threads=settings.threads,
        log=log_settings,
        backend=settings.backend,
        snapshot=snapshot,
    )
    # The handler only appends to a list: Event.set() takes a lock, and a signal that
    # lands while the main thread holds that lock inside Event.wait() deadlocks it.
    stop: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _: stop.append(signum))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    server = grpc = follower = None
    try:
        if team is None:  # listen first, so that /health answers while the model loads
            server = listen(settings, service)
            print(f"listening on {server.url}; loading {path}", flush=True)
        model = service.load(path, version)
        if team is not None:  # a worker takes connections once it can answer them
            server = listen(settings, service, reuse_port=True)
        grpc = listen_grpc(settings, service)
        if team is not None:
            team.loaded()
        print(
            f"serving {version or 'an unversioned package'} (manifest sha256 "
            f"{model.loaded.digest[:12]}; ONNX agrees with XGBoost to "
            f"{model.parity:.1e} on the probe rows; predicting with the "
            f"{model.backend} model) on {server.url}",
            flush=True,
        )
        if model.online is not None:
            online = model.online.snapshot
            print(
                f"raw requests: online snapshot {online.path} (sha256 {online.digest[:12]}, "
                f"cut {online.cut})",
                flush=True,
            )
        if log_settings is not None:
            print(f"logging {log_settings.sample_rate:g} of rows to {log_settings.dir}", flush=True)
        if follow and repo is not None:
            from ctrpipe.serving.follow import Follower  # needs git and the registry

            relay = team.relay if team is not None else None
            published = snapshot if snapshot is not None and store.is_folder(snapshot) else None
            follower = Follower(
                service, repo, settings.follow_seconds, on_swap=relay, snapshots=published
            ).start()
            print(f"following production every {settings.follow_seconds:g} s", flush=True)
        next_look = time.monotonic() + settings.follow_seconds
        while not stop:
            time.sleep(0.2)
            service.metrics.refresh()
            if team is not None and not team.leader:
                team.follow(service)
            if snapshot is not None and time.monotonic() >= next_look:
                look_for_snapshot(service)
                next_look = time.monotonic() + settings.follow_seconds
        print("stopping: finishing the requests in flight", flush=True)
    finally:
        if follower is not None:
            follower.stop()
        if grpc is not None:
            grpc.stop(GRACE)
        if server is not None:
            finished = server.stop()
        else:
            service.close()
            finished = True
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(
        "stopped" if finished else f"stopped after {GRACE:g} s with requests unfinished", flush=True
    )
