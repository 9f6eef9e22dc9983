"""The requests dinov3-embed has still to get answered, shared by its reader and its server
workers (thread-safe).

A Batch is one EmbedRequest's worth of images (their Items and bytes). `WorkQueue` holds fresh
batches (bounded: `put` blocks the reader while `capacity` wait) and batches to send again, each
due at a time (`retry`). A batch is outstanding from `put` until a worker `finish`es it (its
results or errors handed to the writer) or `split`s it into single-image batches. The run is
finished when the reader is done and nothing is outstanding, or when `fail` was called.
"""
from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools
import threading
import time
from typing import Optional

from dinov3_client.bulk.sources import Item

FINISHED = object()  # what take() returns once the run is finished


@dataclasses.dataclass
class Batch:
    items: list[Item]
    data: list[bytes]   # the encoded images
    sizes: list[tuple]  # (width, height) of each, after EXIF orientation ((0, 0): unknown)
    attempts: int = 0   # failed sends so far (retryable errors, lost connections)

    def singles(self) -> list["Batch"]:
        return [Batch([item], [data], [size])
                for item, data, size in zip(self.items, self.data, self.sizes)]


class WorkQueue:
    def __init__(self, capacity: int):
        self._cond = threading.Condition()
        self._capacity = capacity
        self._fresh: collections.deque = collections.deque()
        self._due: list = []  # heap of (due time, sequence, batch)
        self._sequence = itertools.count()
        self._outstanding = 0
        self._reading = True
        self.failure: Optional[str] = None

    def put(self, batch: Batch) -> bool:
        """Adds a fresh batch, waiting while the queue is full; False once the run failed."""
        with self._cond:
            while len(self._fresh) >= self._capacity and self.failure is None:
                self._cond.wait()
            if self.failure is not None:
                return False
            self._fresh.append(batch)
            self._outstanding += 1
            self._cond.notify_all()
            return True

    def reading_done(self) -> None:
        with self._cond:
            self._reading = False
            self._cond.notify_all()

    def retry(self, batch: Batch, delay: float) -> None:
        """Sends `batch` again (it stays outstanding), not before `delay` seconds from now."""
        with self._cond:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._sequence), batch))
            self._cond.notify_all()

    def split(self, batch: Batch) -> None:
        """Replaces `batch` by one batch per image, due now (to find which image is refused)."""
        with self._cond:
            now = time.monotonic()
            for single in batch.singles():
                heapq.heappush(self._due, (now, next(self._sequence), single))
            self._outstanding += len(batch.items) - 1
            self._cond.notify_all()

    def finish(self, batch: Batch) -> None:
        with self._cond:
            self._outstanding -= 1
            self._cond.notify_all()

    def fail(self, reason: str) -> None:
        """Ends the run: the first reason is kept; every wait returns."""
        with self._cond:
            if self.failure is None:
                self.failure = reason
            self._cond.notify_all()

    def finished(self) -> bool:
        with self._cond:
            return self._finished()

    def _finished(self) -> bool:
        return self.failure is not None or (not self._reading and self._outstanding == 0)

    def take(self, timeout: float):
        """The next batch to send (retries that are due first), None after `timeout` seconds
        without one, or FINISHED."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._finished():
                    return FINISHED
                now = time.monotonic()
                if self._due and self._due[0][0] <= now:
                    return heapq.heappop(self._due)[2]
                if self._fresh:
                    batch = self._fresh.popleft()
                    self._cond.notify_all()  # room for the reader
                    return batch
                wake = deadline if not self._due else min(deadline, self._due[0][0])
                if now >= deadline:
                    return None
                self._cond.wait(wake - now)

    def wait_finished(self, timeout: float) -> bool:
        with self._cond:
            self._cond.wait_for(self._finished, timeout)
            return self._finished()
