"""A process that loaded a snapshot exits as it should."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.support import snapshots

pytestmark = pytest.mark.integration


def test_a_process_that_loaded_a_snapshot_exits_cleanly(tmp_path):
    """Found by `features refresh`: read with Arrow's thread pool, the tables aborted
    the interpreter at exit about one time in two once the CLI (with onnxruntime) was
    imported. Five clean exits in a row: about 1 in 32 on the old code."""
    folder = snapshots.tiny(tmp_path / "s")
    code = f"import ctrpipe.cli\nfrom ctrpipe.online import store\nstore.load({str(folder)!r})"
    for _ in range(5):
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr.decode()[-500:]
