"""Hand-made PNG files for the imaging tests: 16-bit samples with every row filter, Adam7, forged headers.

Written here from the PNG specification, independently of the library's writer, so that reading
is tested against files the library did not make.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
# Adam7 passes: (row start, column start, row step, column step)
ADAM7 = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def ihdr(width: int, height: int, depth: int, colour_type: int, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, interlace))


def _filter_rows(raw: np.ndarray, bpp: int) -> bytes:
    """Filter each row with type (row index % 5): None, Sub, Up, Average, Paeth, in turn."""
    x = raw.astype(np.int32)
    up = np.vstack([np.zeros((1, x.shape[1]), np.int32), x[:-1]])
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    ul = np.zeros_like(x)
    ul[:, bpp:] = up[:, :-bpp]
    p = left + up - ul
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - ul)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
    preds = [np.zeros_like(x), left, up, (left + up) // 2, paeth]
    kinds = np.arange(x.shape[0]) % 5
    out = np.empty((x.shape[0], x.shape[1] + 1), np.uint8)
    out[:, 0] = kinds
    for k in range(5):
        out[kinds == k, 1:] = ((x - preds[k]) % 256)[kinds == k]
    return out.tobytes()


def png16(pixels: np.ndarray, *, interlace: bool = False, extra: bytes = b"", trailing: bytes = b"") -> bytes:
    """A 16-bit PNG of (H, W, C) uint16 pixels; ``extra`` chunks go before IDAT, ``trailing`` after."""
    h, w, c = pixels.shape
    be = pixels.astype(">u2")
    if interlace:
        data = b""
        for y0, x0, dy, dx in ADAM7:
            sub = be[y0::dy, x0::dx]
            if sub.size:
                data += _filter_rows(sub.view(np.uint8).reshape(sub.shape[0], -1), 2 * c)
    else:
        data = _filter_rows(be.view(np.uint8).reshape(h, -1), 2 * c)
    return (SIGNATURE + ihdr(w, h, 16, COLOUR_TYPE[c], int(interlace)) + extra
            + chunk(b"IDAT", zlib.compress(data, 9)) + trailing + chunk(b"IEND", b""))


def declared_only(width: int, height: int) -> bytes:
    """An 8-bit RGB PNG that declares ``width`` x ``height`` and holds a few bytes of pixel data."""
    return SIGNATURE + ihdr(width, height, 8, 2) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def ramp16(channels: int) -> np.ndarray:
    """Every 16-bit value once per channel: 256x256 pixels, each channel a different permutation."""
    v = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    rng = np.random.default_rng(7)
    planes = [v, v.T.copy(), v[::-1].copy(), rng.permutation(65536).astype(np.uint16).reshape(256, 256)]
    return np.ascontiguousarray(np.stack(planes[:channels], axis=2))
