"""Model versions and production, kept in git tags through gto (GitOps for models).

    model@v1.2.0     annotated tag on the commit whose dvc.lock produced the version
    model#prod#7     annotated tag: the 7th stage event of `model`, putting a version in
                     production (a rollback is one more such tag: history is never
                     rewritten)

The tagger and the tag time say who did it and when; the message says why. `gto show`
and `gto history` read the same tags.

gto is imported where it is used: `production` answers a repository with no stage tag
from one `git tag --list`, which keeps the always-run `production` stage of `dvc repro`
to about 0.1 s.

gto orders stage events by tag time, which git keeps in whole seconds: two assignments in
one second would tie. Production is therefore the event with the highest number (gto's
own counter), and `assign` waits for the next second so that gto agrees.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ctrpipe.errors import PipelineError

ARTIFACT = "model"
STAGE = "prod"
FIRST_VERSION = "v1.0.0"


class RegistryError(PipelineError):
    """A tag could not be read, made or pushed, or a version does not exist."""


@dataclass(frozen=True)
class Event:
    """A registration (version is born) or a stage event (production moves)."""

    kind: str  # "registration", "assignment" or "unassignment"
    version: str | None  # None for an unassignment
    tag: str
    commit: str
    time: datetime
    author: str
    author_email: str
    message: str

    @property
    def number(self) -> int:
        from gto.tag import parse_name

        return parse_name(self.tag).get("counter", 0)


def versions(repo: str | Path) -> list[Event]:
    """Every registered version, oldest version number first."""
    regs = [e for e in _events(repo) if e.kind == "registration"]
    return sorted(regs, key=lambda e: semver(e.version))


def assignments(repo: str | Path) -> list[Event]:
    """Every production stage event, in the order they happened."""
    return sorted(
        (e for e in _events(repo) if e.kind in ("assignment", "unassignment")),
        key=lambda e: e.number,
    )


def production(repo: str | Path) -> Event | None:
    """The assignment in force, or None when nothing is (or is no longer) in production."""
    if not git(repo, "tag", "--list", f"{ARTIFACT}#{STAGE}*").strip():
        return None  # no stage event ever: nothing for gto to order
    events = assignments(repo)
    return events[-1] if events and events[-1].kind == "assignment" else None


def find(repo: str | Path, version: str) -> Event:
    for event in versions(repo):
        if event.version == version:
            return event
    known = ", ".join(e.version for e in versions(repo)) or "none yet"
    raise RegistryError(f"no version {version} of '{ARTIFACT}' (versions: {known})")


def at_commit(repo: str | Path, commit: str) -> Event | None:
    """The version registered on `commit`, if any."""
    return next((e for e in versions(repo) if e.commit == commit), None)


def next_version(repo: str | Path, schema_changed: bool) -> str:
    """v1.0.0 first; then a major bump when the feature schema changed, else a minor one."""
    existing = versions(repo)
    if not existing:
        return FIRST_VERSION
    major, minor, _ = semver(existing[-1].version)
    return f"v{major + 1}.0.0" if schema_changed else f"v{major}.{minor + 1}.0"


def register(repo: str | Path, version: str, commit: str, message: str) -> str:
    """Create the annotated version tag locally; its name."""
    import gto.api

    try:
        gto.api.register(str(repo), ARTIFACT, commit, version=version, message=message)
    except Exception as exc:  # gto raises its own errors and git's
        raise RegistryError(f"cannot tag {ARTIFACT}@{version}: {exc}") from None
    return f"{ARTIFACT}@{version}"


def assign(repo: str | Path, version: str, message: str) -> str:
    """Create the next production assignment tag locally; its name."""
    import gto.api

    _wait_past(max((e.time for e in assignments(repo)), default=None))
    before = {e.tag for e in assignments(repo)}
    try:
        gto.api.assign(
            str(repo), ARTIFACT, STAGE, version=version, message=message, force=True
        )  # force: a version may come back to production
    except Exception as exc:
        raise RegistryError(f"cannot assign {ARTIFACT} {version} to {STAGE}: {exc}") from None
    (tag,) = {e.tag for e in assignments(repo)} - before
    return tag


def push_tags(repo: str | Path, tags: list[str], remote: str = "origin") -> None:
    """Push the tags together (all or none) when the repository has that git remote."""
    if remote not in git(repo, "remote").split():
        return
    git(repo, "push", "--atomic", remote, *[f"refs/tags/{t}" for t in tags])


def delete_tags(repo: str | Path, tags: list[str]) -> None:
    if tags:
        git(repo, "tag", "-d", *tags)


def git(repo: str | Path, *args: str, timeout: float | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        message = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise RegistryError(f"git {args[0]} failed: {message[-1] if message else proc.returncode}")
    return proc.stdout


def show(repo: str | Path, commit: str, path: str) -> str | None:
    """A file as committed, or None when the commit does not have it."""
    try:
        return git(repo, "show", f"{commit}:{path}")
    except RegistryError:
        return None


def tracked(repo: str | Path, commit: str) -> set[str]:
    """The paths of every file git holds at `commit`."""
    return set(git(repo, "ls-tree", "-r", "--name-only", commit).splitlines())


def semver(version: str) -> tuple[int, int, int]:
    major, minor, patch = version.lstrip("v").split(".")
    return int(major), int(minor), int(patch)


def _events(repo: str | Path) -> list[Event]:
    import gto.api

    try:
        history = gto.api.history(str(repo), ARTIFACT)
    except Exception as exc:
        raise RegistryError(f"{repo}: cannot read the model tags ({exc})") from None
    return [
        Event(
            kind=h["event"],
            version=h["version"],
            tag=h["ref"],
            commit=h["commit"],
            time=h["timestamp"],
            author=h["author"],
            author_email=h["author_email"],
            message=h["message"],
        )
        for h in history
        if h["event"] in ("registration", "assignment", "unassignment")
    ]


def _wait_past(latest: datetime | None) -> None:
    """Sleep (at most a second) until the clock's whole second is past `latest`."""
    if latest is None:
        return
    while datetime.now(timezone.utc).replace(microsecond=0) <= latest:
        time.sleep(0.05)
