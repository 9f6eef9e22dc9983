#!/usr/bin/env python3
"""Soak test of dinov3-server: a steady mixed load for a while, then checks that nothing leaked
and that every request was answered once, as expected, and counted by the server.

It starts build/bin/dinov3-server on loopback (CPU, a random depth-1 vits16 exported into a
temporary directory unless --model is given) and sends --rate requests per second for --seconds:
valid Embed calls with raw pixels or PNG (1-2 images), valid StreamEmbed messages on streams
that are reopened every --stream_seconds, a few valid EmbedDense calls, and --invalid_fraction
of invalid requests (undecodable image bytes, more images than max_images_per_request, bad
options: unknown output, unknown dtype, oversized preprocess), unary and in streams. Every
--sample_seconds it reads the server's resident memory (VmRSS of /proc/PID/status).

At the end it checks, and exits 1 if any check fails (2 for a usage or start-up error):
  - RSS growth: the median RSS of the last 5 s of the run is less than --max_rss_growth (5%)
    above the median of the last 5 s of the warm-up (--warmup_seconds, default a quarter of
    the run, at least 10 s);
  - outcomes: every valid request OK, every invalid one INVALID_ARGUMENT, nothing else;
  - counters: the server's dinov3_requests_total delta per method and code equals the client's
    own counts, dinov3_images_total grew by exactly the images of the OK answers, and the
    in-flight gauge and the queue are back to 0;
  - the server exits 0 on SIGTERM.
It prints a summary table: requests by method and outcome, RSS at warm-up / end / max, growth.

    tests/soak/soak.py                        # CI: 60 s at 10 requests/s (CTest label `soak`)
    tests/soak/soak.py --seconds 1800 --rate 20   # the long mode (scripts/soak.sh passes args)

Not a timing test: the rate is a target (the achieved rate is reported; a slow machine only
sends fewer requests), and no latency is checked.
"""
import argparse
import collections
import dataclasses
import io
import os
import queue
import random
import re
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402  (pytest.fail is how the shared server helpers report)

from tests.integration.python.prometheus_process import samples, scrape  # noqa: E402
from tests.integration.python.server_process import (  # noqa: E402  (adds client/python)
    export_random_model, metrics_port, start_server, stop_server, tail)

from dinov3_client import embedding_pb2 as pb2  # noqa: E402

OK = "OK"
INVALID = "INVALID_ARGUMENT"
RSS_WINDOW_SECONDS = 5.0


# --- checks (pure functions; tests/soak/test_soak_checks.py) -------------------------------

def window_median(samples, end, seconds=RSS_WINDOW_SECONDS):
    """Median of the (t, rss) samples with end - seconds <= t <= end (the last sample at or
    before `end` when the window is empty); None without samples before `end`."""
    inside = [rss for t, rss in samples if end - seconds <= t <= end]
    if not inside:
        before = [rss for t, rss in samples if t <= end]
        return before[-1] if before else None
    return statistics.median(inside)


def rss_growth(samples, warmup_end, run_end):
    """(rss at warm-up, rss at end, max rss, growth fraction) of (t, rss) samples."""
    warm = window_median(samples, warmup_end)
    end = window_median(samples, run_end)
    peak = max((rss for _, rss in samples), default=None)
    if warm is None or end is None or warm <= 0:
        return warm, end, peak, None
    return warm, end, peak, end / warm - 1.0


def outcome_failures(outcomes):
    """Problems in {(method, kind, code): count}, kind 'valid' or 'invalid': a valid request
    must end OK, an invalid one INVALID_ARGUMENT."""
    problems = []
    for (method, kind, code), count in sorted(outcomes.items()):
        expected = OK if kind == "valid" else INVALID
        if code != expected:
            problems.append(f"{count} {kind} {method} request(s) ended {code}, expected {expected}")
    return problems


