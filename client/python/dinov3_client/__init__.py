"""Python client of the DINOv3 embedding service (dinov3.v1.EmbeddingService).

    from dinov3_client import EmbeddingClient
    with EmbeddingClient("localhost:50051") as client:
        [result] = client.embed([open("cat.jpg", "rb").read()], outputs=("cls", "pooled"))
        print(result.cls.shape)

`embedding_pb2` / `embedding_pb2_grpc` are the generated API modules (see _stubs.py).
`pca_image` / `similarity_image` (dinov3_client.pictures: PNG pictures of dense features) need
Pillow and are imported on first use.
"""
from dinov3_client._stubs import embedding_pb2, embedding_pb2_grpc
from dinov3_client.client import (EmbeddingClient, EmbeddingError, EmbeddingResult, StreamAnswer,
                                  make_image, make_preprocess, tls_credentials)
from dinov3_client.tensors import assemble_dense, decode_tensor

__all__ = ["EmbeddingClient", "EmbeddingError", "EmbeddingResult", "assemble_dense",
           "decode_tensor", "embedding_pb2", "embedding_pb2_grpc", "make_image",
           "make_preprocess", "StreamAnswer", "tls_credentials"]

# Not in __all__, so that `from dinov3_client import *` keeps working without Pillow.
_PICTURES = ("pca_image", "similarity_image")


def __getattr__(name):
    """pictures.py's functions, imported on first use (they need Pillow; the rest does not)."""
    if name in _PICTURES:
        from dinov3_client import pictures
        return getattr(pictures, name)
    raise AttributeError(f"module 'dinov3_client' has no attribute {name!r}")
