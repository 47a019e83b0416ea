"""Row kernels of the quantizer: many rows (one channel of one entity each) sharing a band table.

:func:`encode_rows` quantizes on a float32 fast path and redoes in float64 only the bands that do
not fit 256 levels (DPCM for the low band, else the smallest widening factor); nothing is clipped.
:func:`decode_rows` is its inverse. Rows are processed in chunks of :data:`ROW_CHUNK` coefficients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vaerans_ecs.components.wavelet import Band
from vaerans_ecs.errors import VaeransError
from vaerans_ecs.systems.quantize.dpcm import dpcm_decode, dpcm_residual, predictor
from vaerans_ecs.systems.quantize.steps import (
    CANONICAL_ZERO,
    F32,
    F64,
    I64,
    MAX_FACTOR,
    RECON_GRID,
    RECON_MAX_CODE,
    U8,
    compose_steps,
)

__all__ = ["ROW_CHUNK", "BandParams", "BandTable", "Rows", "decode_rows", "encode_rows"]


@dataclass(frozen=True)
class BandTable:
    """What the encoder needs of the band table that every row of a group shares."""

    bands: tuple[Band, ...]
    base: float  # base step
    weights: F64  # per-band weights (float32-rounded)
    gains: F64  # per-band synthesis gains
    recon_offsets: bool  # compute reconstruction offsets (else all 0)


@dataclass
class Rows:
    """The encoder's per-row band parameters."""

    factors: I64  # (R, nb) widening factors
    zeros: I64  # (R, nb) zero points
    anchors: I64  # (R, nb) integers added after decoding (DPCM origin or plain offset)
    dpcm: npt.NDArray[np.bool_]  # (R,) band 0 coded as DPCM residuals
    recon: I64  # (R, nb) recon offset codes (delta * RECON_GRID)

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        """The rows of ``parts``, one after the other."""
        return Rows(
            factors=np.concatenate([p.factors for p in parts]),
            zeros=np.concatenate([p.zeros for p in parts]),
            anchors=np.concatenate([p.anchors for p in parts]),
            dpcm=np.concatenate([p.dpcm for p in parts]),
            recon=np.concatenate([p.recon for p in parts]),
        )


@dataclass(frozen=True)
class BandParams:
    """The decoder's per-row, per-band parameters, each (R, nb) (``steps`` and ``recon`` are
    overwritten where the decoder handles a band exactly)."""

    steps: F64
    zeros: I64
    dpcm: npt.NDArray[np.bool_]
    anchors: I64
    recon: F64  # offsets as fractions of a step

    def rows(self, sl: slice) -> BandParams:
        """Views of the rows ``sl``."""
        return BandParams(self.steps[sl], self.zeros[sl], self.dpcm[sl], self.anchors[sl], self.recon[sl])


@dataclass
class _Choice:
    dpcm: bool
    anchor: int
    zero: int
    coded: I64  # values minus the plain offset (or DPCM residuals); symbols are coded + zero


#: Fast-path limit on |q| (float32 holds such integers and their quotients exactly enough).
_F32_SAFE: Final = float(1 << 22)


def _fits(lo: Any, hi: Any, shiftable: bool) -> Any:
    """Values in [lo, hi] fit uint8 with a zero point in [0, 255] (and an anchor, if ``shiftable``)."""
    ok = (hi - lo) <= 255
    if not shiftable:
        ok = ok & (lo >= -255) & (hi <= 255)
    return ok


def _placement(lo: int, hi: int, shiftable: bool) -> tuple[int, int] | None:
    """(zero point, anchor) putting [lo, hi] inside [0, 255]; canonical 128 when possible."""
    if hi - lo > 255:
        return None
    if lo >= -CANONICAL_ZERO and hi < 256 - CANONICAL_ZERO:
        return CANONICAL_ZERO, 0
    if lo >= -255 and hi <= 255:
        return max(0, -lo), 0
    return (0, lo) if shiftable else None


def _cost_bits(v: I64) -> float:
    """Empirical zero-order entropy of ``v`` times its length (bits)."""
    return float(_row_costs(v.reshape(1, -1))[0])


def _row_costs(v: I64) -> F64:
    """Entropy cost (bits) of every row of ``v`` (R, s) at once; rows spanning > 256 levels: inf."""
    n_rows, size = v.shape
    lo = v.min(axis=1, keepdims=True)
    idx = v - lo
    wide = idx.max(axis=1) > 255
    np.minimum(idx, 255, out=idx)
    idx += 256 * np.arange(n_rows, dtype=np.int64)[:, None]
    counts = np.bincount(idx.ravel(), minlength=256 * n_rows).reshape(n_rows, 256).astype(np.float64)
    bits = size * math.log2(max(size, 1)) - (counts * np.log2(np.maximum(counts, 1.0))).sum(axis=1)
    return np.where(wide, np.inf, bits)


