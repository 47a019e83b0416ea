"""A PNG writer for 16-bit samples (gray, gray+alpha, RGB, RGBA), which Pillow cannot write in colour.

Rows are filtered with the adaptive heuristic of the PNG specification (per row, the filter
whose output has the smallest sum of absolute signed bytes), computed for blocks of rows at
once in numpy, then deflated. ICC goes in ``iCCP``, EXIF in ``eXIf``.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

import numpy as np
import numpy.typing as npt

from vaerans_ecs.errors import ImageInputError

__all__ = ["encode_png16"]

_SIGNATURE: Final[bytes] = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE: Final[dict[int, int]] = {1: 0, 2: 4, 3: 2, 4: 6}
_BLOCK_BYTES: Final[int] = 1 << 20  # filter this many bytes of rows at a time
_IDAT_BYTES: Final[int] = 1 << 20


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _paeth(a: npt.NDArray[np.int16], b: npt.NDArray[np.int16], c: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """The Paeth predictor of the PNG specification, elementwise."""
    pa = np.abs(b - c)
    pb = np.abs(a - c)
    pc = np.abs(a + b - 2 * c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _filter_block(rows: npt.NDArray[np.uint8], prev: npt.NDArray[np.uint8], bpp: int) -> npt.NDArray[np.uint8]:
    """Filtered scanlines (filter-type byte first) of ``rows``; ``prev`` is the row above the block."""
    x = rows.astype(np.int16)
    up = np.concatenate([prev[None, :], rows[:-1]]).astype(np.int16)
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    upleft = np.zeros_like(x)
    upleft[:, bpp:] = up[:, :-bpp]
    candidates = np.stack([x, x - left, x - up, x - ((left + up) >> 1), x - _paeth(left, up, upleft)])
    filtered = (candidates & 0xFF).astype(np.uint8)
    cost = np.abs(filtered.view(np.int8).astype(np.int32)).sum(axis=2)  # (5, rows)
    choice = np.argmin(cost, axis=0)
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = choice
    out[:, 1:] = filtered[choice, np.arange(rows.shape[0])]
    return out


def encode_png16(pixels: npt.NDArray[np.uint16], *, icc: bytes | None = None, exif: bytes | None = None) -> bytes:
    """A 16-bit PNG of (H, W, C) uint16 pixels, C in 1..4; ``exif`` is the TIFF-structured block."""
    if pixels.ndim != 3 or pixels.shape[2] not in _COLOUR_TYPE or pixels.dtype.kind != "u" or pixels.itemsize != 2:
        raise ImageInputError(f"a 16-bit PNG needs (H, W, 1..4) uint16 pixels, got {pixels.dtype} {pixels.shape}")
    height, width, channels = pixels.shape
    if not (0 < height < 2**31 and 0 < width < 2**31):
        raise ImageInputError(f"PNG cannot hold a {width}x{height} image")
    bpp = 2 * channels
    rows = np.ascontiguousarray(pixels, dtype=">u2").view(np.uint8).reshape(height, width * bpp)
    out = [_SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, _COLOUR_TYPE[channels], 0, 0, 0))]
    if icc is not None:
        out.append(_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    if exif is not None:
        out.append(_chunk(b"eXIf", exif))
    deflate = zlib.compressobj(6)
    pending = bytearray()
    step = max(1, _BLOCK_BYTES // rows.shape[1])
    prev = np.zeros(rows.shape[1], np.uint8)
    for top in range(0, height, step):
        block = rows[top : top + step]
        pending += deflate.compress(_filter_block(block, prev, bpp).tobytes())
        prev = block[-1]
        while len(pending) >= _IDAT_BYTES:
            out.append(_chunk(b"IDAT", bytes(pending[:_IDAT_BYTES])))
            del pending[:_IDAT_BYTES]
    pending += deflate.flush()
    for start in range(0, len(pending), _IDAT_BYTES):
        out.append(_chunk(b"IDAT", bytes(pending[start : start + _IDAT_BYTES])))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)
