"""locust load against dinov3-server's OpenAI front door, `POST /v1/embeddings`: an independent
load generator to cross-check dinov3-bench's `--protocol=openai` numbers (tests/bench/
locust_vs_bench.py runs both and compares).

    .venv/bin/locust -f tests/bench/locust/locustfile.py --headless -u 16 -r 16 -t 30s \
        --host http://127.0.0.1:HTTP_PORT --dino-model NAME --dino-images DIR_OR_FILES \
        [--dino-encoding base64|float] --csv PREFIX

Each simulated user is a closed-loop caller (FastHttpUser, one keep-alive connection, no wait
between requests), as one dinov3-bench worker is. Request: one image per call, as a data URL,
  {"model": NAME, "input": ["data:image/jpeg;base64,..."], "encoding_format": "base64"}
with the bodies built once at start-up (so locust's per-request CPU is the HTTP exchange and the
answer check, not JSON encoding of the image). User i sends images i, i+1, ... in turn.
--dino-images: a directory (its *.jpg / *.jpeg / *.png, sorted) or comma-separated files.
A call counts as a success when the answer is 200, a JSON object whose `data` has one embedding
of the model's width (base64: 4 bytes per float32; float: a list), otherwise as a failure with
the reason; locust's statistics (--csv) then hold throughput and latency percentiles.
"""
import base64
import glob
import itertools
import json
import mimetypes
import os

from locust import FastHttpUser, constant, events, task

_BODIES = []  # prepared request bodies, one per image


@events.init_command_line_parser.add_listener
def _arguments(parser):
    parser.add_argument("--dino-model", default="", help="model name ('' = the server's default)")
    parser.add_argument("--dino-images", required=True,
                        help="a directory of images or comma-separated image files")
    parser.add_argument("--dino-encoding", default="base64", choices=["base64", "float"],
                        help="encoding_format of the answer")


def image_files(spec):
    if os.path.isdir(spec):
        files = sorted(f for pattern in ("*.jpg", "*.jpeg", "*.png")
                       for f in glob.glob(os.path.join(spec, pattern)))
    else:
        files = [f for f in spec.split(",") if f]
    if not files:
        raise SystemExit(f"--dino-images {spec!r}: no image files")
    return files


@events.init.add_listener
def _prepare(environment, **_):
    options = environment.parsed_options
    _BODIES.clear()
    for path in image_files(options.dino_images):
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
        with open(path, "rb") as f:
            url = f"data:{mime};base64," + base64.b64encode(f.read()).decode("ascii")
        body = {"input": [url], "encoding_format": options.dino_encoding}
        if options.dino_model:
            body["model"] = options.dino_model
        _BODIES.append(json.dumps(body).encode())


class EmbeddingsUser(FastHttpUser):
    wait_time = constant(0)
    _next_index = itertools.count()

    def on_start(self):
        start = next(EmbeddingsUser._next_index)
        self._bodies = itertools.islice(itertools.cycle(_BODIES), start, None)
        self._float = self.environment.parsed_options.dino_encoding == "float"

    @task
    def embed(self):
        with self.client.post("/v1/embeddings", data=next(self._bodies),
                              headers={"Content-Type": "application/json"},
                              name="/v1/embeddings", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            try:
                [item] = response.json()["data"]
                embedding = item["embedding"]
                width = len(embedding) if self._float else len(base64.b64decode(embedding)) // 4
            except (ValueError, KeyError, TypeError) as e:
                response.failure(f"bad answer: {e!r}")
                return
            if width <= 0:
                response.failure("empty embedding")
