"""Sign coding of the transform coder: each nonzero coefficient's sign as one bit, by context.

The sign is predicted from signs the decoder already has: the neighbours along the band's edge
direction decoded in earlier passes (up + down for HL, left + right for LH), the co-located
coefficient of the first channel (and of the second, for the third), and the parent. The score
``t = 2 along + 3 first-channel + parent + second-channel`` (each a sign in -1, 0, 1) predicts
the sign ``-1`` when negative, ``+1`` otherwise; the coded bit says whether the sign differs
from that prediction, in context ``2 * min(|t|, 6) + (|q| > 1)`` (fewer contexts for few bits,
see :func:`sign_contexts`). All integer arithmetic.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.systems.residual.transform_context import PHASES, fit_grid, pad1

__all__ = ["N_SIGN_CONTEXTS", "sign_bits", "sign_contexts", "sign_score", "signs_from_bits"]

I8 = NDArray[np.int8]
I32 = NDArray[np.int32]
U8 = NDArray[np.uint8]

N_SIGN_CONTEXTS: Final = 14
_W_ALONG: Final = 2
_W_FIRST: Final = 3
_W_PARENT: Final = 1
_W_SECOND: Final = 1


def sign_score(
    signs: I8,
    phase: int,
    orientation: int,
    parent: I8 | None,
    first: I8 | None,
    second: I8 | None,
) -> I32:
    """Prediction score ``t`` of one band's pass-``phase`` coefficients (gather order).

    ``signs``: the band's signs decoded so far (0 where unknown or zero); ``parent`` the parent
    band's signs; ``first`` / ``second`` the same band's signs in the first / second channel.
    """
    h, w = signs.shape
    p = pad1(signs)
    parts: list[I32] = []
    for py, px in PHASES[phase]:
        nh, nw = (h - py + 1) // 2, (w - px + 1) // 2
        t = np.zeros((nh, nw), dtype=np.int32)
        if orientation in (0, 1):
            if orientation == 0:  # HL: vertical edges, neighbours above and below
                a = p[py::2, 1 + px :: 2][:nh, :nw].astype(np.int32)
                b = p[2 + py :: 2, 1 + px :: 2][:nh, :nw]
            else:  # LH: horizontal edges, neighbours left and right
                a = p[1 + py :: 2, px::2][:nh, :nw].astype(np.int32)
                b = p[1 + py :: 2, 2 + px :: 2][:nh, :nw]
            t += _W_ALONG * np.sign(a + b)
        if parent is not None:
            t += _W_PARENT * fit_grid(parent, nh, nw)
        if first is not None:
            t += _W_FIRST * first[py::2, px::2]
        if second is not None:
            t += _W_SECOND * second[py::2, px::2]
        parts.append(t.ravel())
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def sign_contexts(score: I32, mag: NDArray[np.signedinteger[Any]]) -> U8:
    """Contexts of the sign bits of nonzero coefficients from their scores and magnitudes.

    Few bits use fewer contexts: one below 64 signs, only the magnitude bit below 512.
    """
    if score.size < 64:
        return np.zeros(score.size, dtype=np.uint8)
    big = (mag > 1).astype(np.uint8)
    if score.size < 512:
        return big
    out: U8 = (2 * np.minimum(np.abs(score), 6)).astype(np.uint8) + big
    return out


def sign_bits(q: NDArray[np.signedinteger[Any]], score: I32) -> U8:
    """1 where the sign of ``q`` differs from the prediction (``-1`` if score < 0, else ``+1``)."""
    out: U8 = ((q < 0) != (score < 0)).astype(np.uint8)
    return out


def signs_from_bits(bits: U8, score: I32) -> I8:
    """Inverse of :func:`sign_bits`: -1 or +1 per coefficient."""
    negative = (bits != 0) != (score < 0)
    out: I8 = np.where(negative, -1, 1).astype(np.int8)
    return out
