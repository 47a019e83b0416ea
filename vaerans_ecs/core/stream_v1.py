"""Bitstream v1 (read only; the library writes v2, :mod:`vaerans_ecs.core.container`).

Layout (all integers are LEB128 varints unless noted; spec and compatibility promise in
``docs/bitstream.md``)::

    magic      4 bytes  b"\\x89VAE"
    version    1 byte   1
    flags      1 byte   0 (reserved; nonzero is refused)
    height, width       source image size in pixels
    pipeline            n_systems (1 byte), then per system: code (0 = name string follows),
                        then its stream fields as tagged values
    fingerprint         length byte + bytes of the decoder fingerprint (0 when no model)
    plane               channels, h, w of the quantized symbol planes
    quant params        length + bytes (format owned by the quantizer)
    payload             length + bytes (format owned by the entropy coder)
    crc32      4 bytes  little-endian CRC-32 of everything before it

The reader validates every length and declared size before allocating, checks the CRC before
parsing, and raises :class:`BitstreamError` for any malformed input. :func:`pack_stream` stays
for tests that forge v1 streams; the library no longer writes this version.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vaerans_ecs.core.byteio import ByteReader, ByteWriter
from vaerans_ecs.core.stream import (
    ImageStream,
    Layer,
    check_image_size,
    check_layer,
    read_stage,
    stage_inputs,
    write_stage,
)
from vaerans_ecs.core.system import System
from vaerans_ecs.errors import BitstreamError, VaeransError

if TYPE_CHECKING:
    from vaerans_ecs.config import Config

__all__ = ["VERSION", "pack_stream", "read_v1"]

MAGIC = b"\x89VAE"
VERSION = 1
_MAX_SYSTEMS = 32


def pack_stream(
    *,
    height: int,
    width: int,
    pipeline: Sequence[System],
    fingerprint: bytes,
    channels: int,
    plane_h: int,
    plane_w: int,
    quant: bytes,
    payload: bytes,
) -> bytes:
    """Serialize a v1 stream (see the module docstring for the layout)."""
    w = ByteWriter()
    w.buf += MAGIC
    w.u8(VERSION)
    w.u8(0)
    w.varint(height)
    w.varint(width)
    if len(pipeline) > _MAX_SYSTEMS:
        raise VaeransError(f"pipelines of more than {_MAX_SYSTEMS} systems cannot be stored")
    w.u8(len(pipeline))
    for system in pipeline:
        write_stage(w, system)
    w.u8(len(fingerprint))
    w.buf += fingerprint
    for v in (channels, plane_h, plane_w):
        w.varint(v)
    w.blob(quant)
    w.blob(payload)
    w.buf += struct.pack("<I", zlib.crc32(w.buf))
    return bytes(w.buf)


def read_v1(data: bytes, config: Config, max_pixels: int) -> ImageStream:
    """Parse and validate a v1 stream into the structure v2 streams are read into."""
    if len(data) < 4 + 2 + 4:
        raise BitstreamError("not a vaerans stream (too short)")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise BitstreamError("stream checksum mismatch: the data is corrupted, truncated or extended")
    r = ByteReader(body)
    r.take(5)
    if r.u8() != 0:
        raise BitstreamError("stream uses flags this version does not know")
    height, width = r.varint(1 << 31), r.varint(1 << 31)
    check_image_size(height, width, max_pixels)
    n = r.u8()
    if n > _MAX_SYSTEMS:
        raise BitstreamError(f"stream declares {n} systems, more than {_MAX_SYSTEMS}")
    stages = tuple(read_stage(r) for _ in range(n))
    check_layer(stages, 0)
    fingerprint = r.take(r.u8())
    channels, plane_h, plane_w = r.varint(64), r.varint(1 << 31), r.varint(1 << 31)
    quant = r.blob()
    payload = r.blob()
    r.end()
    stream = ImageStream(1, height, width, 3, 8, ())
    inputs = stage_inputs(stages, stream.context(config))
    if (inputs[-1].channels, inputs[-1].height, inputs[-1].width) != (channels, plane_h, plane_w):
        raise BitstreamError(
            f"stream declares a {channels}x{plane_h}x{plane_w} latent; its pipeline makes "
            f"{inputs[-1].channels}x{inputs[-1].height}x{inputs[-1].width} from a {height}x{width} image"
        )
    by_section = {"model": fingerprint or None, "quant": quant, "payload": payload}
    data_of = tuple(by_section.get(stage.data_section) for stage in stages)
    sizes = {"header": len(data) - len(quant) - len(payload), "quant": len(quant), "payload": len(payload)}
    return ImageStream(1, height, width, 3, 8, (Layer(stages, data_of, inputs),), {}, sizes, len(data))
