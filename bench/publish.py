"""Benchmark publish and fetch against a SeaweedFS S3 server on loopback.

    python bench/publish.py          # needs `dvc repro` done and committed in this checkout

Clones this repository into a temp folder (sharing this checkout's DVC cache, so nothing
is recomputed), starts `weed mini`, and times with the default outputs:

  publish   push every output in dvc.lock to an empty bucket, check the bucket holds all
            of it, tag, assign production (no git remote: tags stay local)
  again     the same publish a second time (nothing to do)
  fetch     `fetch --stage prod` from a fresh clone with an empty DVC cache, i.e. the
            package downloaded from the bucket and verified
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ctrpipe import paths
from ctrpipe.release import fetch, publish, remote
from tests.support.s3server import S3Server


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def size_of(lock: Path) -> tuple[int, int]:
    import yaml

    outs = [
        o
        for s in yaml.safe_load(lock.read_text())["stages"].values()
        for o in s.get("outs", [])
        if o.get("md5")
    ]
    return sum(o.get("size", 0) for o in outs), sum(o.get("nfiles", 1) for o in outs)


def main() -> None:
    gate = json.loads((ROOT / paths.GATE_REPORT).read_text())
    if gate.get("verdict") != "pass":
        sys.exit(
            f"{paths.GATE_REPORT}: the committed gate must pass to publish ({gate.get('reason')})"
        )
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        tmp = Path(tmp)
        server = S3Server(tmp / "s3").start()
        os.environ.update(server.env())
        try:
            clone = tmp / "clone"
            git(tmp, "clone", "-q", str(ROOT), str(clone))
            git(clone, "config", "user.name", "bench")
            git(clone, "config", "user.email", "bench@localhost")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dvc",
                    "cache",
                    "dir",
                    "--local",
                    str(ROOT / ".dvc" / "cache"),
                ],
                cwd=clone,
                check=True,
            )
            subprocess.run([sys.executable, "-m", "dvc", "checkout", "-q"], cwd=clone, check=True)
            where = remote.resolve(clone)
            total, files = size_of(clone / "dvc.lock")

            started = time.perf_counter()
            outcome = publish.publish(clone, where, git_remote="none")
            published = time.perf_counter() - started
            started = time.perf_counter()
            publish.publish(clone, where, git_remote="none")
            again = time.perf_counter() - started

            fresh = tmp / "fresh"
            git(tmp, "clone", "-q", str(clone), str(fresh))
            started = time.perf_counter()
            _, digest, out = fetch.fetch(fresh, remote.resolve(fresh), tmp / "fetched")
            fetched = time.perf_counter() - started
            package_bytes = sum(p.stat().st_size for p in out.iterdir())
        finally:
            server.stop()
    print(
        f"outputs in dvc.lock: {total / 2**20:.0f} MiB in {files} files; "
        f"package {package_bytes / 2**10:.0f} KiB"
    )
    print(f"publish {outcome.version} (push + verify + tags): {published:.1f} s")
    print(f"publish again (nothing to do): {again:.2f} s")
    print(f"fetch --stage prod from a fresh clone: {fetched:.2f} s (sha256 {digest[:12]})")


if __name__ == "__main__":
    main()