def _se_bits(v: int) -> int:
    """Length of the signed exp-Golomb code of ``v``."""
    u = 2 * v - 1 if v > 0 else -2 * v
    return 2 * (u + 1).bit_length() - 1


def _choose(q: I64, allow_dpcm: bool) -> _Choice | None:
    """Plain or DPCM coding of the integer band ``q`` (h, w): the cheaper one that fits, or None."""
    best: _Choice | None = None
    best_cost = math.inf
    place = _placement(int(q.min()), int(q.max()), True)
    if place is not None:
        zero, shift = place
        best = _Choice(False, shift, zero, q - shift)
        if allow_dpcm:
            best_cost = _cost_bits(q) + (_se_bits(shift) if shift else 0)
    if allow_dpcm:
        anchor = int(q.flat[0])
        r = dpcm_residual(q, anchor)
        place = _placement(int(r.min()), int(r.max()), False)
        if place is not None and _cost_bits(r) + _se_bits(anchor) < best_cost:
            best = _Choice(True, anchor, place[0], r)
    return best


def _recon_code(x: F64, q: F64, step: float) -> int:
    sg = np.sign(q)
    n = float(np.abs(sg).sum())
    if n == 0.0:
        return 0
    delta = float(((q - x / step) * sg).sum()) / n
    return int(min(max(round(delta * RECON_GRID), 0), RECON_MAX_CODE))


def _first_fit(ks: I64, ok: npt.NDArray[np.bool_]) -> int | None:
    idx = np.flatnonzero(ok)
    return int(ks[idx[0]]) if idx.size else None


def _plain_factor(hi: float, lo: float, steps_k: Callable[[I64], F64], unit: float) -> int:
    """Smallest factor k >= 2 for which rint(x / step_k) fits (only min and max matter)."""
    # necessary: span/step <= 256; sufficient: span/step <= 254 (an anchor places any such span)
    ratio = (hi - lo) / unit
    if not ratio < 254.0 * MAX_FACTOR:
        raise VaeransError(f"coefficient range {hi - lo:g} is too large for a step of {unit:g}")
    k_lo = max(2, math.floor(ratio / 256.0))
    k_hi = max(k_lo, math.ceil(ratio / 254.0) + 1)
    if k_hi - k_lo <= (1 << 20):
        ks = np.arange(k_lo, k_hi + 1, dtype=np.int64)
        st = steps_k(ks)
        found = _first_fit(ks, _fits(np.rint(lo / st), np.rint(hi / st), True))
        if found is not None:
            return found
    k = k_hi
    while True:  # float rounding of huge ratios only; the first few candidates fit
        st1 = float(steps_k(np.array([k], dtype=np.int64))[0])
        if _fits(np.rint(lo / st1), np.rint(hi / st1), True):
            return k
        k += 1


