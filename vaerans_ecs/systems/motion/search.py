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

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.systems.motion.compensate import PhasePlanes, block_grid
from vaerans_ecs.systems.motion.vectors import median_prediction

__all__ = ["estimate_motion", "luma", "pad_to_blocks"]

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


def _block_sad(diff: I32, b: int) -> I32:
    h, w = diff.shape
    out: I32 = np.abs(diff).reshape(h // b, b, w // b, b).sum(axis=(1, 3), dtype=np.int32)
    return out


def _mv_bits(mv: I32, pred: I32) -> I32:
    """Rough bits of coding ``mv`` as a difference from ``pred`` (per component log2-ish)."""
    d = np.abs(mv - pred)
    out: I32 = (2 * np.ceil(np.log2(d + 1)).astype(np.int32) + 1).sum(axis=-1)
    return out


def _full_search(cur: I32, ref: I32, b: int, radius: int, lam: int) -> I32:
    """Exhaustive integer search within +-radius for every block (the coarsest level).

    One numpy pass per row offset covers every column offset (a sliding window over the padded
    reference), so the Python loop runs 2 * radius + 1 times.
    """
    h, w = cur.shape
    n = 2 * radius + 1
    rp = np.pad(ref.astype(np.int16), radius, mode="edge")
    cur = cur.astype(np.int16)
    best = np.full((h // b, w // b), _BIG, dtype=np.int64)
    mv = np.zeros((h // b, w // b, 2), dtype=np.int32)
    penalty = lam * np.abs(np.arange(-radius, radius + 1))
    for dy in range(-radius, radius + 1):
        rows = rp[radius + dy: radius + dy + h]
        windows = np.lib.stride_tricks.sliding_window_view(rows, w, axis=1)  # (h, n, w): column offsets
        diff = np.abs(cur[:, None, :] - windows)
        sad = diff.reshape(h // b, b, n, w // b, b).sum(axis=(1, 4), dtype=np.int32).astype(np.int64)  # (ny, n, nx)
        sad += (penalty + lam * abs(dy))[None, :, None]
        arg = np.argmin(sad, axis=1)
        cost = np.take_along_axis(sad, arg[:, None, :], axis=1)[:, 0, :]
        better = cost < best
        best = np.where(better, cost, best)
        mv[better] = np.stack([np.full_like(arg, dy), arg - radius], axis=-1)[better]
    return mv


def _block_sads(
    cur_blocks: NDArray[np.int16], planes: PhasePlanes, oy: I32, ox: I32, mv: I32, b: int
) -> NDArray[np.int64]:
    """SAD of every block against the reference block its vector points at."""
    ref_blocks = planes.gather(oy, ox, mv, b)[..., 0].view(np.int16)  # rounded samples, <= 255
    out: NDArray[np.int64] = np.abs(cur_blocks - ref_blocks).sum(axis=(2, 3), dtype=np.int32).astype(np.int64)
    return out


def _best_of(cur_blocks: NDArray[np.int16], planes: PhasePlanes, oy: I32, ox: I32, b: int, lam: int,
             cands: list[I32], pred: I32) -> I32:
    """Per block, the candidate vector of least SAD + lam * bits."""
    best_cost = np.full(oy.shape, _BIG, dtype=np.int64)
    best = cands[0].copy()
    for cand in cands:
        cost = _block_sads(cur_blocks, planes, oy, ox, cand, b) + lam * _mv_bits(cand, pred)
        better = cost < best_cost
        best_cost = np.where(better, cost, best_cost)
        best[better] = cand[better]
    return best


def _blocks(cur: I32, b: int) -> tuple[NDArray[np.int16], I32, I32]:
    ny, nx = cur.shape[0] // b, cur.shape[1] // b
    oy, ox = block_grid(ny, nx, b)
    return cur.astype(np.int16).reshape(ny, b, nx, b).transpose(0, 2, 1, 3), oy, ox


def _refine(cur: I32, ref: I32, b: int, mv: I32, lam: int, extra: list[I32]) -> I32:
    """Integer refinement: +-1 around each vector, and the candidate fields in ``extra``."""
    cur_blocks, oy, ox = _blocks(cur, b)
    planes = PhasePlanes(ref, 1, b + 4, rounded=True)
    cands = [mv + np.array([dy, dx], dtype=np.int32) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return _best_of(cur_blocks, planes, oy, ox, b, lam, cands + extra, median_prediction(mv))


def _neighbour_fields(mv: I32) -> list[I32]:
    """The field shifted by one block in each direction (a neighbour's vector as a candidate)."""
    return [np.roll(mv, shift, axis=axis) for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1))]


def _subpel(cur: I32, ref: I32, b: int, mv: I32, subpel: int, lam: int, taps: str) -> I32:
    """Refine vectors (in sub-pel units already) on the interpolated reference, halving the step."""
    cur_blocks, oy, ox = _blocks(cur, b)
    planes = PhasePlanes(ref, subpel, b + 4, rounded=True, taps=taps)
    pred = median_prediction(mv)
    best = mv
    step = subpel // 2
    while step >= 1:
        cands = [best + np.array([dy, dx], dtype=np.int32) for dy in (0, -step, step) for dx in (0, -step, step)]
        best = _best_of(cur_blocks, planes, oy, ox, b, lam, cands, pred)
        step //= 2
    return best


def estimate_motion(
    cur: I32, ref: I32, *, block: int = 16, levels: int = 2, radius: int = 8, subpel: int = 4, lam: int = 4,
    taps: str = "bilinear",
) -> I32:
    """Vectors (ny, nx, 2) in 1/``subpel`` pixels for planes already padded to whole blocks.

    ``radius`` is the full-search range at the coarsest of ``levels`` pyramid levels (so the
    reach at full resolution is about ``radius * 2**levels`` pixels); ``lam`` weighs vector bits
    against SAD; ``taps`` is the sub-pel filter the prediction will use.
    """
    pyr_c, pyr_r = [cur], [ref]
    for _ in range(levels):
        pyr_c.append(_down(pyr_c[-1]))
        pyr_r.append(_down(pyr_r[-1]))
    ny, nx = cur.shape[0] // block, cur.shape[1] // block
    mv: I32 | None = None
    for lev in range(levels, -1, -1):
        b = block >> lev
        c, r = pyr_c[lev][: ny * b, : nx * b], pyr_r[lev]
        if mv is None:
            mv = _full_search(c, r, b, radius, lam)
        else:
            mv = _refine(c, r, b, mv * 2, lam, [np.zeros_like(mv), *_neighbour_fields(mv * 2)])
    assert mv is not None
    if subpel > 1:
        mv = _subpel(cur, ref, block, mv * subpel, subpel, lam, taps)
    return mv
