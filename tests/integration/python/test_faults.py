"""Faults against the real dinov3-server binary on loopback: what a misbehaving client or model
does to the server. Most cases serve a small TorchScript "fault model" written here
(fault_helpers.py: it follows the model contract, is fast on ordinary images, SLOW on a black
image, so other requests wait in the queue behind it, and RAISES on a white "poison" image);
the SIGTERM case serves a real depth-1 export. The black forward is slow by construction, not
by a duration: it runs until the test opens its gate (`release_slow`), which each test does
once what must happen during it has happened, so no case depends on the machine's speed.

  - Cancellation: an Embed cancelled while queued is dropped before it costs model time; one
    cancelled while running, a StreamEmbed cancelled after its first answer and an EmbedDense
    cancelled after its first chunk are each recorded once, as CANCELLED.
  - Deadlines shorter than the queue wait: DEADLINE_EXCEEDED, dropped without model time; a
    request queued behind them is still served.
  - A model that throws on some inputs: INTERNAL with a one-line message (no traceback, no
    source paths, not the model's own exception text) for Embed, a StreamEmbed message and
    EmbedDense; the server keeps serving; innocent requests batched together with a poison
    one still succeed; a few poison requests in a row do not flip health to NOT_SERVING.
  - Queue overflow (--max_queue_size=3 and a flood): RESOURCE_EXHAUSTED naming max_queue_size,
    answered without waiting for the busy model, the rest OK, rejected images never run.
  - Clients that never read their EmbedDense / StreamEmbed responses: other clients (on other
    connections and on the same one) are served meanwhile, the stalled StreamEmbed stops being
    read (bounded backlog), and everything is cleaned up on cancel or deadline.
  - SIGTERM during sustained Embed / StreamEmbed / EmbedDense load: exit 0, every call ends
    with exactly one status, OK or a refusal (UNAVAILABLE; CANCELLED by gRPC for a call that
    arrives as it shuts down), and the server's access log counts the same answers.
Checked in every case: the client's per-call outcomes equal the deltas of dinov3_requests_total
of the served model (its model label) by method and code, dinov3_inflight_requests and the
model's dinov3_queue_images return to 0, and the server answers the next valid request. No
assertion is on a duration; waits poll /metrics (bounded by fault_helpers.WAIT_SECONDS) or wait
for a client-side outcome.
"""
import collections
import queue
import re
import signal
import threading
import time

import grpc
import pytest

from tests.integration.python.fault_helpers import (FaultServer, black, code_of, model_name,
                                                    noise, slow_reader, white,
                                                    write_fault_model)
from tests.integration.python.server_process import (export_random_model, start_server,
                                                      stop_server)
from dinov3_client import embedding_pb2 as pb2  # noqa: E402  (path set by server_process)

OK = grpc.StatusCode.OK
CANCELLED = grpc.StatusCode.CANCELLED
FLAGS = ("--intra_op_threads=1",)  # leaves a core to gRPC and the test while the model is slow
LONG = 60  # deadline of calls that must not expire
IMAGES = "dinov3_images_total"
# Deadline of the calls that must expire while they wait behind the held slow forward. The
# forward is held until they have expired, so its only constraint is to leave them time to be
# sent, decoded and queued (milliseconds) on a slow, loaded machine.
SHORT_DEADLINE = 5.0
GRPC_TIMEOUT_ROUNDING = 0.1  # gRPC sends timeouts of 1-10 s rounded up to 10 ms
UNREAD_DEADLINE = 10.0  # an unread EmbedDense call that must run, then expire unread


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fault_models")
    exported = export_random_model(tmp, seed=8, depth=1)
    return {"exported": exported, "fault": write_fault_model(exported, tmp / "fault.pt")}


@pytest.fixture
def serial(models, tmp_path):
    """The fault model, one image per forward pass."""
    with FaultServer(models["fault"], tmp_path / "server.log", *FLAGS,
                     "--max_batch_size=1") as server:
        yield server


def embed(server, images, timeout=LONG, **kwargs):
    """An Embed call future."""
    request = server.client.build_request(images, **kwargs)
    return server.stub.Embed.future(request, timeout=timeout)


