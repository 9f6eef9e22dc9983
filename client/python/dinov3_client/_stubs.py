"""The generated protobuf/gRPC modules of proto/dinov3/v1/embedding.proto.

scripts/setup.sh generates them into _generated/ (git-ignored) with grpc_tools.protoc -I proto,
and rewrites the one import in embedding_pb2_grpc.py to be package-relative, so they load as
dinov3_client._generated.dinov3.v1.* and never clash with another top-level "dinov3" package.
"""
try:
    from dinov3_client._generated.dinov3.v1 import embedding_pb2, embedding_pb2_grpc
except ImportError as e:  # pragma: no cover - only without the setup step
    raise ImportError(
        f"dinov3_client: the generated gRPC stubs could not be imported ({e}); "
        "run scripts/setup.sh from the repository root to (re)generate them") from e

__all__ = ["embedding_pb2", "embedding_pb2_grpc"]
