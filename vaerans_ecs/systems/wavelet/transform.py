"""Non-expansive 2-D separable multi-level wavelets (LeGall/CDF 5/3 and orthonormal Haar).

Every function works on a whole ``(C, h, w)`` block at once: the 1-D lifting steps are numpy
slice operations over all channels and all rows (or columns) together, with no Python loop over
pixels, rows or channels.

Transforms
    ``cdf53``
        LeGall 5/3 lifting as in JPEG 2000 with whole-point symmetric extension. A signal of length
        ``n`` gives ``ceil(n/2)`` low-pass and ``floor(n/2)`` high-pass coefficients::

            d[i] = x[2i+1] - (x[2i] + x[2i+2]) / 2           (predict)
            s[i] = x[2i]   + (d[i-1] + d[i]) / 4             (update)

        The float version is the unnormalised JPEG 2000 filter pair (low-pass DC gain 1, high-pass
        Nyquist gain 2). ``integer=True`` selects the JPEG 2000 *reversible* 5/3 on int32, which
        floors the two divisions (``(a+b) >> 1`` and ``(a+b+2) >> 2``) and is exactly invertible.
        Inputs must leave int32 headroom: a high-pass coefficient can reach twice the input range
        per level.
    ``haar``
        Orthonormal Haar: ``s = (x[2i] + x[2i+1]) / sqrt2``, ``d = (x[2i+1] - x[2i]) / sqrt2``.
        For odd ``n`` the last sample is copied unscaled (scale 1) to the end of the low band,
        which keeps the transform exactly orthonormal (energy preserving, all synthesis gains 1).

2-D, multi-level
    Each level transforms the current LL region first along the width (rows), then along the
    height (columns). An axis of length 1 is not split at that level, and decomposition stops
    early once the LL region is 1x1, so ``band_layout`` may describe fewer levels than requested
    (the coarsest low band is then named after the last level actually performed).

Packing
    A channel's ``h*w`` coefficients are stored in one row of a ``(C, h*w)`` array, band after
    band, each band row-major: the coarsest ``LL<L>`` first, then for each level from ``L`` down to
    1 the bands ``HL<l>`` (high-pass along the width, low-pass along the height), ``LH<l>`` and
    ``HH<l>``. Empty bands (an axis that was not split) are omitted. ``levels=0`` gives the single
    band ``LL0`` (the identity transform).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from vaerans_ecs.components.wavelet import Band
from vaerans_ecs.errors import VaeransError

__all__ = [
    "MAX_LEVELS",
    "WAVELETS",
    "band_layout",
    "synthesis_gains",
    "wavelet_forward",
    "wavelet_inverse",
]

#: Names of the supported wavelets.
WAVELETS: tuple[str, ...] = ("cdf53", "haar")
#: Most decomposition levels a wavelet stage accepts.
MAX_LEVELS = 10

Array = npt.NDArray[Any]
_Axis = Literal[-1, -2]
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


# ----------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------
# One entry per level actually performed: (height, width) of the region transformed at that level
# and the sizes (low_h, high_h, low_w, high_w) it splits into.
_Level = tuple[int, int, int, int, int, int]


def _check_size(h: int, w: int, levels: int) -> None:
    if h < 1 or w < 1:
        raise VaeransError(f"wavelet plane size must be positive, got {h}x{w}")
    if levels < 0:
        raise VaeransError(f"wavelet levels must be >= 0, got {levels}")


@lru_cache(maxsize=256)
def _levels_plan(h: int, w: int, levels: int) -> tuple[_Level, ...]:
    plan: list[_Level] = []
    hh, ww = h, w
    for _ in range(levels):
        if hh == 1 and ww == 1:
            break
        lh, hh_hi = ((hh + 1) // 2, hh // 2) if hh > 1 else (hh, 0)
        lw, ww_hi = ((ww + 1) // 2, ww // 2) if ww > 1 else (ww, 0)
        plan.append((hh, ww, lh, hh_hi, lw, ww_hi))
        hh, ww = lh, lw
    return tuple(plan)


@lru_cache(maxsize=256)
def _band_layout(h: int, w: int, levels: int) -> tuple[Band, ...]:
    plan = _levels_plan(h, w, levels)
    n_levels = len(plan)
    ll_h, ll_w = (plan[-1][2], plan[-1][4]) if plan else (h, w)
    bands = [Band(name=f"LL{n_levels}", level=n_levels, h=ll_h, w=ll_w, offset=0)]
    offset = ll_h * ll_w
    for lev in range(n_levels, 0, -1):
        _, _, lh, hh_hi, lw, ww_hi = plan[lev - 1]
        for name, bh, bw in (("HL", lh, ww_hi), ("LH", hh_hi, lw), ("HH", hh_hi, ww_hi)):
            if bh * bw == 0:
                continue
            bands.append(Band(name=f"{name}{lev}", level=lev, h=bh, w=bw, offset=offset))
            offset += bh * bw
    return tuple(bands)


def band_layout(h: int, w: int, levels: int) -> tuple[Band, ...]:
    """Bands of one channel's packed coefficients, in packing order (offsets tile ``[0, h*w)``)."""
    h, w, levels = int(h), int(w), int(levels)
    _check_size(h, w, levels)
    return _band_layout(h, w, levels)


