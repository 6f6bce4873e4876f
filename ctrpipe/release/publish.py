"""Publish and roll back model versions: what moves the registry's tags.

publish   for the commit checked out, when its committed gate passed against the model
          in production now: push every DVC output to the remote, check the remote holds
          all of them, then tag the version and assign it to production, and push both
          tags in one atomic git push. Any failure deletes the tags it made, so a failed
          publish leaves no tag. A commit is published once: running it again changes
          nothing, even after production moved away from it (`rollback --to` can).
rollback  a new production assignment to the previous version (or a named one), refused
          when the remote lacks any artifact of that version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ctrpipe import paths
from ctrpipe.errors import PipelineError
from ctrpipe.model import package
from ctrpipe.release import registry, remote


class PublishError(PipelineError):
    """The commit is not in a state that may be published."""


@dataclass(frozen=True)
class Outcome:
    version: str
    tags: list[str]  # the tags this call made (none when nothing changed)
    message: str


def publish(root: str | Path, where: remote.Remote, git_remote: str = "origin") -> Outcome:
    root = Path(root)
    head = registry.git(root, "rev-parse", "HEAD").strip()
    gate = committed_gate(root, head)
    current = registry.production(root)
    existing = registry.at_commit(root, head)
    if existing:
        # Published before. If production has moved on since (a rollback, a newer
        # version), re-running CI on this commit must not undo that: `rollback --to` can.
        where_now = (
            "in production"
            if current and current.version == existing.version
            else f"not in production (production is "
            f"{current.version if current else 'empty'}; "
            f"`rollback --to {existing.version}` puts it back)"
        )
        return Outcome(
            existing.version,
            [],
            f"{existing.version} (commit {head[:8]}) was "
            f"published already and is {where_now}; nothing to do",
        )
    check_publishable(root, head, gate, current)

    with remote.open_repo(root, where) as repo:
        remote.push(repo, where)
        absent = remote.missing(
            repo, where, registry.show(root, head, paths.LOCK_FILE), registry.tracked(root, head)
        )
        if absent:
            raise remote.RemoteError(
                f"after dvc push, {where.where} still lacks {', '.join(absent)}; no tag was made"
            )
        version = registry.next_version(root, schema_changed(repo, root))
    baseline = gate["production"].get("version") or "nothing (first model)"
    tags: list[str] = []
    try:
        tags.append(registry.register(root, version, head, version_message(version, gate)))
        tags.append(
            registry.assign(root, version, f"publish {version}: gate passed against {baseline}")
        )
        registry.push_tags(root, tags, git_remote)
    except PipelineError:
        registry.delete_tags(root, tags)
        raise
    return Outcome(
        version,
        tags,
        f"published {version} (commit {head[:8]}) to production with {', '.join(tags)}",
    )


def committed_gate(root: Path, head: str) -> dict:
    text = registry.show(root, head, paths.GATE_REPORT)
    if text is None:
        raise PublishError(
            f"{paths.GATE_REPORT} is not committed at {head[:8]}; run `dvc repro` and "
            f"commit its outputs"
        )
    gate = json.loads(text)
    if gate.get("verdict") != "pass":
        raise PublishError(f"the gate at {head[:8]} did not pass: {gate.get('reason')}")
    return gate


def check_publishable(root: Path, head: str, gate: dict, current) -> None:
    """The workspace is the commit, its package is the one the gate passed, and the gate
    compared against the model in production now."""
    dirty = [
        line[3:]
        for line in registry.git(root, "status", "--porcelain", "--untracked-files=no").splitlines()
    ]
    if dirty:
        raise PublishError(
            f"uncommitted changes ({', '.join(dirty[:3])}); publish acts on a commit"
        )
    digest = package.digest(root / paths.PACKAGE)
    if gate["candidate"]["digest"] != digest:
        raise PublishError(
            f"{paths.PACKAGE} (sha256 {digest[:12]}) is not the package the gate "
            f"passed ({gate['candidate']['digest'][:12]}); run `dvc repro` "
            f"(or `dvc pull`) first"
        )
    package.verify(root / paths.PACKAGE)
    compared = gate["production"].get("version")
    now = current.version if current else None
    if compared != now:
        raise PublishError(
            f"the gate compared against {compared or 'no production model'}"
            f" but production is now {now or 'empty'}; run `dvc repro` "
            f"and commit"
        )


def schema_changed(repo, root: Path) -> bool:
    """Whether the package's feature schema differs from the newest version's."""
    versions = registry.versions(root)
    if not versions:
        return False
    newest = read_at(repo, versions[-1].commit, f"{paths.PACKAGE}/schema.json")
    ours = (root / paths.PACKAGE / "schema.json").read_bytes()
    return json.loads(newest)["feature_schema"] != json.loads(ours)["feature_schema"]


def read_at(repo, commit: str, path: str) -> bytes:
    """A DVC-tracked file as of `commit`, from the cache or the remote."""
    from dvc.repo import Repo

    try:
        with Repo(repo.root_dir, rev=commit, config=repo.config) as at:
            return at.dvcfs.read_bytes(path)
    except Exception as exc:
        raise remote.RemoteError(
            f"cannot read {path} at {commit[:8]}: {remote.reason(exc)}"
        ) from None


def version_message(version: str, gate: dict) -> str:
    """The version tag's message: what the gate measured, for `git show` readers."""
    primary = gate.get("primary", "roc_auc")
    value = gate["candidate"]["metrics"].get(primary)
    return (
        f"{registry.ARTIFACT} {version}\n\npackage sha256 {gate['candidate']['digest']}\n"
        f"golden {primary} {value}; gate: {gate.get('reason')}"
    )


def rollback(
    root: str | Path,
    where: remote.Remote,
    to: str | None = None,
    reason: str | None = None,
    git_remote: str = "origin",
) -> Outcome:
    root = Path(root)
    current = registry.production(root)
    if current is None:
        raise PublishError("nothing is in production; there is nothing to roll back")
    target = registry.find(root, to) if to else previous(root, current.version)
    if target.version == current.version:
        raise PublishError(f"{target.version} is already in production ({current.tag})")
    with remote.open_repo(root, where) as repo:
        lock = registry.show(root, target.commit, paths.LOCK_FILE)
        absent = (
            remote.missing(repo, where, lock, registry.tracked(root, target.commit))
            if lock
            else [paths.LOCK_FILE]
        )
    if absent:
        raise PublishError(
            f"{target.version}: the remote {where.where} lacks "
            f"{', '.join(absent)}; refusing to roll back to it"
        )
    message = f"rollback from {current.version} to {target.version}"
    tags: list[str] = []
    try:
        tags.append(
            registry.assign(root, target.version, f"{message}: {reason}" if reason else message)
        )
        registry.push_tags(root, tags, git_remote)
    except PipelineError:
        registry.delete_tags(root, tags)
        raise
    return Outcome(target.version, tags, f"{message} ({tags[0]})")


def previous(root: Path, version: str) -> registry.Event:
    """The highest version below `version`."""
    older = [
        e for e in registry.versions(root) if registry.semver(e.version) < registry.semver(version)
    ]
    if not older:
        raise PublishError(f"no version older than {version} to roll back to")
    return older[-1]
