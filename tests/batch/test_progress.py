"""The progress line the CLI shows during a job."""

from __future__ import annotations

import io

from vaerans_ecs.batch import Progress, ProgressBar


def test_progress_bar_line() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, interval=0.0)
    bar(Progress(5, 10, 4, 0, 1, 10.0, 0.5, 10.0))
    line = stream.getvalue()
    assert "5/10" in line and "50%" in line and "0.50 files/s" in line and "ETA 0:10" in line and "1 failed" in line
