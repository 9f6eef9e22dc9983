"""The Python client is a real package: a wheel built from client/python (pip, build isolation:
setuptools and grpcio-tools come from PyPI, the stubs are generated from proto/ during the
build) installs into a fresh virtual environment outside the repository with its declared
dependencies, and calls a running dinov3-server from there. Needs PyPI, like scripts/setup.sh.
"""
import json
import os
import re
import subprocess
import sys
import zipfile

from tests.integration.python.server_process import ROOT, export_random_model, running_server

SCRIPT = """
import json, sys
import numpy as np
import dinov3_client
from dinov3_client import EmbeddingClient
with EmbeddingClient(sys.argv[1], timeout=120) as client:
    [result] = client.embed([np.zeros((32, 32, 3), np.uint8)], model="")
    models = client.list_models()
print(json.dumps({"file": dinov3_client.__file__, "dim": int(result.cls.shape[0]),
                  "models": [m.name for m in models]}))
"""


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(\w+[^)]*VERSION ([0-9.]+)", f.read()).group(1)


def run(*argv, **kwargs):
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{argv}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_wheel_installs_into_a_fresh_venv_and_calls_the_server(tmp_path):
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
        "--wheel-dir", str(wheels), os.path.join(ROOT, "client", "python"), cwd=tmp_path)
    [wheel] = list(wheels.glob("dinov3_client-*.whl"))
    assert wheel.name.startswith(f"dinov3_client-{project_version()}-py3-none-any")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("/METADATA"))).decode()
        entry_points = archive.read(next(n for n in names
                                         if n.endswith("/entry_points.txt"))).decode()
    assert "dinov3_client/_generated/dinov3/v1/embedding_pb2_grpc.py" in names
    for requirement in ["grpcio", "grpcio-health-checking", "protobuf", "numpy"]:
        assert re.search(rf"^Requires-Dist: {requirement}\b", metadata, re.M), metadata

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    run(python, "-m", "pip", "install", "--disable-pip-version-check", "-q", str(wheel))
    model = export_random_model(tmp_path, seed=3)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with running_server(model, tmp_path / "server.log") as (target, _):
        out = json.loads(run(python, "-c", SCRIPT, target, cwd=tmp_path, env=env))
    assert out["file"].startswith(str(venv)), out  # the installed copy, not the repository's
    assert out["dim"] == 384 and out["models"] == ["model"]
    # The bulk tools are console commands of the package (their extras are not installed here:
    # --help needs none of them).
    for command in ("dinov3-embed", "dinov3-index", "dinov3-search"):
        assert f"{command} = dinov3_client.bulk." in entry_points, entry_points
    usage = run(str(venv / "bin" / "dinov3-embed"), "--help", cwd=tmp_path, env=env)
    assert "--server" in usage and "--resume" in usage, usage
