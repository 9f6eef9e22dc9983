"""The one thread that writes dinov3-embed's output folder (ShardStore): workers hand it each
answered batch (`results`) and each refused image (`refused`); it buffers rows and commits a
shard every `shard_size` rows, and the rest when `close`d. An id it has already written this
run is dropped, so a batch answered twice (sent again after a lost connection) is written once.
`done` and `refused` count the images it has taken."""
from __future__ import annotations

import io
import queue
import threading
from typing import Optional

import numpy as np

from dinov3_client.bulk.store import Rows, ShardStore

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of encoded image bytes after EXIF orientation, from the header only;
    (0, 0) when Pillow cannot read it (the server decoded it, so the row is still written)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if image.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED:
                width, height = height, width
            return width, height
    except Exception:  # noqa: BLE001 (any decoder error of any format)
        return 0, 0


class ResultWriter(threading.Thread):
    def __init__(self, store: ShardStore, outputs: list[str], shard_size: int, on_failure):
        super().__init__(name="dinov3-embed-writer", daemon=True)
        self.store, self.outputs, self.shard_size = store, outputs, shard_size
        self.on_failure = on_failure  # called with a message when writing fails
        self._inbox: queue.Queue = queue.Queue()
        self._written: set = set()
        self._rows = self._empty()
        self.done = 0
        self.refused = 0

    def _empty(self) -> Rows:
        return Rows([], [], [], {n: [] for n in self.outputs}, {n: [] for n in self.outputs})

    def results(self, batch, results) -> None:
        self._inbox.put(("results", batch, results))

    def refused_image(self, image_id: str, code: str, message: str) -> None:
        self._inbox.put(("refused", image_id, code, message))

    def close(self) -> None:
        """Commits what is buffered and closes the store once everything sent before is written;
        waits for it."""
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
            self._add(message[1], message[2])
        elif kind == "refused":
            if message[1] not in self._written:
                self._written.add(message[1])
                self.store.record_error(*message[1:])
                self.refused += 1
        else:
            self._commit()
            self.store.close()
            return False
        return True

    def _add(self, batch, results) -> None:
        rows = self._rows
        for item, data, result in zip(batch.items, batch.data, results):
            if item.id in self._written:
                continue
            self._written.add(item.id)
            width, height = image_size(data)
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

    def _commit(self) -> Optional[str]:
        rows = self._rows
        if not rows.ids:
            return None
        values = {n: np.stack(v) for n, v in rows.values.items()}
        scales = {n: np.asarray(s, np.float32).reshape(-1) for n, s in rows.scales.items()
                  if s and s[0] is not None}
        self._rows = self._empty()
        return self.store.commit(Rows(rows.ids, rows.widths, rows.heights, values, scales))
