"""Keep a running service on the version in production: publish and rollback move a git
tag, and `serve --stage prod` follows it.

Every `interval` seconds a thread fetches the tags from the git remote (when the
repository has one), reads production through the registry, and when it names another
version, downloads and verifies that package and hands it to `Service.swap`, which checks
ONNX against XGBoost before any request sees it. Requests in flight finish on the model
they started with; the next ones get the new model. A failed check, fetch or download
leaves the current model serving and is logged and counted
(`ctrpipe_follow_errors`), and the next poll tries again.

With a folder of snapshots (`serve --snapshot DIR`), each poll also brings down the
newest snapshot published for the served model's feature config (release/snapshots.py),
which the service swaps to as to any newer snapshot in DIR.

Polling, not a webhook: a service behind a firewall can always reach its git remote,
and a tag is visible to `git fetch` within seconds of the push.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from prometheus_client import Counter

from ctrpipe.model import package
from ctrpipe.release import fetch, registry, remote, snapshots

log = logging.getLogger(__name__)


class Follower:
    """Polls production and swaps the service to it; `check()` runs one poll."""

    def __init__(
        self,
        service,
        repo: str | Path,
        interval: float = 10.0,
        git_remote: str = "origin",
        fetch: Callable[[str], tuple[str, Path]] | None = None,
        on_swap: Callable[[str, Path], None] | None = None,
        snapshots: Path | None = None,
    ):
        self.service = service
        self.repo = Path(repo)
        self.interval = interval
        self.git_remote = git_remote
        self._fetch = fetch or self._download
        self._on_swap = on_swap  # told each version swapped to, and its folder
        self.snapshots = snapshots  # where published snapshots come down (snapshots.sync)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refused: str | None = None  # a version whose package failed its check
        self.errors = Counter(
            "ctrpipe_follow_errors",
            "Polls of production that failed (the model served did not change)",
            registry=service.metrics.registry,
        )

    def start(self) -> Follower:
        self._thread = threading.Thread(target=self._run, name="ctrpipe-follow", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 30)

    def check(self) -> str | None:
        """Swap to production if it moved, then fetch the newest snapshot published for
        the model served; the version swapped to, or None."""
        self._fetch_tags()
        moved = self._production()
        if self.snapshots is not None:
            self._sync_snapshots()
        return moved

    def _production(self) -> str | None:
        current = registry.production(self.repo)
        served = self.service.model.version if self.service.model else None
        if current is None or current.version in (served, self._refused):
            return None
        digest, path = self._fetch(current.version)
        try:
            self.service.swap(package.load(path), current.version)
        except Exception:
            # The package itself is refused: checking it again every poll would only
            # load the CPU beside the requests. A failed download is tried again.
            self._refused = current.version
            raise
        self._refused = None
        if self._on_swap is not None:
            self._on_swap(current.version, path)
        log.warning(
            "production moved to %s (manifest sha256 %s): now serving it",
            current.version,
            digest[:12],
        )
        return current.version

    def _sync_snapshots(self) -> None:
        """The service swaps to what lands in the folder (Service.refresh_online)."""
        model = self.service.model
        if model is None or model.online is None:
            return
        config = model.online.snapshot.config
        snapshots.sync(self.repo, remote.resolve(self.repo), config, self.snapshots)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # keep serving what we have; try again next time
                self.errors.inc()
                log.error("following production: %s", exc)

    def _fetch_tags(self) -> None:
        remotes = registry.git(self.repo, "remote").split()
        if self.git_remote not in remotes:
            return
        # --force: a tag deleted and made again on the remote must win over ours
        registry.git(
            self.repo, "fetch", "--quiet", "--tags", "--force", self.git_remote, timeout=60
        )

    def _download(self, version: str) -> tuple[str, Path]:
        _, digest, path = fetch.fetch(self.repo, remote.resolve(self.repo), version=version)
        return digest, path