class CompletionOrder:
    """Names of tracked calls in the order they finished (grpc done-callbacks)."""

    def __init__(self):
        self.names, self._lock = [], threading.Lock()

    def track(self, name, future):
        def done(_):
            with self._lock:
                self.names.append(name)
        future.add_done_callback(done)
        return future

    def index(self, name):
        return self.names.index(name)


def images_run(after, before):
    return after.of_model(IMAGES) - before.of_model(IMAGES)


def assert_serves_next(server):
    """The server is up, SERVING, and answers a valid request."""
    [result] = server.client.embed([noise(999)])
    assert result.cls.shape == (384,)
    assert server.client.health() == "SERVING"


def request_queue_iterator(requests):
    """Yields what is put on `requests` until None: a stream the test feeds one by one."""
    while True:
        item = requests.get()
        if item is None:
            return
        yield item


# --- cancellation -------------------------------------------------------------------------

def test_embed_cancelled_while_queued_costs_no_model_time(serial):
    before = serial.counters()
    blocker = embed(serial, [black()])
    serial.wait_running(before)
    victim = embed(serial, [noise(1)])
    serial.wait_queued(1)
    assert victim.cancel()
    assert code_of(victim) == CANCELLED
    serial.barrier()  # the server has the cancellation before the worker can take the victim
    assert not blocker.done()  # still held: the victim was cancelled while queued
    serial.release_slow()
    assert code_of(blocker) == OK
    after = serial.wait_idle()
    assert after.delta(before, "Embed") == {"OK": 1, "CANCELLED": 1}
    assert images_run(after, before) == 1  # the blocker only
    assert after.of_model("dinov3_rejected_total", reason="cancelled") - \
        before.of_model("dinov3_rejected_total", reason="cancelled") == 1
    assert_serves_next(serial)


def test_embed_cancelled_while_running_is_recorded_cancelled(serial):
    before = serial.counters()
    call = embed(serial, [black()])
    serial.wait_running(before)
    assert call.cancel()
    assert code_of(call) == CANCELLED
    serial.barrier()  # the server has the cancellation before the forward ends
    serial.release_slow()  # the forward goes on after the cancellation; let it end
    after = serial.wait_idle()
    assert images_run(after, before) == 1  # a running forward cannot be interrupted
    # The client never got the answer: the server must not count it as served.
    assert after.delta(before, "Embed") == {"CANCELLED": 1}, serial.access_log()
    assert_serves_next(serial)


def test_stream_embed_cancelled_after_first_answer(serial):
    before = serial.counters()
    requests = queue.Queue()
    call = serial.stub.StreamEmbed(request_queue_iterator(requests), timeout=LONG)
    try:
        requests.put(serial.client.build_request([noise(2)], request_id="r0"))
        first = next(call)
        assert first.request_id == "r0" and not first.HasField("error")
        requests.put(serial.client.build_request([black()], request_id="r1"))  # runs
        serial.wait_running(before, images=2)
        requests.put(serial.client.build_request([noise(3)], request_id="r2"))  # waits
        serial.wait_queued(1)
        assert call.cancel()
        with pytest.raises(grpc.RpcError) as ended:
            next(call)
        assert ended.value.code() == CANCELLED
    finally:
        requests.put(None)
    serial.barrier()  # the server has the cancellation before the worker can take r2
    serial.release_slow()  # r1's forward, cancelled while it ran, may end now
    after = serial.wait_idle()
    assert images_run(after, before) == 2  # r0 and r1; r2 is dropped from the queue
    # One final status per message: r0 answered; r1 and r2 never reached the client.
    assert after.delta(before, "StreamEmbed") == {"OK": 1, "CANCELLED": 2}, serial.access_log()
    assert_serves_next(serial)


def dense_request(side, rows_per_chunk=1, seed=5):
    pixels = noise(seed, (side, side))
    raw = pb2.RawImage(width=side, height=side, format=pb2.RGB8, data=pixels.tobytes())
    return pb2.EmbedDenseRequest(image=pb2.Image(raw=raw), rows_per_chunk=rows_per_chunk,
                                 preprocess=pb2.Preprocess(mode=pb2.RESIZE_KEEP_ASPECT))


