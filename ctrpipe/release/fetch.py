"""A published version's package from the DVC remote (or the local cache), checked file
by file against its manifest and the manifest against the digest its gate passed.
"""

from __future__ import annotations

import json
from pathlib import Path

from ctrpipe import fileio, paths
from ctrpipe.errors import DataError
from ctrpipe.model import package
from ctrpipe.release import registry, remote


def fetch(
    root: str | Path, where: remote.Remote, out: Path | None = None, version: str | None = None
) -> tuple[registry.Event, str, Path]:
    """Download a version (default: production's) into `out` (default:
    paths.FETCHED/<version>); the version's event, the package digest and the folder."""
    root = Path(root)
    event = registry.find(root, version) if version else registry.production(root)
    if event is None:
        raise registry.RegistryError("nothing is in production to fetch")
    out = out or root / paths.FETCHED / event.version
    gate = json.loads(registry.show(root, event.commit, paths.GATE_REPORT) or "{}")
    expected = gate.get("candidate", {}).get("digest")
    with fileio.atomic_path(out) as tmp, remote.open_repo(root, where) as repo:
        try:  # from the local cache when it has the files, else from the remote
            repo.artifacts.download(registry.ARTIFACT, version=event.version, out=str(tmp))
        except Exception as exc:
            remote.check(repo, where)  # a refused or unreachable remote, said plainly
            raise remote.RemoteError(
                f"cannot download {registry.ARTIFACT} {event.version} "
                f"from {where.where}: {remote.reason(exc)}"
            ) from None
        try:
            package.verify(tmp)
        except DataError as exc:
            raise DataError(
                f"{registry.ARTIFACT} {event.version} as downloaded: "
                f"{str(exc).replace(str(tmp) + '/', '')}; refusing it"
            ) from None
        digest = package.digest(tmp)
        if expected and digest != expected:
            raise DataError(
                f"{registry.ARTIFACT} {event.version}: the downloaded manifest "
                f"(sha256 {digest[:12]}) is not the one published "
                f"({expected[:12]}); refusing it"
            )
    return event, digest, out
