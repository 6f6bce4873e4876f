"""The documentation: the MkDocs site builds in strict mode (every page in the nav, every
link and anchor found), the README stays short and starts with the two commands, and no
page speaks in working notes ("this round", issue numbers)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

README = ROOT / "README.md"
MAX_README_LINES = 160
FENCE = re.compile(r"^```(\w*)\s*$")
SHELL = {"sh", "bash", "shell", "console"}
NOTES = re.compile(r"this round|this stop|\(issue|\bissues? #?\d+", re.IGNORECASE)


def shell_commands(markdown: str) -> list[str]:
    """The commands of the shell code blocks, in order, without comments or prompts."""
    commands, language = [], None
    for line in markdown.splitlines():
        fence = FENCE.match(line.strip())
        if fence:
            language = None if language is not None else fence.group(1)
            continue
        if language in SHELL:
            command = line.split(" #")[0].strip().removeprefix("$ ")
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def test_the_site_builds_in_strict_mode(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    proc = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_the_readme_is_short_and_starts_with_repro_and_test():
    text = README.read_text(encoding="utf-8")
    lines = len(text.splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail to docs/"
    assert shell_commands(text)[:2] == ["make repro", "make test"], shell_commands(text)[:2]


def test_no_page_speaks_in_working_notes():
    pages = [README, *sorted((ROOT / "docs").rglob("*.md"))]
    found = [
        f"{page.relative_to(ROOT)}:{number}: {line.strip()}"
        for page in pages
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if NOTES.search(line)
    ]
    assert not found, "say what is, not when or for which issue:\n" + "\n".join(found)
