"""The sequence stream: a v2 container of a header, one section per frame and a frame index.

Top-level sections, in order::

    sequence      0x10  critical   header: format, size, coding mode, GOP, frame rate
    frame-names   0x92  ancillary  optional: how the source named its frames ('frame_{:04d}.png')
    pipeline      0x02  critical   the P-frames' stages (write_stage records), once
    b-pipeline    0x15  critical   optional: the B-frames' stages, once
    frame         0x11  critical   one per frame (repeatable); its body is a section list:
        frame-info 0x14            flags (key, image, bi), display number, CRC-32 of the rest of
                                   the body, CRC-32 of the decoded pixels
        image, pipeline, model, quant, payload, ...   a keyframe coded by the image pipeline
                                   (an image stream's sections: wrapped back into a stream to decode)
        pipeline?, motion, residual                   a frame coded by sequence stages (an
                                   inter frame, or an intra frame of the lossless modes); a frame
                                   without a pipeline uses the header's
    frame-index   0x90  ancillary  frame count, offset of the first frame, per frame (stream order):
                                   size, key and B bits, display number
    index-locator 0x91  ancillary  8 bytes: the frame-index section's offset (always the last
                                   section, so a reader finds it 14 bytes before the end)

Everything the header declares is validated before any frame is decoded; a frame's own CRC is
checked before its payload is touched, so a streaming decoder detects corruption in the frame it
is decoding (the container's CRC covers the whole stream and is checked at its end).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from vaerans_ecs.core.byteio import ByteReader, ByteWriter
from vaerans_ecs.core.container import ANCILLARY, SECTION_TYPES, pack_section, register_section
from vaerans_ecs.errors import BitstreamError, VaeransError

__all__ = [
    "FORMAT",
    "MAX_FRAMES",
    "FrameEntry",
    "FrameInfo",
    "Header",
    "Mode",
    "pack_frame_info",
    "pack_header",
    "pack_index",
    "read_frame_info",
    "read_header",
    "read_index",
    "section_code",
]

#: Format of the sequence header (a new layout gets a new number).
FORMAT = 1
#: Most frames one stream may index.
MAX_FRAMES = 1 << 24
#: Bytes of the locator section (code, length, 8-byte offset) plus the container's CRC.
TRAILER = 2 + 8 + 4

register_section(0x10, "sequence", "sequence: the header (size, coding mode, GOP)")
register_section(0x11, "frame", "sequence: one frame (a nested section list)", repeatable=True)
register_section(0x14, "frame-info", "sequence: a frame's number, kind and checks")
register_section(0x15, "b-pipeline", "sequence: the B-frames' stages (write_stage records), once")
register_section(ANCILLARY | 0x10, "frame-index", "sequence: frame sizes and keyframes, for random access")
register_section(ANCILLARY | 0x11, "index-locator", "sequence: the offset of the frame index")
register_section(ANCILLARY | 0x12, "frame-names", "sequence: how the source named its frames ('frame_{:04d}.png')")

#: What a frame-name pattern may look like: safe file-name characters around one integer field.
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{0,100}\{:0?[1-9]?d\}[A-Za-z0-9._-]{0,100}\.png")


def check_names(pattern: str) -> str | None:
    """``pattern`` when it is a safe frame-name pattern (no folders, one integer field), else None."""
    return pattern if NAME_PATTERN.fullmatch(pattern) and ".." not in pattern else None


def section_code(name: str) -> int:
    """Type code of a registered section."""
    return SECTION_TYPES.get(name).code


class Mode(IntEnum):
    """How a sequence's frames are coded."""

    LOSSY = 0
    LOSSLESS = 1
    NEAR_LOSSLESS = 2  # every pixel within max_error


@dataclass(frozen=True)
class Header:
    """What the ``sequence`` section declares."""

    height: int
    width: int
    channels: int = 3
    mode: Mode = Mode.LOSSY
    max_error: int = 0
    gop: int = 0  # the longest keyframe interval the encoder allowed (0: no limit)
    fps_num: int = 0
    fps_den: int = 0

    @property
    def pixels(self) -> int:
        """Pixels per frame."""
        return self.height * self.width

    def frame_limit(self) -> int:
        """Most bytes one frame section may hold (far above any coder's worst case)."""
        return 4 * self.pixels * self.channels + (1 << 16)


def pack_header(h: Header) -> bytes:
    """Body of the ``sequence`` section."""
    w = ByteWriter()
    w.u8(FORMAT)
    w.varint(h.height)
    w.varint(h.width)
    w.u8(h.channels)
    w.u8(int(h.mode))
    w.u8(h.max_error)
    w.varint(h.gop)
    w.varint(h.fps_num)
    w.varint(h.fps_den)
    return bytes(w.buf)


def read_header(body: bytes, max_pixels: int) -> Header:
    """Parse and validate the ``sequence`` section against ``max_pixels``."""
    r = ByteReader(body, "sequence section")
    fmt = r.u8()
    if fmt != FORMAT:
        raise BitstreamError(f"sequence format {fmt} is not supported (this build reads {FORMAT})")
    height, width = r.varint(1 << 31), r.varint(1 << 31)
    channels, mode, max_error = r.u8(), r.u8(), r.u8()
    gop, fps_num, fps_den = r.varint(MAX_FRAMES), r.varint(1 << 32), r.varint(1 << 32)
    r.end()
    if height == 0 or width == 0:
        raise BitstreamError(f"sequence declares empty frames ({height}x{width})")
    if height * width > max_pixels:
        raise BitstreamError(f"sequence declares {height}x{width} frames, over max_pixels={max_pixels} "
                             "(raise [runtime] max_pixels to decode it)")
    if channels != 3:
        raise BitstreamError(f"sequence declares {channels} channels; this build codes RGB frames")
    if mode > Mode.NEAR_LOSSLESS:
        raise BitstreamError(f"sequence declares unknown coding mode {mode}")
    if (mode == Mode.NEAR_LOSSLESS) != (max_error > 0) or max_error > 16:
        raise BitstreamError(f"sequence declares max_error {max_error} with mode {mode}")
    return Header(height, width, channels, Mode(mode), max_error, gop, fps_num, fps_den)


