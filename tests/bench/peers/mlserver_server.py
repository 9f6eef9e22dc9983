"""Benchmark peer: Seldon MLServer (1.7.1) with its adaptive batching, serving the same TorchScript
file over the Open Inference Protocol (KServe v2), gRPC and REST.

    .venv-mlserver/bin/python tests/bench/peers/mlserver_server.py --model models/m.pt \
        [--port 0] [--grpc_port 0] [--host 127.0.0.1] [--name NAME] [--device cpu] \
        [--max_batch_size 8] [--max_batch_time 0.005] [--threads N] [--parallel_workers 1]

Needs the separate virtualenv `.venv-mlserver` (tests/bench/peers/setup_mlserver.sh: MLServer's
fastapi/starlette pins conflict with LitServe's in .venv). Writes MLServer's settings.json and
NAME/model-settings.json into a temporary directory (removed on exit) and runs what
`mlserver start DIR` runs, in this process: MLServer's main process (uvicorn REST server, grpc.aio
server, metrics server, adaptive batcher) hands each merged batch to --parallel_workers inference
worker processes (MLServer's default: 1), where mlserver_runtime.DinoRuntime preprocesses and runs
one forward with --threads torch intra-op threads (0 = torch's default). The model is named NAME
(default: the file name without its extension, as dinov3-server names it). Requests and answers:
mlserver_runtime.py's docstring (IMAGE BYTES [N] or PIXELS UINT8 [N,H,W,3] in; CLS, POOLED, ...
FP32 out). MLServer's REST API has no binary tensor extension: JSON only.

Settings beyond MLServer's defaults: debug off (no access log), the ports, metrics and
environments directories inside the temporary directory (not the working directory),
grpc_max_message_length 64 MiB.

Prints exactly one line `READY <http_port> <grpc_port>` on stdout once GET
/v2/models/NAME/ready answers 200 and the gRPC port accepts connections; everything else
(MLServer's logs, also its workers') goes to stderr. --port 0 / --grpc_port 0 pick free ports
first (MLServer needs fixed numbers). SIGTERM / SIGINT run MLServer's own shutdown (workers,
gRPC, REST and metrics servers stopped), then this process exits 0; the inference workers also
get SIGKILL from the kernel if this process dies first (PR_SET_PDEATHSIG, set in load()).
"""
import argparse
import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_MESSAGE_BYTES = 64 << 20


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def write_settings(folder: str, args, http_port: int, grpc_port: int) -> None:
    """MLServer's settings.json and NAME/model-settings.json for this run, inside `folder`."""
    settings = {"debug": False, "host": args.host, "http_port": http_port,
                "grpc_port": grpc_port, "metrics_port": free_port(args.host),
                "metrics_dir": os.path.join(folder, ".metrics"),
                "environments_dir": os.path.join(folder, ".envs"),
                "parallel_workers": args.parallel_workers,
                "grpc_max_message_length": MAX_MESSAGE_BYTES}
    model_settings = {"name": args.name, "implementation": "mlserver_runtime.DinoRuntime",
                      "max_batch_size": args.max_batch_size,
                      "max_batch_time": args.max_batch_time,
                      "parameters": {"uri": os.path.abspath(args.model),
                                     "extra": {"threads": args.threads,
                                               "device": args.device}}}
    with open(os.path.join(folder, "settings.json"), "w") as f:
        json.dump(settings, f, indent=1)
    os.makedirs(os.path.join(folder, args.name))
    with open(os.path.join(folder, args.name, "model-settings.json"), "w") as f:
        json.dump(model_settings, f, indent=1)


def announce_when_ready(host: str, http_port: int, grpc_port: int, name: str, out) -> None:
    """Polls the model's readiness and the gRPC port, then writes the READY line to `out`."""
    url = f"http://127.0.0.1:{http_port}/v2/models/{name}/ready"
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "127.0.0.1") else "::1"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    with socket.create_connection((connect_host, grpc_port), timeout=1):
                        break
        except OSError:
            pass
        time.sleep(0.1)
    out.write(f"READY {http_port} {grpc_port}\n")
    out.flush()


def stdout_for_ready():
    """A private handle on stdout; fd 1 (inherited by MLServer's workers) then points at stderr."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="exported TorchScript file")
    parser.add_argument("--port", type=int, default=0, help="HTTP (REST) port, 0 = a free one")
    parser.add_argument("--grpc_port", type=int, default=0, help="gRPC port, 0 = a free one")
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "0.0.0.0"])
    parser.add_argument("--name", default="", help="model name ('' = the file name's stem)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--max_batch_size", type=int, default=8,
                        help="adaptive batching: most requests merged into one predict()")
    parser.add_argument("--max_batch_time", type=float, default=0.005,
                        help="adaptive batching: longest wait for a full batch, seconds")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads in the inference worker (0 = torch default)")
    parser.add_argument("--parallel_workers", type=int, default=1,
                        help="MLServer inference worker processes (its default: 1)")
    args = parser.parse_args(argv)
    args.name = args.name or os.path.splitext(os.path.basename(args.model))[0]
    return args


async def serve(folder: str) -> None:
    from mlserver import MLServer
    from mlserver.cli.serve import load_settings

    settings, models_settings = await load_settings(folder)
    server = MLServer(settings)  # installs its SIGINT / SIGTERM / SIGQUIT handlers
    await server.start(models_settings)


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isfile(args.model):
        sys.exit(f"no model file {args.model}")
    ready_out = stdout_for_ready()
    # The workers are spawned: they get this sys.path (mlserver_runtime, model_io) and environment.
    sys.path.insert(0, HERE)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")]))
    from mlserver.logging import configure_logger
    from mlserver.utils import install_uvloop_event_loop

    http_port = args.port or free_port(args.host)
    grpc_port = args.grpc_port or free_port(args.host)
    folder = tempfile.mkdtemp(prefix="mlserver-peer-")
    try:
        write_settings(folder, args, http_port, grpc_port)
        configure_logger()
        install_uvloop_event_loop()  # as `mlserver start` does
        threading.Thread(target=announce_when_ready,
                         args=(args.host, http_port, grpc_port, args.name, ready_out),
                         daemon=True).start()
        asyncio.run(serve(folder))
    except KeyboardInterrupt:
        pass  # a signal before MLServer installed its handlers
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
