"""Geometry of the hierarchical interlaced pixel coder, and the byte-level side-information I/O.

The image is coded coarse to fine. At the level of step ``s`` the pixels on the grid of step
``2s`` are known; three passes then add, in order, the positions at odd-odd multiples of ``s``
("D", predicted from their four diagonal neighbours), at even-odd multiples ("H", from the four
direct neighbours) and at odd-even multiples ("V", from eight neighbours). Every pass is one set
of numpy operations, so encoder and decoder are vectorised per pass, with no per-pixel loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.core.byteio import varint_bytes
from vaerans_ecs.errors import BitstreamError

__all__ = ["Pass", "Pick", "Reader", "Writer", "gather2", "plan_passes"]

I64 = NDArray[np.int64]

#: Neighbour offsets, in units of the level's step, per pass kind; the "near" ones come first.
OFFSETS: Final[dict[str, tuple[tuple[int, int], ...]]] = {
    "D": ((-1, -1), (-1, 1), (1, -1), (1, 1), (-1, -3), (-1, 3), (1, -3), (1, 3), (-3, -1), (-3, 1), (3, -1), (3, 1),
          (-3, -3), (-3, 3), (3, -3), (3, 3)),
    "H": ((0, -1), (0, 1), (-1, 0), (1, 0), (0, -3), (0, 3), (-1, -2), (-1, 2), (1, -2), (1, 2), (-2, -1), (-2, 1),
          (2, -1), (2, 1), (-3, 0), (3, 0)),
    "V": ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1), (-3, 0), (3, 0), (0, -3), (0, 3),
          (-2, -1), (-2, 1), (2, -1), (2, 1), (-1, -2), (-1, 2), (1, -2), (1, 2)),
}  # fmt: skip
#: Row and column parity (in units of the step) of each pass kind's targets.
PARITY: Final[dict[str, tuple[int, int]]] = {"D": (1, 1), "H": (0, 1), "V": (1, 0)}


def _axis(n: int, s: int, p: int, d: int) -> I64 | None:
    """Indices along one axis of the neighbours at offset ``d*s`` of targets of parity ``p``.

    Out-of-range neighbours are mirrored about the target (which keeps their parity, so they are
    known too), then clamped into the range of their parity class; None if that class is empty.
    """
    q = (p + d) % 2
    if q * s >= n:
        return None
    t = np.arange(p * s, n, 2 * s, dtype=np.int64)
    c = t + d * s
    c = np.where((c < 0) | (c >= n), t - d * s, c)
    hi = q * s + 2 * s * ((n - 1 - q * s) // (2 * s))
    out: I64 = np.clip(c, q * s, hi)
    return out


@dataclass(frozen=True)
class Pick:
    """Indices along one axis as a strided run (positions ``lo..hi`` read ``start, start + step, ...``)
    plus the few positions outside it (mirrored or clamped at the borders), so gathers are slices."""

    idx: I64
    lo: int
    hi: int
    run: slice
    others: I64  # positions outside the run
    other_idx: I64  # their indices


def _pick(idx: I64, step: int) -> Pick:
    """The longest run of ``idx`` around its middle that advances by ``step``."""
    off = idx - step * np.arange(idx.size, dtype=np.int64)
    on = np.flatnonzero(off == off[idx.size // 2])
    lo, hi = int(on[0]), int(on[-1]) + 1
    if hi - lo != on.size:  # not one run (never for the offsets used): all positions explicit
        lo = hi = 0
    start = int(idx[lo]) if hi > lo else 0
    others = np.concatenate((np.arange(lo), np.arange(hi, idx.size))).astype(np.int64)
    return Pick(idx, lo, hi, slice(start, start + step * (hi - lo - 1) + 1, step), others, idx[others])


def gather2(plane: NDArray[Any], rows: Pick, cols: Pick, add_to: NDArray[Any] | None = None) -> NDArray[Any]:
    """``plane[..., rows.idx[:, None], cols.idx]`` from strided slices (the same values); with
    ``add_to``, those values are added to it instead (and it is returned)."""
    add = add_to is not None
    out = add_to if add_to is not None else np.empty((*plane.shape[:-2], rows.idx.size, cols.idx.size), plane.dtype)

    def put(key: Any, v: NDArray[Any]) -> None:
        if add:
            out[key] += v  # the positions of one key are distinct
        else:
            out[key] = v

    rl, rh, cl, ch = rows.lo, rows.hi, cols.lo, cols.hi
    if rh > rl and ch > cl:
        put((..., slice(rl, rh), slice(cl, ch)), plane[..., rows.run, cols.run])
    if rows.others.size:
        put((..., rows.others, slice(None)), plane[..., rows.other_idx[:, None], cols.idx])
    if rh > rl and cols.others.size:
        put((..., slice(rl, rh), cols.others), plane[..., rows.run, :][..., cols.other_idx])
    return out


@dataclass(frozen=True)
class Pass:
    """One pass: targets at ``(pr*s + 2s*i, pc*s + 2s*j)``, and the index arrays of their neighbours."""

    step: int
    kind: str
    height: int
    width: int
    #: (rows, columns) per present neighbour offset, near ones first.
    neighbours: list[tuple[Pick, Pick]] = field(compare=False)
    near: int = 0

    @property
    def rows(self) -> slice:
        return slice(PARITY[self.kind][0] * self.step, None, 2 * self.step)

    @property
    def cols(self) -> slice:
        return slice(PARITY[self.kind][1] * self.step, None, 2 * self.step)

    @property
    def shape(self) -> tuple[int, int]:
        s, (pr, pc) = self.step, PARITY[self.kind]
        return (self.height - pr * s + 2 * s - 1) // (2 * s), (self.width - pc * s + 2 * s - 1) // (2 * s)

    @property
    def size(self) -> int:
        h, w = self.shape
        return h * w

    def gather(self, plane: NDArray[Any], count: int | None = None) -> list[NDArray[Any]]:
        """The values of the first ``count`` (default all) neighbours of every target of this pass
        in (..., H, W) planes: per neighbour an (..., n) array (targets in raster order)."""
        lead = plane.shape[:-2]
        return [gather2(plane, r, c).reshape(*lead, -1) for r, c in self.neighbours[:count]]

    def gather_sum(self, plane: NDArray[Any], start: int, stop: int) -> NDArray[Any]:
        """The sum of neighbours ``start..stop - 1`` of every target in (..., H, W) planes, (..., n)."""
        out = np.zeros((*plane.shape[:-2], *self.shape), dtype=np.int32)
        for r, c in self.neighbours[start:stop]:
            gather2(plane, r, c, out)
        return out.reshape(*plane.shape[:-2], -1)


@lru_cache(maxsize=16)
def plan_passes(height: int, width: int) -> tuple[Pass, ...]:
    """The passes after the first pixel (0, 0), coarse to fine; empty for a 1x1 image (cached:
    the index arrays are shared and must not be modified)."""
    s = 1
    while s < max(height, width):
        s *= 2
    out: list[Pass] = []
    s //= 2
    while s >= 1:
        for kind in "DHV":
            pr, pc = PARITY[kind]
            if pr * s >= height or pc * s >= width:
                continue
            nbs: list[tuple[Pick, Pick]] = []
            near = 0
            for di, dj in OFFSETS[kind]:
                r, c = _axis(height, s, pr, di), _axis(width, s, pc, dj)
                if r is None or c is None:
                    continue
                nbs.append((_pick(r, 2 * s), _pick(c, 2 * s)))
                near += max(abs(di), abs(dj)) == 1
            out.append(Pass(s, kind, height, width, nbs, near))
        s //= 2
    return tuple(out)


# ----------------------------------------------------------------------------- side information


class Writer:
    """Appends unsigned/signed LEB128 varints and raw bytes."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def uint(self, v: int) -> None:
        self.buf += varint_bytes(v)

    def sint(self, v: int) -> None:
        self.uint(2 * v if v >= 0 else -2 * v - 1)

    def bytes(self, b: bytes) -> None:
        self.buf += b


class Reader:
    """Reads what :class:`Writer` wrote; any overrun or out-of-range value raises BitstreamError."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def uint(self, limit: int) -> int:
        """An unsigned varint, which must be <= limit."""
        v = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise BitstreamError("pixel stream: truncated")
            b = self.data[self.pos]
            self.pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if v > limit:
                raise BitstreamError(f"pixel stream: value {v} out of range (at most {limit})")
            if not b & 0x80:
                if b == 0 and shift > 7:
                    raise BitstreamError("pixel stream: non-canonical varint")
                return v

    def sint(self, limit: int) -> int:
        """A signed (zigzag) varint of magnitude <= limit."""
        u = self.uint(2 * limit)
        return u >> 1 if not u & 1 else -((u + 1) >> 1)

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise BitstreamError("pixel stream: truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    @property
    def left(self) -> int:
        return len(self.data) - self.pos
