"""What dinov3-embed does with each kind of answer (dispatch.ServerWorker), without a server:
a fake writer records what it is handed, and the WorkQueue shows what is sent again.

  - OK: the results go to the writer and the batch is finished;
  - UNAVAILABLE / RESOURCE_EXHAUSTED: the batch is queued again (backoff), and after
    max_attempts sends its images are refused with the code;
  - INVALID_ARGUMENT: a batch of several images is split into single-image batches; a single
    image is recorded as refused with the server's message;
  - UNAUTHENTICATED: the run fails with the server's message;
  - a lost stream queues every request in flight on it again (and the unsent ones stay);
  - once the run has failed, nothing is recorded (no refusal, no result) during the teardown.
"""
import os
import sys

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "client", "python"))
from dinov3_client.bulk.dispatch import (RequestSettings, RetryPolicy,  # noqa: E402
                                         ServerWorker)
from dinov3_client.bulk.sources import Item  # noqa: E402
from dinov3_client.bulk.work import FINISHED, Batch, WorkQueue  # noqa: E402
from dinov3_client.client import EmbeddingError, StreamAnswer  # noqa: E402


class FakeWriter:
    def __init__(self):
        self.written, self.refused = [], []

    def results(self, items, sizes, results):
        self.written += [item.id for item in items]

    def refused_image(self, image_id, code, message):
        self.refused.append((image_id, code, message))


class Result:
    def __init__(self, image_id):
        self.id = image_id


def batch_of(*ids):
    return Batch([Item(i, i) for i in ids], [b"x"] * len(ids), [(1, 1)] * len(ids))


def make_worker(max_attempts=3):
    work, writer = WorkQueue(capacity=8), FakeWriter()
    worker = ServerWorker("fake:1", None, work, writer,
                          RequestSettings(("cls",), "float32", False, {}, ""), 2,
                          RetryPolicy(max_attempts=max_attempts, base=0.0, cap=0.0), "sha",
                          lambda message: None)
    return worker, work, writer


def answer(batch, code=None, details=""):
    error = None if code is None else EmbeddingError("StreamEmbed", code, details)
    return StreamAnswer("r", [] if error else [Result(i.id) for i in batch.items], error)


def taken(work):
    """Every batch the queue hands out now, as lists of ids."""
    batches = []
    while (batch := work.take(0.0)) not in (None, FINISHED):
        batches.append([item.id for item in batch.items])
    return batches


def test_ok_answers_are_written_and_finish_the_run():
    worker, work, writer = make_worker()
    batch = batch_of("a", "b")
    work.put(batch)
    work.reading_done()
    assert taken(work) == [["a", "b"]]
    worker._answered(batch, answer(batch))
    assert writer.written == ["a", "b"] and work.finished()


def test_retryable_codes_are_sent_again_then_refused_after_max_attempts():
    worker, work, writer = make_worker(max_attempts=3)
    batch = batch_of("a")
    work.put(batch)
    work.reading_done()
    taken(work)
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
        worker._answered(batch, answer(batch, code, "busy"))
        assert taken(work) == [["a"]] and not writer.refused
    worker._answered(batch, answer(batch, grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full"))
    assert writer.refused == [("a", "RESOURCE_EXHAUSTED", "gave up after 3 attempts: queue full")]
    assert work.finished()


def test_a_refused_batch_is_split_and_the_bad_image_recorded():
    worker, work, writer = make_worker()
    batch = batch_of("a", "b", "c")
    work.put(batch)
    work.reading_done()
    taken(work)
    worker._answered(batch, answer(batch, grpc.StatusCode.INVALID_ARGUMENT, "image[1]: bad"))
    singles = batch.singles()
    assert taken(work) == [["a"], ["b"], ["c"]] and not work.finished()
    worker._answered(singles[0], answer(singles[0]))
    worker._answered(singles[1], answer(singles[1], grpc.StatusCode.INVALID_ARGUMENT,
                                        "image[0]: unsupported format GIF"))
    worker._answered(singles[2], answer(singles[2]))
    assert writer.written == ["a", "c"]
    assert writer.refused == [("b", "INVALID_ARGUMENT", "image[0]: unsupported format GIF")]
    assert work.finished()


def test_fatal_codes_fail_the_run():
    worker, work, writer = make_worker()
    batch = batch_of("a")
    work.put(batch)
    worker._answered(batch, answer(batch, grpc.StatusCode.UNAUTHENTICATED, "no key"))
    assert work.failure == "fake:1: UNAUTHENTICATED: no key"
    assert work.take(0.0) is FINISHED


class DyingStreamClient:
    """stream_embed reads `reads` requests, answers the first of them, then fails UNAVAILABLE
    (a server that drained or died with requests in flight)."""

    def __init__(self, reads):
        self.reads = reads

    def build_request(self, data, *args, request_id="", **kwargs):
        return request_id

    def stream_embed(self, requests):
        sent = [next(requests) for _ in range(self.reads)]
        yield StreamAnswer(sent[0], [Result("a")], None)
        raise EmbeddingError("StreamEmbed", grpc.StatusCode.UNAVAILABLE, "server is draining")


def test_requests_in_flight_on_a_lost_stream_are_queued_again():
    worker, work, writer = make_worker()
    worker.client = DyingStreamClient(reads=3)
    for ids in (("a",), ("b",), ("c",), ("d",)):
        work.put(batch_of(*ids))
    work.reading_done()
    worker.window = 4
    try:
        worker._stream()
        raise AssertionError("the stream's failure was swallowed")
    except EmbeddingError as e:
        assert e.code == grpc.StatusCode.UNAVAILABLE
    assert writer.written == ["a"]
    assert sorted(taken(work)) == [["b"], ["c"], ["d"]]  # the lost two and the unsent one


def test_a_failed_run_records_nothing_during_its_teardown():
    worker, work, writer = make_worker(max_attempts=1)
    worker.client = DyingStreamClient(reads=2)
    for ids in (("a",), ("b",)):
        work.put(batch_of(*ids))
    work.fail("interrupted")
    worker.run()  # returns at once: the run is over
    batch = batch_of("c")
    worker._send_again(batch, "UNAVAILABLE", "lost")  # max_attempts 1: it would be refused
    worker._answered(batch, answer(batch))
    assert writer.written == [] and writer.refused == [] and batch.attempts == 0
