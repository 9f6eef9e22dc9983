"""Python client of the DINOv3 embedding service (dinov3.v1.EmbeddingService).

    from dinov3_client import EmbeddingClient
    with EmbeddingClient("localhost:50051") as client:
        [result] = client.embed([open("cat.jpg", "rb").read()], outputs=("cls", "pooled"))
        print(result.cls.shape)

`embedding_pb2` / `embedding_pb2_grpc` are the generated API modules (see _stubs.py).
"""
from dinov3_client._stubs import embedding_pb2, embedding_pb2_grpc
from dinov3_client.client import (EmbeddingClient, EmbeddingError, EmbeddingResult, StreamAnswer,
                                  make_image, make_preprocess, tls_credentials)
from dinov3_client.tensors import assemble_dense, decode_tensor

__all__ = ["EmbeddingClient", "EmbeddingError", "EmbeddingResult", "assemble_dense",
           "decode_tensor", "embedding_pb2", "embedding_pb2_grpc", "make_image",
           "make_preprocess", "StreamAnswer", "tls_credentials"]
