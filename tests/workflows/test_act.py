"""The five workflows, run by act (a real Actions engine) on this machine, offline: every
step of every job runs, with the pinned actions, in a fresh workspace copied from a clone
of the project, with a bare `origin`, SeaweedFS for the DVC remote and loopback stand-ins
for GitHub's API and `gh` (tests/support/act.py). The remote's credentials are key
secrets, the README's alternative to OIDC, which needs GitHub's token service.

One story, in file order, as a repository lives it. v1.0.0 (three small trees) is in
production. A pull request from a branch of the repository changes the model; with cold
caches it is reproduced against production and commented on; its second push (the lock
reproduced) updates that one comment. A fork's pull request gets no secrets and stops
before the gate. The merge publishes v1.1.0 once. Retrain runs on each of its triggers
and finds nothing new; a rollback puts v1.0.0 back in production, and a refresh
publishes the online snapshot of its model.

Two things stand in for what a suite cannot do from inside itself: the tests jobs of
`main.yml` and `pull-request.yml` run `make test` and `make test-fast` with PYTEST_ARGS
naming one module (the outer suite runs the rest), and GitHub's withholding
of secrets from a fork's run is act being given none. What act cannot check
(permissions, `id-token`, concurrency) stays in test_workflows.py.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import s3fs

from ctrpipe import paths
from ctrpipe.monitoring import actions as monitor_actions
from ctrpipe.monitoring.settings import Retrain
from ctrpipe.online import store
from ctrpipe.release import registry
from tests.support.act import REPOSITORY, Actions, GitHubAPI, Run
from tests.support.project import (
    FEW_TREES,
    GATED,
    SMALL,
    copy_project,
    edit_conf,
    group_files,
    run,
    select,
)
from tests.support.s3server import S3Server

pytestmark = pytest.mark.slow

ACTOR = "octo-dev"
PULL = 7
# Each run's workspace is new, so Spark's class archive would be written per run, unused.
ENV = ["CTRPIPE_CLASS_ARCHIVE=off"]
INNER_SUITE = "PYTEST_ARGS=tests/workflows/test_workflows.py -q"  # the tests jobs' `make test*`


@dataclass
class World:
    root: Path
    clone: Path
    origin: Path
    server: S3Server
    api: GitHubAPI
    actions: Actions

    def git(self, *args: str) -> str:
        return run(["git", *args], self.clone)

    def act(
        self,
        event_name: str,
        workflow: str,
        event: dict,
        job: str | None = None,
        secrets: bool = True,
        env: tuple[str, ...] = (),
    ) -> Run:
        s3 = self.server.env()
        keys = (s3["AWS_ACCESS_KEY_ID"], s3["AWS_SECRET_ACCESS_KEY"])
        return self.actions.run(
            self.clone,
            event_name,
            workflow,
            event,
            job=job,
            # One key pair on the test server: pull requests' read-only pair is the same.
            secrets={
                name: value
                for prefix in ("AWS_", "AWS_READ_")
                for name, value in zip(
                    (f"{prefix}ACCESS_KEY_ID", f"{prefix}SECRET_ACCESS_KEY"), keys
                )
            }
            if secrets
            else {},
            variables={k: s3[k] for k in ("CTRPIPE_S3_BUCKET", "CTRPIPE_S3_ENDPOINT")},
            cache_server=self.root / "cache-server",  # cold for the first run, then warm
            env=[*ENV, *env],
        )

    def checkout_main(self) -> None:
        """The clone at origin's main, with every tag: what GitHub checks out on a push."""
        self.git("fetch", "-q", "--tags", "--force", "origin")
        self.git("checkout", "-q", "-B", "main", "origin/main")

    def origin_tags(self) -> set[str]:
        return set(run(["git", "tag"], self.origin).split())

    def bucket(self) -> s3fs.S3FileSystem:
        env = self.server.env()
        return s3fs.S3FileSystem(
            endpoint_url=env["CTRPIPE_S3_ENDPOINT"],
            key=env["AWS_ACCESS_KEY_ID"],
            secret=env["AWS_SECRET_ACCESS_KEY"],
            skip_instance_cache=True,
        )

    def bucket_files(self) -> int:
        return len(self.bucket().find(self.server.bucket))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The project on tiny data with v1.0.0 (three small trees) published by hand."""
    root = tmp_path_factory.mktemp("act")
    server = S3Server(root / "s3" / "data").start()
    api = GitHubAPI()
    clone = copy_project(root / "clone")
    edit_conf(clone, {**SMALL, "config.yaml": ("data: synthetic", "data: tiny")})
    group_files(clone, "gated", GATED)  # in conf/, so that params.yaml is its composition
    group_files(clone, "few_trees", FEW_TREES)
    origin = root / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], root)
    w = World(root, clone, origin, server, api, Actions(root, api, ACTOR))
    w.git("init", "-q", "-b", "main")
    w.git("config", "user.name", ACTOR)
    w.git("config", "user.email", "dev@example.com")
    w.git("remote", "add", "origin", str(origin))
    w.git("remote", "add", "github", f"https://github.com/{REPOSITORY}.git")
    run([sys.executable, "-m", "ctrpipe.params"], clone)
    w.git("add", "-A")
    w.git("commit", "-qm", "the project")  # dvclive wants a commit
    run(["dvc", "repro"], clone)
    w.git("add", "-A")
    w.git("commit", "-qm", "three small trees, reproduced")
    w.git("push", "-q", "origin", "main")
    run([sys.executable, "-m", "ctrpipe", "publish"], clone, server.env())
    assert registry.production(clone).version == "v1.0.0"
    yield w
    api.stop()
    server.stop()


def succeeded(result: Run, *jobs: str) -> None:
    for job in jobs:
        assert result.jobs.get(job) == "succeeded", (
            f"job {job}: {result.jobs.get(job)} (all: {result.jobs})\n{result.log[-8000:]}"
        )


def pull_request(world: World, head_repository: str) -> dict:
    sha = world.git("rev-parse", "HEAD").strip()
    return {
        "action": "synchronize",
        "number": PULL,
        "pull_request": {
            "number": PULL,
            "head": {"ref": "better-model", "sha": sha, "repo": {"full_name": head_repository}},
            "base": {"ref": "main", "repo": {"full_name": REPOSITORY}},
        },
    }


def test_a_pull_request_with_cold_caches_is_reproduced_against_production(world):
    world.git("checkout", "-q", "-b", "better-model")
    select(world.clone, "model", "xgboost")  # the default model
    select(world.clone, "sweep", "gated")
    run([sys.executable, "-m", "ctrpipe.params"], world.clone)
    world.git("commit", "-qam", "the default model instead of three small trees")
    result = world.act(
        "pull_request", "pull-request.yml", pull_request(world, REPOSITORY), job="comment"
    )
    succeeded(result, "report", "comment")
    repro = result.step_output("report", "dvc repro")
    assert "Running stage 'release/dvc.yaml:production'" in repro
    assert "Running stage 'gate'" in repro
    (comment,) = world.api.comments.values()
    assert comment["issue"] == PULL
    assert comment["body"].startswith("<!-- ctrpipe-report -->")
    assert "production v1.0.0" in comment["body"]
    assert "Gate **PASS**" in comment["body"], comment["body"][:600]
    assert "The gate below is the one committed" not in comment["body"]


def test_a_second_push_updates_the_one_comment(world):
    run(["dvc", "repro"], world.clone)  # the author reproduces and commits the lock
    world.git("add", "-A")
    world.git("commit", "-qm", "reproduced")
    (before,) = world.api.comments.values()
    before = dict(before)
    result = world.act(
        "pull_request", "pull-request.yml", pull_request(world, REPOSITORY), env=(INNER_SUITE,)
    )
    succeeded(result, "tests", "report", "comment")
    (after,) = world.api.comments.values()
    assert [c for c in world.api.calls if c.startswith(("POST", "PATCH"))] == [
        f"POST /repos/{REPOSITORY}/issues/{PULL}/comments",
        f"PATCH /repos/{REPOSITORY}/issues/comments/1000",
    ]
    assert after["body"] != before["body"]  # the base and the commit it names moved


def test_a_forks_pull_request_gets_no_secrets_and_stops_before_the_gate(world):
    calls = len(world.api.calls)
    fork = pull_request(world, "someone-else/ctrpipe")
    result = world.act("pull_request", "pull-request.yml", fork, job="comment", secrets=False)
    succeeded(result, "report")
    assert "comment" not in result.jobs  # the comment job's `if` holds only for this repo
    repro = result.step_output("report", "dvc repro")
    assert "Running stage 'gate'" not in repro and "dvc.yaml:production'" not in repro
    report = world.actions.artifact_file("pull-request-report", "report.md")
    assert "The gate below is the one committed on this branch" in report
    assert len(world.api.calls) == calls


def test_the_merge_publishes_once(world):
    world.git("checkout", "-q", "main")
    world.git("merge", "-q", "--ff-only", "better-model")
    world.git("push", "-q", "origin", "main")
    files = world.bucket_files()
    world.checkout_main()
    first = world.act("push", "main.yml", {"ref": "refs/heads/main"}, env=(INNER_SUITE,))
    succeeded(first, "tests", "publish")
    assert {"model@v1.1.0", "model#prod#2"} <= world.origin_tags()
    assert world.bucket_files() > files  # the new model's artifacts
    world.checkout_main()
    production = registry.production(world.clone)
    assert (production.version, production.author) == ("v1.1.0", ACTOR)
    calls = world.actions.gh_log.read_text()
    assert "release create model@v1.1.0 model-package-v1.1.0.tar.gz" in calls

    tags, files = world.origin_tags(), world.bucket_files()
    again = world.act("push", "main.yml", {"ref": "refs/heads/main"}, env=(INNER_SUITE,))
    succeeded(again, "tests", "publish")
    assert "published already" in again.step_output("publish", "publish when the gate passes")
    assert (world.origin_tags(), world.bucket_files()) == (tags, files)
    assert world.actions.gh_log.read_text().count("release create") == 1


def drift_alarm(world) -> dict:
    """The event the monitor's alarm sends, as the API stand-in received it."""
    settings = Retrain(repository=REPOSITORY, api_url=world.api.url, token_env="ACT_TEST_TOKEN")
    result = {
        "model": {"version": "v1.1.0", "digest": "d" * 64},
        "verdict": "alarm",
        "checks": [{"name": "input_drift", "status": "alarm"}],
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ACT_TEST_TOKEN", "token")
        outcome = monitor_actions.dispatch(result, settings)
    assert outcome["status"] == "done", outcome
    sent = world.api.dispatches[-1]
    return {"action": sent["event_type"], "client_payload": sent["client_payload"]}


@pytest.mark.parametrize("trigger", ["schedule", "workflow_dispatch", "repository_dispatch"])
def test_retrain_on_each_trigger_finds_nothing_new(world, trigger):
    world.checkout_main()
    tags = world.origin_tags()
    event = drift_alarm(world) if trigger == "repository_dispatch" else {}
    result = world.act(trigger, "retrain.yml", event)
    succeeded(result, "retrain")
    assert "Running stage 'ingest'" in result.step_output("retrain", "ingest fresh raw data")
    # Production's model again: its gate fails against itself, or it is published already.
    published = result.step_output("retrain", "commit the new lock and reports")
    assert "nothing published" in published or "nothing to do" in published, published
    assert world.origin_tags() == tags


def test_rollback_puts_the_version_below_back(world):
    world.checkout_main()
    event = {"inputs": {"version": "", "reason": "drill"}}
    result = world.act("workflow_dispatch", "rollback.yml", event)
    succeeded(result, "rollback")
    assert "model#prod#3" in world.origin_tags()
    world.checkout_main()
    production = registry.production(world.clone)
    assert (production.version, production.author) == ("v1.0.0", ACTOR)


def test_refresh_publishes_the_snapshot_of_productions_model(world):
    world.checkout_main()
    result = world.act("schedule", "refresh.yml", {})
    succeeded(result, "refresh")
    out = result.step_output("refresh", "refresh the snapshot and publish it")
    assert "Running stage 'ingest'" in out and "fetched model v1.0.0" in out, out
    assert "published it to s3://" in out, out
    fs = world.bucket()
    (index,) = fs.glob(f"{world.server.bucket}/*/snapshots/*/*.json")
    published = json.loads(fs.cat(index))
    own = store.load(world.clone / paths.PACKAGE / store.FOLDER)  # the same data config
    assert published["config"] == own.config
    assert f"(sha256 {published['digest'][:12]}," in out