# ----------------------------------------------------------------------------------------------
# 1-D lifting along one axis (-1: width, -2: height) of (..., H, W) views, all rows at once.
# Forward kernels read the even/odd samples ``xe``/``xo`` and write ``low``/``high``; inverse
# kernels do the opposite. Along the width the 2-D driver first deinterleaves the samples into
# contiguous scratch, because numpy's SIMD loops only run on unit-stride rows.
# ----------------------------------------------------------------------------------------------
def _sl(axis: _Axis, start: int | None, stop: int | None = None, step: int | None = None) -> Any:
    s = slice(start, stop, step)
    return (Ellipsis, s) if axis == -1 else (Ellipsis, s, slice(None))


def _ix(axis: _Axis, i: int) -> Any:
    # Keep the axis (length-1 slice) so that results broadcast against the other slices.
    return _sl(axis, i, i + 1)


@lru_cache(maxsize=1024)
def _neighbour_plan(axis: _Axis, n_in: int, n_out: int, first: bool) -> tuple[tuple[Any, Any, Any], ...]:
    """Index triples ``(i, j, k)`` such that ``out[k] = a[i] + a[j]`` implements _neighbour_sum."""
    plan: list[tuple[Any, Any, Any]] = []
    if first:
        plan.append((_ix(axis, 0), _ix(axis, 0), _ix(axis, 0)))
        inner = min(n_out, n_in) - 1  # out[1..inner] from a[i-1] + a[i]
        if inner > 0:
            plan.append((_sl(axis, 0, inner), _sl(axis, 1, inner + 1), _sl(axis, 1, inner + 1)))
        if n_out > n_in:  # one more output than inputs: mirrored right end
            plan.append((_ix(axis, n_in - 1), _ix(axis, n_in - 1), _ix(axis, n_in)))
    else:
        inner = min(n_out, n_in - 1)  # out[0..inner-1] from a[i] + a[i+1]
        if inner > 0:
            plan.append((_sl(axis, 0, inner), _sl(axis, 1, inner + 1), _sl(axis, 0, inner)))
        if n_out == n_in:
            plan.append((_ix(axis, n_in - 1), _ix(axis, n_in - 1), _ix(axis, n_in - 1)))
    return tuple(plan)


def _neighbour_sum(a: Array, axis: _Axis, n_in: int, n_out: int, first: bool, out: Array) -> None:
    """``out[i] = a[i-1] + a[i]`` (``first``) or ``a[i] + a[i+1]``, mirrored at the ends.

    ``a`` has ``n_in`` samples and ``out`` ``n_out``. With ``first`` (update step) the missing
    ``a[-1]`` is ``a[0]`` and a missing ``a[n_in]`` is ``a[n_in - 1]``; without it (predict step)
    only the right end can be missing, and ``a[n_in]`` is ``a[n_in - 1]``.
    """
    for i, j, k in _neighbour_plan(axis, n_in, n_out, first):
        np.add(a[i], a[j], out=out[k])


