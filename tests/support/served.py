"""`python -m ctrpipe serve` run by a test, one process or `--workers N`: its port, its
workers' pids, its output as it comes, requests on fresh connections, and a bounded stop."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT


class Served:
    """`python -m ctrpipe serve ...` in a process; its output read by a thread."""

    def __init__(self, *args: str, cwd: Path = ROOT) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ctrpipe", "serve", *args, "--port", "0"],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = []
        for first in self.proc.stdout:  # a fetch first, with --stage or --version
            self.lines.append(first)
            if first.startswith(("serve: ", "listening on ")):
                break
        assert self.lines and "http://127.0.0.1:" in self.lines[-1], "".join(self.lines)
        self.port = int(first.split("http://127.0.0.1:")[1].split(";")[0].split()[0])
        if first.startswith("serve: "):  # the supervisor of --workers N
            self.pids = [int(p) for p in first.split("(pids ")[1].rstrip(")\n").split(", ")]
        else:
            self.pids = [self.proc.pid]
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def call(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        """One request on a connection of its own: the kernel picks its worker."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def metrics(self) -> dict:
        return metric_samples(self.call("GET", "/metrics")[1].decode())

    def wait_line(self, text: str, times: int = 1, timeout: float = 60) -> str:
        """The `times`-th line holding `text`, once the service has printed it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if len(found) >= times:
                return found[times - 1]
            assert self.proc.poll() is None, "".join(self.lines)
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} in:\n{''.join(self.lines)}")

    def stop(self, signal_it: bool = True) -> int:
        """SIGTERM (unless it is to stop by itself), then its exit status."""
        if signal_it and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)
        return code


def metric_samples(text: str) -> dict:
    """A /metrics page as {(name, sorted label items): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
