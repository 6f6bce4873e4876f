"""Content-addressed folders: files written at once beside a manifest of their sha256,
verified file by file on every read. A folder's identity is the sha256 of its manifest,
so the same files give the same address. The model package and the online snapshot are
such folders; a package holds its snapshot as one subfolder.

    manifest.json  {"files": [{"path", "sha256", "size"}, ...]} for every other file
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ctrpipe import fileio
from ctrpipe.errors import DataError

MANIFEST = "manifest.json"


def write(target: str | Path, files: dict[str, bytes]) -> str:
    """Write the files and their manifest into `target` at once; return the digest."""
    manifest = _json(
        {
            "files": [
                {"path": name, "sha256": _sha256(data), "size": len(data)}
                for name, data in sorted(files.items())
            ]
        }
    )
    with fileio.atomic_path(target) as tmp:
        tmp.mkdir()
        for name, data in {**files, MANIFEST: manifest}.items():
            (tmp / name).parent.mkdir(exist_ok=True)
            (tmp / name).write_bytes(data)
    return _sha256(manifest)


def digest(path: str | Path) -> str:
    """The folder's content address: the sha256 of its manifest.json."""
    return _sha256(_read(Path(path) / MANIFEST))


def verify(path: Path) -> dict[str, bytes]:
    """The folder's files, as read and hashed; a DataError naming the first file that
    is missing, extra or altered. The bytes returned are the ones that were checked."""
    try:
        listed = {f["path"]: f["sha256"] for f in json.loads(_read(path / MANIFEST))["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path / MANIFEST}: not a manifest ({exc})") from None
    if any(not _inside(name) for name in listed):
        raise DataError(f"{path / MANIFEST}: lists a path outside its folder")
    present = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    present -= {MANIFEST}
    extra = sorted(present - listed.keys())
    if extra:
        raise DataError(f"{path / extra[0]}: extra file, not in the manifest")
    files = {}
    for name, expected in sorted(listed.items()):
        if name not in present:
            raise DataError(f"{path / name}: missing (listed in the manifest)")
        files[name] = _read(path / name)
        actual = _sha256(files[name])
        if actual != expected:
            raise DataError(
                f"{path / name}: sha256 mismatch (manifest {expected[:12]}…, file {actual[:12]}…)"
            )
    return files


def _inside(name: str) -> bool:
    """A file name, or one folder and a file name (the snapshot's), that cannot escape."""
    parts = name.split("/")
    return len(parts) <= 2 and all(p and p not in (".", "..") and "\\" not in p for p in parts)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")
