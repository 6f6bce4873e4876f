"""Fixtures of the release tests."""

from __future__ import annotations

import os

import pytest

from tests.support.s3server import S3Server


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3") / "data").start()
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())  # in-process DVC reads credentials from here
    yield server
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