def counter_failures(server_delta, client_counts):
    """Differences between the server's dinov3_requests_total delta {(method, code): n} and
    the client's own {(method, code): n}."""
    problems = []
    for key in sorted(set(server_delta) | set(client_counts)):
        server, client = server_delta.get(key, 0), client_counts.get(key, 0)
        if server != client:
            problems.append(f"dinov3_requests_total{{method={key[0]},code={key[1]}}} grew by "
                            f"{server:g}, the client saw {client}")
    return problems


REQUESTS = re.compile(
    r'dinov3_requests_total\{code="(\w+)",method="(\w+)",model="[^"]*",protocol="[\w-]+"\}')


def requests_by_method_code(values):
    """{(method, code): n} of dinov3_requests_total, summed over the served models."""
    out = {}
    for key, value in values.items():
        match = REQUESTS.fullmatch(key)
        if match:
            out[(match.group(2), match.group(1))] = out.get((match.group(2), match.group(1)), 0) \
                + value
    return out


def summed(values, family):
    """`family` summed over its series (each served model has its own)."""
    return sum(v for k, v in values.items() if k == family or k.startswith(family + "{"))


def delta(after, before):
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


# --- the server ------------------------------------------------------------------------------

class Server:
    """dinov3-server on a free loopback port (server_process.start_server); its log in
    `log_path`."""

    def __init__(self, binary, model, log_path, extra_args):
        self.log_path = log_path
        try:
            self.proc, self.target, self.client = start_server(model, log_path, *extra_args,
                                                               server=binary)
        except pytest.fail.Exception as e:
            raise SystemExit(f"soak: {e}") from None
        try:
            self.metrics_port = metrics_port(log_path)
        except pytest.fail.Exception as e:
            self.stop()
            raise SystemExit(f"soak: {e}") from None

    def log_tail(self, n=3000):
        return tail(self.log_path, n)

    def metrics(self):
        return samples(scrape(self.metrics_port))

    def rss_bytes(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return None

    def stop(self):
        """SIGTERM (then SIGKILL after 15 s); the exit status."""
        return stop_server(self.proc, self.client)


# --- the load --------------------------------------------------------------------------------

@dataclasses.dataclass
class Payloads:
    """Precomputed images, so the client spends its CPU on sending, not encoding."""
    raw: list
    png: list
    bad: list
    max_images: int


def make_payloads(seed, max_images):
    from PIL import Image
    rng = np.random.default_rng(seed)
    raw, png = [], []
    for i in range(12):
        h, w = int(rng.integers(48, 160)), int(rng.integers(48, 160))
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        raw.append(pixels)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        png.append(buf.getvalue())
    bad = [b"\x89PNG\r\n\x1a\n" + bytes(40),  # a PNG signature and nothing valid
           b"GIF89a" + bytes(64),  # an unsupported format
           png[0][:len(png[0]) // 3],  # truncated
           rng.bytes(500)]
    return Payloads(raw, png, bad, max_images)


class Load:
    """Sends the mix at a steady rate and counts every outcome."""

    def __init__(self, server, args, payloads):
        self.server, self.args, self.p = server, args, payloads
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.outcomes = collections.Counter()  # (method, kind, code) -> n
        self.codes = collections.Counter()  # (method, code) -> n, what the server should count
        self.ok_images = 0
        self.examples = {}  # (method, kind, code) -> first error details
        self.outstanding = threading.BoundedSemaphore(args.max_outstanding)
        self.pending = 0
        self.idle = threading.Condition(self.lock)
        self.sent = 0

    # one request --------------------------------------------------------------------------
    def valid_request(self, request_id=""):
        count = 1 if self.rng.random() < 0.7 else 2
        source = self.p.png if self.rng.random() < 0.5 else self.p.raw
        images = [self.rng.choice(source) for _ in range(count)]
        outputs = self.rng.choice([("cls", "pooled"), ("cls",), ("pooled", "registers"),
                                   ("patch_tokens",)])
        return self.server.client.build_request(
            images, outputs=outputs, dtype=self.rng.choice(["float32", "float16"]),
            l2_normalize=self.rng.random() < 0.5, request_id=request_id), count

    def invalid_request(self, request_id=""):
        client = self.server.client
        choice = self.rng.randrange(5)
        if choice == 0:  # undecodable image bytes (alone: next to a good image, whether the
            # good one still runs would depend on which decode finishes first)
            return client.build_request([self.rng.choice(self.p.bad)], request_id=request_id)
        if choice == 1:  # more images than allowed
            tiny = np.zeros((8, 8, 3), dtype=np.uint8)
            return client.build_request([tiny] * (self.p.max_images + 1), request_id=request_id)
        request = client.build_request([self.rng.choice(self.p.png)], request_id=request_id)
        if choice == 2:
            request.outputs.append(99)  # unknown output
        elif choice == 3:
            request.dtype = 99  # unknown dtype
        else:
            request.preprocess.height = 1 << 20  # far beyond any limit
        return request

    def record(self, method, kind, code, images=0, details="", server_code=""):
        """One outcome; `server_code` is what the server counts it as ("": `code`, None: the
        server never saw it)."""
        with self.lock:
            self.outcomes[(method, kind, code)] += 1
            server_code = code if server_code == "" else server_code
            if server_code is not None:
                self.codes[(method, server_code)] += 1
            if code == OK:
                self.ok_images += images
            if (method, kind, code) not in self.examples and code != OK:
                self.examples[(method, kind, code)] = details[:200]

    # unary calls ---------------------------------------------------------------------------
    def start_unary(self, method, kind, request, images):
        """An Embed call; its outcome is recorded by its done-callback."""
        self.outstanding.acquire()
        with self.lock:
            self.pending += 1
        future = self.server.client.stub.Embed.future(request, timeout=self.args.call_timeout)
        future.add_done_callback(lambda f: self.finish_unary(method, kind, f, images))

    def finish_unary(self, method, kind, future, images):
        error = future.exception()
        code = OK if error is None else error.code().name
        if code == OK and len(future.result().embeddings) != images:
            code = "WRONG_ANSWER"
        self.record(method, kind, code, images, "" if error is None else error.details(),
                    server_code=OK if code == "WRONG_ANSWER" else "")
        self.release()

    def release(self):
        self.outstanding.release()
        with self.lock:
            self.pending -= 1
            self.idle.notify_all()

    def dense(self):
        """EmbedDense has no future API: one short thread per call."""
        self.outstanding.acquire()
        with self.lock:
            self.pending += 1
        request = pb2.EmbedDenseRequest(
            image=self.server.client.build_request([self.rng.choice(self.p.png)]).images[0],
            preprocess=pb2.Preprocess(mode=pb2.RESIZE_KEEP_ASPECT), rows_per_chunk=4)

        def run():
            try:
                chunks = list(self.server.client.stub.EmbedDense(
                    request, timeout=self.args.call_timeout))
                code = OK if chunks and chunks[-1].row_start + chunks[-1].rows.shape[0] == \
                    chunks[0].grid_height else "WRONG_ANSWER"
                details = ""
            except grpc.RpcError as e:
                code, details = e.code().name, e.details()
            self.record("EmbedDense", "valid", code, 1, details,
                        server_code=OK if code == "WRONG_ANSWER" else "")
            self.release()
        threading.Thread(target=run, daemon=True).start()

    # streams -------------------------------------------------------------------------------
    def open_stream(self):
        stream = Stream(self)
        stream.start()
        return stream

    def run(self):
        """Sends for --seconds at --rate (open loop, unless --max_outstanding calls are
        unanswered); replaces the stream every --stream_seconds or when it ended. Returns the
        seconds it took, closing the last stream included."""
        interval = 1.0 / self.args.rate
        start = time.monotonic()
        next_send = start
        stream, stream_opened = self.open_stream(), start
        try:
            while True:
                now = time.monotonic()
                if now - start >= self.args.seconds:
                    break
                if now - stream_opened >= self.args.stream_seconds or stream.ended:
                    stream.close()
                    stream, stream_opened = self.open_stream(), now
                if now < next_send:
                    time.sleep(min(next_send - now, 0.05))  # pacing the open-loop load
                    continue
                next_send += interval
                self.send_one(stream)
        finally:
            stream.close()
        return time.monotonic() - start

    def send_one(self, stream):
        self.sent += 1
        invalid = self.rng.random() < self.args.invalid_fraction
        roll = self.rng.random()
        if roll < self.args.stream_fraction:
            stream.send(invalid)
        elif roll < self.args.stream_fraction + self.args.dense_fraction and not invalid:
            self.dense()
        elif invalid:
            self.start_unary("Embed", "invalid", self.invalid_request(), 0)
        else:
            request, images = self.valid_request()
            self.start_unary("Embed", "valid", request, images)

    def wait_idle(self, timeout):
        with self.lock:
            return self.idle.wait_for(lambda: self.pending == 0, timeout=timeout)


class Stream:
    """One StreamEmbed call fed from a queue; answers are matched to requests by request_id.
    A request sent after the stream ended (or never answered by it) is a failure of its own."""

    def __init__(self, load):
        self.load = load
        self.requests = queue.Queue()
        self.expected = {}  # request_id -> (kind, images)
        self.lock = threading.Lock()
        self.next_id = 0
        self.ended = False
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.final = None

    def start(self):
        self.thread.start()

    def send(self, invalid):
        with self.lock:
            self.next_id += 1
            request_id = f"s{id(self)}-{self.next_id}"
        if invalid:
            request, kind, images = self.load.invalid_request(request_id), "invalid", 0
        else:
            (request, images), kind = self.load.valid_request(request_id), "valid"
        self.load.outstanding.acquire()
        with self.load.lock:
            self.load.pending += 1
        with self.lock:
            ended = self.ended
            if not ended:
                self.expected[request_id] = (kind, images)
                self.requests.put(request)
        if ended:
            self.load.record("StreamEmbed", kind, f"NOT_SENT(stream ended {self.final})",
                             server_code=None)
            self.load.release()

    def close(self):
        """Half-closes and waits for the remaining answers and the stream's status."""
        self.requests.put(None)
        self.thread.join(timeout=self.load.args.call_timeout + 30)

    def iterate(self):
        while True:
            item = self.requests.get()
            if item is None:
                return
            yield item

    def read(self):
        try:
            call = self.load.server.client.stub.StreamEmbed(self.iterate())
            for answer in call:
                with self.lock:
                    kind, images = self.expected.pop(answer.request_id, ("unknown", 0))
                if answer.HasField("error"):
                    code = next((c.name for c in grpc.StatusCode
                                 if c.value[0] == answer.error.code), str(answer.error.code))
                    details = answer.error.message
                else:
                    code = OK if len(answer.embeddings) == images else "WRONG_ANSWER"
                    details = ""
                self.load.record("StreamEmbed", kind, code, images, details,
                                 server_code=OK if code == "WRONG_ANSWER" else "")
                self.load.release()
            final, details = OK, ""
        except grpc.RpcError as e:
            final, details = e.code().name, e.details()
        with self.lock:
            self.final, self.ended = final, True
            lost = list(self.expected.values())
            self.expected.clear()
        if final != OK:  # the stream itself failed; the server counts only its messages
            with self.load.lock:
                self.load.outcomes[("StreamEmbed(stream)", "valid", final)] += 1
                self.load.examples.setdefault(("StreamEmbed(stream)", "valid", final), details)
        for kind, _ in lost:  # sent but never answered
            with self.load.lock:
                self.load.outcomes[("StreamEmbed", kind, f"NO_ANSWER(stream {final})")] += 1
            self.load.release()


# --- main ------------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60,
                        help="load duration (default 60; the long mode: 1800)")
    parser.add_argument("--rate", type=float, default=10, help="requests per second (10)")
    parser.add_argument("--invalid_fraction", type=float, default=0.1,
                        help="share of invalid requests (0.1)")
    parser.add_argument("--stream_fraction", type=float, default=0.3,
                        help="share of requests sent as StreamEmbed messages (0.3)")
    parser.add_argument("--dense_fraction", type=float, default=0.05,
                        help="share of (valid) EmbedDense calls (0.05)")
    parser.add_argument("--stream_seconds", type=float, default=20,
                        help="each stream is half-closed and replaced after this long (20)")
    parser.add_argument("--model", help="TorchScript export (default: a random depth-1 vits16 "
                        "exported into a temporary directory)")
    parser.add_argument("--depth", type=int, default=1, help="blocks of the exported model (1)")
    parser.add_argument("--server", default=os.path.join(
        ROOT, os.environ.get("BUILD_DIR", "build"), "bin", "dinov3-server"),
        help="the dinov3-server binary (default $BUILD_DIR/bin or build/bin)")
    parser.add_argument("--server_arg", action="append", default=[],
                        help="extra server flag, repeatable (e.g. --server_arg=--max_batch_size=4)")
    parser.add_argument("--warmup_seconds", type=float,
                        help="load before the RSS baseline (default a quarter of --seconds, "
                        "at least 10)")
    parser.add_argument("--sample_seconds", type=float, default=0.5,
                        help="RSS sampling interval (0.5)")
    parser.add_argument("--max_rss_growth", type=float, default=0.05,
                        help="largest allowed RSS growth after warm-up, a fraction (0.05)")
    parser.add_argument("--max_outstanding", type=int, default=64,
                        help="most requests in flight; the rate drops when reached (64)")
    parser.add_argument("--call_timeout", type=float, default=120, help="per-call deadline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", help="server log file (default: in the temporary directory)")
    parser.add_argument("--rss_csv", help="write the RSS samples (seconds,bytes) to this file")
    args = parser.parse_args(argv)
    if args.warmup_seconds is None:
        args.warmup_seconds = max(10.0, args.seconds / 4)
    if not 0 < args.warmup_seconds < args.seconds or args.rate <= 0:
        parser.error("need 0 < --warmup_seconds < --seconds and --rate > 0")
    if not 0 <= args.invalid_fraction <= 1 or \
            args.stream_fraction + args.dense_fraction > 1:
        parser.error("fractions must be within 0..1 (stream + dense at most 1)")
    return args


def sample_rss(server, samples, stop, interval, start):
    while not stop.is_set():
        rss = server.rss_bytes()
        if rss is not None:
            samples.append((time.monotonic() - start, rss))
        stop.wait(interval)


def print_summary(load, seconds, achieved, rss, problems):
    warm, end, peak, growth = rss
    mib = (lambda b: "-" if b is None else f"{b / 2**20:.1f} MiB")
    print(f"\nsoak: {load.sent} requests in {seconds:.0f} s ({achieved:.1f}/s)")
    print(f"{'method':<22}{'kind':<9}{'outcome':<28}{'count':>8}")
    for (method, kind, code), count in sorted(load.outcomes.items()):
        print(f"{method:<22}{kind:<9}{code:<28}{count:>8}")
    print(f"images answered OK: {load.ok_images}")
    print(f"RSS at warm-up {mib(warm)}, at end {mib(end)}, max {mib(peak)}, growth "
          f"{'-' if growth is None else f'{100 * growth:+.2f}%'}")
    for key, details in sorted(load.examples.items()):
        print(f"  e.g. {key[0]} {key[1]} {key[2]}: {details}")
    print("FAIL:\n  " + "\n  ".join(problems) if problems else "PASS")


def prime(server, payloads, max_outstanding):
    """Bursts of 1..max_batch_size concurrent requests, so that the model has run every batch
    size before the load starts (TorchScript specialises its graph per input shape, which
    takes memory once), then two bursts of max_outstanding requests for patch tokens (the
    allocator's high-water mark of the most the load can have in flight): that growth belongs
    to the warm-up, not to the soak."""
    match = re.search(r"batching\.max_batch_size=(\d+)", server.log_tail(10**6))
    max_batch = int(match.group(1)) if match else 8
    sizes = [(dtype, size) for dtype in ("float32", "float16") for size in range(1, max_batch + 1)]
    for dtype, size in sizes + [("float32", max_outstanding)] * 2:
        requests = [server.client.build_request([payloads.raw[i % len(payloads.raw)]],
                                                outputs=("cls", "pooled", "patch_tokens"),
                                                dtype=dtype) for i in range(size)]
        futures = [server.client.stub.Embed.future(r, timeout=120) for r in requests]
        for future in futures:
            future.result()


def run_soak(args, server):
    """The load, the samples and the checks; returns (load, seconds, rss, problems)."""
    limits = server.client.model_info().limits
    payloads = make_payloads(args.seed, limits.max_images_per_request)
    prime(server, payloads, args.max_outstanding)
    before = server.metrics()
    load = Load(server, args, payloads)
    samples, stop = [], threading.Event()
    start = time.monotonic()
    sampler = threading.Thread(target=sample_rss, daemon=True,
                               args=(server, samples, stop, args.sample_seconds, start))
    sampler.start()
    try:
        seconds = load.run()
    finally:
        idle = load.wait_idle(timeout=args.call_timeout + 30)
        run_end = time.monotonic() - start
        stop.set()
        sampler.join()
    problems = [] if idle else [f"{load.pending} request(s) never finished"]
    # The server counts a request just after answering it: poll briefly for the gauges.
    after, deadline = server.metrics(), time.monotonic() + 30
    while (after.get("dinov3_inflight_requests") or summed(after, "dinov3_queue_images")) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
        after = server.metrics()
    rss = rss_growth(samples, args.warmup_seconds, run_end)
    if args.rss_csv:
        with open(args.rss_csv, "w") as f:
            f.write("seconds,rss_bytes\n")
            f.writelines(f"{t:.2f},{b}\n" for t, b in samples)
    problems += outcome_failures(load.outcomes)
    problems += counter_failures(
        delta(requests_by_method_code(after), requests_by_method_code(before)), dict(load.codes))
    images = summed(after, "dinov3_images_total") - summed(before, "dinov3_images_total")
    if images != load.ok_images:
        problems.append(f"dinov3_images_total grew by {images:g}, the client got "
                        f"{load.ok_images} embeddings")
    for gauge in ("dinov3_inflight_requests", "dinov3_queue_images"):
        if summed(after, gauge):
            problems.append(f"{gauge} is {summed(after, gauge):g} after the load, not 0")
    if rss[3] is None:
        problems.append("no RSS samples")
    elif rss[3] >= args.max_rss_growth:
        problems.append(f"RSS grew {100 * rss[3]:.2f}% after warm-up (limit "
                        f"{100 * args.max_rss_growth:g}%)")
    return load, seconds, rss, problems


def main(argv=None):
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dinov3-soak-") as tmp:
        model = args.model or export_random_model(tmp, args.seed, args.depth)
        server = Server(args.server, model, args.log or os.path.join(tmp, "server.log"),
                        args.server_arg)
        try:
            load, seconds, rss, problems = run_soak(args, server)
        finally:
            code = server.stop()
        if code != 0:
            problems.append(f"the server exited with {code} on SIGTERM")
        print_summary(load, seconds, load.sent / seconds, rss, problems)
        if problems:
            print(f"\nserver log (last lines):\n{server.log_tail()}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