def test_embed_dense_cancelled_after_first_chunk(serial):
    channel, stub = slow_reader(serial.target)
    before = serial.counters()
    try:
        chunks = stub.EmbedDense(dense_request(1024), timeout=LONG)  # 64 chunks, 6 MiB
        first = next(chunks)
        assert first.row_start == 0 and first.grid_height == 64
        assert chunks.cancel()
        with pytest.raises(grpc.RpcError) as ended:
            next(chunks)
        assert ended.value.code() == CANCELLED
    finally:
        channel.close()
    after = serial.wait_idle()
    assert images_run(after, before) == 1
    assert after.delta(before, "EmbedDense") == {"CANCELLED": 1}, serial.access_log()
    assert_serves_next(serial)


# --- deadlines ----------------------------------------------------------------------------

def test_deadline_shorter_than_queue_wait(serial):
    """Four calls with a short deadline wait behind a slow forward that is held until they have
    expired: DEADLINE_EXCEEDED, and they are dropped without model time; a patient call queued
    behind them is served."""
    before = serial.counters()
    order = CompletionOrder()
    track = order.track
    blocker = track("blocker", embed(serial, [black()]))
    serial.wait_running(before)
    short = [track(f"short{i}", embed(serial, [noise(10 + i)], timeout=SHORT_DEADLINE))
             for i in range(4)]
    patient = track("patient", embed(serial, [noise(20)]))
    serial.wait_queued(5)  # all accepted and waiting before any short deadline can matter
    queued_by = time.monotonic()  # the server had received the short calls before this
    assert [code_of(f) for f in short] == [grpc.StatusCode.DEADLINE_EXCEEDED] * 4
    # The server's deadline of each is its arrival plus the grpc-timeout header (at most
    # SHORT_DEADLINE, rounded up by a few ms): hold the forward until that has passed too, so
    # that the server drops them as expired (not as cancelled by the client's RST_STREAM).
    time.sleep(max(0.0, queued_by + SHORT_DEADLINE + GRPC_TIMEOUT_ROUNDING - time.monotonic()))
    # By construction (the gate), not by timing: the deadlines passed during the slow forward.
    assert not blocker.done() and not patient.done(), order.names
    serial.release_slow()
    assert code_of(blocker) == OK and code_of(patient) == OK
    assert order.index("blocker") > max(order.index(f"short{i}") for i in range(4)), order.names
    after = serial.wait_idle()
    assert after.delta(before, "Embed") == {"OK": 2, "DEADLINE_EXCEEDED": 4}, serial.access_log()
    assert images_run(after, before) == 2  # the blocker and the patient call only
    assert after.of_model("dinov3_rejected_total", reason="deadline") - \
        before.of_model("dinov3_rejected_total", reason="deadline") == 4
    assert_serves_next(serial)


# --- a model that throws on some inputs ----------------------------------------------------

LEAK_MARKERS = ("Traceback", "FAULT-MODEL-SECRET", ".py", ".cpp", ".cc:", "c10::", "torch::",
                "at::", "\n", "fault_helpers", "code/__torch__")


def assert_no_internals(message):
    """One short line: no backtrace, source path, address, or the model's exception text."""
    assert message, "an INTERNAL error without a message"
    for marker in LEAK_MARKERS:
        assert marker not in message, f"{marker!r} leaked to the client: {message!r}"
    assert not re.search(r"0x[0-9a-fA-F]{6,}", message), message  # no pointers
    assert len(message) < 300, message


