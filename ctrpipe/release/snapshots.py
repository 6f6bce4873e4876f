"""Refreshed online snapshots through the DVC remote, so that a service on another
machine gets them.

`features refresh --publish` uploads a snapshot's files into the remote's
content-addressed store, the one DVC keeps every artifact in: a table unchanged since
the last snapshot (or since the package's own) is not sent again. Then it writes the
snapshot's index, `<prefix>/snapshots/<config>/<cut>-<digest>.json`, which lists each
file's md5. The index goes last, so a reader never finds a snapshot whose files are not
all there.

`serve --stage prod --snapshot DIR` (a folder of snapshots) calls `sync` at each look at
production: the newest snapshot published for the served model's feature config comes
down into DIR/<digest>/, each file checked against its md5 and the whole against its
manifest, and is moved into place at once. The service then swaps to it as to any newer
snapshot in DIR.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ctrpipe import fileio, manifest
from ctrpipe.errors import DataError
from ctrpipe.online import store
from ctrpipe.release import remote

INDEXES = "snapshots"  # under the remote's prefix, beside DVC's files/


def publish(root: str | Path, where: remote.Remote, folder: Path) -> str:
    """Upload the snapshot in `folder`, then its index; the index's path in the bucket."""
    snapshot = store.load(folder)  # every file checked before any is sent
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    md5s = {name: _md5((folder / name).read_bytes()) for name in names}
    index = {
        "digest": snapshot.digest,
        "config": snapshot.config,
        "cut": snapshot.cut.isoformat() if snapshot.cut else None,
        "files": md5s,
    }
    key = f"{index_folder(where, snapshot.config)}/{_stamp(snapshot)}-{snapshot.digest}.json"
    with remote.open_repo(root, where) as repo:
        remote.check(repo, where)
        odb = repo.cloud.get_remote_odb(where.name, "push")
        try:
            from dvc_objects.fs.local import LocalFileSystem

            odb.add([str(folder / n) for n in names], LocalFileSystem(), [md5s[n] for n in names])
            odb.fs.pipe_file(key, json.dumps(index, indent=2, sort_keys=True).encode())
        except Exception as exc:
            raise remote.RemoteError(
                f"publishing snapshot {snapshot.digest[:12]} to {where.where}: {remote.reason(exc)}"
            ) from None
    return key


def sync(root: str | Path, where: remote.Remote, config: str, into: Path) -> Path | None:
    """The newest snapshot published for the feature `config`, in `into/<digest>/`
    (downloaded unless it is there already); None when none is published."""
    with remote.open_repo(root, where) as repo:
        remote.check(repo, where)  # a refused remote said plainly, not taken as empty
        odb = repo.cloud.get_remote_odb(where.name, "pull")
        folder = index_folder(where, config)
        try:
            names = odb.fs.ls(folder, detail=False) if odb.fs.exists(folder) else []
        except Exception as exc:
            raise remote.RemoteError(f"DVC remote {where.where}: {remote.reason(exc)}") from None
        if not names:
            return None
        newest = max(n.rsplit("/", 1)[1] for n in names)  # "<cut>-<digest>.json"
        digest = newest.removesuffix(".json").rsplit("-", 1)[1]
        target = into / digest
        if (target / manifest.MANIFEST).exists():
            return target
        try:
            index = json.loads(odb.fs.cat_file(f"{folder}/{newest}"))
            blobs = {
                name: odb.fs.cat_file(odb.oid_to_path(md5)) for name, md5 in index["files"].items()
            }
        except Exception as exc:
            raise remote.RemoteError(
                f"cannot download snapshot {digest[:12]} from {where.where}: {remote.reason(exc)}"
            ) from None
    with fileio.atomic_path(target) as tmp:
        tmp.mkdir()
        for name, data in blobs.items():
            if "/" in name or name.startswith(".") or _md5(data) != index["files"][name]:
                raise DataError(
                    f"snapshot {digest[:12]} in {where.where}: {name} is not the file its "
                    f"index lists; refusing it"
                )
            (tmp / name).write_bytes(data)
        try:
            got = store.load(tmp)
        except DataError as exc:
            raise DataError(
                f"snapshot {digest[:12]} as downloaded: {str(exc).replace(str(tmp) + '/', '')}; "
                f"refusing it"
            ) from None
        if (got.digest, got.config) != (digest, config):
            raise DataError(f"snapshot {digest[:12]} in {where.where}: not the one its index names")
    return target


def index_folder(where: remote.Remote, config: str) -> str:
    return "/".join(p for p in (where.bucket, where.prefix, INDEXES, config) if p)


def _stamp(snapshot: store.Snapshot) -> str:
    """The cut as a name that sorts by time (data without time: before every cut)."""
    return snapshot.cut.strftime("%Y%m%dT%H%M%S") if snapshot.cut else "00000000T000000"


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
