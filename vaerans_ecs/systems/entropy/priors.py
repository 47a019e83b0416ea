"""Format constants of the table coders and the fixed priors of their side information.

Every model parameter a band's description carries (kind, mode, precision, GEOM ``a``/``t``,
table ranges, gaps and entries) is itself entropy coded under one of these fixed models, so
a nearly empty band costs a few bits. The priors' probabilities are part of the format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import constriction
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "A_HI8",
    "A_LO8",
    "CANARY_BITS",
    "CUT8",
    "MAX_LOG8",
    "MODE_START",
    "N_PREC",
    "PRIORS",
    "TABLE_Q0",
    "T_HI8",
    "UNITS",
    "Priors",
    "categorical",
    "pad_rows",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

N_PREC: Final = 6
#: Units of the coded log values, in eighths of a bit, per precision q (4 bits ... 1/8 bit).
UNITS: Final = tuple(32 >> q for q in range(N_PREC))
A_LO8: Final = -32  # GEOM mode log-weight range, eighths of a bit ([-4, 24] bits)
A_HI8: Final = 192
T_HI8: Final = 128  # GEOM tail decay per step: [0, 16] bits
CUT8: Final = 192  # GEOM support ends where the tail falls 24 bits below its first step
MAX_LOG8: Final = 320  # TABLE log ratios lie in [-40, 0] bits
TABLE_Q0: Final = 2  # the encoder tries tables at precisions 1 bit and finer (the format allows all)
MODE_START: Final = 128  # predictor of the first band's mode
CANARY_BITS: Final = 20

_categorical_cls: Any = constriction.stream.model.Categorical
_uniform_cls: Any = constriction.stream.model.Uniform


def categorical(weights: F64) -> Any:
    """A constriction Categorical model (``perfect=False``) of non-negative finite weights."""
    return _categorical_cls(weights, perfect=False)


# ----------------------------------------------------------------------------- fixed priors


def _bits_and_model(p: F64) -> tuple[F64, Any]:
    p = p / p.sum()
    return -np.log2(p), categorical(p)


def _laplace(x: F64, centre: float, scale: float) -> F64:
    out: F64 = np.exp(-np.abs(x - centre) / scale)
    return out


def _with_floor(p: F64, floor: float) -> F64:
    out: F64 = p / p.sum() * (1.0 - floor) + floor / p.size
    return out


@dataclass(frozen=True)
class Priors:
    """The fixed models of the side information and their costs in bits (index: coded value).

    ``kind`` is indexed by the model kind (CONST, GEOM, TABLE, SAME, SPARSE); the per-precision
    tuples by ``q``."""

    kind_bits: F64
    kind: Any
    mode_bits: F64  # index d + 255
    mode: Any
    prec_bits: F64
    prec: Any
    dist_bits: F64  # 0..255
    dist: Any
    gap_bits: F64  # 0..254
    gap: Any
    a_off: tuple[int, ...]  # index = a_centre - a + a_off
    a_bits: tuple[F64, ...]
    a: tuple[Any, ...]
    t_bits: tuple[F64, ...]  # index t
    t: tuple[Any, ...]
    e_off: tuple[int, ...]  # entry index: 0 = escape, 1 + e_off + delta
    ent_bits: tuple[F64, ...]
    ent: tuple[Any, ...]
    canary: Any


def _build_priors() -> Priors:
    kind_bits, kind = _bits_and_model(np.array([0.25, 0.4, 0.08, 0.25, 0.02]))
    d = np.arange(511, dtype=np.float64)
    mode_bits, mode = _bits_and_model(_with_floor(_laplace(d, 255, 0.5), 0.02))
    prec_bits, prec = _bits_and_model(np.array([0.15, 0.25, 0.25, 0.15, 0.12, 0.08]))
    d = np.arange(256, dtype=np.float64)
    dist_bits, dist = _bits_and_model((d + 2.0) ** -1.5)
    gap_bits, gap = _bits_and_model((d[:255] + 1.0) ** -1.1)
    a_off, a_bits, a, t_bits, t, e_off, ent_bits, ent = [], [], [], [], [], [], [], []
    for unit in UNITS:
        off = A_HI8 // unit
        x = (np.arange(off + (256 - A_LO8) // unit + 1) - off) * unit / 8.0  # a_centre - a, bits
        pa = np.where((x >= 0) & (x <= 14), 1.0, _laplace(x, 7.0, 2.0) * np.exp(3.5))
        ab, am = _bits_and_model(_with_floor(pa, 0.05))
        x = np.arange(T_HI8 // unit + 1) * unit / 8.0
        pt = _with_floor(_laplace(x, 0.0, 3.0), 0.05) * 0.7
        pt[-1] += 0.3
        tb, tm = _bits_and_model(pt)
        eo = MAX_LOG8 // unit
        x = (np.arange(2 * eo + 1) - eo) * unit / 8.0
        pe = _with_floor(_laplace(x, -1.0, 1.5), 0.02) * 0.88
        eb, em = _bits_and_model(np.concatenate(([0.12], pe)))
        a_off.append(off)
        a_bits.append(ab)
        a.append(am)
        t_bits.append(tb)
        t.append(tm)
        e_off.append(eo)
        ent_bits.append(eb)
        ent.append(em)
    return Priors(
        kind_bits,
        kind,
        mode_bits,
        mode,
        prec_bits,
        prec,
        dist_bits,
        dist,
        gap_bits,
        gap,
        tuple(a_off),
        tuple(a_bits),
        tuple(a),
        tuple(t_bits),
        tuple(t),
        tuple(e_off),
        tuple(ent_bits),
        tuple(ent),
        _uniform_cls(1 << CANARY_BITS),
    )


PRIORS: Final = _build_priors()


def pad_rows(rows: Sequence[F64]) -> F64:
    out = np.full((len(rows), max(r.size for r in rows)), np.inf)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out
