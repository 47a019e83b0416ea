"""Image sequences: keyframes through the image pipeline, inter frames through motion stages.

``compress_sequence(frames, quality=...)`` -> bytes, :class:`SequenceWriter` to stream frames to
a file, ``decompress_sequence(data_or_file)`` yields frames, ``decompress_frame(data, k)`` decodes
only from the keyframe before ``k``, ``inspect_sequence(data)`` reports frames, GOPs and sizes.
Stream layout: :mod:`vaerans_ecs.sequence.format`; stages: :mod:`vaerans_ecs.systems.motion`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.config import Config
from vaerans_ecs.sequence.decoder import SequenceReader
from vaerans_ecs.sequence.encoder import DEFAULT_GOP, SequenceWriter, compress_sequence
from vaerans_ecs.sequence.format import Header, Mode
from vaerans_ecs.sequence.info import SequenceInfo, inspect_sequence

__all__ = [
    "DEFAULT_GOP",
    "Header",
    "Mode",
    "SequenceInfo",
    "SequenceReader",
    "SequenceWriter",
    "compress_sequence",
    "decompress_frame",
    "decompress_sequence",
    "inspect_sequence",
    "is_sequence",
]

Source = bytes | bytearray | BinaryIO | str | Path


def decompress_sequence(source: Source, *, max_pixels: int | None = None,
                        config: Config | None = None) -> Iterator[NDArray[np.uint8]]:
    """Yield the frames of a sequence stream (bytes, binary file or path), one at a time."""
    with SequenceReader(source, max_pixels=max_pixels, config=config) as reader:
        yield from reader


def decompress_frame(source: Source, k: int, *, max_pixels: int | None = None,
                     config: Config | None = None) -> NDArray[np.uint8]:
    """Frame ``k`` alone, decoded from the keyframe at or before it."""
    with SequenceReader(source, max_pixels=max_pixels, config=config) as reader:
        return reader.frame(k)


def is_sequence(prefix: bytes) -> bool:
    """True when ``prefix`` (at least 6 bytes) starts like a sequence stream."""
    from vaerans_ecs.core.container import MAGIC
    from vaerans_ecs.sequence.format import section_code

    return len(prefix) >= 6 and prefix[:4] == MAGIC and prefix[4] == 2 and prefix[5] == section_code("sequence")
