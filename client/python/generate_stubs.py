"""Generates the Python gRPC stubs of proto/dinov3/v1/embedding.proto for dinov3_client.

The one way the stubs are made: scripts/setup.sh runs it into the source tree
(dinov3_client/_generated, git-ignored) and the package build (setup.py) into the wheel.
protoc runs with -I <proto root>, so the modules sit at _generated/dinov3/v1/embedding_pb2{,_grpc}.py;
the one import in embedding_pb2_grpc.py is rewritten to `from . import embedding_pb2`, so the
stubs load as dinov3_client._generated.dinov3.v1.* and never clash with another top-level
"dinov3" package (e.g. Meta's).

  python client/python/generate_stubs.py PROTO_ROOT OUT_DIR
"""
import os
import shutil
import sys

PROTO = os.path.join("dinov3", "v1", "embedding.proto")


def generate(proto_root, out_dir):
    """Writes the stubs into out_dir (replaced whole, via a temporary sibling folder)."""
    from grpc_tools import protoc  # build-time dependency (grpcio-tools)
    import grpc_tools
    tmp = out_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    code = protoc.main(["protoc", f"-I{proto_root}", f"-I{well_known}", f"--python_out={tmp}",
                        f"--pyi_out={tmp}", f"--grpc_python_out={tmp}",
                        os.path.join(proto_root, PROTO)])
    if code != 0:
        raise RuntimeError(f"protoc failed ({code}) on {os.path.join(proto_root, PROTO)}")
    grpc_module = os.path.join(tmp, "dinov3", "v1", "embedding_pb2_grpc.py")
    with open(grpc_module) as f:
        text = f.read()
    relative = text.replace("\nfrom dinov3.v1 import embedding_pb2 ",
                            "\nfrom . import embedding_pb2 ", 1)
    if relative == text:
        raise RuntimeError(f"{grpc_module}: the import of embedding_pb2 was not found")
    with open(grpc_module, "w") as f:
        f.write(relative)
    for package in ["", "dinov3", os.path.join("dinov3", "v1")]:
        open(os.path.join(tmp, package, "__init__.py"), "a").close()
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    generate(sys.argv[1], sys.argv[2])