def _fwd53_float(xe: Array, xo: Array, axis: _Axis, low: Array, high: Array) -> None:
    n_lo, n_hi = xe.shape[axis], xo.shape[axis]
    # predict: d = xo - (xe[i] + xe[i+1]) / 2
    _neighbour_sum(xe, axis, n_lo, n_hi, False, high)
    high *= -0.5
    high += xo
    # update: s = xe + (d[i-1] + d[i]) / 4
    _neighbour_sum(high, axis, n_hi, n_lo, True, low)
    low *= 0.25
    low += xe


def _inv53_float(low: Array, high: Array, axis: _Axis, xe: Array, xo: Array) -> None:
    n_lo, n_hi = low.shape[axis], high.shape[axis]
    _neighbour_sum(high, axis, n_hi, n_lo, True, xe)
    xe *= -0.25
    xe += low
    _neighbour_sum(xe, axis, n_lo, n_hi, False, xo)
    xo *= 0.5
    xo += high


def _fwd53_int(xe: Array, xo: Array, axis: _Axis, low: Array, high: Array) -> None:
    n_lo, n_hi = xe.shape[axis], xo.shape[axis]
    # predict: d = xo - floor((xe[i] + xe[i+1]) / 2)
    _neighbour_sum(xe, axis, n_lo, n_hi, False, high)
    np.right_shift(high, 1, out=high)
    np.subtract(xo, high, out=high)
    # update: s = xe + floor((d[i-1] + d[i] + 2) / 4)
    _neighbour_sum(high, axis, n_hi, n_lo, True, low)
    low += 2
    np.right_shift(low, 2, out=low)
    low += xe


def _inv53_int(low: Array, high: Array, axis: _Axis, xe: Array, xo: Array) -> None:
    n_lo, n_hi = low.shape[axis], high.shape[axis]
    _neighbour_sum(high, axis, n_hi, n_lo, True, xe)
    xe += 2
    np.right_shift(xe, 2, out=xe)
    np.subtract(low, xe, out=xe)
    _neighbour_sum(xe, axis, n_lo, n_hi, False, xo)
    np.right_shift(xo, 1, out=xo)
    xo += high


def _fwd_haar(xe: Array, xo: Array, axis: _Axis, low: Array, high: Array) -> None:
    n_hi = xo.shape[axis]
    pairs = xe[_sl(axis, 0, n_hi)]
    np.subtract(xo, pairs, out=high)
    high *= _INV_SQRT2
    lm = low[_sl(axis, 0, n_hi)]
    np.add(pairs, xo, out=lm)
    lm *= _INV_SQRT2
    if xe.shape[axis] > n_hi:  # odd length: the last sample passes through unscaled
        low[_ix(axis, n_hi)] = xe[_ix(axis, n_hi)]


def _inv_haar(low: Array, high: Array, axis: _Axis, xe: Array, xo: Array) -> None:
    n_hi = high.shape[axis]
    lm = low[_sl(axis, 0, n_hi)]
    pairs = xe[_sl(axis, 0, n_hi)]
    np.subtract(lm, high, out=pairs)
    pairs *= _INV_SQRT2
    np.add(lm, high, out=xo)
    xo *= _INV_SQRT2
    if low.shape[axis] > n_hi:
        xe[_ix(axis, n_hi)] = low[_ix(axis, n_hi)]


_Fwd = Callable[[Array, Array, _Axis, Array, Array], None]
_Inv = Callable[[Array, Array, _Axis, Array, Array], None]
_KERNELS: dict[tuple[str, bool], tuple[_Fwd, _Inv]] = {
    ("cdf53", False): (_fwd53_float, _inv53_float),
    ("cdf53", True): (_fwd53_int, _inv53_int),
    ("haar", False): (_fwd_haar, _inv_haar),
}


def _kernels(wavelet: str, integer: bool) -> tuple[_Fwd, _Inv]:
    if wavelet not in WAVELETS:
        raise VaeransError(f"unknown wavelet {wavelet!r}; expected one of {', '.join(WAVELETS)}")
    try:
        return _KERNELS[(wavelet, integer)]
    except KeyError:
        raise VaeransError(f"wavelet {wavelet!r} has no integer (reversible) version; use 'cdf53'") from None


