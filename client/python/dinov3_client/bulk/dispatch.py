"""One server's share of a dinov3-embed run: `ServerWorker` keeps a StreamEmbed stream open to
its server with up to `window` requests in flight, each taken from the shared WorkQueue, and
hands the answers to the ResultWriter.

What happens to a request's answer:
  - OK: its results go to the writer, the batch is finished;
  - RETRYABLE codes (a draining, overloaded or unreachable replica): sent again, by any worker,
    after an exponential backoff (RetryPolicy); after `max_attempts` failed sends it is treated
    as refused;
  - FATAL codes (wrong key, unknown model): the run stops with the server's message;
  - anything else (e.g. INVALID_ARGUMENT for a corrupt file): a batch of several images is split
    into one request per image, and a single image is recorded in errors.jsonl with the code and
    message.
When the stream itself fails (the server drains, exits or cannot be reached) every request in
flight on it is queued again for any worker (one more attempt each, with the stream's code),
and this worker reconnects after a backoff until the run is finished. Before each stream it
checks that the server still serves the run's export (weights_sha256); one that does not gets
no more work. Once the run has failed (an interrupt, a fatal answer) answers and lost requests
are ignored: nothing is recorded during the teardown.
"""
from __future__ import annotations

import dataclasses
import itertools
import random
import threading
from typing import Callable

import grpc

from dinov3_client.bulk.work import FINISHED, Batch, WorkQueue
from dinov3_client.client import EmbeddingClient, EmbeddingError

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
             grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
             grpc.StatusCode.CANCELLED}
FATAL = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
         grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED}
POLL_SECONDS = 0.25  # how often a blocked request generator looks whether its stream ended


@dataclasses.dataclass
class RetryPolicy:
    """Backoff base * 2^(attempt-1), capped at `cap`, with up to 50 % random jitter."""
    max_attempts: int = 8
    base: float = 0.2
    cap: float = 10.0

    def delay(self, attempt: int) -> float:
        delay = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        return delay * random.uniform(0.5, 1.0)


@dataclasses.dataclass
class RequestSettings:
    """What every request of the run asks for (EmbeddingClient.build_request's arguments)."""
    outputs: tuple
    dtype: str
    l2_normalize: bool
    preprocess: dict
    model: str


class _Stream:
    """The requests in flight on one StreamEmbed call, by request_id."""

    def __init__(self, window: int):
        self.lock = threading.Lock()
        self.window = threading.Semaphore(window)
        self.inflight: dict = {}
        self.dead = False


class ServerWorker(threading.Thread):
    _request_ids = itertools.count()

    def __init__(self, target: str, client: EmbeddingClient, work: WorkQueue, writer,
                 settings: RequestSettings, window: int, policy: RetryPolicy,
                 weights_sha256: str, log: Callable[[str], None]):
        super().__init__(name=f"dinov3-embed-{target}", daemon=True)
        self.target, self.client, self.work, self.writer = target, client, work, writer
        self.settings, self.window, self.policy = settings, window, policy
        self.weights_sha256, self.log = weights_sha256, log
        self.images = 0  # answered by this server
        self.reconnects = 0
        self.answered = False  # the current stream has answered a request

    def run(self) -> None:
        failures = 0
        while not self.work.finished():
            try:
                if not self._serves_the_run():
                    self.log(f"{self.target} no longer serves the run's model: it gets no more "
                             "work")
                    return
                self.answered = False
                self._stream()
            except EmbeddingError as e:
                if self.work.finished():
                    return
                if e.code in FATAL:
                    self.work.fail(f"{self.target}: {e.code.name}: {e.details}")
                    return
                failures = 1 if self.answered else failures + 1
                self.reconnects += 1
                delay = self.policy.delay(failures)
                self.log(f"{self.target}: {e.code.name}: {e.details}; reconnecting in "
                         f"{delay:.1f} s")
                self.work.wait_finished(delay)
            except Exception as e:  # noqa: BLE001 (a bug must stop the run, not hang it)
                if not self.work.finished():  # else: the channel closed at the end of the run
                    self.work.fail(f"{self.target}: {type(e).__name__}: {e}")
                return

    def _serves_the_run(self) -> bool:
        return self.client.model_info(self.settings.model).weights_sha256 == self.weights_sha256

    def _stream(self) -> None:
        stream = _Stream(self.window)
        code, details = "UNAVAILABLE", "the stream ended before answering"
        try:
            for answer in self.client.stream_embed(self._requests(stream)):
                with stream.lock:
                    batch = stream.inflight.pop(answer.request_id, None)
                stream.window.release()
                self.answered = True
                if batch is not None:
                    self._answered(batch, answer)
        except EmbeddingError as e:
            code, details = e.code.name, f"the stream failed: {e.details}"
            raise
        finally:
            with stream.lock:
                stream.dead = True
                lost = list(stream.inflight.values())
                stream.inflight.clear()
            for batch in lost:
                self._send_again(batch, code, details)

    def _requests(self, stream: _Stream):
        """The stream's requests: a batch whenever the window has room, until the run is
        finished or the stream has ended (a batch taken then is queued again, never lost)."""
        while True:
            while not stream.window.acquire(timeout=POLL_SECONDS):
                if stream.dead or self.work.finished():
                    return
            batch = None
            while batch is None:
                if stream.dead:
                    return
                batch = self.work.take(POLL_SECONDS)
            if batch is FINISHED:
                return
            request_id = f"bulk-{next(self._request_ids)}"
            try:
                request = self._request(batch, request_id)
            except Exception as e:  # noqa: BLE001 (raised here it would read as a lost stream)
                self.work.fail(f"building a request of {batch.items[0].id!r} failed: "
                               f"{type(e).__name__}: {e}")
                return
            with stream.lock:
                if stream.dead:
                    self.work.retry(batch, 0.0)
                    return
                stream.inflight[request_id] = batch
            yield request

    def _request(self, batch: Batch, request_id: str):
        s = self.settings
        return self.client.build_request(batch.data, s.outputs, s.dtype, s.l2_normalize,
                                         s.preprocess or None, [i.id for i in batch.items],
                                         request_id=request_id, model=s.model)

    def _answered(self, batch: Batch, answer) -> None:
        if self.work.failure is not None:
            return  # the run is over: nothing more is recorded
        if answer.error is None:
            if [r.id for r in answer.results] != [i.id for i in batch.items]:
                self.work.fail(f"{self.target} answered a request with other image ids")
                return
            self.writer.results(batch.items, batch.sizes, answer.results)
            self.images += len(batch.items)
            self.work.finish(batch)
            return
        code, details = answer.error.code, answer.error.details
        if code in FATAL:
            self.work.fail(f"{self.target}: {code.name}: {details}")
        elif code in RETRYABLE:
            self._send_again(batch, code.name, details)
        else:
            self._refuse(batch, code.name, details)

    def _send_again(self, batch: Batch, code: str, details: str) -> None:
        if self.work.failure is not None:
            return  # the run is over: a lost request is done by --resume
        batch.attempts += 1
        if batch.attempts >= self.policy.max_attempts:
            self._refuse(batch, code, f"gave up after {batch.attempts} attempts: {details}")
        else:
            self.work.retry(batch, self.policy.delay(batch.attempts))

    def _refuse(self, batch: Batch, code: str, details: str) -> None:
        if len(batch.items) > 1:
            self.work.split(batch)  # one request per image finds which one is refused
            return
        self.writer.refused_image(batch.items[0].id, code, details)
        self.work.finish(batch)
