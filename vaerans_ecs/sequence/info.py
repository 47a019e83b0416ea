"""What a sequence stream holds, read without decoding a frame: sizes, GOPs, bytes per frame."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from vaerans_ecs.config import Config
from vaerans_ecs.core.container import ContainerReader
from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.sequence import format as fmt
from vaerans_ecs.sequence.decoder import SequenceReader

__all__ = ["SequenceInfo", "inspect_sequence"]


@dataclass(frozen=True)
class SequenceInfo:
    """A sequence stream's header and frame layout."""

    header: fmt.Header
    #: Bytes of every frame's section, in order.
    frame_bytes: tuple[int, ...]
    #: Whether each frame is a keyframe.
    keyframes: tuple[bool, ...]
    total_bytes: int
    stages: tuple[dict[str, Any], ...]

    @property
    def frames(self) -> int:
        """Number of frames."""
        return len(self.frame_bytes)

    @property
    def gops(self) -> list[tuple[int, int]]:
        """(first frame, number of frames) of every group of pictures (a keyframe and its inter frames)."""
        starts = [i for i, key in enumerate(self.keyframes) if key]
        ends = [*starts[1:], self.frames]
        return [(s, e - s) for s, e in zip(starts, ends, strict=True)]

    @property
    def bpp(self) -> float:
        """Bits per pixel over all frames (the whole stream)."""
        return self.total_bytes * 8 / max(1, self.frames * self.header.pixels)

    def frame_bpp(self, k: int) -> float:
        """Bits per pixel of frame ``k``'s section."""
        return self.frame_bytes[k] * 8 / self.header.pixels


def inspect_sequence(source: bytes | bytearray | BinaryIO | str | Path, *, max_pixels: int | None = None,
                     config: Config | None = None) -> SequenceInfo:
    """Parse a sequence's header and frame index (or, without one, walk its frame sections)."""
    with SequenceReader(source, max_pixels=max_pixels, config=config) as reader:
        if reader.seekable:
            entries = reader.index()
            sizes = tuple(e.size for e in entries)
            keys = tuple(e.key for e in entries)
            total = reader.size()
        else:
            sizes, keys, total = _walk(reader.container)
        stages = tuple({"stage": s.name, **{k: v for k, v in s.get_config().items() if k not in ("id", "mode")}}
                       for s in reader.stages)
        return SequenceInfo(reader.header, sizes, keys, total, stages)


def _walk(r: ContainerReader) -> tuple[tuple[int, ...], tuple[bool, ...], int]:
    sizes: list[int] = []
    keys: list[bool] = []
    while True:
        before = r.offset
        item = r.next()
        if item is None:
            break
        if item[0] == fmt.section_code("frame"):
            info, _ = fmt.read_frame_info(item[1], len(sizes))
            sizes.append(r.offset - before)
            keys.append(info.key)
    if not sizes:
        raise BitstreamError("the sequence holds no frame")
    return tuple(sizes), tuple(keys), r.offset + 4
