"""Streaming: encoder and decoder memory do not grow with the number of frames."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.sequence.conftest import canvas
from vaerans_ecs.sequence import SequenceWriter, decompress_sequence
from vaerans_ecs.systems.motion.stages import BlockMotion, MotionCompensate, TransformResidual


class CountingSink(io.RawIOBase):
    """A binary output that keeps nothing but the number of bytes written."""

    def __init__(self) -> None:
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.count += len(b)
        return len(b)


def frames(n: int) -> Iterator[NDArray[np.uint8]]:
    """``n`` frames panning over (and around) one canvas, made one at a time."""
    big = canvas(64, 96, 2)
    for k in range(n):
        y, x = k % 40, (2 * k) % 64
        yield np.ascontiguousarray(big[y: y + 24, x: x + 32])


def _writer(out: io.RawIOBase | Path) -> SequenceWriter:
    stages = [BlockMotion(levels=0, radius=2, subpel=1), MotionCompensate(obmc=False), TransformResidual(levels=1)]
    return SequenceWriter(out, quality=50, gop=1000, stages=stages, scene_cut=None)


def encode(n: int, out: io.RawIOBase | Path) -> None:
    with _writer(out) as writer:
        for frame in frames(n):
            writer.write(frame)


def encode_peak(n: int, out: io.RawIOBase | Path) -> int:
    tracemalloc.start()
    try:
        encode(n, out)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def decode_peak(path: Path) -> int:
    tracemalloc.start()
    try:
        count = sum(1 for _ in decompress_sequence(path))
        assert count > 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_peak_memory_for_300_frames_is_that_for_30(tmp_path: Path) -> None:
    long_path, short_path = tmp_path / "300.vaes", tmp_path / "30.vaes"
    # warm-up, untraced: the model session and the entropy coder's (bounded, process-wide) model
    # caches fill up here, so that the comparison sees only what the sequence code keeps per frame
    encode(300, long_path)
    short, long = encode_peak(30, short_path), encode_peak(300, CountingSink())
    assert long <= 1.10 * short, (short, long)
    d_short, d_long = decode_peak(short_path), decode_peak(long_path)
    assert d_long <= 1.10 * d_short, (d_short, d_long)
