"""The ctrpipe command line: `python -m ctrpipe <command> --help`.

Model versions and production live in git tags (ctrpipe/release/registry.py); artifacts in the
DVC remote (ctrpipe/release/remote.py); `report` writes the pull-request report and `serve` runs
the HTTP service. Every command takes `--repo` (default: here).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from ctrpipe import config, fileio, params, paths
from ctrpipe.config import describe
from ctrpipe.errors import ConfigError, exits_cleanly
from ctrpipe.monitoring.settings import Ops
from ctrpipe.release import fetch, publish, registry, remote, snapshots
from ctrpipe.reporting import plots, report

# settings keys whose flag is not the key itself
FLAGS = {
    "log.dir": "log-dir",
    "log.sample_rate": "sample-rate",
    "engineering.metrics_url": "metrics-url",
}


def versions(args) -> None:
    """Every version with its golden metrics, data hash, and which is in production."""
    current = registry.production(args.repo)
    rows = [version_row(args.repo, e, current) for e in registry.versions(args.repo)]
    emit(
        args,
        rows,
        [
            "version",
            "prod",
            "created",
            "author",
            "roc_auc",
            "logloss",
            "train_md5",
            "package",
            "commit",
        ],
        empty="no versions published yet",
    )


def version_row(repo: Path, event: registry.Event, current) -> dict:
    golden = json.loads(registry.show(repo, event.commit, paths.EVALUATE_METRICS) or "{}").get(
        "golden", {}
    )
    gate = json.loads(registry.show(repo, event.commit, paths.GATE_REPORT) or "{}")
    lock = yaml.safe_load(registry.show(repo, event.commit, paths.LOCK_FILE) or "{}") or {}
    data = {
        out["path"]: out.get("md5")
        for stage in lock.get("stages", {}).values()
        for out in stage.get("outs", [])
    }
    return {
        "version": event.version,
        "prod": "*" if current and current.version == event.version else "",
        "created": event.time.isoformat(),
        "author": event.author,
        "roc_auc": golden.get("roc_auc"),
        "logloss": golden.get("logloss"),
        "train_md5": data.get(paths.TRAIN),
        "package": gate.get("candidate", {}).get("digest"),
        "commit": event.commit,
    }


def history(args) -> None:
    """Every production assignment and rollback, oldest first: the audit trail."""
    rows = [
        {
            "tag": e.tag,
            "time": e.time.isoformat(),
            "author": e.author,
            "email": e.author_email,
            "version": e.version or "(none)",
            "action": "rollback"
            if e.message.startswith("rollback")
            else "unassign"
            if e.kind == "unassignment"
            else "publish",
            "message": e.message.splitlines()[0] if e.message else "",
        }
        for e in registry.assignments(args.repo)
    ]
    emit(
        args,
        rows,
        ["tag", "time", "author", "version", "action", "message"],
        empty="nothing has been in production yet",
    )


def fetch_cmd(args) -> None:
    """Download a version's package from the DVC remote and verify it."""
    if args.stage and args.stage != registry.STAGE:
        raise registry.RegistryError(f"--stage: the only stage is '{registry.STAGE}'")
    where = remote.resolve(args.repo)
    event, digest, out = fetch.fetch(args.repo, where, args.out, version=args.version)
    print(
        f"fetched {registry.ARTIFACT} {event.version} into {out} "
        f"(manifest sha256 {digest[:12]}, verified)"
    )


def pull(args) -> None:
    """Fetch what dvc.lock lists from the DVC remote (what it lacks, repro rebuilds)."""
    where = remote.resolve(args.repo)
    with remote.open_repo(args.repo, where) as repo:
        remote.pull(repo, where)
    print(f"pulled from {where.where}")


def publish_cmd(args) -> None:
    """Push the artifacts, then tag this commit's model and put it in production."""
    if args.if_passed:
        head = registry.git(args.repo, "rev-parse", "HEAD").strip()
        gate = json.loads(registry.show(args.repo, head, paths.GATE_REPORT) or "{}")
        if gate.get("verdict") != "pass":
            print(
                f"the gate at {head[:8]} did not pass ({gate.get('reason', 'no gate.json')})"
                f"; nothing published"
            )
            return
    outcome = publish.publish(args.repo, remote.resolve(args.repo), args.git_remote)
    print(outcome.message)


def rollback(args) -> None:
    """Put the previous (or a named) version back in production with a new tag."""
    outcome = publish.rollback(
        args.repo,
        remote.resolve(args.repo),
        to=args.to,
        reason=args.reason,
        git_remote=args.git_remote,
    )
    print(outcome.message)


