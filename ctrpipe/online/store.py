"""The online snapshot's files: written once, content-addressed, verified on every load.

    snapshot.json              format, cut time, the online spec and its digest, rows
    dimension.<table>.parquet  a join's table as the join reads it (key under the base's
                               names, columns under their joined names), sorted by key
    history.<key>.parquet      a history key's values with their aggregates at the cut
                               (hist_<key>_n, _ctr, _recent), sorted by value
    manifest.json              sha256 of every other file (ctrpipe/manifest.py)

The snapshot's identity is the sha256 of its manifest. The spec is what the service
needs to turn a raw record into the model's features (the request's fields and types,
the joins, the history keys and prior, the feature lists); its digest names the feature
config, so a snapshot can be matched to the model it was built for.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ctrpipe import fileio, manifest
from ctrpipe.errors import DataError

FORMAT = 1
INFO = "snapshot.json"


def dimension_file(table: str) -> str:
    return f"dimension.{table}.parquet"


def history_file(key: str) -> str:
    return f"history.{key}.parquet"


def digest_of(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def files(tables: dict[str, pa.Table], online: dict, cut: dt.datetime | None) -> dict[str, bytes]:
    """The snapshot's files by name, manifest excluded; `online` is its spec."""
    info = {
        "format": FORMAT,
        "cut": cut and cut.isoformat(),
        "config": digest_of(online),
        "spec": online,
        "rows": {name: table.num_rows for name, table in sorted(tables.items())},
    }
    out = {INFO: (json.dumps(info, indent=2, sort_keys=True) + "\n").encode()}
    for name, table in tables.items():
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer, **fileio.FINAL_PARQUET)
        out[name] = buffer.getvalue().to_pybytes()
    return out


@dataclass(frozen=True)
class Snapshot:
    path: Path
    digest: str  # sha256 of its manifest.json
    cut: dt.datetime | None  # naive, UTC; None for data without time
    config: str  # the digest of its spec
    spec: dict
    tables: dict[str, pa.Table]


def load(path: str | Path) -> Snapshot:
    """Open a snapshot after checking every file against its manifest; a DataError
    naming the file when one is missing, altered or not a snapshot's."""
    path = Path(path)
    found = manifest.verify(path)
    info = checked_info(path, found)
    try:
        # No Arrow thread at all: with onnxruntime loaded (the service, the CLI), a thread
        # of Arrow's pool aborts the interpreter at exit now and then ("terminate called
        # without an active exception"; pyarrow 26.0.1, onnxruntime 1.32.0). read_table
        # starts one even with use_threads=False; ParquetFile.read does not.
        tables = {
            name: pq.ParquetFile(pa.BufferReader(found[name])).read(use_threads=False)
            for name in info["rows"]
        }
    except pa.ArrowException as exc:
        raise DataError(f"{path / INFO}: not an online snapshot ({exc})") from None
    cut = info["cut"] and dt.datetime.fromisoformat(info["cut"])
    return Snapshot(path, manifest.digest(path), cut, info["config"], info["spec"], tables)


def checked_info(path: Path, found: dict[str, bytes]) -> dict:
    """snapshot.json of the verified files `found`, checked: its format, its spec against
    its config digest, a readable cut, and every table its spec names present."""
    try:
        info = json.loads(found[INFO])
        if info["format"] != FORMAT:
            raise ValueError(f"format {info['format']}, this code reads {FORMAT}")
        if digest_of(info["spec"]) != info["config"]:
            raise ValueError("its spec does not match its config digest")
        info["cut"] and dt.datetime.fromisoformat(info["cut"])
        spec = info["spec"]
        named = [j["file"] for j in spec["joins"]]
        named += [history_file(k) for k in spec["history"]["keys"]]
        absent = [name for name in named if name not in info["rows"]]
        if absent:
            raise ValueError(f"its spec names {absent[0]}, which it does not hold")
        unlisted = [name for name in info["rows"] if name not in found]
        if unlisted:
            raise ValueError(f"{unlisted[0]} is not in its manifest")
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{path / INFO}: not an online snapshot ({exc})") from None
    return info


def is_folder(path: Path) -> bool:
    """A folder of snapshots (as refresh writes them), not a snapshot itself."""
    return path.is_dir() and not (path / manifest.MANIFEST).exists()


def newest(folder: Path, config: str) -> Path | None:
    """Of the snapshots in `folder` (each in a subfolder, as refresh writes them), the
    newest cut built for `config`; None if there is none. Only snapshot.json is read:
    the one chosen is verified whole when it is loaded."""
    found = []
    for path in sorted(p for p in Path(folder).iterdir() if (p / INFO).is_file()):
        try:
            info = json.loads((path / INFO).read_text())
        except (OSError, ValueError):
            continue  # not a snapshot, or half of one: loading it would say why
        if info.get("config") == config:
            found.append((info.get("cut") or "", path.name, path))
    return max(found)[2] if found else None


FOLDER = "snapshot"  # the snapshot's folder inside a model package


def packaged(path: str | Path) -> dict[str, bytes]:
    """The snapshot's files, manifest included, as a package holds them (under FOLDER),
    after checking them: the package's manifest then covers the snapshot's too."""
    path = Path(path)
    found = manifest.verify(path)
    checked_info(path, found)
    found[manifest.MANIFEST] = (path / manifest.MANIFEST).read_bytes()
    return {f"{FOLDER}/{name}": data for name, data in found.items()}