# ----------------------------------------------------------------------------------------------
# 2-D multi-level transforms
# ----------------------------------------------------------------------------------------------
def _band_view(packed: Array, band: Band) -> Array:
    return packed[:, band.offset : band.offset + band.size].reshape(packed.shape[0], band.h, band.w)


def _level_bands(bands: tuple[Band, ...], level: int) -> dict[str, Band]:
    return {b.name[:2]: b for b in bands if b.level == level and not b.name.startswith("LL")}


def _work_dtype(integer: bool) -> np.dtype[Any]:
    return np.dtype(np.int32) if integer else np.dtype(np.float32)


def wavelet_forward(
    x: npt.ArrayLike,
    wavelet: str,
    levels: int,
    out: Array | None = None,
    *,
    integer: bool = False,
) -> Array:
    """Transform a ``(C, h, w)`` block into its packed ``(C, h*w)`` coefficients (see module doc).

    The float transforms return float32. ``integer=True`` (``cdf53`` only) takes integer input and
    returns int32 coefficients of the reversible 5/3, exactly invertible by :func:`wavelet_inverse`.
    ``out`` (``(C, h*w)``, matching dtype) receives the result; the input is never modified.
    """
    fwd, _ = _kernels(wavelet, integer)
    dtype = _work_dtype(integer)
    arr = np.asarray(x)
    if arr.ndim != 3:
        raise VaeransError(f"wavelet_forward expects a (C, h, w) array, got shape {arr.shape}")
    if integer and not np.issubdtype(arr.dtype, np.integer):
        raise VaeransError(f"the integer 5/3 needs integer input, got {arr.dtype}")
    arr = arr.astype(dtype, copy=False)
    c, h, w = arr.shape
    levels = int(levels)
    bands = band_layout(h, w, levels)
    out = _check_out(out, (c, h * w), dtype, "wavelet_forward", contiguous=True)
    plan = _levels_plan(h, w, levels)
    if c == 0:
        return out
    if not plan:
        out.reshape(c, h, w)[...] = arr
        return out
    # Rows: src -> tmp; columns: tmp -> packed output (details, final LL) or ll_buf (next level).
    tmp, evens, odds, ll_buf = _scratch(c, h, w, plan, dtype)
    src = arr
    n_levels = len(plan)
    for lev, (hh, ww, lh, hh_hi, lw, ww_hi) in enumerate(plan, start=1):
        by_name = _level_bands(bands, lev)
        # rows (along the width) -> tmp[:, :hh, :lw] (low) | tmp[:, :hh, lw:ww] (high)
        t = tmp[:, :hh, :ww]
        if ww_hi:
            # deinterleave once so that the lifting runs on contiguous rows (SIMD loops)
            e, o = evens[:, :hh, :lw], odds[:, :hh, :ww_hi]
            np.copyto(e, src[:, :, 0::2])
            np.copyto(o, src[:, :, 1::2])
            fwd(e, o, -1, t[:, :, :lw], t[:, :, lw:])
        else:
            t[...] = src
        ll_dst = _band_view(out, bands[0]) if lev == n_levels else ll_buf[:, :lh, :lw]
        if hh_hi:
            # columns of the low (left) half -> LL, LH; of the high (right) half -> HL, HH
            fwd(t[:, 0::2, :lw], t[:, 1::2, :lw], -2, ll_dst, _band_view(out, by_name["LH"]))
            if ww_hi:
                hl, hh_band = _band_view(out, by_name["HL"]), _band_view(out, by_name["HH"])
                fwd(t[:, 0::2, lw:], t[:, 1::2, lw:], -2, hl, hh_band)
        else:
            ll_dst[...] = t[:, :, :lw]
            if ww_hi:
                _band_view(out, by_name["HL"])[...] = t[:, :, lw:]
        src = ll_dst
    return out


