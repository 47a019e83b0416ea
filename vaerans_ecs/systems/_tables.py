"""Per-band probability models with tiny side information, for the table-driven entropy coders.

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
All side information is entropy coded with fixed priors in the same stream as the symbols (see
:func:`plan_chunks` for the order), so a nearly empty band costs a few bits and nothing is
byte aligned. Probabilities come from the coded integers by exact float arithmetic (a hard-coded
integer mantissa table scaled by powers of two), so encoder and decoder hand bit-identical float
tables to constriction on every platform (the same constriction version must be used: its
float-to-fixed-point conversion is part of the format). The encoder evaluates every option with
closed forms or vectorised numpy over all bands at once; GEOM models are cached by parameters.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Any, Final, NamedTuple

import constriction
import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.errors import BitstreamError

__all__ = [
    "CONST",
    "GEOM",
    "SAME",
    "SPARSE",
    "TABLE",
    "BandModel",
    "Chunk",
    "canary",
    "canary_chunk",
    "check_canary",
    "cheapest_plans",
    "choose_models",
    "clear_caches",
    "decode_plan",
    "plan_chunks",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Decode = Callable[[Any, int], NDArray[np.int32]]

CONST: Final = 0
GEOM: Final = 1
TABLE: Final = 2
SAME: Final = 3
SPARSE: Final = 4
TABLES: Final = (TABLE, SPARSE)
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

# round(2**(j/8) * 2**20) for j = 0..7, hard-coded so both sides use identical integers.
_MANT8: Final = np.array([1048576, 1143480, 1246974, 1359835, 1482910, 1617125, 1763488, 1923097], dtype=np.float64)
_E8_FLOOR: Final = -8 * 60

_categorical_cls: Any = constriction.stream.model.Categorical
_uniform_cls: Any = constriction.stream.model.Uniform


def weights_e8(e8: I64) -> F64:
    """Exact float weights ``2**(e8/8) * 2**20`` for integer exponents in eighths of a bit."""
    e = np.maximum(e8, _E8_FLOOR)
    out: F64 = np.ldexp(_MANT8[e & 7], (e >> 3).astype(np.int32))
    return out


def categorical(weights: F64) -> Any:
    """A constriction Categorical model (``perfect=False``) of non-negative finite weights."""
    return _categorical_cls(weights, perfect=False)


def geom_support(mode: int, t8: int) -> tuple[int, int]:
    """The GEOM alphabet ``[lo, hi]`` for a mode and a tail decay of ``t8`` eighths per step."""
    reach = 255 if t8 <= 0 else min(255, 1 + (CUT8 + t8 - 1) // t8)
    return max(0, mode - reach), min(255, mode + reach)


def a_centre(n: int, unit: int) -> int:
    """Prediction of the GEOM mode parameter from the band size (log2 of 2n, in units)."""
    return (8 * (2 * n).bit_length()) // unit


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
class _Priors:
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


def _build_priors() -> _Priors:
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
    return _Priors(
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


def _pad_rows(rows: Sequence[F64]) -> F64:
    out = np.full((len(rows), max(r.size for r in rows)), np.inf)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out


_A_BITS: Final = _pad_rows(PRIORS.a_bits)  # (q, index), padded with inf
_T_BITS: Final = _pad_rows(PRIORS.t_bits)
_E_BITS: Final = _pad_rows(PRIORS.ent_bits)


# ----------------------------------------------------------------------------- band models


_ABSENT: Final = -(1 << 40)
#: :func:`weights_e8` of every exponent from the floor up to the largest GEOM mode weight (index
#: ``e8 - _E8_FLOOR``): a lookup gives the very same floats as the arithmetic, several times faster.
_W8: Final = weights_e8(np.arange(_E8_FLOOR, A_HI8 + 1, dtype=np.int64))
_W8.setflags(write=False)


def _e8_lookup(e8: I64) -> F64:
    """:func:`weights_e8` by table lookup, for exponents up to ``A_HI8`` (every validated model)."""
    idx = np.maximum(e8, _E8_FLOOR)
    idx -= _E8_FLOOR
    out: F64 = _W8[idx]
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
            return _geom_model(self.prec, self.a, self.t, self.mode - self.lo, self.hi - self.mode)[0]
        unit = UNITS[self.prec]
        assert self.entries is not None
        logs = table_logs(self.mode - self.lo, self.entries, PRIORS.e_off[self.prec])
        w = weights_e8(np.maximum(logs, -MAX_LOG8) * unit)
        w[logs == _ABSENT] = 0.0
        return w

    def model(self) -> Any:
        """The constriction model of :meth:`weights` (cached for the parametric kinds)."""
        if self.kind in (GEOM, SAME):
            return _geom_model(self.prec, self.a, self.t, self.mode - self.lo, self.hi - self.mode)[1]
        return categorical(self.weights())


_E0: Final = -_E8_FLOOR  # index of exponent 0 in _W8


@lru_cache(maxsize=2048)
def _geom_model(prec: int, a: int, t: int, left: int, right: int) -> tuple[F64, Any]:
    """GEOM weights over ``[mode - left, mode + right]`` and their model (pure, so cached).

    Weight ``2**(a*unit/8)`` at the mode and ``2**(-(j-1)*t*unit/8)`` at distance ``j``: read
    from :data:`_W8` (a strided slice for the tail), the very floats :func:`weights_e8` gives.
    """
    unit = UNITS[prec]
    t8 = t * unit
    reach = max(left, right)
    if t8 == 0:
        tail = np.full(reach, _W8[_E0])
    elif (reach - 1) * t8 <= _E0:
        tail = _W8[_E0::-t8][:reach]
    else:  # beyond any support geom_support gives: the exponents hit the floor
        tail = _e8_lookup(-t8 * np.arange(reach, dtype=np.int64))
    w = np.empty(left + right + 1)
    w[:left] = tail[:left][::-1]
    w[left] = _W8[a * unit - _E8_FLOOR]
    w[left + 1 :] = tail[:right]
    w.setflags(write=False)
    return w, categorical(w)


def table_logs(left: int, entries: I64, e_off: int) -> I64:
    """Log ratios (in units) over ``[lo, hi]`` from the entries; ``_ABSENT`` for escapes."""
    absent = entries == 0
    delta = np.where(absent, 0, entries - (1 + e_off))
    out = np.empty(entries.size + 1, dtype=np.int64)
    out[left] = 0
    out[:left] = np.cumsum(delta[:left])[::-1]
    out[left + 1 :] = np.cumsum(delta[left:])
    out[:left][absent[:left][::-1]] = _ABSENT
    out[left + 1 :][absent[left:]] = _ABSENT
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


def clear_caches() -> None:
    """Forget every cached model and table (benchmarks use it to time cold runs)."""
    _geom_model.cache_clear()
    _band_keys.cache_clear()
    _geom_band.cache_clear()


def _crc_sizes(sizes: Sequence[int]) -> int:
    return zlib.crc32(np.asarray(sizes, dtype="<u8").tobytes(), 0x5EC5)


def _crc_to_canary(crc: int) -> int:
    return (crc & ((1 << CANARY_BITS) - 1)) or 1


def canary(sizes: Sequence[int], symbols: NDArray[np.uint8]) -> int:
    """Non-zero 20-bit check value (CRC-32) of the band sizes and all symbols (bands concatenated).

    It is the first symbol encoded, so it fills the coder's initial state nearly for free, and
    the last decoded: it catches wrong sizes, truncation, and corruption that an ANS decoder
    would otherwise resynchronise from after a burst of wrong symbols.
    """
    return _crc_to_canary(zlib.crc32(np.ascontiguousarray(symbols).data, _crc_sizes(sizes)))


# ----------------------------------------------------------------------------- encoder side


_UNIT_ARR: Final = np.array(UNITS, dtype=np.int64)[:, None, None, None]  # (q, da, dt, band)
_QI: Final = np.arange(N_PREC)[:, None, None, None]
_A_OFF: Final = np.array(PRIORS.a_off)[_QI]
_PREC_BITS_Q: Final = PRIORS.prec_bits[_QI]
_STEP_A: Final = np.array([0, 1])[None, :, None, None]  # the 2 x 2 grid around the ML fit
_STEP_T: Final = np.array([0, 1])[None, None, :, None]
_A_MIN: Final = A_LO8 // _UNIT_ARR
_A_MAX: Final = A_HI8 // _UNIT_ARR
_T_MAX: Final = T_HI8 // _UNIT_ARR
_COL: Final = np.arange(256)
#: Lower bound of the TABLE/SPARSE side information, as _choose has always computed it.
_TAB_KIND_MIN: Final = min(PRIORS.kind_bits[TABLE], PRIORS.kind_bits[SPARSE])
_PREC_MIN: Final = PRIORS.prec_bits.min()
_ENT_MIN: Final = min(float(b[1:].min()) for b in PRIORS.ent_bits[TABLE_Q0:])
_TQ: Final = np.arange(TABLE_Q0, N_PREC)
_T_UNITS: Final = _UNIT_ARR[TABLE_Q0:, :, 0, 0][:, :, None]  # (q, 1, 1)
_T_SCALE: Final = 8.0 / _T_UNITS
_T_FLOOR: Final = MAX_LOG8 // _T_UNITS
_T_EOFF: Final = np.array(PRIORS.e_off[TABLE_Q0:])[:, None, None]


def _exp2_tables() -> tuple[F64, F64]:
    """``exp2(-i / scale)`` and its log2 per table precision (row) and ``i = -lq`` (column).

    :func:`_table_costs` looks the weights of its quantised log ratios up here: the same
    elementwise functions on the same floats, computed once instead of per band and column.
    """
    width = int(_T_FLOOR.max()) + 1
    exp = np.ones((N_PREC - TABLE_Q0, width))
    for row in range(N_PREC - TABLE_Q0):
        lq = -np.arange(int(_T_FLOOR[row, 0, 0]) + 1, dtype=np.int64)
        exp[row, : lq.size] = np.exp2(lq / _T_SCALE[row, 0, 0])
    log = np.log2(exp)
    exp.setflags(write=False)
    log.setflags(write=False)
    return exp, log


_T_EXP2, _T_LOG2 = _exp2_tables()


def _geom_payload(n: F64, hm: F64, s1: F64, modes: I64, maxj: I64, k: F64, unit: I64, a: I64, t: I64) -> F64:
    """Cross-entropy (bits) of bands with the given statistics under GEOM params (broadcasting).

    Uses the sufficient statistics (size, mode count, sum of ``|x - m| - 1`` over the tails) and
    the closed-form normaliser; ``inf`` where the band does not fit in the support. Everything
    that depends on ``t`` only is computed at ``t``'s shape, so callers pass ``a`` and ``t``
    along different axes instead of broadcasting them first.
    """
    s = 8.0 / unit
    ab = a / s
    tb = t / s
    t8 = t * unit
    pos = t8 > 0
    reach = np.where(pos, np.minimum(255, 1 + (CUT8 + t8 - 1) // np.maximum(t8, 1)), 255)
    left = np.minimum(modes, reach)
    right = np.minimum(255 - modes, reach)
    th = np.exp2(-tb)
    denom = np.where(pos, 1.0 - th, 1.0)
    sl = np.where(pos, (1.0 - th**left) / denom, left)
    sr = np.where(pos, (1.0 - th**right) / denom, right)
    payload = -hm * ab + tb * s1 + n * np.log2(np.exp2(ab) + sl + sr)
    out: F64 = np.where((maxj <= reach) & (k > 0), payload, np.inf)
    return out


def _geom_costs(n: F64, hm: F64, k: F64, s1: F64, modes: I64, maxj: I64, centre: I64) -> tuple[F64, I64, I64]:
    """Exact GEOM cost (bits) per (precision, band) via sufficient statistics, and its params.

    Tries the 4 grid points around the maximum-likelihood fit at every precision at once
    (``a`` along axis 1, ``t`` along axis 2, flattened in that order for the first-minimum pick).
    """
    pr = PRIORS
    kk = np.maximum(k, 1.0)
    mu = s1 / kk
    theta = mu / (1.0 + mu)
    t_real = np.where(mu > 0, -np.log2(np.maximum(theta, 1e-300)), 16.0)
    a_real = np.log2(2.0 * np.maximum(hm, 1.0) / (kk * (1.0 - theta)))
    unit = _UNIT_ARR
    s = 8.0 / unit
    a = np.clip(np.floor(a_real * s) + _STEP_A, _A_MIN, _A_MAX).astype(np.int64)  # (q, 2, 1, band)
    t = np.clip(np.floor(t_real * s) + _STEP_T, 0, _T_MAX).astype(np.int64)  # (q, 1, 2, band)
    payload = _geom_payload(n, hm, s1, modes, maxj, k, unit, a, t)
    cidx = (8 * centre) // unit - a + _A_OFF
    cost = payload + pr.kind_bits[GEOM] + _PREC_BITS_Q + _A_BITS[_QI, cidx] + _T_BITS[_QI, t]
    flat = cost.reshape(N_PREC, 4, -1)
    pick = flat.argmin(axis=1)
    best = flat.min(axis=1)
    best_a = np.where(pick >= 2, a[:, 1, 0], a[:, 0, 0])
    best_t = np.where(pick & 1, t[:, 0, 1], t[:, 0, 0])
    return best, best_a, best_t


@dataclass(frozen=True)
class _TableEval:
    """What :func:`_table_costs` leaves for building the winning tables, in its compact layout
    (each evaluated band's columns ``lo..hi``, band after band)."""

    start: list[int]  # first compact position of each evaluated band
    entries: I64  # (precision, position) the coded entry of each column (0 = escape; meaningless at the mode)
    lq: I64  # (precision, position) quantised log ratio of each column, in units
    present: NDArray[np.bool_]  # (position,)


def _row_sums(values: F64, slot: I64, nb: int, width: int) -> F64:
    """Sums over each band's columns, through the zero-padded (band, window column) layout.

    The float sums then group their terms exactly as a sum over that padded layout always has,
    so costs (and the encoder's choices) are bit-identical to the padded evaluation.
    """
    full = np.zeros((*values.shape[:-1], nb * width))
    full[..., slot] = values
    out: F64 = full.reshape(*values.shape[:-1], nb, width).sum(axis=-1)
    return out


def _table_costs(h: I64, modes: I64, lo: I64, hi: I64) -> tuple[F64, F64, _TableEval]:
    """Exact TABLE and SPARSE costs per (precision, band) over the bands' joint column window.

    Elementwise work runs on each band's own columns only (compact layout); the sums go through
    :func:`_row_sums`. Also returns what building the winning tables needs (:class:`_TableEval`).
    """
    pr = PRIORS
    nb = h.shape[0]
    w_lo = int(lo.min())
    width = int(hi.max()) - w_lo + 1
    widths = hi - lo + 1
    start = np.cumsum(widths) - widths
    total = int(widths.sum())
    row = np.repeat(np.arange(nb), widths)
    pos = np.arange(total)
    col = pos - np.repeat(start - lo, widths)  # the symbol value of each compact position
    slot = row * width + (col - w_lo)
    hc = h[row, col]
    present = hc > 0
    hm = h[np.arange(nb), modes].astype(np.float64)
    lr = np.log2(np.maximum(hc, 1)) - np.log2(hm)[row]
    mcol = np.repeat(modes, widths)
    right = col > mcol
    inside = col != mcol
    # reference of a column = the nearest present column toward the mode (always in its band)
    prev = np.maximum.accumulate(np.where(present, pos, -1))
    nxt = np.minimum.accumulate(np.where(present, pos, total)[::-1])[::-1]
    before = np.concatenate(([0], prev[:-1]))  # nearest present column left of each column
    after = np.concatenate((nxt[1:], [0]))  # ... and right of it
    ref = np.clip(np.where(right, before, after), 0, total - 1)
    side0 = pr.dist_bits[modes - lo] + pr.dist_bits[hi - modes] + pr.prec_bits[TABLE_Q0:, None]
    used = present & inside
    gaps = np.where(used, np.abs(pos - ref) - 1, 0)
    n_used = np.bincount(row[used], minlength=nb)
    lq = np.where(present, np.maximum(np.rint(lr * _T_SCALE[:, :, 0]), -_T_FLOOR[:, :, 0]), 0).astype(np.int64)
    ent = np.where(present, 1 + _T_EOFF[:, :, 0] + lq - lq[:, ref], 0)
    ebits = _E_BITS[_TQ[:, None], ent]
    qrow = (_TQ - TABLE_Q0)[:, None]
    nq = N_PREC - TABLE_Q0
    terms = np.zeros((3 * nq + 1, total))  # one pass of row sums for everything but the payload
    np.copyto(terms[:nq], ebits, where=inside)
    np.copyto(terms[nq : 2 * nq], ebits, where=used)
    np.copyto(terms[2 * nq : 3 * nq], _T_EXP2[qrow, -lq], where=present)
    np.copyto(terms[3 * nq], pr.gap_bits[gaps], where=used)
    sums = _row_sums(terms, slot, nb, width)
    dense_e, sparse_e, wsum = sums[:nq], sums[nq : 2 * nq], sums[2 * nq : 3 * nq]
    sparse0 = pr.kind_bits[SPARSE] + pr.dist_bits[n_used] + sums[3 * nq]
    logp = np.where(present, _T_LOG2[qrow, -lq], 0.0) - np.log2(wsum)[:, row]
    base = -_row_sums(hc * logp, slot, nb, width) + side0
    tcost = base + pr.kind_bits[TABLE] + dense_e
    scost = base + sparse0 + sparse_e
    return tcost, scost, _TableEval(start.tolist(), ent, lq, present)


@lru_cache(maxsize=64)
def _band_keys(sizes: tuple[int, ...]) -> NDArray[np.uint16]:
    """``256 * band`` per symbol of the concatenated bands (read-only; depends on the sizes only)."""
    keys = np.repeat(np.arange(0, 256 * len(sizes), 256, dtype=np.uint16), sizes)
    keys.setflags(write=False)
    return keys


#: Histograms via one bincount over band-offset keys up to this many symbols (per-band bincounts
#: above it, so that the keys never cost more memory than the int64 copies numpy makes anyway).
_KEYED_HIST_MAX: Final = 1 << 22


def _histograms(cat: NDArray[np.uint8], sizes: list[int]) -> I64:
    """256-bin histograms of consecutive bands of ``cat`` (all non-empty), shape (bands, 256)."""
    nb = len(sizes)
    if nb <= 256 and cat.size <= _KEYED_HIST_MAX:
        keys = _band_keys(tuple(sizes)) + cat
        out: I64 = np.bincount(keys, minlength=256 * nb).reshape(nb, 256)
        return out
    h = np.empty((nb, 256), dtype=np.int64)
    start = 0
    for i, n in enumerate(sizes):
        h[i] = np.bincount(cat[start : start + n], minlength=256)
        start += n
    return h


def choose_models(bands: Sequence[NDArray[np.uint8]]) -> list[BandModel | None]:
    """The cheapest model per band (``None`` for empty bands)."""
    return _choose(bands)[0]


def _choose(bands: Sequence[NDArray[np.uint8]]) -> tuple[list[BandModel | None], F64]:
    """Models plus the estimated bits of each live band (side info + payload), for diagnostics."""
    models, costs, _ = _choose_cat(_concat(bands), [int(b.size) for b in bands])
    return models, costs


def _concat(bands: Sequence[NDArray[np.uint8]]) -> NDArray[np.uint8]:
    if len(bands) == 1:
        return np.ascontiguousarray(bands[0])
    return np.concatenate(bands) if bands else np.empty(0, dtype=np.uint8)


def _choose_cat(
    cat: NDArray[np.uint8], all_sizes: list[int], segments: Sequence[int] | None = None
) -> tuple[list[BandModel | None], F64, dict[int, F64]]:
    """:func:`_choose` over the concatenated bands (``all_sizes`` includes empty bands), plus
    the weights of every TABLE/SPARSE band's model (straight from the quantised logs it codes).

    ``segments`` (a non-decreasing id per band) splits the bands into independent plans: SAME
    never refers to a GEOM band of another segment, so each segment's models are what choosing
    it alone would give."""
    out: list[BandModel | None] = [None] * len(all_sizes)
    table_w: dict[int, F64] = {}
    live = [i for i, s in enumerate(all_sizes) if s]
    if not live:
        return out, np.zeros(0), table_w
    sizes = [all_sizes[i] for i in live]
    h = _histograms(cat, sizes)
    nb = h.shape[0]
    rows = np.arange(nb)
    modes = h.argmax(axis=1)
    n = np.array(sizes, dtype=np.float64)
    hm = h[rows, modes].astype(np.float64)
    k = n - hm
    present = h > 0
    lo = present.argmax(axis=1)
    hi = 255 - present[:, ::-1].argmax(axis=1)
    j = np.abs(_COL - modes[:, None])
    s1 = (h * np.maximum(j - 1, 0)).sum(axis=1).astype(np.float64)
    maxj = np.maximum(modes - lo, hi - modes)
    centre = np.array([(2 * s).bit_length() for s in sizes], dtype=np.int64)
    pr = PRIORS

    cost = np.full((nb, 1 + 3 * N_PREC), np.inf)  # [CONST, GEOM q.., TABLE q.., SPARSE q..]
    cost[:, 0] = np.where(k == 0, pr.kind_bits[CONST], np.inf)
    gcost, g_a, g_t = _geom_costs(n, hm, k, s1, modes, maxj, centre)
    cost[:, 1 : 1 + N_PREC] = gcost.T
    # TABLE only where its lower bound (order-0 entropy + minimal side info) can win
    logs = np.zeros(h.shape)
    np.log2(h / n[:, None], out=logs, where=present)
    nh = -(h * logs).sum(axis=1)
    n_used = present.sum(axis=1) - 1
    bound = nh + _TAB_KIND_MIN + _PREC_MIN + n_used * _ENT_MIN
    best_so_far = cost.min(axis=1)
    tab_rows = np.flatnonzero((k > 0) & (bound < best_so_far))
    tev: _TableEval | None = None
    if tab_rows.size:
        tcost, scost, tev = _table_costs(h[tab_rows], modes[tab_rows], lo[tab_rows], hi[tab_rows])
        cost[tab_rows, 1 + N_PREC + TABLE_Q0 : 1 + 2 * N_PREC] = tcost.T
        cost[tab_rows, 1 + 2 * N_PREC + TABLE_Q0 :] = scost.T
    tab_pos = dict(zip(tab_rows.tolist(), range(tab_rows.size), strict=True))

    best = cost.argmin(axis=1)
    best_cost = cost[rows, best]
    # SAME: reuse the most recent GEOM band's parameters when that is cheaper (greedy, in order).
    # Only bands whose best model is GEOM can be that band: cost those parameter columns only.
    cand = np.flatnonzero((best >= 1) & (best <= N_PREC))
    gq = best[cand] - 1
    pay = _geom_payload(
        n[:, None],
        hm[:, None],
        s1[:, None],
        modes[:, None],
        maxj[:, None],
        k[:, None],
        _UNIT_ARR[gq, 0, 0, 0][None, :],
        g_a[gq, cand][None, :],
        g_t[gq, cand][None, :],
    )  # (band, params of candidate)
    same_cost = (pay + pr.kind_bits[SAME]).tolist()
    cand_pos = dict(zip(cand.tolist(), range(cand.size), strict=True))
    # support half-width of each candidate's GEOM parameters (geom_support, inlined below)
    reach_l = [
        255 if t8 <= 0 else min(255, 1 + (CUT8 + t8 - 1) // t8)
        for t8 in (g_t[gq, cand] * _UNIT_ARR[gq, 0, 0, 0]).tolist()
    ]
    best_l = best.tolist()
    cost_l = best_cost.tolist()
    modes_l = modes.tolist()
    lo_l = lo.tolist()
    hi_l = hi.tolist()
    ga_l = g_a.tolist()
    gt_l = g_t.tolist()
    state = -1
    last: BandModel | None = None
    segment = segments[live[0]] if segments is not None else 0
    for r, band in enumerate(live):
        if segments is not None and segments[band] != segment:
            segment, state, last = segments[band], -1, None
        choice = best_l[r]
        m = modes_l[r]
        if last is not None and same_cost[r][state] < cost_l[r]:
            cost_l[r] = same_cost[r][state]
            reach = reach_l[state]
            out[band] = BandModel(SAME, m, last.prec, last.a, last.t, max(0, m - reach), min(255, m + reach))
        elif choice == 0:
            out[band] = BandModel(CONST, m, 0, 0, 0, m, m)
        elif choice <= N_PREC:
            q = choice - 1
            state = cand_pos[r]
            reach = reach_l[state]
            last = BandModel(GEOM, m, q, ga_l[q][r], gt_l[q][r], max(0, m - reach), min(255, m + reach))
            out[band] = last
        else:
            kind, q = (TABLE, choice - 1 - N_PREC) if choice <= 2 * N_PREC else (SPARSE, choice - 1 - 2 * N_PREC)
            assert tev is not None
            lo_r, hi_r = lo_l[r], hi_l[r]
            s0 = tev.start[tab_pos[r]]
            mid = s0 + m - lo_r
            seg = slice(s0, s0 + hi_r - lo_r + 1)
            ent_q = tev.entries[q - TABLE_Q0]
            ent = np.concatenate((ent_q[s0:mid][::-1], ent_q[mid + 1 : seg.stop]))  # left chain outward, right chain
            out[band] = BandModel(kind, m, q, lo=lo_r, hi=hi_r, entries=ent)
            w = _e8_lookup(tev.lq[q - TABLE_Q0, seg] * UNITS[q])
            w[~tev.present[seg]] = 0.0
            table_w[band] = w
    return out, np.array(cost_l), table_w


@dataclass(frozen=True)
class Chunk:
    """Symbols coded with one model, in decode order."""

    symbols: NDArray[np.int32]
    model: Any


def _chunk(values: Sequence[int] | I64, model: Any) -> Chunk:
    return Chunk(np.asarray(values, dtype=np.int32), model)


def encode_chunks(bands: Sequence[NDArray[np.uint8]], *, check: bool = True) -> list[Chunk]:
    """``plan_chunks(bands, choose_models(bands))`` with the bands concatenated only once.

    The concatenation serves the histograms, the symbol conversion and the check value.
    ``check=False`` leaves out the trailing check value (for callers that code several plans
    in one stream and end it with :func:`canary_chunk` of their own).
    """
    cat = _concat(bands)
    sizes = [int(b.size) for b in bands]
    models, _, table_w = _choose_cat(cat, sizes)
    return _plan(cat, sizes, models, table_w, check=check)


def cheapest_plans(items: Sequence[Sequence[Sequence[NDArray[np.uint8]]]]) -> list[tuple[int, list[Chunk]]]:
    """Per item, of its options (groupings of the same symbols), the index of the one with the
    fewest estimated bits (side information included) and its chunks, exactly
    ``encode_chunks(option, check=False)``. One vectorised model choice serves every option."""
    groups = [g for options in items for option in options for g in option]
    seg_ids = [k for k, option in enumerate(o for options in items for o in options) for _ in option]
    sizes = [int(g.size) for g in groups]
    cat = _concat(groups)
    models, costs, table_w = _choose_cat(cat, sizes, seg_ids)
    cost_of = np.zeros(len(sizes))
    cost_of[[i for i, n in enumerate(sizes) if n]] = costs
    starts = list(accumulate(sizes, initial=0))
    out: list[tuple[int, list[Chunk]]] = []
    g = 0  # index of the first group of the current option
    for options in items:
        spans = []
        for option in options:
            spans.append((g, g + len(option)))
            g += len(option)
        totals = [float(cost_of[a:b].sum()) for a, b in spans]
        best = min(range(len(options)), key=totals.__getitem__)
        a, b = spans[best]
        tw = {i - a: w for i, w in table_w.items() if a <= i < b}
        out.append((best, _plan(cat[starts[a] : starts[b]], sizes[a:b], models[a:b], tw, check=False)))
    return out


def canary_chunk(sizes: Sequence[int], symbols: NDArray[np.uint8]) -> Chunk:
    """The check-value chunk that ends a plan (:func:`canary` of ``sizes`` and ``symbols``)."""
    return _chunk([canary(sizes, symbols)], PRIORS.canary)


def check_canary(decode: Decode, sizes: Sequence[int], symbols: NDArray[np.uint8]) -> None:
    """Decode the check value of :func:`canary_chunk`; raise BitstreamError unless it matches."""
    if int(decode(PRIORS.canary, 1)[0]) != canary(sizes, symbols):
        raise _bad("check value mismatch (wrong band sizes, truncated or corrupted data)")


def plan_chunks(bands: Sequence[NDArray[np.uint8]], models: Sequence[BandModel | None]) -> list[Chunk]:
    """Every (symbols, model) chunk of the stream in decode order.

    Order: kinds, mode deltas, precisions (GEOM and table bands), GEOM ``a`` then ``t`` per precision, table ranges,
    SPARSE used counts and gaps, table entries per precision, the band symbols (band order), the canary.
    """
    return _plan(_concat(bands), [int(b.size) for b in bands], models)


def _plan(
    cat: NDArray[np.uint8],
    sizes: list[int],
    models: Sequence[BandModel | None],
    table_w: dict[int, F64] | None = None,
    *,
    check: bool = True,
) -> list[Chunk]:
    """:func:`plan_chunks` over the concatenated bands; ``table_w`` holds table weights that
    :func:`_choose_cat` already has (the others are rebuilt from the entries, as the decoder does)."""
    pr = PRIORS
    live = [(i, m) for i, m in enumerate(models) if m is not None]
    if not live:
        return []
    chunks = [_chunk([m.kind for _, m in live], pr.kind)]
    modes = np.array([m.mode for _, m in live], dtype=np.int64)
    chunks.append(_chunk(np.diff(modes, prepend=MODE_START) + 255, pr.mode))
    coded = [(i, m) for i, m in live if m.kind in (GEOM, TABLE, SPARSE)]
    if coded:
        chunks.append(_chunk([m.prec for _, m in coded], pr.prec))
    geo = [(i, m) for i, m in coded if m.kind == GEOM]
    for q, unit in enumerate(UNITS):
        grp = [(i, m) for i, m in geo if m.prec == q]
        if grp:
            chunks.append(_chunk([a_centre(sizes[i], unit) - m.a + pr.a_off[q] for i, m in grp], pr.a[q]))
            chunks.append(_chunk([m.t for _, m in grp], pr.t[q]))
    tab = [m for _, m in coded if m.kind in TABLES]
    if tab:
        chunks.append(_chunk([m.mode - m.lo for m in tab], pr.dist))
        chunks.append(_chunk([m.hi - m.mode for m in tab], pr.dist))
    coded_entries: list[I64] = []
    sparse_gaps: list[I64] = []
    for m in tab:
        assert m.entries is not None
        if m.kind == SPARSE:
            gaps, used = dense_to_sparse(m.mode - m.lo, m.entries)
            sparse_gaps.append(gaps)
            coded_entries.append(used)
        else:
            coded_entries.append(m.entries)
    if sparse_gaps:
        chunks.append(_chunk([g.size for g in sparse_gaps], pr.dist))
        chunks.append(_chunk(np.concatenate(sparse_gaps), pr.gap))
    for q in range(N_PREC):
        ents = [e for m, e in zip(tab, coded_entries, strict=True) if m.prec == q]
        if ents:
            chunks.append(_chunk(np.concatenate(ents), pr.ent[q]))
    symbols = cat.astype(np.int32)  # one conversion; each band is shifted in place below
    starts = np.cumsum([0, *sizes]).tolist()
    for i, m in live:
        if m.kind == CONST:
            continue
        seg = symbols[starts[i] : starts[i + 1]]
        if m.lo:
            seg -= m.lo
        w = table_w.get(i) if table_w else None
        chunks.append(Chunk(seg, m.model() if w is None else categorical(w)))
    if check:
        chunks.append(canary_chunk(sizes, cat))
    return chunks


# ----------------------------------------------------------------------------- decoder side


def _bad(msg: str) -> BitstreamError:
    return BitstreamError(f"entropy payload: {msg}")


#: What the decoder needs per live band: (kind, mode, lo, constriction model or None for CONST,
#: mask of the absent symbols of a table with escapes, else None).
_Spec = tuple[int, int, int, Any, NDArray[np.bool_] | None]


def _table_spec(left: int, entries: I64, prec: int) -> tuple[Any, NDArray[np.bool_] | None]:
    """Validated model of decoded dense table entries, and the mask of its absent symbols (or
    ``None`` if every symbol of the range may occur); the same floats as :meth:`BandModel.weights`.

    Escapes carry the previous log along the chain, so the extremes of the unmarked running
    sums are the extremes of the real logs: one max/min validates the whole table.
    """
    e_off = PRIORS.e_off[prec]
    unit = UNITS[prec]
    absent = entries == 0
    delta = entries - (1 + e_off)
    delta[absent] = 0
    logs = np.empty(entries.size + 1, dtype=np.int64)
    logs[left] = 0
    np.cumsum(delta[:left], out=logs[:left][::-1])
    np.cumsum(delta[left:], out=logs[left + 1 :])
    if int(logs.max()) > 0 or int(logs.min()) < -(MAX_LOG8 // unit):
        raise _bad("table entry out of range")
    if (left and absent[left - 1]) or (entries.size > left and absent[-1]):
        raise _bad("table range ends on an absent symbol")
    logs *= unit
    logs -= _E8_FLOOR  # every exponent is >= -MAX_LOG8 > _E8_FLOOR: no clamping needed
    w = _W8[logs]
    if not absent.any():
        return categorical(w), None
    mask = np.empty(entries.size + 1, dtype=np.bool_)
    mask[:left] = absent[:left][::-1]
    mask[left] = False
    mask[left + 1 :] = absent[left:]
    w[mask] = 0.0
    return categorical(w), mask


@lru_cache(maxsize=4096)
def _geom_band(prec: int, a: int, t: int, mode: int) -> tuple[int, Any]:
    """(lo, constriction model) of a GEOM band: one cached call per band on the decoder side."""
    lo, hi = geom_support(mode, t * UNITS[prec])
    return lo, _geom_model(prec, a, t, mode - lo, hi - mode)[1]


def _decode_models(decode: Decode, sizes: list[int]) -> list[_Spec]:
    pr = PRIORS
    nl = len(sizes)
    kinds = decode(pr.kind, nl).tolist()
    modes = list(accumulate([v - 255 for v in decode(pr.mode, nl).tolist()], initial=MODE_START))[1:]
    if min(modes) < 0 or max(modes) > 255:
        raise _bad("band mode out of range")
    coded = [r for r in range(nl) if kinds[r] in (GEOM, TABLE, SPARSE)]
    prec = [0] * nl
    if coded:
        precs = decode(pr.prec, len(coded)).tolist()
        if max(precs) >= N_PREC:
            raise _bad("invalid precision")
        for r, p in zip(coded, precs, strict=True):
            prec[r] = p
    geom: dict[int, tuple[int, int]] = {}
    geo = [r for r in coded if kinds[r] == GEOM]
    for q, unit in enumerate(UNITS):
        grp = [r for r in geo if prec[r] == q]
        if grp:
            ca = decode(pr.a[q], len(grp)).tolist()
            ta = decode(pr.t[q], len(grp)).tolist()
            a_lo, a_hi, t_hi = A_LO8 // unit, A_HI8 // unit, T_HI8 // unit
            for r, c, t in zip(grp, ca, ta, strict=True):
                a = a_centre(sizes[r], unit) + pr.a_off[q] - c
                if not a_lo <= a <= a_hi or t > t_hi:
                    raise _bad("geometric model parameter out of range")
                geom[r] = (a, t)
    tab = [r for r in coded if kinds[r] in TABLES]
    bounds: dict[int, tuple[int, int]] = {}
    counts: dict[int, int] = {}
    if tab:
        dl = decode(pr.dist, len(tab)).tolist()
        dr = decode(pr.dist, len(tab)).tolist()
        for r, a_, b_ in zip(tab, dl, dr, strict=True):
            lo, hi = modes[r] - a_, modes[r] + b_
            if lo < 0 or hi > 255 or lo == hi:
                raise _bad("table range out of bounds")
            bounds[r] = (lo, hi)
            counts[r] = hi - lo
    gaps: dict[int, I64] = {}
    sparse = [r for r in tab if kinds[r] == SPARSE]
    if sparse:
        used = decode(pr.dist, len(sparse)).tolist()
        for r, u in zip(sparse, used, strict=True):
            if not 1 <= u <= counts[r]:
                raise _bad("sparse table with an impossible number of symbols")
            counts[r] = u
        g = decode(pr.gap, sum(used)).astype(np.int64)
        ends = list(accumulate(used))
        gaps.update((r, g[e - u : e]) for r, u, e in zip(sparse, used, ends, strict=True))
    entries: dict[int, I64] = {}
    for q in range(N_PREC):
        grp = [r for r in tab if prec[r] == q]
        if grp:
            sizes_q = [counts[r] for r in grp]
            ent = decode(pr.ent[q], sum(sizes_q)).astype(np.int64)
            ends = list(accumulate(sizes_q))
            entries.update((r, ent[e - u : e]) for r, u, e in zip(grp, sizes_q, ends, strict=True))
    for r in sparse:
        m = modes[r]
        dense = (
            None if not entries[r].all() else sparse_to_dense(m - bounds[r][0], bounds[r][1] - m, gaps[r], entries[r])
        )
        if dense is None:
            raise _bad("sparse table gaps do not match its range")
        entries[r] = dense
    specs: list[_Spec] = []
    last = -1  # the most recent GEOM band, whose parameters SAME bands reuse
    for r in range(nl):
        m = modes[r]
        kind = kinds[r]
        if kind in (GEOM, SAME):
            if kind == GEOM:
                last = r
            elif last < 0:
                raise _bad("band reuses parameters before any geometric band")
            a, t = geom[last]
            lo, model = _geom_band(prec[last], a, t, m)
            specs.append((GEOM, m, lo, model, None))
        elif kind == CONST:
            specs.append((CONST, m, m, None, None))
        elif kind in TABLES:
            lo = bounds[r][0]
            model, absent = _table_spec(m - lo, entries[r], prec[r])
            specs.append((kind, m, lo, model, absent))
        else:
            raise _bad("invalid model kind")
    return specs


def _hits(sym: NDArray[np.int32], absent: NDArray[np.bool_]) -> bool:
    """Whether any decoded symbol is one the table marks absent (a valid stream never has one).

    A few absent symbols are tested one by one (a comparison pass each beats a gather).
    """
    values = np.flatnonzero(absent)
    if values.size <= 3:
        return any(bool((sym == v).any()) for v in values.tolist())
    return bool(np.take(absent, sym).any())


#: Decoded int32 symbols are narrowed to uint8 in batches of about this many symbols: few numpy
#: calls for a typical image, and no more than ~4 MiB of int32 arrays alive for a huge one.
_NARROW_BATCH: Final = 1 << 20


def _narrow(out: NDArray[np.uint8], parts: list[NDArray[np.int32]], shifts: list[int]) -> None:
    """Write the concatenated int32 ``parts``, each plus its shift, into ``out`` as uint8 (exact:
    every symbol plus its shift is below 256)."""
    np.concatenate(parts, out=out, casting="unsafe")
    out += np.repeat(np.array(shifts, dtype=np.uint8), [p.size for p in parts])


def decode_plan(decode: Decode, sizes: Sequence[int], *, check: bool = True) -> list[NDArray[np.uint8]]:
    """Decode the chunks of :func:`plan_chunks` with ``decode(model, amount) -> int32 array``.

    Every decoded value is validated before it sizes anything; the caller checks that the coder
    ends exactly empty (and, with ``check=False``, the check value: :func:`check_canary`). The
    bands come back as consecutive views of one buffer; the decoded
    symbols are narrowed to uint8 and shifted a batch of bands at a time (:func:`_narrow`).
    """
    n_all = [int(s) for s in sizes]
    out = np.empty(sum(n_all), dtype=np.uint8)
    starts = list(accumulate(n_all, initial=0))
    bands = [out[starts[i] : starts[i + 1]] for i in range(len(n_all))]
    live = [n for n in n_all if n > 0]
    if not live:
        return bands
    specs = _decode_models(decode, live)
    parts: list[NDArray[np.int32]] = []
    shifts: list[int] = []
    done = pending = 0  # symbols written to out / decoded but not yet written
    for (kind, mode, lo, model, absent), n in zip(specs, live, strict=True):
        if kind == CONST:  # written in place, after the bands before it
            if parts:
                _narrow(out[done : done + pending], parts, shifts)
                done, pending, parts, shifts = done + pending, 0, [], []
            out[done : done + n] = mode
            done += n
            continue
        sym = decode(model, n)
        if absent is not None and _hits(sym, absent):
            raise _bad("symbol with zero probability")
        parts.append(sym)
        shifts.append(lo)
        pending += n
        if pending >= _NARROW_BATCH:
            _narrow(out[done : done + pending], parts, shifts)
            done, pending, parts, shifts = done + pending, 0, [], []
    if parts:
        _narrow(out[done:], parts, shifts)
    if check:
        check_canary(decode, n_all, out)
    return bands
