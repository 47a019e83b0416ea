"""Block motion estimation: hierarchical block matching on a luma pyramid, then sub-pel refinement.

Vectors are integers in 1/``subpel`` pixel units, one ``(dy, dx)`` per ``block`` x ``block`` block
of the current frame, pointing into the reference. The search runs a full search over the
coarsest pyramid level, refines each finer level with the doubled vector and its neighbours'
vectors as candidates, then refines the sub-pel fraction on interpolated reference planes. Its
cost is SAD plus ``lam`` times an estimate of the vector-difference bits, so the field stays
smooth where it costs nothing. Encoder-only: the decoder never runs it, so floats would be fine,
but integers keep it deterministic and fast.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.systems.motion.compensate import PhasePlanes, block_grid
from vaerans_ecs.systems.motion.kept import KeptReferences, pixel_key
from vaerans_ecs.systems.motion.vectors import median_prediction

__all__ = ["LumaPyramid", "block_sums", "clear_cache", "estimate_motion", "luma", "luma_pyramid", "pad_to_blocks"]

I32 = NDArray[np.int32]
U8 = NDArray[np.uint8]
_BIG = np.iinfo(np.int32).max // 4


def luma(img: NDArray[np.uint8]) -> I32:
    """Integer luma (BT.601 weights /256) of an (H, W, 3) uint8 image; other channel counts: the mean."""
    x = img.astype(np.int32)
    if img.shape[2] == 3:
        out: I32 = (77 * x[..., 0] + 150 * x[..., 1] + 29 * x[..., 2] + 128) >> 8
    else:
        out = (x.sum(axis=2) // img.shape[2]).astype(np.int32)
    return out


def pad_to_blocks(plane: I32, block: int) -> I32:
    """Edge-replicate a plane to a whole number of blocks."""
    h, w = plane.shape
    ph, pw = -h % block, -w % block
    return np.pad(plane, ((0, ph), (0, pw)), mode="edge") if ph or pw else plane


def _down(plane: I32) -> I32:
    h, w = plane.shape
    p = np.pad(plane, ((0, h & 1), (0, w & 1)), mode="edge")
    out: I32 = (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2] + 2) >> 2
    return out


class LumaPyramid:
    """A luma plane, its 2x-downscaled levels and its interpolated planes, built when first asked for.

    A reference serves several searches (the next P-frame's and the B-frames' on either side), so
    what is built from it is kept here and reused (see :func:`luma_pyramid`).
    """

    def __init__(self, plane: I32) -> None:
        self.levels: list[I32] = [plane]
        self._planes: dict[tuple[int, int, int, str], PhasePlanes] = {}
        self._lock = threading.Lock()  # a shared pyramid may be searched from several threads

    def level(self, lev: int) -> I32:
        """The plane downscaled ``lev`` times."""
        with self._lock:
            while len(self.levels) <= lev:
                self.levels.append(_down(self.levels[-1]))
            return self.levels[lev]

    def planes(self, lev: int, subpel: int, margin: int, taps: str = "bilinear") -> PhasePlanes:
        """Rounded samples of level ``lev`` at every 1/``subpel`` fraction, edge-padded by ``margin``."""
        key = (lev, subpel, margin, taps)
        found = self._planes.get(key)
        if found is None:  # two threads may both build it: the same planes, either one is kept
            found = PhasePlanes(self.level(lev), subpel, margin, rounded=True, taps=taps)
            self._planes.setdefault(key, found)
        return found


#: Bytes a pyramid holds per pixel of its first level, with its 1/4-pel planes (about).
_BYTES_PER_PIXEL = 40
#: The pyramids of the two anchors a P-frame and its B-frames search into (64 MiB at most together:
#: large frames are rebuilt each time).
_KEPT: KeptReferences[LumaPyramid] = KeptReferences(lambda p: _BYTES_PER_PIXEL * p.levels[0].size)


def luma_pyramid(img: U8, block: int) -> LumaPyramid:
    """The pyramid of an image's luma padded to whole blocks, shared by the searches of identical images
    (:class:`~vaerans_ecs.systems.motion.kept.KeptReferences`: a hit returns what would be built)."""
    key = pixel_key(img, block)
    found = _KEPT.get(key)
    if found is None:
        found = LumaPyramid(pad_to_blocks(luma(img), block))
        _KEPT.put(key, found)
    return found


def clear_cache() -> None:
    """Drop the kept pyramids (a sequence coder calls it when it is done; the next search rebuilds)."""
    _KEPT.clear()


def _mv_bits(mv: I32, pred: I32) -> I32:
    """Rough bits of coding ``mv`` as a difference from ``pred`` (per component log2-ish)."""
    d = np.abs(mv - pred)
    out: I32 = (2 * np.ceil(np.log2(d + 1)).astype(np.int32) + 1).sum(axis=-1)
    return out


def block_sums(d: NDArray[np.int16], b: int) -> I32:
    """Sums over b x b blocks of (H, n, W) absolute differences (<= 255): (H // b, n, W // b).

    Adds strided slices (rows, then columns) instead of a reduction over two short axes.
    """
    h, n, w = d.shape
    rows = d.reshape(h // b, b, n, w)
    acc = rows[:, 0].copy()  # at most 64 * 255: int16 holds it
    for i in range(1, b):
        acc += rows[:, i]
    cols = acc.reshape(h // b, n, w // b, b)
    out: I32 = cols[..., 0].astype(np.int32)
    for i in range(1, b):
        out += cols[..., i]
    return out


def _full_search(cur: I32, ref: I32, b: int, radius: int, lam: int) -> I32:
    """Exhaustive integer search within +-radius for every block (the coarsest level).

    One numpy pass per row offset covers every column offset (a sliding window over the padded
    reference), so the Python loop runs 2 * radius + 1 times.
    """
    h, w = cur.shape
    n = 2 * radius + 1
    rp = np.pad(ref.astype(np.int16), radius, mode="edge")
    cur16 = cur.astype(np.int16)
    best = np.full((h // b, w // b), _BIG, dtype=np.int64)
    mv = np.zeros((h // b, w // b, 2), dtype=np.int32)
    penalty = lam * np.abs(np.arange(-radius, radius + 1))
    diff = np.empty((h, n, w), dtype=np.int16)
    for dy in range(-radius, radius + 1):
        rows = rp[radius + dy: radius + dy + h]
        windows = np.lib.stride_tricks.sliding_window_view(rows, w, axis=1)  # (h, n, w): column offsets
        np.subtract(cur16[:, None, :], windows, out=diff)
        np.abs(diff, out=diff)
        sad = block_sums(diff, b).astype(np.int64)  # (ny, n, nx)
        sad += (penalty + lam * abs(dy))[None, :, None]
        arg = np.argmin(sad, axis=1)
        cost = np.take_along_axis(sad, arg[:, None, :], axis=1)[:, 0, :]
        better = cost < best
        best = np.where(better, cost, best)
        mv[better] = np.stack([np.full_like(arg, dy), arg - radius], axis=-1)[better]
    return mv


def _block_sads(cur_blocks: NDArray[np.int16], planes: PhasePlanes, oy: I32, ox: I32, mv: I32,
                b: int) -> NDArray[np.int64]:
    """SAD of every block against the reference block its vector points at (``mv`` may add leading axes)."""
    ref_blocks = planes.blocks(oy, ox, mv, b)[..., 0, :, :].view(np.int16)  # rounded samples, <= 255
    diff = cur_blocks - ref_blocks
    np.abs(diff, out=diff)
    out: NDArray[np.int64] = diff.reshape(*diff.shape[:-2], b * b).sum(axis=-1, dtype=np.int32).astype(np.int64)
    return out


def _best_of(cur_blocks: NDArray[np.int16], planes: PhasePlanes, oy: I32, ox: I32, b: int, lam: int,
             cands: list[I32], pred: I32, distinct: int = 1,
             known: NDArray[np.int64] | None = None) -> tuple[I32, NDArray[np.int64]]:
    """Per block, the candidate vector of least SAD + lam * bits (the first of equal ones), and its cost.

    The first ``distinct`` candidates differ from each other at every block and are evaluated
    together; a later one only where it differs from all before it (a repeat never wins: ties
    keep the first). ``known`` is the cost of ``cands[0]`` when the caller has it.
    """
    stack = np.stack(cands)  # (k, ny, nx, 2)
    costs = np.full(stack.shape[:3], _BIG, dtype=np.int64)
    first = 0 if known is None else 1
    if known is not None:
        costs[0] = known
    if distinct > first:
        grid = stack[first:distinct]
        costs[first:distinct] = _block_sads(cur_blocks, planes, oy, ox, grid, b) + lam * _mv_bits(grid, pred)
    if len(cands) > distinct:
        extra = stack[distinct:]
        fresh = np.ones(extra.shape[:3], dtype=bool)
        for j in range(extra.shape[0]):
            for prev in stack[: distinct + j]:
                fresh[j] &= np.any(extra[j] != prev, axis=-1)
        kk, ys, xs = np.nonzero(fresh)
        if kk.size:
            sub = extra[kk, ys, xs]
            costs[distinct + kk, ys, xs] = (_block_sads(cur_blocks[ys, xs], planes, oy[ys, xs], ox[ys, xs], sub, b)
                                            + lam * _mv_bits(sub, pred[ys, xs]))
    pick = np.argmin(costs, axis=0)  # the first least cost: what a strict-improvement scan keeps
    best: I32 = np.take_along_axis(stack, pick[None, ..., None], axis=0)[0]
    return best, np.take_along_axis(costs, pick[None], axis=0)[0]


def _blocks(cur: I32, b: int) -> tuple[NDArray[np.int16], I32, I32]:
    ny, nx = cur.shape[0] // b, cur.shape[1] // b
    oy, ox = block_grid(ny, nx, b)
    return cur.astype(np.int16).reshape(ny, b, nx, b).transpose(0, 2, 1, 3), oy, ox


#: The +-1 neighbourhood of a vector, in the search's order (rows, then columns).
_AROUND = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def _refine(cur: I32, planes: PhasePlanes, b: int, mv: I32, lam: int, extra: list[I32]) -> I32:
    """Integer refinement: +-1 around each vector, and the candidate fields in ``extra``."""
    cur_blocks, oy, ox = _blocks(cur, b)
    cands = [mv + np.array(d, dtype=np.int32) for d in _AROUND]
    return _best_of(cur_blocks, planes, oy, ox, b, lam, cands + extra, median_prediction(mv), len(cands))[0]


def _neighbour_fields(mv: I32) -> list[I32]:
    """The field shifted by one block in each direction (a neighbour's vector as a candidate)."""
    return [np.roll(mv, shift, axis=axis) for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1))]