def wavelet_inverse(
    packed: npt.ArrayLike,
    h: int,
    w: int,
    wavelet: str,
    levels: int,
    out: Array | None = None,
    *,
    integer: bool | None = None,
) -> Array:
    """Rebuild the ``(C, h, w)`` block from packed ``(C, h*w)`` coefficients.

    ``integer=None`` picks the reversible integer 5/3 when ``packed`` has an integer dtype and the
    float transform otherwise. Returns float32 (int32 for the integer transform); ``out``
    (``(C, h, w)``, matching dtype) receives the result. ``packed`` is never modified.
    """
    arr = np.asarray(packed)
    if integer is None:
        integer = bool(np.issubdtype(arr.dtype, np.integer))
    _, inv = _kernels(wavelet, integer)
    dtype = _work_dtype(integer)
    h, w, levels = int(h), int(w), int(levels)
    if arr.ndim != 2 or arr.shape[1] != h * w:
        raise VaeransError(f"wavelet_inverse expects a (C, {h * w}) array for a {h}x{w} plane, got {arr.shape}")
    if integer and not np.issubdtype(arr.dtype, np.integer):
        raise VaeransError(f"the integer 5/3 needs integer coefficients, got {arr.dtype}")
    arr = arr.astype(dtype, copy=False)
    out = _check_out(out, (arr.shape[0], h, w), dtype, "wavelet_inverse", contiguous=False)
    return _inverse(arr, h, w, levels, inv, out)


def _inverse(arr: Array, h: int, w: int, levels: int, inv: _Inv, out: Array) -> Array:
    c = arr.shape[0]
    bands = band_layout(h, w, levels)
    plan = _levels_plan(h, w, levels)
    dtype = out.dtype
    if c == 0:
        return out
    if not plan:
        out[...] = arr.reshape(c, h, w)
        return out
    # Columns: packed input (details, coarsest LL) or ll_buf -> tmp; rows: tmp -> ll_buf or out.
    tmp, evens, odds, ll_buf = _scratch(c, h, w, plan, dtype)
    ll_src = _band_view(arr, bands[0])
    for lev in range(len(plan), 0, -1):
        hh, ww, _, hh_hi, lw, ww_hi = plan[lev - 1]
        by_name = _level_bands(bands, lev)
        t = tmp[:, :hh, :ww]
        # columns: (LL, LH) -> left half, (HL, HH) -> right half of tmp
        if hh_hi:
            inv(ll_src, _band_view(arr, by_name["LH"]), -2, t[:, 0::2, :lw], t[:, 1::2, :lw])
            if ww_hi:
                hl, hh_band = _band_view(arr, by_name["HL"]), _band_view(arr, by_name["HH"])
                inv(hl, hh_band, -2, t[:, 0::2, lw:], t[:, 1::2, lw:])
        else:
            t[:, :, :lw] = ll_src
            if ww_hi:
                t[:, :, lw:] = _band_view(arr, by_name["HL"])
        # rows: tmp -> LL of the next finer level (or the output at level 1)
        dst = out if lev == 1 else ll_buf[:, :hh, :ww]
        if ww_hi:
            # lift into contiguous scratch, then interleave with two strided copies
            e, o = evens[:, :hh, :lw], odds[:, :hh, :ww_hi]
            inv(t[:, :, :lw], t[:, :, lw:], -1, e, o)
            dst[:, :, 0::2] = e
            dst[:, :, 1::2] = o
        else:
            dst[...] = t
        ll_src = dst
    return out


