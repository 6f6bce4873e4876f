"""The GitHub workflows: linted by actionlint and audited by zizmor (any finding fails),
pinned and least-privileged, and calling only make targets, scripts and CLI commands that
exist, so that renaming one breaks a test here rather than a run on GitHub.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ctrpipe import cli
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

GITHUB = ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ACTIONS = sorted((GITHUB / "actions").glob("*/action.yml"))
TOOLS = Path(sys.executable).parent
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(path: Path) -> dict:
    # YAML 1.1 reads the key `on` as True; a workflow means the string.
    doc = yaml.safe_load(path.read_text())
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def steps(doc: dict) -> list[dict]:
    if "runs" in doc:
        return doc["runs"].get("steps", [])
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def test_there_are_the_five_workflows():
    assert {p.stem for p in WORKFLOWS} == {"pull-request", "main", "retrain", "rollback", "refresh"}


def test_actionlint_finds_nothing():
    proc = subprocess.run(
        [str(TOOLS / "actionlint"), "-no-color", *map(str, WORKFLOWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing():
    proc = subprocess.run(
        [str(TOOLS / "zizmor"), "--offline", "--no-progress", "--format", "plain", str(GITHUB)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout + proc.stderr


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=lambda p: p.parent.name + "/" + p.name)
def test_every_action_from_elsewhere_is_pinned_to_a_commit(path):
    for step in steps(load(path)):
        uses = step.get("uses")
        if uses and not uses.startswith("./"):
            assert PINNED.match(uses), f"{path.name}: {uses} is not pinned to a full SHA"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_granted_per_job_and_pull_requests_only_read(path):
    doc = load(path)
    assert doc["permissions"] == {}, "nothing at the workflow level; each job asks"
    assert "pull_request_target" not in doc["on"]
    for name, job in doc["jobs"].items():
        granted = job["permissions"]
        if "pull_request" in doc["on"] and name == "report":  # runs the PR's code
            assert granted == {"contents": "read", "id-token": "write"}
            # Secrets only where the pull request comes from this repository (GitHub
            # gives a fork's run none; the condition says so where a reader looks).
            assert "secrets." not in yaml.safe_dump({k: v for k, v in job.items() if k != "steps"})
            for step in job["steps"]:
                if "secrets." in yaml.safe_dump(step):
                    assert step["if"] == "env.SAME_REPO == 'true'", step
                    assert "secrets.AWS_ACCESS_KEY_ID" not in yaml.safe_dump(step), (
                        "pull requests get the read-only pair, not the publishing one"
                    )
        for scope, level in granted.items():
            assert level in ("read", "write"), (name, scope)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_checkout_keeps_no_credentials_and_fetches_history(path):
    for step in steps(load(path)):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
            assert step["with"]["fetch-depth"] == 0  # gto and the diffs need tags and history


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", text, flags=re.M))


def commands(run: str) -> list[list[str]]:
    """Each command line of a `run:` block, split like a shell would (no expansion)."""
    lines = [line.strip() for line in run.splitlines()]
    return [shlex.split(line) for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=lambda p: p.parent.name + "/" + p.name)
def test_run_steps_call_make_targets_scripts_and_commands_that_exist(path):
    targets = make_targets()
    for step in steps(load(path)):
        for words in commands(step.get("run", "")):
            if words[0] == "make":
                called = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
                assert called and set(called) <= targets, f"{path.name}: {' '.join(words)}"
            elif words[0].startswith("scripts/"):
                script = ROOT / words[0]
                assert script.is_file() and script.stat().st_mode & 0o111, words[0]
            else:
                pytest.fail(
                    f"{path.name}: `{' '.join(words)}` is neither a make target nor "
                    f"a script: workflows stay thin over tested commands"
                )


def test_make_targets_call_cli_commands_that_exist():
    subparsers = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction))
    called = re.findall(r"-m ctrpipe (\w[\w-]*)", (ROOT / "Makefile").read_text())
    assert {"pull", "report", "publish", "rollback"} <= set(called)
    assert set(called) <= set(subparsers.choices)


def test_main_publishes_only_after_the_whole_suite_and_pull_requests_run_the_unit_tier():
    main = load(ROOT / ".github/workflows/main.yml")["jobs"]
    assert main["publish"]["needs"] == "tests"
    assert ["make", "test"] in commands(main["tests"]["steps"][-1]["run"])
    pull = load(ROOT / ".github/workflows/pull-request.yml")["jobs"]
    assert ["make", "lint", "test-fast"] in commands(pull["tests"]["steps"][-1]["run"])
