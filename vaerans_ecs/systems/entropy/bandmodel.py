"""Band models of the table coders: five kinds, their coded parameters and exact float weights.

Each non-empty band of uint8 symbols gets one of five model kinds, whichever costs the fewest
total bits (side information under fixed priors plus the cross-entropy of the band under exactly
the model the decoder will rebuild):

``CONST``
    All symbols equal the mode ``m``; nothing else is coded.
``GEOM``
    Two-sided geometric around the mode: weight ``2**a'`` at ``m`` and ``2**(-t'*(j-1))`` at
    ``m +- j`` for ``1 <= j <= J``, where ``J = 1 + ceil(24 / t')`` (capped to the byte range) is
    where the tail falls below 2**-24, so the alphabet stays small and decoding fast.
``SAME``
    The parameters (precision, ``a'``, ``t'``) of the most recent ``GEOM`` band, with this band's
    own mode: merges bands with similar statistics for the cost of the kind symbol.
``TABLE``
    An explicit table over the used range ``[lo, hi]``: the log2 ratio of each count to the
    mode's count (``L <= 0``), coded as differences along two chains walking outward from the
    mode, with an escape for symbols that never occur.
``SPARSE``
    The same table for histograms with many holes: the number of used symbols, the gap before
    each along the chains, and the differences of the used ones only.

``a'``, ``t'`` and ``L`` are integers times a per-band step of ``2**(2-q)`` bits, ``q`` (the
precision) in ``0..5`` (4 bits down to 1/8 bit): sparse bands take coarse steps, big ones fine
(the encoder tries tables at 1 bit and finer only; the decoder accepts every precision). ``a'``
is coded relative to ``log2(2n)``, which the decoder knows from the band size.
All side information is entropy coded with fixed priors (:mod:`.priors`) in the same stream as the
symbols (see :func:`.plan.plan_chunks` for the order), so a nearly empty band costs a few bits and nothing is
byte aligned. Probabilities come from the coded integers by exact float arithmetic (a hard-coded
integer mantissa table scaled by powers of two), so encoder and decoder hand bit-identical float
tables to constriction on every platform (the same constriction version must be used: its
float-to-fixed-point conversion is part of the format). The encoder evaluates every option with
closed forms or vectorised numpy over all bands at once (:mod:`.search`); GEOM models are cached
by parameters.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final, NamedTuple

import numpy as np

from vaerans_ecs.systems.entropy.priors import (
    A_HI8,
    CUT8,
    F64,
    I64,
    MAX_LOG8,
    PRIORS,
    UNITS,
    categorical,
)

__all__ = [
    "CONST",
    "GEOM",
    "SAME",
    "SPARSE",
    "TABLE",
    "TABLES",
    "E8_FLOOR",
    "W8",
    "BandModel",
    "a_centre",
    "dense_to_sparse",
    "e8_lookup",
    "geom_model",
    "geom_support",
    "sparse_to_dense",
    "table_logs",
    "weights_e8",
]

CONST: Final = 0
GEOM: Final = 1
TABLE: Final = 2
SAME: Final = 3
SPARSE: Final = 4
TABLES: Final = (TABLE, SPARSE)

# round(2**(j/8) * 2**20) for j = 0..7, hard-coded so both sides use identical integers.
MANT8: Final = np.array([1048576, 1143480, 1246974, 1359835, 1482910, 1617125, 1763488, 1923097], dtype=np.float64)
#: Exponents (eighths of a bit) below this give the weight of the floor.
E8_FLOOR: Final = -8 * 60


def weights_e8(e8: I64) -> F64:
    """Exact float weights ``2**(e8/8) * 2**20`` for integer exponents in eighths of a bit."""
    e = np.maximum(e8, E8_FLOOR)
    out: F64 = np.ldexp(MANT8[e & 7], (e >> 3).astype(np.int32))
    return out


def geom_support(mode: int, t8: int) -> tuple[int, int]:
    """The GEOM alphabet ``[lo, hi]`` for a mode and a tail decay of ``t8`` eighths per step."""
    reach = 255 if t8 <= 0 else min(255, 1 + (CUT8 + t8 - 1) // t8)
    return max(0, mode - reach), min(255, mode + reach)


def a_centre(n: int, unit: int) -> int:
    """Prediction of the GEOM mode parameter from the band size (log2 of 2n, in units)."""
    return (8 * (2 * n).bit_length()) // unit


ABSENT: Final = -(1 << 40)
#: :func:`weights_e8` of every exponent from the floor up to the largest GEOM mode weight (index
#: ``e8 - E8_FLOOR``): a lookup gives the very same floats as the arithmetic, several times faster.
W8: Final = weights_e8(np.arange(E8_FLOOR, A_HI8 + 1, dtype=np.int64))
W8.setflags(write=False)


def e8_lookup(e8: I64) -> F64:
    """:func:`weights_e8` by table lookup, for exponents up to ``A_HI8`` (every validated model)."""
    idx = np.maximum(e8, E8_FLOOR)
    idx -= E8_FLOOR
    out: F64 = W8[idx]
    return out


class BandModel(NamedTuple):
    """The coded description of one non-empty band's model (see the module docstring).

    A named tuple: the encoder makes one per band, and that is several times cheaper than a
    frozen dataclass.
    """

    kind: int
    mode: int
    prec: int = 0
    a: int = 0  # GEOM, in units of the precision
    t: int = 0  # GEOM
    lo: int = 0  # alphabet [lo, hi] (TABLE: coded; GEOM: derived from mode and t)
    hi: int = 0
    entries: I64 | None = None  # TABLE/SPARSE entries, dense: left chain (outward), then right chain

    def weights(self) -> F64:
        """Float weights over ``[lo, hi]``, computed from the coded integers only."""
        if self.kind in (GEOM, SAME):
            return geom_model(self.prec, self.a, self.t, self.mode - self.lo, self.hi - self.mode)[0]
        unit = UNITS[self.prec]
        assert self.entries is not None
        logs = table_logs(self.mode - self.lo, self.entries, PRIORS.e_off[self.prec])
        w = weights_e8(np.maximum(logs, -MAX_LOG8) * unit)
        w[logs == ABSENT] = 0.0
        return w

    def model(self) -> Any:
        """The constriction model of :meth:`weights` (cached for the parametric kinds)."""
        if self.kind in (GEOM, SAME):
            return geom_model(self.prec, self.a, self.t, self.mode - self.lo, self.hi - self.mode)[1]
        return categorical(self.weights())


E0: Final = -E8_FLOOR  # index of exponent 0 in W8


@lru_cache(maxsize=2048)
def geom_model(prec: int, a: int, t: int, left: int, right: int) -> tuple[F64, Any]:
    """GEOM weights over ``[mode - left, mode + right]`` and their model (pure, so cached).

    Weight ``2**(a*unit/8)`` at the mode and ``2**(-(j-1)*t*unit/8)`` at distance ``j``: read
    from :data:`W8` (a strided slice for the tail), the very floats :func:`weights_e8` gives.
    """
    unit = UNITS[prec]
    t8 = t * unit
    reach = max(left, right)
    if t8 == 0:
        tail = np.full(reach, W8[E0])
    elif (reach - 1) * t8 <= E0:
        tail = W8[E0::-t8][:reach]
    else:  # beyond any support geom_support gives: the exponents hit the floor
        tail = e8_lookup(-t8 * np.arange(reach, dtype=np.int64))
    w = np.empty(left + right + 1)
    w[:left] = tail[:left][::-1]
    w[left] = W8[a * unit - E8_FLOOR]
    w[left + 1 :] = tail[:right]
    w.setflags(write=False)
    return w, categorical(w)


def table_logs(left: int, entries: I64, e_off: int) -> I64:
    """Log ratios (in units) over ``[lo, hi]`` from the entries; ``ABSENT`` for escapes."""
    absent = entries == 0
    delta = np.where(absent, 0, entries - (1 + e_off))
    out = np.empty(entries.size + 1, dtype=np.int64)
    out[left] = 0
    out[:left] = np.cumsum(delta[:left])[::-1]
    out[left + 1 :] = np.cumsum(delta[left:])
    out[:left][absent[:left][::-1]] = ABSENT
    out[left + 1 :][absent[left:]] = ABSENT
    return out


def dense_to_sparse(left: int, entries: I64) -> tuple[I64, I64]:
    """(gaps, used entries) of dense entries; a gap counts the escapes before a used entry."""
    used = np.flatnonzero(entries)
    pos = np.where(used < left, used + 1, used - left + 1)  # 1-based distance along its chain
    prev = np.concatenate(([0], pos[:-1]))
    right = np.flatnonzero(used >= left)
    if right.size:
        prev[right[0]] = 0  # the right chain starts again at the mode
    return (pos - prev - 1).astype(np.int64), entries[used]


def sparse_to_dense(left: int, right: int, gaps: I64, used: I64) -> I64 | None:
    """Inverse of :func:`dense_to_sparse`; ``None`` if the gaps do not tile both chains exactly."""
    steps = np.cumsum(gaps + 1)
    n_left = int(np.searchsorted(steps, left, side="right")) if left else 0
    if left and (n_left == 0 or steps[n_left - 1] != left):
        return None
    rsteps = steps[n_left:] - (left if n_left else 0)
    if (rsteps.size == 0) != (right == 0) or (rsteps.size and rsteps[-1] != right):
        return None
    dense = np.zeros(left + right, dtype=np.int64)
    dense[steps[:n_left] - 1] = used[:n_left]
    dense[left + rsteps - 1] = used[n_left:]
    return dense
