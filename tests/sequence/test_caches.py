"""The motion stages keep recent references between frames and drop them when a sequence is done."""

from __future__ import annotations

import numpy as np

from tests.sequence.conftest import canvas
from vaerans_ecs.sequence import SequenceReader, SequenceWriter
from vaerans_ecs.systems.motion.compensate import reference_planes
from vaerans_ecs.systems.motion.search import luma_pyramid
from vaerans_ecs.systems.motion.stages import release_caches


def test_release_drops_kept_references() -> None:
    img = canvas(48, 64, 3)
    pyramid, planes = luma_pyramid(img, 16), reference_planes(img, 4, 12, {(0, 0)}, "sharp")
    assert luma_pyramid(img, 16) is pyramid and reference_planes(img, 4, 12, {(0, 0)}, "sharp") is planes
    release_caches()
    assert luma_pyramid(img, 16) is not pyramid
    assert reference_planes(img, 4, 12, {(0, 0)}, "sharp") is not planes


def test_writer_and_reader_release_when_done() -> None:
    big = canvas(120, 150, 4)
    frames = [np.ascontiguousarray(big[k: k + 64, 2 * k: 2 * k + 80]) for k in range(5)]
    writer = SequenceWriter(lossless=True, bframes=0)  # lossless: the references are the frames themselves
    for f in frames:
        writer.write(f)
    kept = luma_pyramid(frames[3], 16)  # the last frame's reference, kept since its search
    assert luma_pyramid(frames[3], 16) is kept
    writer.close()
    assert luma_pyramid(frames[3], 16) is not kept  # close() released it
    probe = canvas(48, 64, 5)
    it = iter(SequenceReader(writer.getvalue()))
    decoded = [next(it) for _ in frames]
    kept_planes = reference_planes(probe, 4, 12, {(0, 0)}, "sharp")
    assert reference_planes(probe, 4, 12, {(0, 0)}, "sharp") is kept_planes
    assert next(it, None) is None  # the end of the frames ...
    assert reference_planes(probe, 4, 12, {(0, 0)}, "sharp") is not kept_planes  # ... released the planes
    assert all(np.array_equal(a, b) for a, b in zip(decoded, frames, strict=True))
    reader = SequenceReader(writer.getvalue())
    reader.frame(4)
    kept_planes = reference_planes(probe, 4, 12, {(0, 0)}, "sharp")
    reader.close()
    assert reference_planes(probe, 4, 12, {(0, 0)}, "sharp") is not kept_planes  # close() too
