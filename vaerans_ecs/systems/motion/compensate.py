"""Motion compensation in integer arithmetic: bilinear sub-pel blocks, with or without OBMC.

Encoder and decoder must form bit-identical predictions (the decoder's reconstruction is the
next frame's reference), so everything here is integer. A pixel displaced by a vector ``v`` in
1/``s`` pixels reads the reference at ``p + (v >> log2 s)`` with the fraction ``v & (s - 1)``,
interpolated bilinearly with weights summing to ``s**2``; positions outside the reference read
its nearest edge pixel. :class:`PhasePlanes` precomputes the interpolated reference once per
fraction (on an edge-padded copy), so a displaced block is one gather. OBMC (overlapped block
motion compensation) blends, at every pixel, the predictions of the four blocks whose 2B x 2B
windows cover it with separable linear-ramp weights summing to ``(2B)**2`` and rounds once: it
removes the block edges a wavelet residual coder would otherwise pay for.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.systems.motion.kept import KeptReferences, pixel_key

__all__ = ["FILTERS", "PhasePlanes", "block_grid", "clear_cache", "predict", "reference_planes"]

I32 = NDArray[np.int32]
I64 = NDArray[np.int64]
U8 = NDArray[np.uint8]
U16 = NDArray[np.uint16]


def block_grid(ny: int, nx: int, b: int) -> tuple[I32, I32]:
    """Top-left pixel coordinates (ny, nx) of every block of a grid of b x b blocks."""
    oy, ox = np.meshgrid(np.arange(ny, dtype=np.int32) * b, np.arange(nx, dtype=np.int32) * b, indexing="ij")
    return oy, ox


def _shift(subpel: int) -> int:
    return subpel.bit_length() - 1


#: Sub-pel interpolation filters: ``bilinear``, and ``sharp`` (half-pel samples from the 6-tap
#: filter (1, -5, 20, 20, -5, 1) / 32, clipped to 0..255, the centre one from the unrounded
#: horizontal pass; quarter-pel samples the rounded mean of the nearest half-pel samples).
FILTERS = ("bilinear", "sharp")
_TAPS = (1, -5, 20, 20, -5, 1)


def _six_tap(x: NDArray[np.integer], axis: int, n: int, dtype: type[np.integer]) -> NDArray[np.integer]:
    """Unrounded 6-tap sums along ``axis`` for the first ``n`` positions (input padded 2 before, 3 after)."""
    def part(j: int) -> NDArray[np.integer]:
        return (x[:, j: j + n] if axis == 1 else x[j: j + n]).astype(dtype)

    # (a + f) - 5 (b + e) + 20 (c + d): three sums, two products
    out = part(0) + part(5)
    out -= 5 * (part(1) + part(4))
    out += 20 * (part(2) + part(3))
    return out


def _clip_u8(x: NDArray[np.integer], shift: int) -> U8:
    out: U8 = np.clip((x + (1 << shift >> 1)) >> shift, 0, 255).astype(np.uint8)
    return out


def _half_grid(pad: U8, rows: int, cols: int, need: set[tuple[int, int]]) -> dict[tuple[int, int], U8]:
    """Samples at (y + hy/2, x + hx/2) for the (hy, hx) in ``need``: ``rows`` x ``cols`` each, uint8.

    ``pad`` holds the image edge-padded so that its element [2, 2] is the grid's (0, 0).
    """
    out: dict[tuple[int, int], U8] = {}
    full = pad[:, 2: 2 + cols]
    if (0, 0) in need:
        out[(0, 0)] = full[2: 2 + rows]
    if (1, 0) in need:
        out[(1, 0)] = _clip_u8(_six_tap(full, 0, rows, np.int16), 5)
    if need & {(0, 1), (1, 1)}:
        h1 = _six_tap(pad, 1, cols, np.int16)  # horizontal half-pel sums at every padded row: |.| < 2**14
        if (0, 1) in need:
            out[(0, 1)] = _clip_u8(h1[2: 2 + rows], 5)
        if (1, 1) in need:
            out[(1, 1)] = _clip_u8(_six_tap(h1, 0, rows, np.int32), 10)
    return out


class PhasePlanes:
    """A reference interpolated at sub-pel fractions, edge-padded by ``margin`` pixels.

    ``ref`` is (H, W) or (H, W, C); each plane holds the samples at one fraction ``(fy, fx)``
    times ``subpel**2`` (uint16: bilinear sums are exact at that scale), or the rounded samples
    when ``rounded``. ``taps`` is one of :data:`FILTERS` (``sharp`` supports subpel 1, 2, 4).
    Blocks of ``size`` pixels are gathered by :meth:`gather`; a displacement beyond the margin is
    clamped, which reads the same edge pixels as clamping every tap would when the margin is at
    least ``size + 3``.
    """

    def __init__(self, ref: NDArray[np.integer], subpel: int, margin: int,
                 phases: Iterable[tuple[int, int]] | None = None, *, rounded: bool = False,
                 taps: str = "bilinear") -> None:
        arr = ref if ref.ndim == 3 else ref[..., None]
        self.h, self.w, self.c = arr.shape
        self.s, self.m = subpel, margin
        s = subpel
        wanted = sorted(set(phases)) if phases is not None else [(fy, fx) for fy in range(s) for fx in range(s)]
        #: The fractions prepared.
        self.phases = frozenset(wanted)
        self.lookup = np.full(s * s, -1, dtype=np.int32)
        for i, phase in enumerate(wanted):
            self.lookup[phase[0] * s + phase[1]] = i
        self.hp, self.wp = self.h + 2 * margin, self.w + 2 * margin
        planes = np.empty((len(wanted), self.hp, self.wp, self.c), dtype=np.uint16)
        if taps == "sharp":
            self._sharp(arr, wanted, planes, rounded)
        elif taps == "bilinear":
            self._bilinear(arr, wanted, planes, rounded)
        else:
            raise ValueError(f"unknown sub-pel filter {taps!r}")
        self._planes = planes
        self.nbytes = planes.nbytes
        # one record per sample (all channels): a gather moves each sample in one copy
        self._flat = planes.reshape(-1, self.c).view(np.dtype((np.void, 2 * self.c))).ravel()
        self._windows: dict[int, U16] = {}

    def _bilinear(self, arr: NDArray[np.integer], wanted: list[tuple[int, int]], planes: U16, rounded: bool) -> None:
        m, s, sh = self.m, self.s, _shift(self.s)
        pad = np.pad(arr, ((m, m + 1), (m, m + 1), (0, 0)), mode="edge").astype(np.uint16)
        rows: dict[int, U16] = {}
        for fx in sorted({fx for _, fx in wanted}):  # horizontal pass once per column fraction
            hx = pad[:, :-1] * np.uint16(s - fx)
            if fx:
                hx += pad[:, 1:] * np.uint16(fx)
            rows[fx] = hx
        for i, (fy, fx) in enumerate(wanted):
            hx = rows[fx]
            out = planes[i]
            np.multiply(hx[:-1], np.uint16(s - fy), out=out)
            if fy:
                out += hx[1:] * np.uint16(fy)
            if rounded:
                out += np.uint16(s * s >> 1)
                out >>= np.uint16(2 * sh)

    def _sharp(self, arr: NDArray[np.integer], wanted: list[tuple[int, int]], planes: U16, rounded: bool) -> None:
        m, s = self.m, self.s
        if s not in (1, 2, 4):
            raise ValueError(f"the sharp filter supports subpel 1, 2 and 4, not {s}")
        pad = np.pad(arr.astype(np.uint8), ((m + 2, m + 4), (m + 2, m + 4), (0, 0)), mode="edge")
        scale = np.uint16(0 if rounded else 2 * _shift(s))

        def around(f: int) -> list[int]:  # a fraction in 1/s -> the half-grid positions around it
            return sorted({2 * f // s, -(-2 * f // s)}) if s > 1 else [0]

        combos = {(fy, fx): [(a, b) for a in around(fy) for b in around(fx)] for fy, fx in wanted}
        grid = _half_grid(pad, self.hp + 1, self.wp + 1, {(a % 2, b % 2) for c in combos.values() for a, b in c})
        for i, phase in enumerate(wanted):
            parts = [grid[(a % 2, b % 2)][a // 2: a // 2 + self.hp, b // 2: b // 2 + self.wp] for a, b in combos[phase]]
            out = planes[i]
            np.copyto(out, parts[0])
            for part in parts[1:]:
                out += part
            if len(parts) > 1:  # the rounded mean of 2 or 4 samples
                out += np.uint16(len(parts) // 2)
                out >>= np.uint16(len(parts).bit_length() - 1)
            if scale:
                out <<= scale

    def _coords(self, y: I32, x: I32, mv: I32, size: int) -> tuple[I32, I32, I32]:
        """Plane, row and column (in the padded planes) of the top-left samples of displaced blocks."""
        sh, m = _shift(self.s), self.m
        iy = np.clip(y + (mv[..., 0] >> sh), -m, self.h + m - size) + m
        ix = np.clip(x + (mv[..., 1] >> sh), -m, self.w + m - size) + m
        phase = self.lookup[(mv[..., 0] & (self.s - 1)) * self.s + (mv[..., 1] & (self.s - 1))]
        if np.any(phase < 0):
            raise ValueError("PhasePlanes: a vector uses a fraction that was not prepared")
        return phase, iy, ix

    def base(self, y: I32, x: I32, mv: I32, size: int) -> I64:
        """Flat index of the top-left sample of blocks at (y, x) displaced by ``mv``."""
        phase, iy, ix = self._coords(y, x, mv, size)
        out: I64 = (phase.astype(np.int64) * self.hp + iy) * self.wp + ix
        return out

    def blocks(self, y: I32, x: I32, mv: I32, size: int) -> U16:
        """Blocks (..., C, size, size) at top-left (y, x) displaced by ``mv`` (what :meth:`gather` reads,
        channels first): one indexing of a sliding-window view, no per-sample index arrays."""
        windows = self._windows.get(size)
        if windows is None:
            windows = np.lib.stride_tricks.sliding_window_view(self._planes, (size, size), axis=(1, 2))
            self._windows[size] = windows
        phase, iy, ix = self._coords(y, x, mv, size)
        out: U16 = windows[phase, iy, ix]
        return out

    def take(self, idx: NDArray[np.int64]) -> U16:
        """Samples at flat indices ``idx``: shape ``idx.shape + (C,)``, uint16."""
        out: U16 = np.take(self._flat, idx).view(np.uint16).reshape(*idx.shape, self.c)
        return out

    def gather(self, y: I32, x: I32, mv: I32, size: int) -> U16:
        """Blocks (..., size, size, C) at top-left (y, x) displaced by ``mv``."""
        ar = np.arange(size, dtype=np.int64)
        local = ar[:, None] * self.wp + ar[None, :]
        return self.take(self.base(y, x, mv, size)[..., None, None] + local)


def _phases(mv: I32, subpel: int) -> set[tuple[int, int]]:
    codes = np.unique((mv[..., 0] & (subpel - 1)) * subpel + (mv[..., 1] & (subpel - 1)))
    return {(int(c) // subpel, int(c) % subpel) for c in codes}


#: The interpolated planes of the two anchors a P-frame and its B-frames predict from (64 MiB at
#: most together: large frames are rebuilt each time).
_KEPT: KeptReferences[PhasePlanes] = KeptReferences(lambda p: p.nbytes)


def reference_planes(ref: U8, subpel: int, margin: int, phases: set[tuple[int, int]],
                     taps: str = "bilinear") -> PhasePlanes:
    """:class:`PhasePlanes` of ``ref`` with at least ``phases``, shared by the predictions from one reference
    (:class:`~vaerans_ecs.systems.motion.kept.KeptReferences`: a hit holds exactly what would be built).

    They hold every fraction, or at first only those asked for when they are few (rebuilt with
    every fraction when a later call needs one they lack).
    """
    key = pixel_key(ref, subpel, margin, taps)
    found = _KEPT.get(key)
    if found is not None and phases <= found.phases:
        return found
    # every fraction (the next uses will find theirs) unless few are needed the first time
    few = found is None and 2 * len(phases) < subpel * subpel
    made = PhasePlanes(np.ascontiguousarray(ref), subpel, margin, phases if few else None, taps=taps)
    _KEPT.put(key, made)
    return made


def clear_cache() -> None:
    """Drop the kept reference planes (a sequence coder calls it when it is done)."""
    _KEPT.clear()


def _to_image(blocks: NDArray[np.integer], h: int, w: int) -> U8:
    """(ny, nx, C, b, b) blocks -> the (h, w, C) uint8 image they tile (cropped)."""
    ny, nx, c, b, _ = blocks.shape
    img = blocks.transpose(0, 3, 1, 4, 2).reshape(ny * b, nx * b, c)
    return np.ascontiguousarray(img[:h, :w], dtype=np.uint8)


@lru_cache(maxsize=8)
def _obmc_weights(ny: int, nx: int, block: int) -> tuple[tuple[NDArray[np.int32], ...], I32, I32]:
    """Per contribution (own, vertical, horizontal, diagonal neighbour): weights (2ny, 2nx, 1, B/2, B/2) of
    each half-block, and the sub-block -> neighbour offsets (dy, dx) of each half-block row and column."""
    h = block // 2
    t = np.arange(block)
    own = np.where(t < h, 2 * t + block + 1, 3 * block - 2 * t - 1).astype(np.int32)
    nb = 2 * block - own
    wy_own, wy_nb = np.tile(own, ny), np.tile(nb, ny)
    wx_own, wx_nb = np.tile(own, nx), np.tile(nb, nx)
    weights = tuple(np.ascontiguousarray((wy[:, None] * wx[None, :]).reshape(2 * ny, h, 2 * nx, h)
                                         .transpose(0, 2, 1, 3)[:, :, None]).astype(np.int32)
                    for wy, wx in ((wy_own, wx_own), (wy_nb, wx_own), (wy_own, wx_nb), (wy_nb, wx_nb)))
    side_y = np.where(np.arange(2 * ny) % 2 == 0, -1, 1).astype(np.int32)
    side_x = np.where(np.arange(2 * nx) % 2 == 0, -1, 1).astype(np.int32)
    return weights, side_y, side_x


def predict(ref: U8, mv: I32, *, block: int, subpel: int, obmc: bool, shape: tuple[int, int],
            taps: str = "bilinear") -> U8:
    """The (H, W, C) uint8 prediction of a frame of ``shape`` from ``ref`` and its block vectors."""
    h, w = shape
    ny, nx, _ = mv.shape
    s2 = 2 * _shift(subpel)
    if not obmc or block < 2:
        planes = reference_planes(ref, subpel, block + 4, _phases(mv, subpel), taps)
        oy, ox = block_grid(ny, nx, block)
        plain = planes.blocks(oy, ox, mv, block)
        return _to_image((plain + (1 << s2 >> 1)) >> s2, h, w)
    half = block // 2
    weights, side_y, side_x = _obmc_weights(ny, nx, block)
    by = np.arange(2 * ny) // 2
    bx = np.arange(2 * nx) // 2
    nby = np.clip(by + side_y, 0, ny - 1)
    nbx = np.clip(bx + side_x, 0, nx - 1)
    planes = reference_planes(ref, subpel, half + 4, _phases(mv, subpel), taps)
    sy = (np.arange(2 * ny, dtype=np.int32) * half)[:, None]
    sx = (np.arange(2 * nx, dtype=np.int32) * half)[None, :]
    acc: NDArray[np.int32] | None = None
    for k, (rows, cols) in enumerate(((by, bx), (nby, bx), (by, nbx), (nby, nbx))):
        field = mv[rows[:, None], cols[None, :]]
        part = planes.blocks(sy, sx, field, half)  # (2ny, 2nx, C, half, half)
        if acc is None:
            acc = part * weights[k]
        else:
            acc += part * weights[k]
    assert acc is not None
    shift = s2 + 2 * _shift(2 * block)
    acc += 1 << shift >> 1
    acc >>= shift
    return _to_image(acc, h, w)