def test_poison_input_is_internal_and_server_keeps_serving(serial):
    before = serial.counters()
    with pytest.raises(grpc.RpcError) as failed:
        serial.stub.Embed(serial.client.build_request([white()]), timeout=LONG)
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert_no_internals(failed.value.details())
    assert "image[0]" in failed.value.details()
    assert_serves_next(serial)

    requests = [serial.client.build_request([white()], request_id="poison"),
                serial.client.build_request([noise(30)], request_id="fine")]
    answers = {a.request_id: a for a in serial.stub.StreamEmbed(iter(requests), timeout=LONG)}
    assert sorted(answers) == ["fine", "poison"]
    assert answers["poison"].error.code == grpc.StatusCode.INTERNAL.value[0]
    assert_no_internals(answers["poison"].error.message)
    assert not answers["fine"].HasField("error") and len(answers["fine"].embeddings) == 1

    dense = pb2.EmbedDenseRequest(image=serial.client.build_request([white()]).images[0])
    with pytest.raises(grpc.RpcError) as failed:
        list(serial.stub.EmbedDense(dense, timeout=LONG))
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert_no_internals(failed.value.details())
    assert_serves_next(serial)

    after = serial.wait_idle()
    assert after.delta(before, "Embed") == {"INTERNAL": 1, "OK": 2}
    assert after.delta(before, "StreamEmbed") == {"INTERNAL": 1, "OK": 1}
    assert after.delta(before, "EmbedDense") == {"INTERNAL": 1}
    assert images_run(after, before) == 3  # the valid ones; failed batches are not counted
    # The operator, unlike the client, sees the model's own error in the server log.
    assert re.search(r"failed for one image: .*; model error: \S*RuntimeError: "
                     r"FAULT-MODEL-SECRET poisoned input", serial.log())


def test_innocent_requests_batched_with_a_poison_one_succeed(models, tmp_path):
    """A poison image and five innocent ones wait together behind a slow forward, so they run
    as one batch (max_batch_size 8): only the poison request may fail."""
    with FaultServer(models["fault"], tmp_path / "server.log", *FLAGS, "--max_batch_size=8",
                     "--max_queue_delay_ms=5") as server:
        before = server.counters()
        blocker = embed(server, [black()])
        server.wait_running(before)
        poison = embed(server, [white()])
        innocent = [embed(server, [noise(40 + i)], request_id=f"innocent{i}") for i in range(5)]
        server.wait_queued(6)  # all six wait together: one batch once the gate opens
        server.release_slow()
        assert code_of(blocker) == OK
        assert code_of(poison) == grpc.StatusCode.INTERNAL
        assert_no_internals(poison.exception().details())
        codes = [code_of(f) for f in innocent]
        after = server.wait_idle()
        assert codes == [OK] * 5, (
            f"innocent requests batched with a poison image failed: {codes}\n"
            f"{server.access_log()}")
        assert [f.result().request_id for f in innocent] == [f"innocent{i}" for i in range(5)]
        assert after.delta(before, "Embed") == {"OK": 6, "INTERNAL": 1}
        assert images_run(after, before) == 6
        assert_serves_next(server)


def test_poison_requests_in_a_row_keep_health_serving(serial):
    """Inputs that fail are the client's problem, not the replica's: health stays SERVING, or
    one client could take every replica out of rotation."""
    before = serial.counters()
    seen = []
    for _ in range(4):
        with pytest.raises(grpc.RpcError) as failed:
            serial.stub.Embed(serial.client.build_request([white()]), timeout=LONG)
        assert failed.value.code() == grpc.StatusCode.INTERNAL
        seen.append(serial.client.health())
    after = serial.wait_idle()
    assert after.delta(before, "Embed") == {"INTERNAL": 4}
    seen.append(serial.client.health())  # after every outcome was recorded
    assert seen == ["SERVING"] * 5, f"health after each poison request: {seen}\n" + \
        "\n".join(line for line in serial.log().splitlines() if "[error]" in line)
    assert_serves_next(serial)


# --- queue overflow -----------------------------------------------------------------------

