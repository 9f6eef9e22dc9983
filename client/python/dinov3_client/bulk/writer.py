"""The one thread that writes dinov3-embed's output folder (ShardStore): workers hand it each
answered batch's ids, image sizes and results (`results`) and each refused image
(`refused_image`); it buffers rows and commits a shard every `shard_size` rows, and the rest
when `close`d. An id it has already written this run is dropped, so a batch answered twice
(sent again after a lost connection) is written once. Its inbox holds at most INBOX messages:
a writer slower than the servers holds the workers back instead of growing. Once the run has
failed (`failed()` true) nothing more is taken, so that a teardown records nothing.
`done` and `refused` count the images it has taken."""
from __future__ import annotations

import queue
import threading
import numpy as np

from dinov3_client.bulk.store import Rows, ShardStore

INBOX = 64  # messages (answered requests) waiting for the writer
PUT_POLL_SECONDS = 0.25
class ResultWriter(threading.Thread):
    def __init__(self, store: ShardStore, outputs: list[str], shard_size: int, on_failure,
                 failed):
        super().__init__(name="dinov3-embed-writer", daemon=True)
        self.store, self.outputs, self.shard_size = store, outputs, shard_size
        self.on_failure = on_failure  # called with a message when writing fails
        self.failed = failed  # true once the run has failed
        self._inbox: queue.Queue = queue.Queue(maxsize=INBOX)
        self._written: set = set()
        self._rows = self._empty()
        self.done = 0
        self.refused = 0

    def _empty(self) -> Rows:
        return Rows([], [], [], {n: [] for n in self.outputs}, {n: [] for n in self.outputs})

    def _put(self, message) -> None:
        while not self.failed():
            try:
                self._inbox.put(message, timeout=PUT_POLL_SECONDS)
                return
            except queue.Full:
                pass

    def results(self, items, sizes, results) -> None:
        self._put(("results", items, sizes, results))

    def refused_image(self, image_id: str, code: str, message: str) -> None:
        self._put(("refused", image_id, code, message))

    def close(self) -> None:
        """Commits what is buffered and closes the store once everything sent before is written
        (also after a failure: what was answered is kept); waits for it."""
        if self.is_alive():
            self._inbox.put(("close",))
        self.join()

    def run(self) -> None:
        try:
            while self._take(self._inbox.get()):
                pass
        except Exception as e:  # noqa: BLE001 (disk full, permissions: the run must stop)
            self.on_failure(f"writing {self.store.out_dir} failed: {type(e).__name__}: {e}")

    def _take(self, message) -> bool:
        kind = message[0]
        if kind == "results":
            self._add(*message[1:])
        elif kind == "refused":
            if message[1] not in self._written and not self.failed():
                self._written.add(message[1])
                self.store.record_error(*message[1:])
                self.refused += 1
        else:
            self._commit()
            self.store.close()
            return False
        return True

    def _add(self, items, sizes, results) -> None:
        rows = self._rows
        for item, (width, height), result in zip(items, sizes, results):
            if item.id in self._written:
                continue
            self._written.add(item.id)
            rows.ids.append(item.id)
            rows.widths.append(width)
            rows.heights.append(height)
            for name in self.outputs:
                rows.values[name].append(getattr(result, name))
                rows.scales[name].append(result.scales.get(name))
            self.done += 1
            if len(rows.ids) >= self.shard_size:
                self._commit()
                rows = self._rows

    def _commit(self) -> None:
        rows = self._rows
        if not rows.ids:
            return
        values = {n: np.stack(v) for n, v in rows.values.items()}
        scales = {n: np.asarray(s, np.float32).reshape(-1) for n, s in rows.scales.items()
                  if s and s[0] is not None}
        self._rows = self._empty()
        self.store.commit(Rows(rows.ids, rows.widths, rows.heights, values, scales))