def _scratch(c: int, h: int, w: int, plan: tuple[_Level, ...], dtype: np.dtype[Any]) -> tuple[Array, ...]:
    """Work buffers: row-transformed region, even/odd row samples, intermediate LL."""
    tmp = np.empty((c, h, w), dtype=dtype)
    evens = np.empty((c, h, (w + 1) // 2), dtype=dtype)
    odds = np.empty((c, h, w // 2), dtype=dtype)
    # LL of the intermediate levels (unused, hence empty, with a single level)
    ll_buf = np.empty((c, plan[0][2], plan[0][4]) if len(plan) > 1 else (c, 0, 0), dtype=dtype)
    return tmp, evens, odds, ll_buf


def _check_out(
    out: Array | None, shape: tuple[int, ...], dtype: np.dtype[Any], what: str, *, contiguous: bool
) -> Array:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != shape or out.dtype != dtype:
        raise VaeransError(f"{what}: out has shape {out.shape} dtype {out.dtype}, expected {shape} {dtype}")
    if contiguous and not out.flags.c_contiguous:
        raise VaeransError(f"{what}: out must be C-contiguous")
    return out


# ----------------------------------------------------------------------------------------------
# Synthesis gains
# ----------------------------------------------------------------------------------------------
#: Planes up to this many samples get their gains from 2-D impulses (the values streams were
#: made with); larger ones from products of 1-D gains, so the cost is O(h + w), not O(h * w).
_GAIN_2D_MAX = 1 << 16


def _impulse_norms(h: int, w: int, wavelet: str, levels: int, picks: Sequence[Band]) -> list[float]:
    """L2 norms of the inverse transforms of unit impulses at the centres of ``picks``."""
    _, inv = _kernels(wavelet, False)
    impulses = np.zeros((len(picks), h * w), dtype=np.float64)
    for row, band in enumerate(picks):
        impulses[row, band.offset + (band.h // 2) * band.w + band.w // 2] = 1.0
    basis = _inverse(impulses, h, w, levels, inv, np.empty((len(picks), h, w), dtype=np.float64))
    return [float(g) for g in np.sqrt(np.einsum("bhw,bhw->b", basis, basis))]


@lru_cache(maxsize=512)
def _axis_gain(n: int, wavelet: str, level: int, high: bool) -> float:
    """Gain of one axis of length ``n``: the level-``level`` high band, or the low band after
    ``level`` splits (a separable 2-D basis function is the product of its two axes')."""
    if n == 1 or level == 0:
        return 1.0
    # An interior basis function does not depend on the axis length: a short axis that leaves the
    # band 32 coefficients gives the same norm in O(2**level) work.
    n = min(n, 32 << level)
    bands = _band_layout(n, 1, level)
    pick = next(b for b in bands if b.name == (f"LH{level}" if high else f"LL{level}"))
    return _impulse_norms(n, 1, wavelet, level, [pick])[0]


def _splits(n: int, levels: int) -> list[int]:
    """Cumulative number of splits of an axis of length ``n`` after each level 0..levels."""
    out, count = [0], 0
    for _ in range(levels):
        if n > 1:
            count += 1
            n = (n + 1) // 2
        out.append(count)
    return out


@lru_cache(maxsize=128)
def _synthesis_gains(h: int, w: int, wavelet: str, levels: int) -> tuple[float, ...]:
    bands = _band_layout(h, w, levels)
    if h * w <= _GAIN_2D_MAX:
        return tuple(_impulse_norms(h, w, wavelet, levels, bands))
    n_levels = len(_levels_plan(h, w, levels))
    sh, sw = _splits(h, n_levels), _splits(w, n_levels)
    gains = []
    for band in bands:
        kind, lev = band.name[:2], band.level
        gh = _axis_gain(h, wavelet, sh[lev], True) if kind in ("LH", "HH") else _axis_gain(h, wavelet, sh[lev], False)
        gw = _axis_gain(w, wavelet, sw[lev], True) if kind in ("HL", "HH") else _axis_gain(w, wavelet, sw[lev], False)
        gains.append(gh * gw)
    return tuple(gains)


def synthesis_gains(h: int, w: int, wavelet: str, levels: int) -> npt.NDArray[np.float64]:
    """L2 norm of the synthesis basis function of each band (in :func:`band_layout` order).

    Measured numerically (inverse transform of a unit impulse at the band's centre) and cached;
    for large planes as the product of the two axes' 1-D gains, so any size costs O(h + w).
    A unit error on one coefficient of band ``b`` costs ``gain_b**2`` in squared pixel error, so
    a quantizer using ``step_b = step / gain_b`` spends the same error energy per step in every
    band. Orthonormal Haar gives exactly 1 everywhere; the integer 5/3 shares the float gains.
    """
    h, w, levels = int(h), int(w), int(levels)
    _check_size(h, w, levels)
    _kernels(wavelet, False)
    result = np.array(_synthesis_gains(h, w, wavelet, levels), dtype=np.float64)
    return result
