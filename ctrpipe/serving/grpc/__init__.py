"""The Open Inference Protocol (V2) over gRPC: GRPCInferenceService (server.py) on the
data plane's neutral types (v2.py), so gRPC and REST answer the same for one request.

open_inference_grpc.proto is vendored unchanged from the protocol (Apache-2.0, its notice
kept); the two modules beside it are generated from it and committed. Regenerate them,
from the repository's root, after changing grpcio-tools or the proto:

    .venv/bin/python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. \\
        ctrpipe/serving/grpc/open_inference_grpc.proto

`-I.` makes the proto's path ctrpipe/serving/grpc/open_inference_grpc.proto, so the
generated _pb2_grpc imports `from ctrpipe.serving.grpc import open_inference_grpc_pb2`
with no hand edit. grpcio-tools 1.78.2 writes code for protobuf >= 6.31.1 and grpcio
>= 1.78.2, both checked when the modules are imported.

The generated modules register the package `inference` in protobuf's default pool, as
tritonclient.grpc does with its own copy: the two cannot be imported in one process (a
duplicate symbol), so the tests drive a server in another process.
"""
