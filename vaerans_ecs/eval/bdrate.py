"""Bjontegaard delta rate and delta quality between two rate-distortion curves.

BD-rate (VCEG-M33, with the piecewise cubic interpolation used by the JVET/AOM tools): each
curve's ``log(rate)`` is interpolated as a function of the distortion with a monotone piecewise
cubic Hermite interpolant (PCHIP), both are integrated over the *overlapping* distortion range,
and the mean difference gives ``BD-rate = exp(mean(log r_test - log r_ref)) - 1`` in percent.
Negative means the test codec needs fewer bits for the same quality. BD-quality swaps the roles:
quality interpolated over ``log(rate)``, mean difference in the quality's unit (dB for PSNR).

Points are cleaned first: non-finite or non-positive rates are dropped, points are sorted by
rate, and points whose quality does not exceed that of every lower-rate point are dropped (they
are dominated), so that both coordinates increase strictly. A curve needs at least two points
and the two curves must overlap, otherwise the result is NaN.

``quality_range=(lo, hi)`` restricts BD-rate to the part of the overlap inside ``[lo, hi]`` (e.g.
the PSNR range both curves cover within [32, 40] dB, where high-rate codecs are compared); NaN
when that part is empty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.interpolate import PchipInterpolator

__all__ = ["bd_quality", "bd_rate", "clean_curve", "quality_overlap"]

F64 = npt.NDArray[np.float64]


def clean_curve(rates: Sequence[float], quality: Sequence[float]) -> tuple[F64, F64]:
    """``(rates, quality)`` sorted by rate with invalid and dominated points removed."""
    r = np.asarray(rates, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.shape != q.shape or r.ndim != 1:
        raise ValueError(f"rates and quality must be 1-D of equal length, got {r.shape} and {q.shape}")
    ok = np.isfinite(r) & np.isfinite(q) & (r > 0)
    r, q = r[ok], q[ok]
    order = np.lexsort((q, r))
    r, q = r[order], q[order]
    keep_r: list[float] = []
    keep_q: list[float] = []
    for ri, qi in zip(r.tolist(), q.tolist(), strict=True):
        if keep_q and qi <= keep_q[-1]:
            continue
        if keep_r and ri <= keep_r[-1]:  # same rate, higher quality: keep the better point
            keep_r.pop()
            keep_q.pop()
        keep_r.append(ri)
        keep_q.append(qi)
    return np.asarray(keep_r), np.asarray(keep_q)


def _mean_over(x1: F64, y1: F64, x2: F64, y2: F64, within: tuple[float, float] | None = None) -> float:
    """Mean of ``f2 - f1`` over the overlap of the x ranges (clipped to ``within``), f = PCHIP(x, y)."""
    lo = max(float(x1[0]), float(x2[0]))
    hi = min(float(x1[-1]), float(x2[-1]))
    if within is not None:
        lo, hi = max(lo, float(within[0])), min(hi, float(within[1]))
    if not hi > lo:
        return math.nan
    f1 = PchipInterpolator(x1, y1, extrapolate=False)
    f2 = PchipInterpolator(x2, y2, extrapolate=False)
    return float((f2.integrate(lo, hi) - f1.integrate(lo, hi)) / (hi - lo))


def quality_overlap(
    rate_ref: Sequence[float],
    quality_ref: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
    quality_range: tuple[float, float] | None = None,
) -> tuple[float, float] | None:
    """The quality interval both cleaned curves cover, within ``quality_range`` if given (what
    :func:`bd_rate` integrates over), or None."""
    _, q1 = clean_curve(rate_ref, quality_ref)
    _, q2 = clean_curve(rate_test, quality_test)
    if q1.size < 2 or q2.size < 2:
        return None
    lo, hi = max(float(q1[0]), float(q2[0])), min(float(q1[-1]), float(q2[-1]))
    if quality_range is not None:
        _check_range(quality_range)
        lo, hi = max(lo, float(quality_range[0])), min(hi, float(quality_range[1]))
    return (lo, hi) if hi > lo else None


def _check_range(quality_range: tuple[float, float]) -> None:
    lo, hi = (float(v) for v in quality_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"quality_range must be (lo, hi) with lo < hi, got {quality_range}")


def bd_rate(
    rate_ref: Sequence[float],
    quality_ref: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
    quality_range: tuple[float, float] | None = None,
) -> float:
    """BD-rate of the test curve against the reference, in percent (NaN when undefined).

    ``quality_range``: integrate only over the part of the overlap within ``[lo, hi]``.
    """
    if quality_range is not None:
        _check_range(quality_range)
    r1, q1 = clean_curve(rate_ref, quality_ref)
    r2, q2 = clean_curve(rate_test, quality_test)
    if r1.size < 2 or r2.size < 2:
        return math.nan
    mean_log = _mean_over(q1, np.log(r1), q2, np.log(r2), quality_range)
    return math.nan if math.isnan(mean_log) else (math.exp(mean_log) - 1.0) * 100.0


def bd_quality(
    rate_ref: Sequence[float],
    quality_ref: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
) -> float:
    """BD-quality (e.g. BD-PSNR in dB) of the test curve against the reference (NaN when undefined)."""
    r1, q1 = clean_curve(rate_ref, quality_ref)
    r2, q2 = clean_curve(rate_test, quality_test)
    if r1.size < 2 or r2.size < 2:
        return math.nan
    return _mean_over(np.log(r1), q1, np.log(r2), q2)