@dataclass(frozen=True)
class FrameInfo:
    """A frame's ``frame-info`` section."""

    number: int  # its place in display order
    key: bool
    image: bool  # coded by the image pipeline (an image stream's sections follow)
    body_crc: int
    pixels_crc: int
    bi: bool = False  # a B-frame: predicted from the anchors before and after it, referenced by none


def pack_frame_info(number: int, key: bool, image: bool, rest: bytes, pixels_crc: int, bi: bool = False) -> bytes:
    """The frame-info section (code included) for a frame whose other sections are ``rest``."""
    w = ByteWriter()
    w.u8(int(key) | int(image) << 1 | int(bi) << 2)
    w.varint(number)
    body = bytes(w.buf) + struct.pack("<II", zlib.crc32(rest), pixels_crc)
    return pack_section(section_code("frame-info"), body)


def read_frame_info(body: bytes, expected: int | None) -> tuple[FrameInfo, bytes]:
    """Split a frame section's body into its checked frame-info and the rest (CRC verified).

    ``expected`` (when given) is the number the frame must carry.
    """
    where = "a frame" if expected is None else f"frame {expected}"
    r = ByteReader(body, where)
    if r.remaining() == 0 or r.u8() != section_code("frame-info"):
        raise BitstreamError(f"{where} does not start with its frame-info section")
    info = ByteReader(r.blob(), f"{where}'s info")
    flags = info.u8()
    number = info.varint(MAX_FRAMES)
    body_crc, pixels_crc = struct.unpack("<II", info.take(8))
    info.end()
    if flags > 7 or (flags & 2 and not flags & 1) or (flags & 4 and flags & 1):
        raise BitstreamError(f"frame {number}: invalid flags {flags:#04x}")
    if expected is not None and number != expected:
        raise BitstreamError(f"frame {expected} is numbered {number}: frames are missing, repeated or reordered")
    rest = r.take(r.remaining())
    if zlib.crc32(rest) != body_crc:
        raise BitstreamError(f"frame {number}: checksum mismatch (the frame's data is corrupted)")
    return FrameInfo(number, bool(flags & 1), bool(flags & 2), body_crc, pixels_crc, bool(flags & 4)), rest


@dataclass(frozen=True)
class FrameEntry:
    """One frame in the index (stream order): where its section starts, its size, kind and display number."""

    offset: int
    size: int
    key: bool
    bi: bool = False
    number: int = 0


def pack_index(first: int, entries: list[tuple[int, bool, bool, int]]) -> bytes:
    """Body of ``frame-index``: count, first frame offset, then per frame in stream order
    ``size << 2 | bi << 1 | key`` and its display number."""
    w = ByteWriter()
    w.varint(len(entries))
    w.varint(first)
    for size, key, bi, number in entries:
        w.varint(size << 2 | int(bi) << 1 | int(key))
        w.varint(number)
    return bytes(w.buf)


def read_index(body: bytes, stream_size: int) -> list[FrameEntry]:
    """Parse the frame index; the count is checked against the body length before any list is built.

    Display numbers must be a permutation of 0..count-1, the first frame a keyframe, no frame both
    a keyframe and a B-frame.
    """
    r = ByteReader(body, "frame index")
    count = r.varint(MAX_FRAMES)
    first = r.varint(stream_size)
    if 2 * count > r.remaining():  # every entry takes at least two bytes
        raise BitstreamError(f"frame index declares {count} frames in {r.remaining()} bytes")
    entries: list[FrameEntry] = []
    seen = bytearray(count)
    offset = first
    for k in range(count):
        v = r.varint(stream_size << 2 | 3)
        number = r.varint(count - 1) if count else r.varint(0)
        size, key, bi = v >> 2, bool(v & 1), bool(v & 2)
        if size < 4 or offset + size > stream_size:
            raise BitstreamError(f"frame index: frame {k} lies outside the stream")
        if seen[number] or (key and bi):
            raise BitstreamError(f"frame index: entry {k} repeats frame {number} or is a keyframe and a B-frame")
        seen[number] = 1
        entries.append(FrameEntry(offset, size, key, bi, number))
        offset += size
    r.end()
    if entries and not entries[0].key:
        raise BitstreamError("frame index: the first frame is not a keyframe")
    return entries


def pack_locator(index_offset: int) -> bytes:
    """Body of the ``index-locator`` section."""
    return struct.pack("<Q", index_offset)


def locate_index(trailer: bytes) -> int:
    """The frame index's offset from the stream's last :data:`TRAILER` bytes."""
    if len(trailer) != TRAILER or trailer[0] != section_code("index-locator") or trailer[1] != 8:
        raise BitstreamError("the stream has no frame index at its end (truncated, or not a sequence)")
    (offset,) = struct.unpack("<Q", trailer[2:10])
    return int(offset)


def check(condition: bool, message: str) -> None:
    """Raise :class:`VaeransError` with ``message`` unless ``condition`` (encoder-side checks)."""
    if not condition:
        raise VaeransError(message)
