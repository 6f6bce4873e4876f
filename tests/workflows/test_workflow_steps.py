"""Each workflow's `run:` steps, in order, against a temp clone of the project with a bare
`origin` and the S3 server on loopback (see tests/support/workflow_runner.py for the fakes).

One story, in file order: a pull request is reproduced and reported; its merge to main
publishes v1.0.0 and releases it; a retrain finds nothing new; a rollback with nothing
older is refused with the command's own words. A renamed make target, script or CLI flag
breaks a step here.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from ctrpipe.release import registry
from tests.conftest import ROOT
from tests.support.project import copy_project, run
from tests.support.s3server import S3Server
from tests.support.workflow_runner import FakeGitHub, Job, run_job

pytestmark = pytest.mark.slow

WORKFLOWS = ROOT / ".github" / "workflows"
ACTOR = "octo-dev"
TINY = [
    "sweep.n_trials=2",
    "gate.floors.roc_auc=0.55",
    "gate.floors.logloss_gain=-0.05",
    "gate.floors.ece_of_rate=1",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The clone, its origin, the S3 server, and where the fakes leave what they did."""
    root = tmp_path_factory.mktemp("workflows")
    server = S3Server(root / "s3" / "data").start()
    clone = copy_project(root / "clone")
    config = clone / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("data: synthetic", "data: tiny"))
    spark = clone / "conf" / "spark" / "local.yaml"
    spark.write_text(spark.read_text().replace("driver_memory: 4g", "driver_memory: 1g"))
    run([sys.executable, "-m", "ctrpipe.params", *TINY], clone)
    run(["git", "init", "-q", "--bare", "-b", "main", str(root / "origin.git")], root)
    run(["git", "init", "-q", "-b", "main"], clone)
    run(["git", "remote", "add", "origin", str(root / "origin.git")], clone)
    run(["git", "add", "-A"], clone)
    run(
        [
            "git",
            "-c",
            f"user.name={ACTOR}",
            "-c",
            "user.email=dev@example.com",
            "commit",
            "-qm",
            "the project",
        ],
        clone,
    )
    run(["git", "push", "-q", "origin", "main"], clone)
    fake_bin = root / "fake-bin"  # `gh`, GitHub's CLI, records what it was asked to do
    fake_bin.mkdir()
    (fake_bin / "gh").write_text(f"""#!/usr/bin/env bash
echo "$*" >> {root / "gh.log"}
if [ "$1 $2" = "release view" ]; then grep -q "^release create $3 " {root / "gh.log"}; fi
""")
    (fake_bin / "gh").chmod(0o755)
    yield {
        "root": root,
        "clone": clone,
        "server": server,
        "env": {
            **server.env(),
            "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_ACTOR": ACTOR,
            "GITHUB_ACTOR_ID": "1001",
            "CI": "true",
        },
    }
    server.stop()


def fakes(world) -> dict:
    artifacts = world["root"] / "artifacts"

    def setup(_with, clone: Path, _job):  # actions/setup-python, setup-java, cache, make setup
        if not (clone / ".venv").exists():
            (clone / ".venv").symlink_to(ROOT / ".venv")
        (clone / ".venv" / ".installed").touch()  # newer than the clone's lock: no reinstall

    def upload(with_, clone: Path, _job):
        shutil.copytree(clone / with_["path"], artifacts / with_["name"], dirs_exist_ok=True)

    def download(with_, _clone, job: Job):
        job.env["DOWNLOADED"] = str(artifacts / with_["name"])

    def comment(with_, _clone, job: Job):  # actions/github-script: the script is GitHub's
        body = (Path(job.env["DOWNLOADED"]) / "report.md").read_text()
        assert "createComment" in with_["script"] and "<!-- ctrpipe-report -->" in with_["script"]
        (world["root"] / "comment.md").write_text(body)

    return {
        "actions/checkout": lambda *_: None,  # the clone is checked out already
        "./.github/actions/setup": setup,
        "./.github/actions/credentials": lambda *_: None,  # the env holds the keys
        "actions/upload-artifact": upload,
        "actions/download-artifact": download,
        "actions/github-script": comment,
    }