def test_queue_overflow_is_resource_exhausted_naming_the_limit(models, tmp_path):
    """--max_queue_size=3 while the model is busy: a flood of 8 one-image and 4 two-image
    requests gets RESOURCE_EXHAUSTED for what does not fit, the rest is served; the one-image
    refusals come back while the slow forward still runs (never an unbounded wait), and no
    image of a refused request runs."""
    with FaultServer(models["fault"], tmp_path / "server.log", *FLAGS, "--max_batch_size=1",
                     "--max_queue_size=3") as server:
        before = server.counters()
        order = CompletionOrder()
        track = order.track
        blocker = track("blocker", embed(server, [black()]))
        server.wait_running(before)
        flood = [track(f"one{i}", embed(server, [noise(50 + i)])) for i in range(8)]
        flood += [track(f"two{i}", embed(server, [noise(60 + i), noise(70 + i)]))
                  for i in range(4)]
        sizes = [1] * 8 + [2] * 4

        def settled(c):
            # The queue only grows while the forward is held, so it ends full (3 images: 8
            # one-image requests cannot all be refused). Once it is, the requests not answered
            # yet are exactly the queued ones: every refusal came back without the model.
            waiting = sum(n for f, n in zip(flood, sizes) if not f.done())
            return c.of_model("dinov3_queue_images") == 3 and waiting == 3
        server.wait_for(settled, "the flood answered RESOURCE_EXHAUSTED or queued, while the "
                        "slow forward is held")
        assert not blocker.done()
        server.release_slow()
        codes = [code_of(f) for f in flood]
        assert code_of(blocker) == OK
        exhausted = [f for f, c in zip(flood, codes) if c == grpc.StatusCode.RESOURCE_EXHAUSTED]
        served = [f for f, c in zip(flood, codes) if c == OK]
        assert len(exhausted) + len(served) == len(flood), codes
        assert exhausted and served, codes
        for f in exhausted:
            assert "max_queue_size 3" in f.exception().details(), f.exception().details()
        one_image_refused = [f"one{i}" for i in range(8)
                             if codes[i] == grpc.StatusCode.RESOURCE_EXHAUSTED]
        assert len(one_image_refused) >= 5, codes  # 3 images fit in the queue
        assert all(order.index(name) < order.index("blocker") for name in one_image_refused), \
            order.names
        after = server.wait_idle()
        assert after.delta(before, "Embed") == {
            "OK": 1 + len(served), "RESOURCE_EXHAUSTED": len(exhausted)}, server.access_log()
        served_images = sum(len(f.result().embeddings) for f in served)
        assert images_run(after, before) == 1 + served_images
        assert after.of_model("dinov3_rejected_total", reason="queue_full") - \
            before.of_model("dinov3_rejected_total", reason="queue_full") == len(exhausted)
        assert after.of_model("dinov3_queue_capacity_images") == 3
        assert_serves_next(server)


# --- clients that never read --------------------------------------------------------------

def serve_others(server, stalled_stub):
    """Other clients' calls while a stream is stalled: Embed and StreamEmbed and a fully read
    EmbedDense on the server's connection, and an Embed on the stalled client's connection."""
    for i in range(3):
        [result] = server.client.embed([noise(80 + i)])
        assert result.cls.shape == (384,)
    requests = [server.client.build_request([noise(90 + i)], request_id=f"o{i}") for i in range(3)]
    answers = list(server.client.stream_embed(requests, timeout=LONG))
    assert sorted(a.request_id for a in answers) == ["o0", "o1", "o2"]
    assert all(a.error is None for a in answers)
    assert server.client.embed_dense(noise(95, (64, 64))).shape == (14, 14, 384)
    request = server.client.build_request([noise(96)])
    assert len(stalled_stub.Embed(request, timeout=LONG).embeddings) == 1
    return {"Embed": 4, "StreamEmbed": 3, "EmbedDense": 1}


def test_unread_embed_dense_does_not_block_others(serial):
    """Two EmbedDense calls of 6 MiB each that are never read: one is cancelled by its client,
    the other's deadline passes; meanwhile others are served."""
    channel, stub = slow_reader(serial.target)
    before = serial.counters()
    try:
        cancelled = stub.EmbedDense(dense_request(1024, seed=6), timeout=LONG)
        # Its deadline must pass after it has run (the test waits for that: under 0.5 s here,
        # 1.2 s on a third of a core), while its answer is stalled: UNREAD_DEADLINE is wide.
        expiring = stub.EmbedDense(dense_request(1024, seed=7), timeout=UNREAD_DEADLINE)
        serial.wait_for(lambda c: images_run(c, before) == 2, "both dense images run")
        others = serve_others(serial, stub)
        during = serial.counters()
        # Still held by the server, blocked by flow control (the other one may have expired).
        assert during.get("dinov3_inflight_requests") >= 1
        assert during.delta(before, "EmbedDense").get("OK") == others["EmbedDense"]
        assert cancelled.cancel()
        assert expiring.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # waits, reads nothing
    finally:
        channel.close()
    after = serial.wait_idle()
    assert after.delta(before, "Embed") == {"OK": others["Embed"]}
    assert images_run(after, before) == 2 + 4 + 3 + 1
    assert_serves_next(serial)
    dense = after.delta(before, "EmbedDense")
    assert dense.pop("OK") == others["EmbedDense"]
    # One final status each, the code its client saw: the server must not report the
    # expired call as a cancellation.
    assert dense == {"CANCELLED": 1, "DEADLINE_EXCEEDED": 1}, serial.access_log()


