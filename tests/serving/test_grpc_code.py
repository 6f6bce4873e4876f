"""The committed gRPC modules are what `make proto` generates from the vendored .proto:
regenerated into a temporary tree, byte for byte. (A module of its own: test_grpc.py
imports tritonclient.grpc, whose protos clash with these in one process.)"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

PACKAGE = "ctrpipe/serving/grpc"
GENERATED = ("open_inference_grpc_pb2.py", "open_inference_grpc_pb2_grpc.py")


def test_the_generated_modules_match_the_proto(tmp_path):
    (tmp_path / PACKAGE).mkdir(parents=True)
    shutil.copy(ROOT / PACKAGE / "open_inference_grpc.proto", tmp_path / PACKAGE)
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.",
         "--grpc_python_out=.", f"{PACKAGE}/open_inference_grpc.proto"],
        cwd=tmp_path, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    for name in GENERATED:
        assert (tmp_path / PACKAGE / name).read_bytes() == (ROOT / PACKAGE / name).read_bytes()
