"""Run a GitHub workflow's job on this machine: its `run:` steps for real, in order, in a
clone of the project; its `uses:` steps (checkout, set-up, credentials, artifacts, the
comment) through fakes named after what they stand in for.

GitHub's expressions are not evaluated: `FakeGitHub` holds the value of each `${{ ... }}`
and `if:` text a scenario needs, and refuses any other, so a new expression in a workflow
fails the test until the fake knows what GitHub would give.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass
class FakeGitHub:
    """What GitHub would put in `${{ expr }}` and decide for `if: expr`, by the text."""

    values: dict[str, str]

    def value(self, expression: str) -> str:
        if expression not in self.values:
            raise KeyError(f"the fake GitHub has no value for `{expression}`")
        return self.values[expression]

    def substitute(self, text: str) -> str:
        return EXPRESSION.sub(lambda m: self.value(m.group(1)), str(text))

    def condition(self, expression) -> bool:
        return self.value(EXPRESSION.sub(r"\1", str(expression)).strip()) == "true"


@dataclass
class Step:
    name: str
    kind: str  # "run", "fake" or "skipped"
    returncode: int = 0
    output: str = ""


@dataclass
class Job:
    """One job run: each step's outcome, and the env the fakes added for later steps."""

    steps: list[Step] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def ran(self) -> list[str]:
        return [s.name for s in self.steps if s.kind != "skipped"]


Fake = Callable[[dict, Path, Job], None]  # (the step's `with:`, the clone, the job so far)


def load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as True
        doc["on"] = doc.pop(True)
    return doc


def run_job(
    workflow: Path,
    job_name: str,
    clone: Path,
    github: FakeGitHub,
    fakes: dict[str, Fake],
    env: dict[str, str] | None = None,
    stop_on_failure: bool = True,
) -> Job:
    """Run the job's steps in `clone`; a failing `run:` step ends the job (as on GitHub)."""
    spec = load(workflow)["jobs"][job_name]
    job = Job()
    job.env = {k: github.substitute(v) for k, v in spec.get("env", {}).items()}
    for i, step in enumerate(spec["steps"]):
        name = step.get("name") or step.get("uses") or f"step {i}"
        if "if" in step and not github.condition(step["if"]):
            job.steps.append(Step(name, "skipped"))
            continue
        if "uses" in step:
            action = step["uses"].split("@")[0]
            if action not in fakes:
                raise KeyError(f"{workflow.name}: no fake for `{action}`")
            fakes[action](
                {k: github.substitute(v) for k, v in step.get("with", {}).items()}, clone, job
            )
            job.steps.append(Step(name, "fake"))
            continue
        step_env = {k: github.substitute(v) for k, v in step.get("env", {}).items()}
        merged = {**os.environ, **(env or {}), **job.env, **step_env}
        merged["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{merged['PATH']}"
        proc = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", github.substitute(step["run"])],
            cwd=clone,
            capture_output=True,
            text=True,
            timeout=900,
            env=merged,
        )
        job.steps.append(Step(name, "run", proc.returncode, proc.stdout + proc.stderr))
        if proc.returncode != 0 and stop_on_failure:
            break
    return job