def test_unread_stream_embed_is_bounded_and_cleaned_up_on_cancel(models, tmp_path):
    """A StreamEmbed client sends 80 requests for patch tokens (~300 KB answers) and never
    reads: the server stops reading the stream (its backlog is bounded), serves others
    meanwhile, and releases everything when the client cancels."""
    with FaultServer(models["fault"], tmp_path / "server.log", *FLAGS) as server:
        channel, stub = slow_reader(server.target)
        before = server.counters()
        sent = 80
        requests = [server.client.build_request([noise(100 + i)], outputs=("patch_tokens",),
                                                request_id=f"u{i}") for i in range(sent)]
        try:
            call = stub.StreamEmbed(iter(requests), timeout=LONG)

            def stalled(c):  # part of the stream answered, nothing of it left to compute
                return (images_run(c, before) >= 1 and c.of_model("dinov3_queue_images") == 0
                        and c.get("dinov3_inflight_requests") == 0)
            server.wait_for(stalled, "the unread stream answered what the server read of it")
            others = serve_others(server, stub)
            during = server.counters()
            read = sum(during.delta(before, "StreamEmbed").values()) - others["StreamEmbed"]
            assert read < sent, "the server read the whole unread stream: no backpressure"
            assert call.cancel()
        finally:
            channel.close()
        after = server.wait_idle()
        stream = after.delta(before, "StreamEmbed")
        accepted = sum(stream.values()) - others["StreamEmbed"]
        assert read <= accepted < sent, (read, accepted, stream)
        assert set(stream) <= {"OK", "CANCELLED"}, stream
        assert stream.get("OK", 0) >= others["StreamEmbed"]
        assert after.delta(before, "Embed") == {"OK": others["Embed"]}
        assert images_run(after, before) <= accepted + 4 + 3 + 1
        assert_serves_next(server)


# --- SIGTERM under sustained load ---------------------------------------------------------

ACCESS = re.compile(r'\[access\] rpc method="(\w+)" model="([^"]*)" code="(\w+)"')


class LoadClient(threading.Thread):
    """Sends calls of one kind back to back until the first one that is not OK; records the
    status of every call (for StreamEmbed: of every answer, and the stream's own status)."""

    def __init__(self, kind, client, progress):
        super().__init__(daemon=True)
        self.kind, self.client, self.progress = kind, client, progress
        self.codes = []  # one per call (per answered message for StreamEmbed)
        self.final = None  # StreamEmbed: the stream's status
        self.calls = 0

    def record(self, code):
        with self.progress:
            self.codes.append(code)
            self.progress.notify_all()

    def run(self):
        if self.kind == "StreamEmbed":
            return self.run_stream()
        seed = 0
        while True:
            seed += 1
            self.calls += 1
            try:
                if self.kind == "Embed":
                    self.client.stub.Embed(self.client.build_request([noise(seed, (64, 64))]),
                                           timeout=LONG)
                else:
                    request = pb2.EmbedDenseRequest(
                        image=self.client.build_request([noise(seed, (64, 96))]).images[0],
                        preprocess=pb2.Preprocess(mode=pb2.RESIZE_KEEP_ASPECT))
                    list(self.client.stub.EmbedDense(request, timeout=LONG))
                code = OK
            except grpc.RpcError as e:
                code = e.code()
            self.record(code)
            if code != OK:
                return

    def run_stream(self):
        window, ended = threading.Semaphore(4), threading.Event()

        def requests():
            seed = 0
            while not ended.is_set():
                if not window.acquire(timeout=0.5):  # at most 4 unanswered requests
                    continue
                seed += 1
                self.calls += 1
                yield self.client.build_request([noise(seed, (64, 64))], request_id=f"s{seed}")

        try:
            for answer in self.client.stub.StreamEmbed(requests(), timeout=LONG):
                self.record(grpc.StatusCode.OK if not answer.HasField("error") else
                            next(c for c in grpc.StatusCode if c.value[0] == answer.error.code))
                window.release()
            self.final = OK
        except grpc.RpcError as e:
            self.final = e.code()
        ended.set()
        window.release()
        self.record(None)  # wakes the test; not an answer


