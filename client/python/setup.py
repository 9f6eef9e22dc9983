"""Builds dinov3_client with its generated gRPC stubs (pyproject.toml holds the metadata).

The stubs are generated from the repository's proto/ (two folders up) into the build folder,
never copied from the source tree, so a wheel always matches the proto it was built from.
"""
import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        sys.path.insert(0, HERE)
        from generate_stubs import generate
        proto_root = os.path.join(HERE, "..", "..", "proto")
        if not os.path.isdir(proto_root):
            raise RuntimeError(f"no {proto_root}: build dinov3_client from the repository's "
                               "client/python folder")
        generate(proto_root, os.path.join(self.build_lib, "dinov3_client", "_generated"))


setup(cmdclass={"build_py": BuildWithStubs})
