"""dinov3-embed's progress report: on a terminal a bar redrawn in place; otherwise (a log, a
pipe) a plain line every `every` seconds. Both show images done and refused, images/s over the
run and, when the total is known, the percentage and an ETA."""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

BAR_WIDTH = 30


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """`update(done, refused, skipped)` at any rate; it draws at most every `every` seconds (0.2
    s on a terminal). `done` and `refused` count this run's images, `skipped` those an earlier
    run finished (--resume)."""

    def __init__(self, total: Optional[int], stream: TextIO = sys.stderr, every: float = 10.0):
        self.total, self.stream = total, stream
        self.terminal = stream.isatty()
        self.every = 0.2 if self.terminal else every
        self.start = time.monotonic()
        self.last_draw = self.start

    def rate(self, done: int) -> float:
        elapsed = time.monotonic() - self.start
        return done / elapsed if elapsed > 0 else 0.0

    def line(self, done: int, refused: int, skipped: int) -> str:
        rate = self.rate(done)
        text = f"{done + skipped} images"
        if self.total is not None:
            finished = done + refused + skipped
            fraction = finished / self.total if self.total else 1.0
            left = self.total - finished
            eta = _clock(left / rate) if rate > 0 else "?"
            bar = "#" * int(fraction * BAR_WIDTH)
            text = (f"[{bar:<{BAR_WIDTH}}] {100 * fraction:5.1f}% {finished}/{self.total}, "
                    f"ETA {eta}") if self.terminal else (
                    f"{finished}/{self.total} ({100 * fraction:.1f}%), ETA {eta}")
        return (f"{text}, {refused} refused, {rate:.1f} images/s, "
                f"{_clock(time.monotonic() - self.start)} elapsed")

    def update(self, done: int, refused: int, skipped: int) -> None:
        now = time.monotonic()
        if now - self.last_draw < self.every:
            return
        self.last_draw = now
        if self.terminal:
            self.stream.write("\r" + self.line(done, refused, skipped) + "\x1b[K")
        else:
            self.stream.write(self.line(done, refused, skipped) + "\n")
        self.stream.flush()

    def finish(self, done: int, refused: int, skipped: int) -> None:
        start = "\r" if self.terminal else ""
        self.stream.write(start + self.line(done, refused, skipped) + "\n")
        self.stream.flush()
