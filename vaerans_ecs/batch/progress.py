"""Progress of a running job: the :class:`Progress` snapshot and a text :class:`ProgressBar` for stderr."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

__all__ = ["Progress", "ProgressBar", "format_duration"]


@dataclass(frozen=True)
class Progress:
    """Where a job stands (passed to the ``on_progress`` callback of :func:`run_job`)."""

    done: int
    total: int
    ok: int
    skipped: int
    failed: int
    elapsed: float
    rate: float | None
    eta: float | None
    last: str = ""


def format_duration(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    """A text progress bar with rate and ETA for ``stream`` (stderr): redrawn in place on a
    terminal, else a plain line at most every ``interval`` seconds (and at the end)."""

    def __init__(self, stream: TextIO | None = None, *, width: int = 28, interval: float = 5.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.interval = interval
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_emit = 0.0
        self._open = False

    def line(self, p: Progress) -> str:
        """The bar, counts, percentage, rate, elapsed time, ETA and failures as one line."""
        frac = p.done / p.total if p.total else 1.0
        filled = min(self.width, round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        rate = f"{p.rate:.2f} files/s" if p.rate else "-- files/s"
        eta = f"ETA {format_duration(p.eta)}" if p.eta is not None and p.done < p.total else ""
        fail = f" {p.failed} failed" if p.failed else ""
        return (
            f"[{bar}] {p.done}/{p.total} {frac * 100:3.0f}% {rate} "
            f"{format_duration(p.elapsed)} {eta}{fail}".rstrip()
        )

    def __call__(self, p: Progress) -> None:
        """Show ``p`` (throttled; the final state is always shown)."""
        now = time.monotonic()
        final = p.done >= p.total
        if self.tty:
            if not final and now - self._last_emit < 0.1:
                return
            self.stream.write("\r\x1b[2K" + self.line(p))
            self._open = True
            if final:
                self.stream.write("\n")
                self._open = False
        else:
            if not final and now - self._last_emit < self.interval:
                return
            self.stream.write(self.line(p) + "\n")
        self._last_emit = now
        self.stream.flush()

    def close(self) -> None:
        """End a bar left open (interrupted job)."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