def report_cmd(args) -> None:
    """Write the pull-request report into --out: report.md (the gate, params and metrics
    against --base and production, slices, quarantine, stage timings, the performance
    budget) and plots/*.png."""
    out = report.write(
        args.repo, args.base, args.out, args.log, args.image_base, budget=args.budget
    )
    print(f"wrote {out / 'report.md'} and {len(plots.NAMES)} plots in {out / 'plots'}")


def infer_cmd(args) -> None:
    """Draft a data group for the CSV, Parquet and JSON-lines files in --input: tables,
    types, null tokens, keys, joins, time, features. The label, and which columns leak
    it, are left as questions (values starting with '??') that `make params` refuses
    until they are answered."""
    from ctrpipe.data import infer  # pyarrow's compute: only for this command

    if args.out.exists() and not args.force:
        raise ConfigError(f"{args.out}: exists; give --force to replace it")
    text = infer.draft(args.input)
    fileio.write_text(args.out, text)
    print(
        f"wrote {args.out}: answer its questions (lines with '??'), then set "
        f"data: {args.out.stem} in conf/config.yaml and run `make params repro`"
    )


def serve_cmd(args) -> None:
    """Serve a model package over HTTP: POST /predict, GET /health, /ready and /metrics.
    With --version or --stage the package is fetched from the DVC remote first; with
    --stage the service then follows production (publish, rollback) as it moves.
    Settings come from params.yaml's `serve` group (conf/serve/); flags override them."""
    # here, so the other commands never import the server
    from ctrpipe.serving import run, workers

    settings = with_flags(
        params.groups(args.repo, Ops).serve,
        {
            "host": args.host,
            "port": args.port,
            "max_batch": args.max_batch,
            "threads": args.threads,
            "workers": args.workers,
            "grpc_port": args.grpc_port,
            "deadline_ms": args.deadline_ms,
            "follow_seconds": args.follow_seconds,
            "log": {"dir": args.log_dir, "sample_rate": args.sample_rate},
        },
    )
    path, version = args.package, None
    if path is None:
        if args.stage and args.stage != registry.STAGE:
            raise registry.RegistryError(f"--stage: the only stage is '{registry.STAGE}'")
        event, digest, path = fetch.fetch(
            args.repo, remote.resolve(args.repo), version=args.version
        )
        version = event.version
        print(
            f"fetched {registry.ARTIFACT} {version} into {path} (manifest sha256 "
            f"{digest[:12]}, verified)",
            flush=True,
        )
    following = bool(args.stage) and not args.no_follow
    if following and args.snapshot is not None and not args.snapshot.exists():
        args.snapshot.mkdir(parents=True)  # published snapshots come down here
    serve = run.run if settings.workers == 1 else workers.supervise
    serve(
        path,
        version,
        settings,
        repo=args.repo,
        follow=following,
        snapshot=args.snapshot,
    )


def features_cmd(args) -> None:
    """Refresh the online snapshot raw requests are served from: recompute it from the raw
    folder (newer data) with generate's code, for the model in --package, without
    retraining; written to --out/<digest>/. A service serving --out (`serve --snapshot`)
    swaps to the newest one there; with --publish it also goes to the DVC remote, where
    a service following production (`serve --stage prod --snapshot DIR`) fetches it."""
    import datetime as dt
    import time

    from ctrpipe.online import refresh  # here: it starts Spark

    started = time.perf_counter()
    cut = dt.datetime.fromisoformat(args.cut) if args.cut else None
    made = refresh.refresh(
        config.load(args.repo / config.PARAMS_FILE),
        args.repo / args.raw,
        args.repo / args.package,
        args.repo / args.out,
        cut,
    )
    print(
        f"snapshot {made.path} (sha256 {made.digest[:12]}, cut {made.cut}) for "
        f"{args.package} in {time.perf_counter() - started:.1f} s"
    )
    if args.publish:
        where = remote.resolve(args.repo)
        key = snapshots.publish(args.repo, where, made.path)
        print(f"published it to {where.where}: s3://{key}")


def monitor_cmd(args) -> int:
    """Judge the served model: drift of the logged traffic against the package's
    reference profile, quality on delayed labels, the service's latency, errors,
    memory and CPU. Writes monitor.json and monitor.html, runs the alarm actions
    (retrain trigger, rollback of a baking version), and exits 0 ok, 3 warn, 4 alarm.
    Settings come from params.yaml's `monitor` group (conf/monitor/); flags override."""
    from ctrpipe.monitoring import checks, run  # Spark: only for this command

    settings = with_flags(
        params.groups(args.repo, Ops).monitor,
        {
            "logs": args.logs,
            "labels": args.labels,
            "out": args.out,
            "window_hours": args.window_hours,
            "engineering": {"metrics_url": args.metrics_url},
        },
    )
    result, out = run.monitor(
        run.Options(args.repo, settings, package=args.package, act=not args.no_actions)
    )
    print(summary(result, out))
    return checks.EXIT[result["verdict"]]


