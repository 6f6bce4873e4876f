"""A process that loaded a snapshot exits as it should."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.support import snapshots

pytestmark = pytest.mark.integration

# the native threads of this process before and after loading a snapshot
COUNT = """
import json, os, sys
import ctrpipe.cli
from ctrpipe.online import store
threads = lambda: len(os.listdir("/proc/self/task"))
before = threads()
store.load(sys.argv[1])
print(json.dumps([before, threads()]))
"""


def test_loading_a_snapshot_starts_no_native_thread(tmp_path):
    """Found by `features refresh`, then by CI: with the CLI (and onnxruntime) imported, a
    thread of Arrow's pool aborted the interpreter at exit now and then ("terminate called
    without an active exception"), too rarely to catch by exiting a few times. The cause is
    deterministic: pq.read_table starts a pool thread even with use_threads=False. So the
    test counts the threads, and the process must also exit cleanly."""
    folder = snapshots.tiny(tmp_path / "s")
    proc = subprocess.run(
        [sys.executable, "-c", COUNT, str(folder)], cwd=ROOT, capture_output=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode()[-500:]
    before, after = json.loads(proc.stdout)
    assert after == before
