"""Quantisation helpers of the transform coder: dead-zone / rate-distortion quantiser, symbols,
escapes and the coarsest band's plane predictor.

Coefficients are handled in units of their band's step (``y = coefficient / step``). A detail
magnitude ``m >= 1`` is reconstructed at ``m - offset`` (the offset toward zero is measured by
the encoder and sent in the header); ``m = 0`` at 0.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ESC",
    "RateDistortionStats",
    "apply_escapes",
    "ll_reconstruct",
    "ll_residual",
    "magnitude_symbols",
    "quantise_pass",
    "symbols",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
U8 = NDArray[np.uint8]

#: Quantised magnitudes >= ESC are coded as the symbol for +-ESC plus an escaped excess.
ESC: Final = 127
# Offsets toward zero assumed while deciding (the header carries the measured ones).
_GUESS_OFFSET_1: Final = 0.15
_GUESS_OFFSET_2: Final = 0.05


def symbols(q: I64) -> tuple[U8, I64]:
    """uint8 symbols ``128 + clip(q, -ESC, ESC)`` and the escaped excesses ``|q| - ESC``, in order."""
    sym = (np.clip(q, -ESC, ESC) + 128).astype(np.uint8)
    a = np.abs(q)
    return sym, a[a >= ESC] - ESC


def magnitude_symbols(q: I64) -> tuple[U8, I64]:
    """uint8 symbols ``min(|q|, ESC)`` and the escaped excesses ``|q| - ESC``, in order."""
    a = np.abs(q)
    return np.minimum(a, ESC).astype(np.uint8), a[a >= ESC] - ESC


def apply_escapes(vals: I64, excess: I64, pos: int) -> int:
    """Add the escaped excesses from ``excess[pos:]`` to ``vals`` (in place); returns the new position."""
    idx = np.flatnonzero(np.abs(vals) == ESC)
    if idx.size:
        vals[idx] += np.sign(vals[idx]) * excess[pos : pos + idx.size]
    return pos + int(idx.size)


def ll_residual(q: I64) -> I64:
    """Plane-predictor residual ``q - up - left + up_left`` (zero outside), per channel of (C, h, w)."""
    r = q.copy()
    r[:, 1:, :] -= q[:, :-1, :]
    r[:, :, 1:] -= q[:, :, :-1]
    r[:, 1:, 1:] += q[:, :-1, :-1]
    return r


def ll_reconstruct(r: I64) -> I64:
    """Inverse of :func:`ll_residual` (two cumulative sums)."""
    out: I64 = np.cumsum(np.cumsum(r, axis=1), axis=2)
    return out


def _bits_table(m: I64, base: I64, n_classes: int) -> F64:
    """Estimated bits of every magnitude symbol in every class (``base``: class * 128), from the
    histogram of ``m``."""
    sym = base + np.minimum(m, ESC)
    hist = np.bincount(sym, minlength=n_classes * 128).reshape(n_classes, 128)
    cnt = hist.astype(np.float64) + 0.05
    bits: F64 = np.log2(cnt.sum(axis=1, keepdims=True)) - np.log2(cnt)
    return bits


def quantise_pass(y: NDArray[np.floating[Any]], cls: U8, n_classes: int, deadzone: float, lam: float) -> I64:
    """Signed quantised values of one pass's normalised coefficients ``y``.

    ``lam == 0``: dead-zone rounding ``floor(|y| + deadzone)``. Otherwise a rate-distortion choice
    per coefficient between the nearest magnitude and the one below, minimising
    ``(|y| - reconstruction)**2 + lam * bits`` (magnitude bits estimated per class from the
    dead-zone result, two rounds, plus one bit of sign). The decoder does not care how the
    values were chosen.
    """
    a = np.abs(y)
    m = np.floor(a + deadzone).astype(np.int64)
    if lam > 0 and a.size:
        # only coefficients whose nearest magnitude is >= 1 have a choice to make
        sel = np.flatnonzero(a >= 0.5)
        a_sel = a[sel]
        hi = np.floor(a_sel + 0.5).astype(np.int64)
        lo = hi - 1
        d_hi = np.square(a_sel - _recon_guess(hi))
        d_lo = np.square(a_sel - _recon_guess(lo))
        base = cls.astype(np.int64) * 128
        rows = base[sel]  # flat positions in the (class, symbol) table
        at_hi, at_lo = rows + np.minimum(hi, ESC), rows + np.minimum(lo, ESC)
        sign_lo = lo > 0
        for _ in range(2):
            bits = _bits_table(m, base, n_classes).ravel()
            j_hi = d_hi + lam * (bits[at_hi] + 1.0)
            j_lo = d_lo + lam * (bits[at_lo] + sign_lo)
            m = np.zeros_like(m)
            m[sel] = np.where(j_lo < j_hi, lo, hi)
    out: I64 = np.where(y < 0, -m, m)
    return out


def _recon_guess(m: I64) -> F64:
    off = np.where(m == 1, _GUESS_OFFSET_1, _GUESS_OFFSET_2)
    out: F64 = np.where(m > 0, m - off, 0.0)
    return out


class RateDistortionStats:
    """Accumulates the mean ``|q| - |y|`` for |q| = 1 and |q| >= 2 (per channel kind) while coding."""

    def __init__(self) -> None:
        self._sum = np.zeros((2, 2), dtype=np.float64)
        self._n = np.zeros((2, 2), dtype=np.int64)

    def add(self, kind: int, q: I64, y: F64) -> None:
        """Record one pass's values ``q`` chosen for normalised coefficients ``y``."""
        m = np.abs(q)
        gap = m - np.abs(y)
        for j, sel in enumerate((m == 1, m >= 2)):
            n = int(np.count_nonzero(sel))
            if n:
                self._sum[kind, j] += float(gap[sel].sum())
                self._n[kind, j] += n

    def offsets(self) -> list[float]:
        """Mean offsets toward zero: (|q| = 1, |q| >= 2) of kind 0, then of kind 1 (0 if unseen)."""
        mean = np.where(self._n > 0, self._sum / np.maximum(self._n, 1), 0.0)
        return [float(v) for v in mean.reshape(-1)]
