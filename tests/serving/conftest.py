"""Fixtures of the serving tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ctrpipe.release import registry


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture()
def tagged(tmp_path):
    """A bare 'origin' with v1.0.0 and v1.1.0 registered and v1.0.0 in production,
    and a clone of it where the service runs."""
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(tmp_path, "clone", "-q", str(origin), str(work))
    for key, value in (("user.name", "t"), ("user.email", "t@example.com")):
        git(work, "config", key, value)
    tags = []
    for version in ("v1.0.0", "v1.1.0"):  # gto registers one version per commit
        (work / "README").write_text(version)
        git(work, "add", "README")
        git(work, "commit", "-q", "-m", version)
        head = git(work, "rev-parse", "HEAD").strip()
        tags.append(registry.register(work, version, head, version))
    tags.append(registry.assign(work, "v1.0.0", "publish"))
    git(work, "push", "-q", "origin", "HEAD", *[f"refs/tags/{t}" for t in tags])
    serving = tmp_path / "serving"
    git(tmp_path, "clone", "-q", str(origin), str(serving))
    return work, serving