def github(world, **more) -> FakeGitHub:
    env = world["env"]
    return FakeGitHub(
        {
            "vars.CTRPIPE_S3_BUCKET": env["CTRPIPE_S3_BUCKET"],
            "vars.CTRPIPE_S3_ENDPOINT": env["CTRPIPE_S3_ENDPOINT"],
            "vars.AWS_ROLE_ARN": "",
            "secrets.AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
            "secrets.AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
            "github.token": "fake-token",
            **more,
        }
    )


def check(job: Job) -> None:
    failed = [s for s in job.steps if s.returncode != 0]
    assert not failed, f"step '{failed[0].name}' failed:\n{failed[0].output[-3000:]}"


def test_pull_request_reproduces_reports_and_comments(world):
    # A pull request from a branch of this repository, with OIDC set up for the bucket.
    same_repo = "github.event.pull_request.head.repo.full_name == github.repository"
    gh = github(
        world,
        **{
            "vars.AWS_ROLE_ARN": "arn:aws:iam::000000000000:role/fake",
            same_repo: "true",
            "env.SAME_REPO == 'true'": "true",
            "env.SAME_REPO == 'true' && vars.AWS_ROLE_ARN != ''": "true",
            "env.SAME_REPO == 'true' && 'gate' || 'package'": "gate",
        },
    )
    job = run_job(
        WORKFLOWS / "pull-request.yml", "report", world["clone"], gh, fakes(world), world["env"]
    )
    check(job)
    assert "dvc repro" in job.ran() and "report" in job.ran()
    repro = next(s for s in job.steps if s.name == "dvc repro").output
    assert "Running stage 'gate'" in repro
    report = (world["root"] / "artifacts" / "pull-request-report" / "report.md").read_text()
    assert report.startswith("<!-- ctrpipe-report -->")
    check(
        run_job(
            WORKFLOWS / "pull-request.yml",
            "comment",
            world["clone"],
            gh,
            fakes(world),
            world["env"],
        )
    )
    assert (world["root"] / "comment.md").read_text() == report


def test_merge_to_main_publishes_and_releases(world):
    clone = world["clone"]
    run(["git", "add", "-A"], clone)  # the pull request's reproduced outputs, merged
    run(
        [
            "git",
            "-c",
            f"user.name={ACTOR}",
            "-c",
            "user.email=dev@example.com",
            "commit",
            "-qm",
            "reproduce",
        ],
        clone,
    )
    run(["git", "push", "-q", "origin", "main"], clone)
    job = run_job(
        WORKFLOWS / "main.yml", "publish", clone, github(world), fakes(world), world["env"]
    )
    check(job)
    assert registry.production(clone).version == "v1.0.0"
    assert registry.production(clone).author == ACTOR  # the actor who triggered the run
    origin_tags = run(["git", "tag"], world["root"] / "origin.git").split()
    assert {"model@v1.0.0", "model#prod#1"} <= set(origin_tags)
    calls = (world["root"] / "gh.log").read_text()
    assert "release create model@v1.0.0 model-package-v1.0.0.tar.gz" in calls


def test_retrain_with_nothing_new_publishes_nothing(world):
    gh = github(world, **{"github.event_name": "repository_dispatch"})
    job = run_job(
        WORKFLOWS / "retrain.yml", "retrain", world["clone"], gh, fakes(world), world["env"]
    )
    check(job)
    publish_step = job.steps[-2].output
    assert "nothing to do" in publish_step or "did not pass" in publish_step
    assert [e.tag for e in registry.assignments(world["clone"])] == ["model#prod#1"]
    assert "release view model@v1.0.0" in (world["root"] / "gh.log").read_text()


def test_rollback_reaches_the_command(world):
    gh = github(world, **{"inputs.version": "", "inputs.reason": "drill"})
    job = run_job(
        WORKFLOWS / "rollback.yml", "rollback", world["clone"], gh, fakes(world), world["env"]
    )
    last = job.steps[-1]
    assert last.name == "rollback" and last.returncode != 0
    assert "error: no version older than v1.0.0 to roll back to" in last.output
    gh = github(world, **{"inputs.version": "v9.9.9", "inputs.reason": "drill"})
    job = run_job(
        WORKFLOWS / "rollback.yml", "rollback", world["clone"], gh, fakes(world), world["env"]
    )
    assert "error: no version v9.9.9" in job.steps[-1].output
    assert registry.production(world["clone"]).version == "v1.0.0"
