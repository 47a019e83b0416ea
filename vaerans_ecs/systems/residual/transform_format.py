"""Byte layout of the transform coder's stream (all integers little-endian).

::

    u8      format version (1)
    f32     quantiser step (pixel units, in [MIN_STEP, MAX_STEP])
    u8      wavelet levels actually performed (<= MAX_LEVELS, and what the size allows)
    u8      wavelet: 0 CDF 9/7, 1 LeGall 5/3, 2 Haar (transform_wavelet.WAVELETS)
    u8      chroma step multiplier, in 1/32 (1..255)
    4 x u8  reconstruction offsets toward zero, 128 + offset in 1/256 of a step:
            (|q| = 1, |q| >= 2) for the first channel, then for the others
    bytes   nonzero mask, ceil(C * levels / 8) bytes: bit (c * levels + l), LSB first, says that
            channel c has a nonzero coefficient at level l (its passes are coded); spare bits 0
    records LEB128 length + payload of the project's "rans" coder each: the LL record (C arrays
            of signed symbols), one record per coded pass (the previous pass's sign bits in
            N_SIGN_CONTEXTS arrays, none for the first pass, then this pass's magnitude symbols in
            N_CLASSES arrays), and when any pass was coded a last record with the last pass's
            sign bits
    escape  only when the symbols contain escapes: LEB128 byte count n, LEB128 length, a "rans"
            payload of one array of n bytes: the excess magnitudes, LEB128 each, in stream order
    u32     CRC-32 of (C, H, W, colour as 4 x u32) followed by every byte before it; colour is 1
            when the first three channels went through the colour transform (C >= 3 and asked)

The CRC covers the geometry the container passes to the decoder, so a stream decoded with a
different size fails before anything is allocated.

A tiled stream (first byte TILED_VERSION) codes the image as independent tiles::

    u8      TILED_VERSION (2)
    u8      log2 of the tile side T (4..15)
    tiles   ceil(H/T) * ceil(W/T) times, in raster order: LEB128 length + a version-1 stream of
            that tile (C, its own height and width, the same colour flag)
    u32     CRC-32 of (C, H, W, colour as 4 x u32) followed by every byte before it
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.core.byteio import varint_bytes
from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.systems.entropy import EntropyCoder

__all__ = [
    "BIAS_MAX",
    "BIAS_ONE",
    "CHROMA_ONE",
    "MAX_CHANNELS",
    "MAX_EXCESS",
    "MAX_LEVELS",
    "MAX_STEP",
    "N_WAVELETS",
    "MIN_STEP",
    "TILED_VERSION",
    "VERSION",
    "Header",
    "Stream",
    "leb128_decode",
    "leb128_encode",
    "pack",
    "pack_tiled",
    "seal",
    "tile_grid",
    "unpack",
    "unpack_tiled",
]

VERSION: Final = 1
TILED_VERSION: Final = 2
_MIN_TILE_BYTES: Final = 17  # a LEB128 length byte and the smallest version-1 stream
MAX_CHANNELS: Final = 4
MAX_LEVELS: Final = 12
N_WAVELETS: Final = 3
#: Largest escaped excess magnitude (see transform_quant.ESC).
MAX_EXCESS: Final = 1 << 24
CHROMA_ONE: Final = 32
BIAS_ONE: Final = 256
BIAS_MAX: Final = 127
#: Accepted quantiser steps (pixel units).
MIN_STEP: Final = 1.0 / 64.0
MAX_STEP: Final = 4096.0
_FIXED: Final = struct.Struct("<BfBBB4B")
_LEB_MAX_BYTES: Final = 4  # MAX_EXCESS < 2**28

Geometry = tuple[int, int, int, bool]


@dataclass
class Header:
    """Decoded header fields."""

    step: float
    levels: int
    wavelet: int
    chroma_code: int
    bias_codes: list[int]
    nonzero: NDArray[np.bool_]  # (C, levels)


def _geometry_prefix(geom: Geometry) -> bytes:
    c, h, w, colour = geom
    return struct.pack("<4I", c, h, w, int(bool(colour)))


def pack(header: Header, records: Sequence[bytes], esc_bytes: int, esc_payload: bytes, geom: Geometry) -> bytes:
    """The complete stream (see module doc); ``esc_bytes`` is the LEB128 byte count (0: no escapes)."""
    nz = header.nonzero.reshape(-1)
    biased = [b + 128 for b in header.bias_codes]
    mask = np.packbits(nz.astype(np.uint8), bitorder="little").tobytes() if nz.size else b""
    parts = [
        _FIXED.pack(VERSION, header.step, header.levels, header.wavelet, header.chroma_code, *biased),
        mask,
    ]
    for r in records:
        parts += [varint_bytes(len(r)), r]
    if esc_bytes:
        parts += [varint_bytes(esc_bytes), varint_bytes(len(esc_payload)), esc_payload]
    return seal(b"".join(parts), geom)


def seal(body: bytes, geom: Geometry) -> bytes:
    """``body`` followed by its check value for the geometry ``(C, H, W, colour)``."""
    return body + struct.pack("<I", zlib.crc32(body, zlib.crc32(_geometry_prefix(geom))))


class Stream:
    """A parsed stream: header now, records and escapes on demand (every length validated)."""

    def __init__(self, body: bytes, header: Header, pos: int) -> None:
        self._body = body
        self._pos = pos
        self.header = header
        self.records: list[bytes] = []

    def _varint(self) -> int:
        n, shift = 0, 0
        while True:
            if self._pos >= len(self._body):
                raise BitstreamError("transform stream: truncated")
            b = self._body[self._pos]
            self._pos += 1
            if shift >= 35 or (b == 0 and shift):
                raise BitstreamError("transform stream: invalid length field")
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    def _take(self, n: int) -> bytes:
        if n > len(self._body) - self._pos:
            raise BitstreamError("transform stream: truncated")
        out = self._body[self._pos : self._pos + n]
        self._pos += n
        return out

    def expect_records(self, n: int) -> None:
        """Parse the ``n`` records (LL and passes) that the header and geometry call for."""
        self.records = [self._take(self._varint()) for _ in range(n)]

    def escapes(self, count: int, coder: EntropyCoder) -> NDArray[np.int64]:
        """Decode the ``count`` escaped excess magnitudes; then the stream must be fully consumed."""
        out = np.empty(0, dtype=np.int64)
        if count:
            n_bytes = self._varint()
            if not count <= n_bytes <= _LEB_MAX_BYTES * count:
                raise BitstreamError("transform stream: escape section size does not match the symbols")
            payload = self._take(self._varint())
            raw = coder.decode(payload, [n_bytes])[0]
            out = leb128_decode(raw, count)
        self.finish()
        return out

    def finish(self) -> None:
        """The stream must be fully consumed."""
        if self._pos != len(self._body):
            raise BitstreamError("transform stream: trailing bytes")


def _checked_body(data: bytes, geom: Geometry, minimum: int) -> bytes:
    """The bytes before the check value, once it matches (with the caller's geometry)."""
    if len(data) < minimum + 4:
        raise BitstreamError("transform stream: truncated header")
    body, tail = data[:-4], data[-4:]
    if zlib.crc32(body, zlib.crc32(_geometry_prefix(geom))) != struct.unpack("<I", tail)[0]:
        raise BitstreamError("transform stream: check value mismatch (corrupted, or decoded with another size)")
    return body


def tile_grid(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of each tile in raster order."""
    return [
        (i, j, min(tile, height - i), min(tile, width - j))
        for i in range(0, height, tile)
        for j in range(0, width, tile)
    ]


def pack_tiled(tile_log2: int, parts: Sequence[bytes], geom: Geometry) -> bytes:
    """A tiled stream of the tiles' own streams (raster order)."""
    body = bytes([TILED_VERSION, tile_log2]) + b"".join(varint_bytes(len(p)) + p for p in parts)
    return seal(body, geom)


def unpack_tiled(data: bytes, geom: Geometry) -> tuple[int, list[bytes]]:
    """Check a tiled stream and return (tile side, the tiles' streams); lengths are validated."""
    body = _checked_body(data, geom, 2)
    tile_log2 = body[1]
    if body[0] != TILED_VERSION or not 4 <= tile_log2 <= 15:
        raise BitstreamError("transform stream: invalid tile header")
    tile = 1 << tile_log2
    n = -(-geom[1] // tile) * -(-geom[2] // tile)
    if n * _MIN_TILE_BYTES > len(body):
        raise BitstreamError("transform stream: too short for its tiles")
    reader = Stream(body, Header(0.0, 0, 0, 0, [], np.zeros((0, 0), dtype=bool)), 2)
    reader.expect_records(n)
    reader.finish()
    return tile, reader.records


def unpack(data: bytes, geom: Geometry) -> Stream:
    """Check the CRC (with the caller's geometry) and parse the header."""
    c = geom[0]
    body = _checked_body(data, geom, _FIXED.size)
    version, step, levels, wavelet, chroma, *bias = _FIXED.unpack_from(body, 0)
    if version != VERSION:
        raise BitstreamError(f"transform stream: unsupported version {version}")
    if not (np.isfinite(step) and MIN_STEP <= step <= MAX_STEP):
        raise BitstreamError("transform stream: invalid step")
    if levels > MAX_LEVELS or wavelet >= N_WAVELETS or chroma == 0 or any(abs(b - 128) > BIAS_MAX for b in bias):
        raise BitstreamError("transform stream: invalid header field")
    n_bits = c * levels
    n_mask = (n_bits + 7) // 8
    pos = _FIXED.size
    if len(body) < pos + n_mask:
        raise BitstreamError("transform stream: truncated header")
    bits = np.unpackbits(np.frombuffer(body, dtype=np.uint8, count=n_mask, offset=pos), bitorder="little")
    if np.any(bits[n_bits:]):
        raise BitstreamError("transform stream: nonzero spare bits")
    nonzero = bits[:n_bits].reshape(c, levels) > 0
    header = Header(float(step), int(levels), int(wavelet), int(chroma), [b - 128 for b in bias], nonzero)
    return Stream(body, header, pos + n_mask)


def leb128_encode(values: NDArray[np.int64]) -> bytes:
    """Non-negative integers below 2**28 as LEB128 bytes (vectorised)."""
    v = np.asarray(values, dtype=np.int64)
    groups = (v[:, None] >> (7 * np.arange(_LEB_MAX_BYTES))[None, :]) & 0x7F
    length = np.ones(v.size, dtype=np.int64)
    for k in range(1, _LEB_MAX_BYTES):
        length += v >= (1 << (7 * k))
    cont = np.arange(_LEB_MAX_BYTES)[None, :] < (length[:, None] - 1)
    keep = np.arange(_LEB_MAX_BYTES)[None, :] < length[:, None]
    out = (groups | (cont.astype(np.int64) << 7))[keep]
    return out.astype(np.uint8).tobytes()


def leb128_decode(raw: NDArray[np.uint8], count: int) -> NDArray[np.int64]:
    """Exactly ``count`` canonical LEB128 values filling ``raw``; anything else raises BitstreamError."""
    b = raw.astype(np.int64)
    ends = np.flatnonzero(b < 0x80)
    if ends.size != count or not b.size or ends[-1] != b.size - 1:
        raise BitstreamError("transform stream: malformed escape values")
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if np.any(lengths > _LEB_MAX_BYTES) or np.any((lengths > 1) & (b[ends] == 0)):
        raise BitstreamError("transform stream: malformed escape values")
    pos = np.arange(b.size) - np.repeat(starts, lengths)
    vals: NDArray[np.int64] = np.add.reduceat((b & 0x7F) << (7 * pos), starts)
    if np.any(vals > MAX_EXCESS):
        raise BitstreamError("transform stream: escape value out of range")
    return vals
