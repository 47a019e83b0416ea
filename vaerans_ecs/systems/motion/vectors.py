"""Entropy coding of block motion fields with the project's rANS coder.

Each vector is predicted by the median of its left, top and top-right neighbours (zero outside
the field); the differences are zig-zag mapped to symbols and coded as two arrays per context
class (dy and dx). The class of a block is the activity of the previous field at the same place
(when there is one): how much its vector differed from its own prediction, which the decoder
knows before it decodes anything of this field. Differences of 255 and more escape to LEB128
bytes coded as a last array. Layout: one byte of flags (bit 0: previous field used), the
number of escape bytes (LEB128), then the coder's payload.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.core.byteio import ByteReader, ByteWriter, varint_bytes
from vaerans_ecs.errors import BitstreamError, VaeransError
from vaerans_ecs.systems.entropy import get_coder

__all__ = ["N_CLASSES", "decode_vectors", "encode_vectors", "field_activity", "median_prediction"]

I32 = NDArray[np.int32]
U8 = NDArray[np.uint8]
_CODER = "rans"
_ESC = 255
#: Context classes of a block (by the previous field's local activity).
N_CLASSES = 3


def median_prediction(mv: I32) -> I32:
    """Median predictor of every vector from its causal neighbours (for the encoder: all at once)."""
    ny, nx, _ = mv.shape
    z = np.zeros((ny + 1, nx + 2, 2), dtype=np.int32)
    z[1:, 1:-1] = mv
    left, top, topright = z[1:, :-2], z[:-1, 1:-1], z[:-1, 2:]
    stacked = np.stack([left, top, topright])
    out: I32 = stacked.sum(axis=0) - stacked.max(axis=0) - stacked.min(axis=0)
    return out


def field_activity(mv: I32 | None, shape: tuple[int, int]) -> U8:
    """Context class of each block from a previous field of the same grid (0 when there is none)."""
    if mv is None or mv.shape[:2] != shape:
        return np.zeros(shape, dtype=np.uint8)
    d = np.abs(mv - median_prediction(mv)).sum(axis=2)
    cls: U8 = np.where(d == 0, 0, np.where(d <= 4, 1, 2)).astype(np.uint8)
    return cls


def _zigzag(v: I32) -> NDArray[np.int64]:
    w = v.astype(np.int64)
    out: NDArray[np.int64] = np.where(w >= 0, 2 * w, -2 * w - 1)
    return out


def _unzigzag(z: NDArray[np.int64]) -> NDArray[np.int64]:
    out: NDArray[np.int64] = np.where(z & 1, -(z + 1) // 2, z // 2)
    return out


def _leb128(values: NDArray[np.int64]) -> U8:
    return np.frombuffer(b"".join(varint_bytes(v) for v in values.tolist()), dtype=np.uint8).copy()


def _unleb128(data: U8, count: int, limit: int) -> NDArray[np.int64]:
    vals: list[int] = []
    pos = 0
    raw = data.tolist()
    for _ in range(count):
        v = shift = 0
        while True:
            if pos >= len(raw) or shift > 28:
                raise BitstreamError("motion vectors: malformed escape")
            byte = raw[pos]
            pos += 1
            v |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if v > limit:
            raise BitstreamError("motion vectors: escape value out of range")
        vals.append(v)
    if pos != len(raw):
        raise BitstreamError("motion vectors: trailing escape bytes")
    return np.array(vals, dtype=np.int64)


def encode_vectors(mv: I32, previous: I32 | None = None) -> bytes:
    """Code an (ny, nx, 2) field of integer vectors; ``previous`` is the last field the decoder has."""
    if mv.ndim != 3 or mv.shape[2] != 2 or mv.shape[0] < 1 or mv.shape[1] < 1:
        raise VaeransError(f"encode_vectors expects an (ny, nx, 2) field, got {mv.shape}")
    ny, nx, _ = mv.shape
    cls = field_activity(previous, (ny, nx)).ravel()
    z = _zigzag(mv - median_prediction(mv)).reshape(-1, 2)
    sym = np.minimum(z, _ESC).astype(np.uint8)
    order = np.argsort(cls, kind="stable")
    counts = np.bincount(cls, minlength=N_CLASSES)
    arrays: list[U8] = []
    for comp in range(2):
        arrays += np.split(sym[order, comp], np.cumsum(counts)[:-1])
    esc = z[z >= _ESC] - _ESC
    arrays.append(_leb128(esc))
    flag = 1 if previous is not None and previous.shape[:2] == (ny, nx) else 0
    w = ByteWriter()
    w.u8(flag)
    w.varint(int(arrays[-1].size))
    return bytes(w.buf) + get_coder(_CODER).encode([np.ascontiguousarray(a) for a in arrays])


def decode_vectors(data: bytes, ny: int, nx: int, limit: int, previous: I32 | None = None) -> I32:
    """Decode a field of ``ny`` x ``nx`` vectors, each component within +-``limit``."""
    if not data or data[0] > 1:
        raise BitstreamError("motion vectors: bad flags byte")
    use_prev = bool(data[0])
    if use_prev and (previous is None or previous.shape[:2] != (ny, nx)):
        raise BitstreamError("motion vectors: coded against a previous field the decoder does not have")
    r = ByteReader(data[1:], "motion vectors")
    n = ny * nx
    n_esc_bytes = r.varint(10 * n)
    cls = field_activity(previous if use_prev else None, (ny, nx)).ravel()
    counts = np.bincount(cls, minlength=N_CLASSES).tolist()
    arrays = get_coder(_CODER).decode(r.take(r.remaining()), [*counts, *counts, n_esc_bytes])
    order = np.argsort(cls, kind="stable")
    sym = np.empty((n, 2), dtype=np.int64)
    for comp in range(2):
        sym[order, comp] = np.concatenate(arrays[comp * N_CLASSES: (comp + 1) * N_CLASSES])
    n_esc = int(np.count_nonzero(sym == _ESC))
    z = sym.copy()
    z[sym == _ESC] += _unleb128(arrays[-1], n_esc, 4 * limit + 2)
    return _undo_prediction(_unzigzag(z).reshape(ny, nx, 2), limit)


def _undo_prediction(d: NDArray[np.int64], limit: int) -> I32:
    """Rebuild vectors from their median-prediction differences in raster order."""
    ny, nx, _ = d.shape
    rows: list[list[tuple[int, int]]] = []
    dl = d.tolist()
    zero = (0, 0)
    for y in range(ny):
        prev_row = rows[y - 1] if y else None
        row: list[tuple[int, int]] = []
        for x in range(nx):
            left = row[x - 1] if x else zero
            top = prev_row[x] if prev_row is not None else zero
            topright = prev_row[x + 1] if prev_row is not None and x + 1 < nx else zero
            vy = sorted((left[0], top[0], topright[0]))[1] + dl[y][x][0]
            vx = sorted((left[1], top[1], topright[1]))[1] + dl[y][x][1]
            if abs(vy) > limit or abs(vx) > limit:
                raise BitstreamError(f"motion vectors: a vector exceeds the declared range +-{limit}")
            row.append((vy, vx))
        rows.append(row)
    return np.array(rows, dtype=np.int32).reshape(ny, nx, 2)