def simulate_cmd(args) -> int:
    """Watch the monitoring loop end to end: serve a package, replay validation rows at
    it (every row logged), run the monitor; then the same rows with the drift of
    params.yaml's `simulate` group, and the monitor again, whose alarm triggers the
    retrain command and, for a baking production version, the rollback. Exits as the
    drifted phase's monitor does."""
    from ctrpipe import spark
    from ctrpipe.monitoring import checks, run, simulate

    ops = params.groups(args.repo, Ops)
    folder, version = args.package or args.repo / paths.PACKAGE, None
    if args.stage:
        event, _, folder = fetch.fetch(args.repo, remote.resolve(args.repo))
        version = event.version
    results = simulate.walkthrough(
        args.repo,
        ops,
        folder,
        version,
        spark.session(run.spark_settings(args.repo), app="ctrpipe-simulate"),
    )
    for phase, result in results.items():
        print(f"--- monitor after the {phase} traffic ---")
        print(summary(result, args.repo / ops.simulate.out / phase))
    return checks.EXIT[results["drifted"]["verdict"]]


def summary(result: dict, out: Path) -> str:
    model = result["model"]
    lines = [
        f"{result['verdict'].upper()}: {model['version'] or 'unversioned package'} "
        f"({model['digest'][:12]}), {result['rows']['logged']} rows logged, "
        f"{result['rows']['labelled'] if result['rows']['labelled'] is not None else 'no'}"
        f" labelled"
    ]
    for status in ("alarm", "warn"):
        named = [
            f"{c['name']} {c['metric']} {c['value']}"
            for c in result["checks"]
            if c["status"] == status
        ]
        if named:
            lines.append(f"  {status}: {'; '.join(named)}")
    lines += [f"  {a['action']}: {a['status']} ({a['detail']})" for a in result["actions"]]
    lines.append(f"  wrote {out / 'monitor.json'} and {out / 'monitor.html'}")
    return "\n".join(lines)


def with_flags(settings, flags: dict):
    """`settings` (a pydantic group) with the flags that were given, checked again."""
    try:
        return config.updated(settings, flags)
    except ValidationError as exc:
        key, reason = describe(exc).split(": ", 1)
        flag = FLAGS.get(key, key).replace("_", "-")
        raise ConfigError(f"--{flag}: {reason}") from None


def emit(args, rows: list[dict], columns: list[str], empty: str) -> None:
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(empty)
    else:
        print(table(rows, columns))


