"""What an alarm does: trigger retraining, and roll back a version still baking.

Each action returns a record {"action", "status", "detail"}; status is done, failed or
skipped. A failed action is reported, never raised: the monitor's verdict and its
report matter more than one unreachable endpoint.

- retrain: the repository_dispatch event the retrain workflow listens to (GitHub's REST
  API: POST /repos/{owner}/{repo}/dispatches, 204 on success), or a local command run
  with CTRPIPE_MONITOR_RESULT naming monitor.json.
- rollback: through publish.rollback, the same code as `python -m ctrpipe rollback`,
  when the version in the logs is the one in production, was published less than
  went into production less than bake_hours ago (a publish, or a person's rollback
  to it), and a check of a kind in rollback.checks is in alarm. A version that an
  automatic rollback put back is left alone: rolling it back in turn would walk down
  the versions on one bad day of traffic.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from ctrpipe.errors import PipelineError
from ctrpipe.monitoring.checks import ORDER
from ctrpipe.monitoring.settings import Retrain, Rollback
from ctrpipe.release import publish, registry, remote

AUTO_REASON = "auto: monitor alarm"  # publish.rollback puts it after "rollback from ...: "


def retrain(result: dict, settings: Retrain, result_path: Path) -> dict:
    verdict = result["verdict"]
    if settings.trigger == "never" or ORDER[verdict] < ORDER[settings.trigger]:
        return _record(
            "retrain",
            "skipped",
            f"verdict {verdict}; retraining is triggered on {settings.trigger}",
        )
    if settings.kind == "command":
        return run_command(settings.command, result_path, verdict)
    return dispatch(result, settings)


def dispatch(result: dict, settings: Retrain) -> dict:
    repository = settings.repository or os.environ.get("GITHUB_REPOSITORY", "")
    token = os.environ.get(settings.token_env, "")
    if not repository or not token:
        missing = (
            "repository (monitor.actions.retrain.repository or $GITHUB_REPOSITORY)"
            if not repository
            else f"a token in ${settings.token_env}"
        )
        return _record("retrain", "failed", f"repository_dispatch needs {missing}")
    url = f"{settings.api_url.rstrip('/')}/repos/{repository}/dispatches"
    payload = {
        "event_type": settings.event_type,
        "client_payload": {
            "version": result["model"]["version"],
            "digest": result["model"]["digest"],
            "verdict": result["verdict"],
            "alarms": [c["name"] for c in result["checks"] if c["status"] == "alarm"][:20],
        },
    }
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        return _record("retrain", "failed", f"POST {url}: HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError) as exc:
        return _record("retrain", "failed", f"POST {url}: {getattr(exc, 'reason', exc)}")
    if status != 204:
        return _record("retrain", "failed", f"POST {url}: HTTP {status}, expected 204")
    return _record(
        "retrain", "done", f"sent repository_dispatch '{settings.event_type}' to {repository}"
    )


def run_command(command: list[str], result_path: Path, verdict: str) -> dict:
    env = {
        **os.environ,
        "CTRPIPE_MONITOR_RESULT": str(result_path),
        "CTRPIPE_MONITOR_VERDICT": verdict,
    }
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _record("retrain", "failed", f"{command[0]}: {exc}")
    if done.returncode:
        tail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return _record("retrain", "failed", f"{' '.join(command)} exited {done.returncode}: {tail}")
    return _record("retrain", "done", f"ran {' '.join(command)}")


def rollback(repo: Path, result: dict, settings: Rollback, now: dt.datetime | None = None) -> dict:
    alarms = [
        c["name"]
        for c in result["checks"]
        if c["status"] == "alarm" and c["kind"] in settings.checks
    ]
    served = result["model"]["version"]
    if not settings.auto or not alarms:
        return _record(
            "rollback",
            "skipped",
            "automatic rollback is off"
            if not settings.auto
            else f"no alarm of a kind that rolls back ({', '.join(settings.checks)})",
        )
    if served is None:
        return _record("rollback", "skipped", "the logged rows come from an unversioned package")
    try:
        current = registry.production(repo)
        if current is None or current.version != served:
            return _record(
                "rollback",
                "skipped",
                f"{served} is no longer in production "
                f"({current.version if current else 'nothing'} is)",
            )
        age = ((now or dt.datetime.now(dt.timezone.utc)) - current.time) / dt.timedelta(hours=1)
        if current.message.startswith("rollback") and f": {AUTO_REASON}" in current.message:
            return _record(
                "rollback",
                "skipped",
                f"{served} is in production by an "
                f"automatic rollback already; a person decides what follows",
            )
        if age > settings.bake_hours:
            return _record(
                "rollback",
                "skipped",
                f"{served} went into production "
                f"{age:.1f} h ago, past its bake window of {settings.bake_hours:g} h",
            )
        reason = f"{AUTO_REASON} on {served}: {', '.join(alarms[:5])}"
        outcome = publish.rollback(repo, remote.resolve(repo), reason=reason)
    except PipelineError as exc:
        return _record("rollback", "failed", str(exc))
    return _record("rollback", "done", outcome.message)


def _record(action: str, status: str, detail: str) -> dict:
    return {"action": action, "status": status, "detail": detail}
