"""A worker's view of the folder the workers of `serve --workers N` share (workers.py
says what is in it): the first worker relays each production swap to the others, and
each marks when it has loaded its first model."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ctrpipe import fileio
from ctrpipe.model import package

log = logging.getLogger(__name__)


@dataclass
class Team:
    """A worker's view of the folder it shares with the others."""

    folder: Path
    leader: bool
    seen: tuple | None = None  # the last relay acted on: (version, folder)

    def relay(self, version: str | None, path: Path) -> None:
        """The leader has swapped to `version` in `path`: the others should too."""
        fileio.write_json(self.folder / "relay.json", {"version": version, "path": str(path)})

    def relayed(self) -> tuple[str | None, Path] | None:
        try:
            relay = json.loads((self.folder / "relay.json").read_text())
        except FileNotFoundError:
            return None
        return relay["version"], Path(relay["path"])

    def follow(self, service) -> None:
        """A worker other than the leader: swap to what the leader swapped to, once."""
        relayed = self.relayed()
        if relayed is None or relayed == self.seen:
            return
        self.seen = relayed
        version, path = relayed
        served = service.model
        if served is not None and (served.version, served.loaded.path) == (version, path):
            return
        try:
            service.swap(package.load(path), version)
        except Exception as exc:  # the leader passed the same checks: log, keep serving
            log.error("worker %d: refused %s from %s: %s", os.getpid(), version, path, exc)
            return
        print(f"worker {os.getpid()}: now serving {version}, as the first worker", flush=True)

    def loaded(self) -> None:
        (self.folder / "ready" / str(os.getpid())).touch()

    def had_loaded(self, pid: int) -> bool:
        return (self.folder / "ready" / str(pid)).exists()