def table(rows: list[dict], columns: list[str]) -> str:
    cells = [[short(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [columns, *cells]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)


def short(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    text = str(value)
    return text[:12] if len(text) in (32, 40, 64) and text.isalnum() else text  # hashes


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ctrpipe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--repo", type=Path, default=Path("."), help="the project (default: .)")
    sub = p.add_subparsers(dest="command", required=True, metavar="command")

    def add(name, func, help_text):
        cmd = sub.add_parser(name, help=help_text, description=func.__doc__)
        cmd.set_defaults(func=func)
        return cmd

    for name, func in (("versions", versions), ("history", history)):
        add(name, func, func.__doc__.splitlines()[0]).add_argument(
            "--json", action="store_true", help="machine-readable output"
        )

    cmd = add("infer", infer_cmd, "draft a data group for the files in a folder")
    cmd.add_argument("--input", type=Path, required=True, help="the folder, e.g. data/external")
    cmd.add_argument("--out", type=Path, required=True, help="e.g. conf/data/mine.yaml")
    cmd.add_argument("--force", action="store_true", help="replace --out if it exists")

    cmd = add("fetch", fetch_cmd, "download and verify a version's package")
    which = cmd.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", help="e.g. v1.2.0")
    which.add_argument("--stage", help=f"'{registry.STAGE}': the version in production")
    cmd.add_argument(
        "--out", type=Path, help=f"folder to write (default: {paths.FETCHED}/<version>)"
    )

    cmd = add("publish", publish_cmd, "publish this commit's model if its gate passed")
    cmd.add_argument(
        "--git-remote",
        default="origin",
        help="where tags are pushed (skipped when the repository has no such remote)",
    )
    cmd.add_argument(
        "--if-passed",
        action="store_true",
        help="a failed gate is not an error: say so and publish nothing (what CI on main wants)",
    )

    add("pull", pull, "fetch the DVC outputs of dvc.lock from the remote")

    cmd = add("rollback", rollback, "put an earlier version back in production")
    cmd.add_argument("--to", help="the version (default: the one below production's)")
    cmd.add_argument("--reason", help="recorded in the assignment tag's message")
    cmd.add_argument("--git-remote", default="origin")

    cmd = add("report", report_cmd, "write the pull-request report (markdown and plots)")
    cmd.add_argument(
        "--base",
        required=True,
        help="the revision to diff params and metrics against, e.g. origin/main",
    )
    cmd.add_argument("--log", type=Path, help="the `dvc repro` output, for stage timings")
    cmd.add_argument(
        "--budget", type=Path, help="bench/budget.py's --json output, for the budget section"
    )
    cmd.add_argument(
        "--out",
        type=Path,
        default=Path(paths.PR_REPORT),
        help=f"folder to write (default: {paths.PR_REPORT})",
    )
    cmd.add_argument(
        "--image-base",
        metavar="URL",
        help="prefix of the image links (default: relative links, plots/<name>.png)",
    )

    cmd = add("serve", serve_cmd, "serve a model package over HTTP (and gRPC)")
    which = cmd.add_mutually_exclusive_group(required=True)
    which.add_argument("--package", type=Path, help=f"a package folder, e.g. {paths.PACKAGE}")
    which.add_argument("--version", help="fetch this version first, e.g. v1.2.0")
    which.add_argument("--stage", help=f"'{registry.STAGE}': fetch the version in production first")
    cmd.add_argument("--host", help="address to listen on (serve.host: 127.0.0.1)")
    cmd.add_argument("--port", type=int, help="0 picks a free port (serve.port: 8080)")
    cmd.add_argument(
        "--max-batch", type=int, help="most rows in one request (serve.max_batch: 10000)"
    )
    cmd.add_argument(
        "--threads",
        type=int,
        help="ONNX Runtime threads per prediction; more only helps big batches (serve.threads: 1)",
    )
    cmd.add_argument(
        "--workers", type=int, help="processes answering on the port, one a core (serve.workers: 1)"
    )
    cmd.add_argument(
        "--grpc-port",
        type=int,
        help="the Open Inference Protocol over gRPC on this port; 0 picks one (serve.grpc_port)",
    )
    cmd.add_argument(
        "--deadline-ms",
        type=float,
        help="a request that cannot start within this is shed with a 503 (serve.deadline_ms)",
    )
    cmd.add_argument("--log-dir", help="request log folder (serve.log.dir)")
    cmd.add_argument(
        "--sample-rate", type=float, help="fraction of rows logged; 0: none (serve.log.sample_rate)"
    )
    cmd.add_argument(
        "--follow-seconds",
        type=float,
        help="with --stage: seconds between looks at the production tag (serve.follow_seconds)",
    )
    cmd.add_argument(
        "--no-follow", action="store_true", help="with --stage: keep the version fetched at start"
    )
    cmd.add_argument(
        "--snapshot",
        type=Path,
        help="online snapshot folder for raw requests (default: the package's own snapshot/)",
    )

    cmd = add("features", features_cmd, "refresh the online snapshot from newer raw data")
    cmd.add_argument("action", choices=["refresh"])
    cmd.add_argument("--package", default=paths.PACKAGE, help="the model it is for")
    cmd.add_argument("--raw", default=paths.RAW, help="the raw tables, as ingest writes them")
    cmd.add_argument("--out", default=paths.SNAPSHOTS, help="where snapshots are kept")
    cmd.add_argument("--cut", help="ISO time, UTC (default: the newest raw record)")
    cmd.add_argument(
        "--publish",
        action="store_true",
        help="then upload it to the DVC remote, where `serve --stage prod --snapshot DIR` finds it",
    )

    cmd = add(
        "monitor", monitor_cmd, "judge the served model: drift, quality, engineering; alarm actions"
    )
    cmd.add_argument(
        "--package",
        type=Path,
        help="the served package's folder (default: the logged version's, fetched if needed)",
    )
    cmd.add_argument("--logs", help="request log folder (monitor.logs)")
    cmd.add_argument("--labels", help="delayed labels file or folder (monitor.labels)")
    cmd.add_argument(
        "--metrics-url", help="the service's /metrics (monitor.engineering.metrics_url)"
    )
    cmd.add_argument(
        "--window-hours",
        type=float,
        help="rows logged in the last this many hours (monitor.window_hours)",
    )
    cmd.add_argument("--out", help="folder for monitor.json and monitor.html (monitor.out)")
    cmd.add_argument(
        "--no-actions", action="store_true", help="judge only: no retrain trigger, no rollback"
    )

    cmd = add(
        "simulate",
        simulate_cmd,
        "replay clean, then drifted traffic at a service and monitor it: the alarm loop end to end",
    )
    which = cmd.add_mutually_exclusive_group()
    which.add_argument(
        "--package",
        type=Path,
        help=f"the package to serve (default: the project's {paths.PACKAGE})",
    )
    which.add_argument(
        "--stage",
        choices=[registry.STAGE],
        help="serve the version in production (fetched), so an alarm can roll it back",
    )
    return p


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
