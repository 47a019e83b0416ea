"""Fixed orthonormal colour transform for lossy coding of RGB planes (images or residuals).

``Y = (R + G + B) / sqrt3``, ``U = (R - B) / sqrt2``, ``V = (R - 2G + B) / sqrt6``: an orthonormal
matrix, so squared error in (Y, U, V) equals squared error in RGB and one quantiser step serves
all three; it is linear without offset, which suits residuals (zero mean) as well as images.
Only the first three channels are transformed; any others pass through.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["RGB_TO_YUV", "colour_forward", "colour_inverse"]

_R3, _R2, _R6 = 1.0 / math.sqrt(3.0), 1.0 / math.sqrt(2.0), 1.0 / math.sqrt(6.0)

#: Rows: Y, U, V in terms of R, G, B (orthonormal; its inverse is its transpose).
RGB_TO_YUV = np.array([[_R3, _R3, _R3], [_R2, 0.0, -_R2], [_R6, -2.0 * _R6, _R6]], dtype=np.float64)


def _mix(planes: NDArray[np.float32], m: NDArray[np.float64]) -> NDArray[np.float32]:
    c = planes.shape[0]
    if c < 3:
        raise ValueError(f"the colour transform needs at least 3 channels, got {c}")
    out = np.array(planes, dtype=np.float32, copy=True)
    mf = m.astype(np.float32)
    r, g, b = planes[0], planes[1], planes[2]
    for i in range(3):
        np.multiply(r, mf[i, 0], out=out[i])
        out[i] += mf[i, 1] * g
        out[i] += mf[i, 2] * b
    return out


def colour_forward(planes: NDArray[np.float32]) -> NDArray[np.float32]:
    """RGB(+extra) planes ``(C, H, W)``, C >= 3 -> YUV(+extra), float32 (a new array)."""
    return _mix(planes, RGB_TO_YUV)


def colour_inverse(planes: NDArray[np.float32]) -> NDArray[np.float32]:
    """Inverse of :func:`colour_forward`."""
    return _mix(planes, RGB_TO_YUV.T)
