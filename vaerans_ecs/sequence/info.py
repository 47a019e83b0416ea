"""What a sequence stream holds, read without decoding a frame: sizes, GOPs, bytes per frame."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from vaerans_ecs.config import Config
from vaerans_ecs.core.container import pack_section
from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.sequence import format as fmt
from vaerans_ecs.sequence.decoder import SequenceReader

__all__ = ["SequenceInfo", "inspect_sequence"]


@dataclass(frozen=True)
class SequenceInfo:
    """A sequence stream's header and frame layout."""

    header: fmt.Header
    #: Bytes of every frame's section, in display order.
    frame_bytes: tuple[int, ...]
    #: Whether each frame is a keyframe.
    keyframes: tuple[bool, ...]
    total_bytes: int
    stages: tuple[dict[str, Any], ...]
    #: Whether each frame is a B-frame.
    bframes: tuple[bool, ...] = ()

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
            entries = sorted(reader.index(), key=lambda e: e.number)
            sizes = tuple(e.size for e in entries)
            keys = tuple(e.key for e in entries)
            bis = tuple(e.bi for e in entries)
            total = reader.size()
        else:
            sizes, keys, bis, total = _walk(reader)
        stages = tuple({"stage": s.name, **{k: v for k, v in s.get_config().items() if k not in ("id", "mode")}}
                       for s in reader.stages)
        return SequenceInfo(reader.header, sizes, keys, total, stages, bis)


def _walk(reader: SequenceReader) -> tuple[tuple[int, ...], tuple[bool, ...], tuple[bool, ...], int]:
    """Sizes, key and B flags in display order, and the stream length, from one pass over the sections."""
    frames: dict[int, tuple[int, bool, bool]] = {}
    for code, body in reader.sections():
        if code == fmt.section_code("frame"):
            info, _ = fmt.read_frame_info(body, None)
            if info.number in frames or info.number > fmt.MAX_FRAMES:
                raise BitstreamError(f"frame {info.number} appears twice")
            frames[info.number] = (len(pack_section(code, body)), info.key, info.bi)
    if not frames or sorted(frames) != list(range(len(frames))):
        raise BitstreamError("the sequence's frames are not numbered 0..n-1")
    rows = [frames[k] for k in range(len(frames))]
    return (tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows),
            reader.container.offset)