def _dpcm_factor(x: F64, k_max: int, steps_k: Callable[[I64], F64], unit: float) -> int | None:
    """Smallest factor 2 <= k < k_max whose DPCM residuals fit, if any."""
    h, w = x.shape
    real = x - x[0, 0]
    # Residual of the real-valued band under the same predictor: the integer residual at step s
    # differs from real / s by at most 2 (MED: 0.5 + 1.5), so its min/max move by at most 2.
    ppad = np.zeros((h + 1, w + 1))
    ppad[1:, 1:] = real
    a, b, c = ppad[1:, :-1], ppad[:-1, 1:], ppad[:-1, :-1]
    if predictor(h * w) == "left":
        pred = a.copy()
        pred[1:, 0] = real[:-1, 0]
    else:
        mx, mn = np.maximum(a, b), np.minimum(a, b)
        pred = np.where(c >= mx, mn, np.where(c <= mn, mx, a + b - c))
    rr = real - pred
    lo, hi = float(rr.min()), float(rr.max())
    ratio = max(hi - lo, abs(lo), abs(hi)) / unit
    if not ratio < 250.0 * MAX_FACTOR:
        return None
    k_lo = max(2, math.floor(ratio / 260.0))
    k_hi = min(k_max - 1, math.ceil(ratio / 250.0) + 1)
    if k_hi < k_lo:
        return None
    k_lo = max(k_lo, k_hi - 4095)  # extreme ranges: search the last 4096 candidates only
    chunk = max(1, min(256, (1 << 20) // max(x.size, 1)))
    for start in range(k_lo, k_hi + 1, chunk):
        ks = np.arange(start, min(start + chunk, k_hi + 1), dtype=np.int64)
        qs = np.rint(x[None] / steps_k(ks)[:, None, None]).astype(np.int64)
        res = dpcm_residual(qs, qs[:, 0, 0])
        found = _first_fit(ks, _fits(res.min(axis=(1, 2)), res.max(axis=(1, 2)), False))
        if found is not None:
            return found
    return None


def _fit_band(x: F64, band: Band, steps_k: Callable[[I64], F64], allow_dpcm: bool) -> tuple[int, F64, _Choice]:
    """Slow path for one row's band: (factor, q, choice), never clipping."""
    if not np.isfinite(x).all():
        raise VaeransError(f"band {band.name} has non-finite coefficients")
    xb = x.reshape(band.h, band.w)
    unit = float(steps_k(np.array([1], dtype=np.int64))[0])
    factor = 1
    q = np.rint(xb / unit)
    choice = _choose(q.astype(np.int64), allow_dpcm)
    if choice is None:
        factor = _plain_factor(float(x.max()), float(x.min()), steps_k, unit)
        if allow_dpcm:
            factor = _dpcm_factor(xb, factor, steps_k, unit) or factor
        step = float(steps_k(np.array([factor], dtype=np.int64))[0])
        q = np.rint(xb / step)
        choice = _choose(q.astype(np.int64), allow_dpcm)
        if choice is None:  # pragma: no cover - the factor searches guarantee a fit
            raise VaeransError(f"internal error: band {band.name} does not fit 256 levels")
    return factor, q, choice


#: Rows are processed in chunks of about this many coefficients, so temporaries stay in cache.
ROW_CHUNK: Final = 1 << 17


def encode_rows(x: npt.NDArray[Any], table: BandTable, out: U8) -> Rows:
    """Quantize ``x`` (R, n) into ``out`` (R, n) uint8; returns the per-row band parameters."""
    n_rows, n = x.shape
    step = max(1, ROW_CHUNK // max(n, 1))
    if n_rows <= step:
        return _encode_chunk(x, table, out)
    return Rows.concat([_encode_chunk(x[i : i + step], table, out[i : i + step]) for i in range(0, n_rows, step)])


def _encode_chunk(x: npt.NDArray[Any], table: BandTable, out: U8) -> Rows:
    bands, base, weights, gains = table.bands, table.base, table.weights, table.gains
    n_rows = x.shape[0]
    nb = len(bands)
    sizes = np.array([b.size for b in bands], dtype=np.int64)
    offsets = np.array([b.offset for b in bands], dtype=np.int64)
    nonempty = sizes > 0
    starts = offsets[nonempty]
    unit = compose_steps(base, weights, gains, 1)
    step_vec = np.repeat(unit.astype(np.float32), sizes)
    # Fast float32 path over all rows and bands; a band whose values do not fit (too wide a range,
    # |q| beyond float32 comfort, NaN) is redone in float64 by the slow path below.
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.divide(x, step_vec, dtype=np.float32)
        q = np.rint(t)
    qmin = np.zeros((n_rows, nb), dtype=np.float32)
    qmax = np.zeros((n_rows, nb), dtype=np.float32)
    with np.errstate(invalid="ignore"):
        qmin[:, nonempty] = np.minimum.reduceat(q, starts, axis=1)
        qmax[:, nonempty] = np.maximum.reduceat(q, starts, axis=1)
        ok = _fits(qmin, qmax, True) & (qmin > -_F32_SAFE) & (qmax < _F32_SAFE)
    zeros = np.full((n_rows, nb), CANONICAL_ZERO, dtype=np.int64)
    anchors = np.zeros((n_rows, nb), dtype=np.int64)
    lo = np.where(ok, qmin, 0).astype(np.int64)
    hi = np.where(ok, qmax, 0).astype(np.int64)
    canon = (lo >= -CANONICAL_ZERO) & (hi < 256 - CANONICAL_ZERO)
    near = ~canon & (lo >= -255) & (hi <= 255)
    zeros[near] = np.maximum(0, -lo[near])
    shifted = ~canon & ~near
    zeros[shifted] = 0
    anchors[shifted] = lo[shifted]
    recon = np.zeros((n_rows, nb), dtype=np.int64)
    if table.recon_offsets:
        # delta = mean of (|q| - |t|) over |q| >= 1 (rint keeps the sign, so |q| = rint(|t|))
        cnt = np.zeros((n_rows, nb), dtype=np.float32)
        tot = np.zeros((n_rows, nb), dtype=np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            qa = np.abs(q)
            np.abs(t, out=t)
            np.subtract(qa, t, out=t)
            np.minimum(qa, np.float32(1.0), out=qa)  # 1 where q != 0
            t *= qa
            cnt[:, nonempty] = np.add.reduceat(qa, starts, axis=1)
            tot[:, nonempty] = np.add.reduceat(t, starts, axis=1)
            delta = np.nan_to_num(tot / np.maximum(cnt, np.float32(1.0)))
        recon = np.clip(np.rint(delta * RECON_GRID), 0, RECON_MAX_CODE).astype(np.int64)
    bad = np.argwhere(~ok)
    for r, b in bad:  # never cast garbage: cleared here, filled by the slow path below
        q[r, offsets[b] : offsets[b] + sizes[b]] = 0
    np.add(q, np.repeat((zeros - anchors).astype(np.float32), sizes, axis=1), out=q)
    np.copyto(out, q, casting="unsafe")

    factors = np.ones((n_rows, nb), dtype=np.int64)
    dpcm = np.zeros(n_rows, dtype=bool)
    band0 = bands[0]
    allow_dpcm = band0.size >= 2

    def steps_k(b: int) -> Callable[[I64], F64]:
        return lambda ks: compose_steps(base, weights[b : b + 1], gains[b : b + 1], ks)

    for r, b in bad:
        r, b = int(r), int(b)
        sl = slice(int(offsets[b]), int(offsets[b] + sizes[b]))
        xb = np.asarray(x[r, sl], dtype=np.float64)
        factor, qb, choice = _fit_band(xb, bands[b], steps_k(b), allow_dpcm and b == 0)
        factors[r, b] = factor
        dpcm[r] |= choice.dpcm
        zeros[r, b], anchors[r, b] = choice.zero, choice.anchor
        out[r, sl] = (choice.coded.ravel() + choice.zero).astype(np.uint8)
        if table.recon_offsets:
            step = float(steps_k(b)(np.array([factor], dtype=np.int64))[0])
            recon[r, b] = _recon_code(xb, qb.ravel(), step)
    rows0 = np.flatnonzero(ok[:, 0])
    if allow_dpcm and rows0.size:  # band 0 rows that fit plainly: DPCM when it is cheaper
        s0 = band0.size
        q0 = out[rows0, :s0].astype(np.int64) - (zeros[rows0, :1] - anchors[rows0, :1])
        anch = q0[:, 0]
        res = dpcm_residual(q0.reshape(-1, band0.h, band0.w), anch).reshape(-1, s0)
        rlo, rhi = res.min(axis=1), res.max(axis=1)
        plain_bits = _row_costs(q0) + np.array([_se_bits(int(a)) if a else 0 for a in anchors[rows0, 0]])
        dpcm_bits = _row_costs(res) + np.array([_se_bits(int(a)) for a in anch], dtype=np.float64)
        for i in np.flatnonzero(_fits(rlo, rhi, False) & (dpcm_bits < plain_bits)):
            r = int(rows0[i])
            place = _placement(int(rlo[i]), int(rhi[i]), False)
            assert place is not None
            dpcm[r] = True
            zeros[r, 0], anchors[r, 0] = place[0], int(anch[i])
            out[r, :s0] = (res[i] + place[0]).astype(np.uint8)
    return Rows(factors=factors, zeros=zeros, anchors=anchors, dpcm=dpcm, recon=recon)


def decode_rows(sym: U8, bands: tuple[Band, ...], params: BandParams, out: F32) -> None:
    """Dequantize ``sym`` (R, n) into ``out`` (R, n) float32 with per-row, per-band parameters."""
    n_rows, n = sym.shape
    step = max(1, ROW_CHUNK // max(n, 1))
    for i in range(0, n_rows, step):
        rows = slice(i, i + step)
        _decode_chunk(sym[rows], bands, params.rows(rows), out[rows])


def _decode_chunk(sym: U8, bands: tuple[Band, ...], params: BandParams, out: F32) -> None:
    steps, zeros, dpcm, anchors, recon = params.steps, params.zeros, params.dpcm, params.anchors, params.recon
    sizes = np.array([b.size for b in bands], dtype=np.int64)
    shift = zeros - np.where(dpcm, 0, anchors)  # plain: q = s - zero + anchor; DPCM: residual = s - zero
    np.subtract(sym, np.repeat(shift.astype(np.float32), sizes, axis=1), out=out)
    for r, b in np.argwhere(dpcm | (np.abs(anchors) > _F32_SAFE)):  # exact integers for these
        band = bands[b]
        sl = slice(band.offset, band.offset + band.size)
        vals = sym[r, sl].astype(np.int64) - int(zeros[r, b])
        if dpcm[r, b]:
            vals = dpcm_decode(vals.reshape(band.h, band.w), int(anchors[r, b])).ravel()
        else:
            vals += int(anchors[r, b])
        step = float(steps[r, b])
        rec = vals.astype(np.float64) * step
        rec -= np.sign(vals) * (float(recon[r, b]) * step)
        out[r, sl] = rec
        steps[r, b], recon[r, b] = 1.0, 0.0  # already in output units: leave untouched below
    if np.any(recon != 0):
        sg = np.sign(out)
        sg *= np.repeat((recon * steps).astype(np.float32), sizes, axis=1)
        out *= np.repeat(steps.astype(np.float32), sizes, axis=1)
        out -= sg
    else:
        out *= np.repeat(steps.astype(np.float32), sizes, axis=1)
