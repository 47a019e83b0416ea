"""Lossless DPCM of integer bands: MED (LOCO-I / JPEG-LS) for small bands, left prediction for large ones.

The prediction runs on the quantized integers, so the decoder reproduces it exactly (no drift).
Encoding is vectorised; MED decoding is sequential by nature, left decoding is two cumulative sums.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vaerans_ecs.systems.quantize.steps import I64

__all__ = ["MED_MAX_SIZE", "dpcm_decode", "dpcm_residual", "predictor"]

#: DPCM bands of at most this many coefficients use MED, larger ones the left predictor.
MED_MAX_SIZE: Final = 1024


def predictor(size: int) -> str:
    """The predictor a band of ``size`` coefficients uses: ``"med"`` or ``"left"``."""
    return "med" if size <= MED_MAX_SIZE else "left"


def dpcm_residual(q: npt.NDArray[np.integer[Any]], anchor: npt.ArrayLike = 0) -> I64:
    """Prediction residual of integer bands ``q`` (``(..., h, w)``), vectorised.

    ``anchor`` (broadcast against the leading axes) is subtracted first; neighbours outside the
    band count as 0. The predictor is MED for ``h*w <= MED_MAX_SIZE`` and left otherwise.
    """
    h, w = q.shape[-2:]
    v = q.astype(np.int64) - np.asarray(anchor, dtype=np.int64)[..., None, None]
    pred = np.zeros_like(v)
    if predictor(h * w) == "left":
        pred[..., :, 1:] = v[..., :, :-1]
        pred[..., 1:, 0] = v[..., :-1, 0]
    else:
        a = pred.copy()
        a[..., :, 1:] = v[..., :, :-1]
        b = np.zeros_like(v)
        b[..., 1:, :] = v[..., :-1, :]
        c = np.zeros_like(v)
        c[..., 1:, 1:] = v[..., :-1, :-1]
        mx = np.maximum(a, b)
        mn = np.minimum(a, b)
        pred = np.where(c >= mx, mn, np.where(c <= mn, mx, a + b - c))
    return np.asarray(v - pred, dtype=np.int64)


def _med_decode(res: I64) -> I64:
    h, w = res.shape
    prev = [0] * (w + 1)  # prev[j + 1] = row above at column j, prev[0] = 0 (outside)
    rows: list[list[int]] = []
    for ri in res.tolist():
        cur = [0] * (w + 1)
        a = 0
        for j in range(w):
            b = prev[j + 1]
            c = prev[j]
            if a >= b:
                mx, mn = a, b
            else:
                mx, mn = b, a
            if c >= mx:
                p = mn
            elif c <= mn:
                p = mx
            else:
                p = a + b - c
            a = ri[j] + p
            cur[j + 1] = a
        rows.append(cur)
        prev = cur
    return np.array(rows, dtype=np.int64).reshape(h, w + 1)[:, 1:]


def dpcm_decode(res: npt.NDArray[np.integer[Any]], anchor: int = 0) -> I64:
    """Exact inverse of :func:`dpcm_residual` for one ``(h, w)`` band."""
    h, w = res.shape
    r = res.astype(np.int64)
    if predictor(h * w) == "left":
        out = r.copy()
        np.cumsum(out[:, 0], out=out[:, 0])
        np.cumsum(out, axis=1, out=out)
    else:
        out = _med_decode(r)
    return np.asarray(out + np.int64(anchor), dtype=np.int64)
