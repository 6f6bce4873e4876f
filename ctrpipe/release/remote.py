"""The DVC remote: an S3 bucket (through dvc-s3) that holds every published artifact.

Where it is: the default remote of .dvc/config (`url = s3://bucket/prefix`, optional
`endpointurl`), each part overridable from the environment with CTRPIPE_S3_BUCKET,
CTRPIPE_S3_PREFIX and CTRPIPE_S3_ENDPOINT (CI and tests point it elsewhere without
editing a committed file). Credentials come only from the environment (AWS_ACCESS_KEY_ID
and AWS_SECRET_ACCESS_KEY, or whatever else botocore reads): one in .dvc/config is refused.

DVC reports a failed transfer as "N files failed" and logs the cause; these functions
check the bucket first and turn S3 errors into one line saying what failed and where.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ctrpipe.errors import ConfigError, PipelineError

ENV = {
    "bucket": "CTRPIPE_S3_BUCKET",
    "prefix": "CTRPIPE_S3_PREFIX",
    "endpoint": "CTRPIPE_S3_ENDPOINT",
}
CREDENTIAL_KEYS = ("access_key_id", "secret_access_key", "session_token")
# Fail in seconds, not minutes, when the server is down: botocore's default is 60 s
# per connection attempt.
TIMEOUTS = {"connect_timeout": 5, "read_timeout": 30}


class RemoteError(PipelineError):
    """The remote could not be reached, refused us, or lacks what it should hold."""


@dataclass(frozen=True)
class Remote:
    name: str
    bucket: str
    prefix: str
    endpoint: str | None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def where(self) -> str:
        return f"{self.url} at {self.endpoint}" if self.endpoint else self.url

    def dvc_config(self) -> dict:
        section = {"url": self.url, **TIMEOUTS}
        if self.endpoint:
            section["endpointurl"] = self.endpoint
        return {"core": {"remote": self.name}, "remote": {self.name: section}}


def resolve(root: str | Path, env: dict[str, str] | None = None) -> Remote:
    """The remote from .dvc/config (and .dvc/config.local) with the environment's overrides."""
    from dvc.config import Config

    env = os.environ if env is None else env
    config = Config(dvc_dir=str(Path(root) / ".dvc"), validate=False)
    name = config.get("core", {}).get("remote")
    if not name or name not in config.get("remote", {}):
        raise ConfigError(
            f"{Path(root) / '.dvc/config'}: no default DVC remote (core.remote) to publish to"
        )
    section = config["remote"][name]
    stored = [key for key in CREDENTIAL_KEYS if section.get(key)]
    if stored:
        raise ConfigError(
            f".dvc/config: remote '{name}' stores {stored[0]}; credentials "
            f"belong in the environment (AWS_ACCESS_KEY_ID, "
            f"AWS_SECRET_ACCESS_KEY), never in a file"
        )
    url = section.get("url", "")
    if not url.startswith("s3://"):
        raise ConfigError(
            f".dvc/config: remote '{name}' url must be s3://bucket/prefix (got {url!r})"
        )
    bucket, _, prefix = url[len("s3://") :].partition("/")
    values = {"bucket": bucket, "prefix": prefix.strip("/"), "endpoint": section.get("endpointurl")}
    values |= {key: env[var] for key, var in ENV.items() if env.get(var)}
    if not values["bucket"]:
        raise ConfigError(
            f".dvc/config: remote '{name}' names no bucket (set it in the url or {ENV['bucket']})"
        )
    return Remote(name=name, **values)


def open_repo(root: str | Path, remote: Remote):
    """DVC's Repo for `root`, talking to `remote`. Close it (it is a context manager)."""
    from dvc.repo import Repo

    return Repo(str(root), config=remote.dvc_config())


def check(repo, remote: Remote) -> None:
    """Reach the bucket with the environment's credentials, or say why not."""
    odb = repo.cloud.get_remote_odb(remote.name, "check")
    try:
        odb.fs.exists(odb.path)
    except Exception as exc:  # s3fs and botocore raise many types; each is reported
        raise RemoteError(f"DVC remote {remote.where}: {reason(exc)}") from None


def push(repo, remote: Remote) -> int:
    """Push every cached output of the workspace; the number of files sent."""
    check(repo, remote)
    try:
        return repo.push(remote=remote.name)
    except Exception as exc:
        raise RemoteError(f"dvc push to {remote.where} failed: {reason(exc)}") from None


def pull(repo, remote: Remote) -> None:
    """Check out what the workspace's dvc.lock lists, from the cache or the remote; files the
    remote lacks are skipped (`dvc repro` rebuilds them)."""
    check(repo, remote)
    try:
        repo.pull(remote=remote.name, allow_missing=True)
    except Exception as exc:
        raise RemoteError(f"dvc pull from {remote.where} failed: {reason(exc)}") from None


def missing(repo, remote: Remote, lock_text: str, in_git: set[str]) -> list[str]:
    """The outputs listed in a dvc.lock (as text) that the remote does not fully hold:
    an output is present when its object, and for a folder every file it lists, is.
    Outputs in `in_git` (metrics and plots with `cache: false`) are git's to keep."""
    check(repo, remote)  # s3fs's exists() answers False, not an error, when refused
    odb = repo.cloud.get_remote_odb(remote.name, "status")
    outs = {
        out["path"]: out["md5"]
        for stage in yaml.safe_load(lock_text)["stages"].values()
        for out in stage.get("outs", [])
        if out.get("md5") and out["path"] not in in_git
    }
    absent = []
    try:
        for path, oid in sorted(outs.items()):
            if not odb.exists(oid):
                absent.append(path)
            elif oid.endswith(".dir"):
                listed = json.loads(odb.fs.cat_file(odb.oid_to_path(oid)))
                files = {entry["md5"] for entry in listed}
                if set(odb.oids_exist(files)) != files:
                    absent.append(path)
    except Exception as exc:
        raise RemoteError(f"DVC remote {remote.where}: {reason(exc)}") from None
    return absent


def reason(exc: BaseException) -> str:
    """One line for an S3 failure: what kind, and the server's own words."""
    chain = [exc]
    while chain[-1].__cause__ or chain[-1].__context__:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
        if len(chain) > 10:
            break
    text = " | ".join(str(e) for e in chain).lower()
    detail = next(
        (str(e).strip().splitlines()[0] for e in chain if str(e).strip()), type(exc).__name__
    )
    if (
        any(isinstance(e, PermissionError) for e in chain)
        or "forbidden" in text
        or "access denied" in text
        or "accessdenied" in text
    ):
        return f"access denied; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({detail})"
    if "bucket does not exist" in text or "nosuchbucket" in text:
        return f"the bucket does not exist ({detail})"
    if (
        any(isinstance(e, ConnectionError | TimeoutError) for e in chain)
        or "connect" in text
        or "timeout" in text
    ):
        return f"cannot connect ({detail})"
    return detail
