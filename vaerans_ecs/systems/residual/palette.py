"""Palette path of the pixel coder: images of at most 256 colours as colours + an index plane.

The index plane is coded in the passes of :mod:`.pixel_passes`. Each target's known near
neighbours give an ordered list of candidate indices (distinct values, most frequent first, ties
by neighbour order); the symbol is the target's rank in that list, or the list's length (an
escape) followed by the index itself in a separate array. Ranks are classed by the number of
distinct candidates and by how many near neighbours themselves had a non-zero rank, so runs of
one colour, edges and dithering each get their own statistics.

Body: ``K - 1`` (one byte), the K colours (C bytes each, most frequent first), the first pixel's
index (varint), then per pass the escape count (varint), the payload length (varint) and the
``"rans"`` payload of the rank classes plus the escapes.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.systems.entropy import get_coder
from vaerans_ecs.systems.residual.pixel_passes import Pass, Reader, Writer, plan_passes

__all__ = ["MAX_COLOURS", "build_palette", "decode_palette", "encode_palette"]

I64 = NDArray[np.int64]
U8 = NDArray[np.uint8]

MAX_COLOURS: Final = 256
_U_CLASSES: Final = 6
_MISS_CLASSES: Final = 3
N_CLASSES: Final = _U_CLASSES * _MISS_CLASSES
_SAMPLE: Final = 1 << 16

_CODER = get_coder("rans")


def _pack(img: NDArray[np.uint8]) -> I64:
    v = np.zeros(img.shape[:2], dtype=np.int64)
    for c in range(img.shape[2]):
        v |= img[:, :, c].astype(np.int64) << (8 * c)
    return v


class _Candidates:
    """Candidate lists of one pass: per target, the distinct near indices and their ranks."""

    def __init__(self, p: Pass, index: NDArray[np.int32], miss: NDArray[np.int32]) -> None:
        near = np.stack(p.gather(index, p.near), 1)  # (n, m)
        m = near.shape[1]
        eq = near[:, :, None] == near[:, None, :]  # eq[:, i, j]: neighbour i equals neighbour j
        count = eq.sum(axis=1)
        first = ~np.any(np.tril(np.ones((m, m), dtype=bool), -1)[None] & eq.transpose(0, 2, 1), axis=2)
        key = np.where(first, count * 16 + (15 - np.arange(m)), -1)
        self.rank = (first[:, :, None] & (key[:, :, None] > key[:, None, :])).sum(axis=1)  # rank of each j
        self.first = first
        self.near = near
        self.u = first.sum(axis=1)
        misses = sum(p.gather(miss, p.near), np.zeros(near.shape[0], dtype=np.int32))
        self.cls = (np.minimum(self.u, _U_CLASSES) - 1) * _MISS_CLASSES + np.minimum(misses, _MISS_CLASSES - 1)

    def symbols(self, target: NDArray[np.int32]) -> I64:
        hit = self.first & (self.near == target[:, None])
        out: I64 = np.where(hit.any(axis=1), (self.rank * hit).sum(axis=1), self.u)
        return out

    def values(self, sym: I64) -> NDArray[np.int32]:
        pick = self.first & (self.rank == sym[:, None])
        out: NDArray[np.int32] = (self.near * pick).sum(axis=1).astype(np.int32)
        return out


def build_palette(img: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], NDArray[np.uint8]] | None:
    """(colours (K, C), index plane (H, W)) with K <= 256, most frequent colour first; else None."""
    pixels = img.reshape(-1, 1, img.shape[2])
    for sample in (_SAMPLE >> 4, _SAMPLE):  # a small sample first: photos fail it
        if pixels.shape[0] > sample and np.unique(_pack(pixels[:: pixels.shape[0] // sample])).size > MAX_COLOURS:
            return None
    flat = _pack(img).ravel()
    colours, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    if colours.size > MAX_COLOURS:
        return None
    order = np.lexsort((colours, -counts))
    rank_of = np.empty_like(order)
    rank_of[order] = np.arange(order.size)
    index = rank_of[inverse].reshape(img.shape[:2]).astype(np.uint8)
    table = np.stack([(colours[order] >> (8 * c)) & 255 for c in range(img.shape[2])], 1).astype(np.uint8)
    return table, index


def encode_palette(index_plane: NDArray[np.uint8], colours: NDArray[np.uint8]) -> bytes:
    """The palette body: colours (K, C) and the rank-coded index plane (H, W)."""
    index = index_plane.astype(np.int32)
    out = Writer()
    out.bytes(bytes([colours.shape[0] - 1]))
    out.bytes(colours.tobytes())
    out.uint(int(index[0, 0]))
    miss = np.zeros(index.shape, dtype=np.int32)
    for p in plan_passes(*index.shape):
        cand = _Candidates(p, index, miss)
        target = index[p.rows, p.cols].ravel()
        sym = cand.symbols(target)
        esc = target[sym == cand.u].astype(np.uint8)
        srt = np.argsort(cand.cls, kind="stable")
        bands = np.split(sym[srt].astype(np.uint8), np.cumsum(np.bincount(cand.cls, minlength=N_CLASSES))[:-1])
        payload = _CODER.encode([*bands, esc])
        out.uint(esc.size)
        out.uint(len(payload))
        out.bytes(payload)
        miss[p.rows, p.cols] = (sym != 0).reshape(p.shape)
    return bytes(out.buf)


def decode_palette(r: Reader, height: int, width: int, channels: int) -> NDArray[np.uint8]:
    """Decode a palette body (after the stream header) into an (H, W, C) uint8 image."""
    k = r.take(1)[0] + 1
    raw = np.frombuffer(r.take(k * channels), dtype=np.uint8).reshape(k, channels)
    index = np.zeros((height, width), dtype=np.int32)
    miss = np.zeros((height, width), dtype=np.int32)
    index[0, 0] = r.uint(k - 1)
    for p in plan_passes(height, width):
        cand = _Candidates(p, index, miss)
        n = p.size
        n_esc = r.uint(n)
        size = r.uint(r.left)
        sizes = [*np.bincount(cand.cls, minlength=N_CLASSES).tolist(), n_esc]
        bands = _CODER.decode(r.take(size), sizes)
        sym = np.empty(n, dtype=np.int64)
        sym[np.argsort(cand.cls, kind="stable")] = np.concatenate(bands[:-1])
        if np.any(sym > cand.u):
            raise BitstreamError("palette stream: rank out of range")
        esc = sym == cand.u
        if int(esc.sum()) != n_esc:
            raise BitstreamError("palette stream: escape count mismatch")
        vals = cand.values(np.where(esc, 0, sym))
        escapes = bands[-1].astype(np.int32)
        if np.any(escapes >= k):
            raise BitstreamError("palette stream: colour index out of range")
        vals[esc] = escapes
        index[p.rows, p.cols] = vals.reshape(p.shape)
        miss[p.rows, p.cols] = (sym != 0).reshape(p.shape)
    out: NDArray[np.uint8] = raw[index]
    return out