def _subpel(cur: I32, planes: PhasePlanes, b: int, mv: I32, subpel: int, lam: int) -> I32:
    """Refine vectors (in sub-pel units already) on the interpolated reference, halving the step."""
    cur_blocks, oy, ox = _blocks(cur, b)
    pred = median_prediction(mv)
    best = mv
    cost: NDArray[np.int64] | None = None
    step = subpel // 2
    while step >= 1:
        cands = [best + np.array([dy, dx], dtype=np.int32) for dy in (0, -step, step) for dx in (0, -step, step)]
        # the centre is the last round's winner: its cost is known
        best, cost = _best_of(cur_blocks, planes, oy, ox, b, lam, cands, pred, len(cands), cost)
        step //= 2
    return best


def estimate_motion(
    cur: I32 | LumaPyramid, ref: I32 | LumaPyramid, *, block: int = 16, levels: int = 2, radius: int = 8,
    subpel: int = 4, lam: int = 4, taps: str = "bilinear",
) -> I32:
    """Vectors (ny, nx, 2) in 1/``subpel`` pixels for planes already padded to whole blocks.

    ``radius`` is the full-search range at the coarsest of ``levels`` pyramid levels (so the
    reach at full resolution is about ``radius * 2**levels`` pixels); ``lam`` weighs vector bits
    against SAD; ``taps`` is the sub-pel filter the prediction will use. Either plane may come
    as a :class:`LumaPyramid` (what is built from it is then reused by later searches).
    """
    pyr_c = cur if isinstance(cur, LumaPyramid) else LumaPyramid(cur)
    pyr_r = ref if isinstance(ref, LumaPyramid) else LumaPyramid(ref)
    full = pyr_c.level(0)
    ny, nx = full.shape[0] // block, full.shape[1] // block
    mv: I32 | None = None
    for lev in range(levels, -1, -1):
        b = block >> lev
        c = pyr_c.level(lev)[: ny * b, : nx * b]
        if mv is None:
            mv = _full_search(c, pyr_r.level(lev), b, radius, lam)
        else:
            planes = pyr_r.planes(lev, 1, b + 4)
            mv = _refine(c, planes, b, mv * 2, lam, [np.zeros_like(mv), *_neighbour_fields(mv * 2)])
    assert mv is not None
    if subpel > 1:
        mv = _subpel(full, pyr_r.planes(0, subpel, block + 4, taps), block, mv * subpel, subpel, lam)
    return mv