def test_sigterm_during_sustained_load(models, tmp_path):
    """Two Embed clients, one EmbedDense and one StreamEmbed client send continuously; SIGTERM
    once each has been answered 5 times. The server exits 0 within its drain time; every call
    ends with one status, OK or a refusal (UNAVAILABLE; CANCELLED from gRPC for a call that
    arrived as it shut down), each client's last; the server's access log counts exactly the
    answers the clients got (it cannot count refusals made after it stopped listening)."""
    drain = 30
    log_path = tmp_path / "server.log"
    proc, target, client = start_server(models["exported"], str(log_path), "--max_batch_size=4",
                                        f"--drain_seconds={drain}")
    progress = threading.Condition()
    clients = [LoadClient(kind, client, progress)
               for kind in ("Embed", "Embed", "EmbedDense", "StreamEmbed")]
    exit_code = None
    try:
        for c in clients:
            c.start()
        with progress:
            assert progress.wait_for(lambda: all(c.codes.count(OK) >= 5 for c in clients)
                                     or any(c.final or (c.codes and c.codes[-1] not in (OK, None))
                                            for c in clients), timeout=LONG)
        assert all(set(c.codes) <= {OK} for c in clients if c.kind != "StreamEmbed"), \
            [c.codes for c in clients]
        proc.send_signal(signal.SIGTERM)
        for c in clients:
            c.join(timeout=LONG)
            assert not c.is_alive(), f"{c.kind} client hangs after SIGTERM"
        exit_code = proc.wait(timeout=drain + 30)  # a hang guard, not a timing assertion
    finally:
        if exit_code is None:
            proc.kill()
            proc.wait()
        stop_server(proc, client)
    log = log_path.read_text()
    assert exit_code == 0, log[-3000:]
    assert "server stopped" in log

    UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
    for c in clients:
        answers = [code for code in c.codes if code is not None]
        if c.kind == "StreamEmbed":
            assert c.final == UNAVAILABLE, c.final  # ended by the drain, after its answers
            assert set(answers) <= {OK, UNAVAILABLE}, answers
            assert len(answers) <= c.calls
        else:  # OK ... OK and one refusal: one status per call, nothing after the refusal
            assert answers[:-1] == [OK] * (len(answers) - 1), (c.kind, answers)
            assert answers[-1] in (UNAVAILABLE, CANCELLED), (c.kind, answers)
            assert len(answers) == c.calls

    access = ACCESS.findall(log)
    # Every call named no model: each is the served one's (model.pt: "model").
    assert {model for _, model, _ in access} == {model_name(models["exported"])}, access
    server = collections.Counter((method, code) for method, _, code in access)
    for method in ("Embed", "EmbedDense"):
        client_codes = collections.Counter(code for c in clients if c.kind == method
                                           for code in c.codes)
        assert server[(method, "OK")] == client_codes[OK], (method, server, client_codes)
        assert server[(method, "UNAVAILABLE")] <= client_codes[UNAVAILABLE]
        # A call that reaches gRPC as it shuts down, before any handler took it, is cancelled
        # by gRPC itself (the client sees CANCELLED, the server never records it): allowed,
        # but only for calls the server did not handle.
        assert server[(method, "CANCELLED")] == 0
        assert {code for (m, code) in server if m == method} <= {"OK", "UNAVAILABLE"}, server
    [stream] = [c for c in clients if c.kind == "StreamEmbed"]
    stream_codes = collections.Counter(code.name for code in stream.codes if code is not None)
    assert {code: n for (m, code), n in server.items() if m == "StreamEmbed"} == \
        dict(stream_codes), (server, stream_codes)
