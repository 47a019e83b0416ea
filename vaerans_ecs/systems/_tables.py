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
from typing import Any, Final

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


@dataclass(frozen=True)
class BandModel:
    """The coded description of one non-empty band's model (see the module docstring)."""

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


@lru_cache(maxsize=2048)
def _geom_model(prec: int, a: int, t: int, left: int, right: int) -> tuple[F64, Any]:
    """GEOM weights over ``[mode - left, mode + right]`` and their model (pure, so cached)."""
    unit = UNITS[prec]
    j = np.abs(np.arange(-left, right + 1, dtype=np.int64))
    w = weights_e8(np.where(j == 0, a * unit, -(j - 1) * (t * unit)))
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
    """Forget cached parametric models (benchmarks use it to time cold runs)."""
    _geom_model.cache_clear()


def canary(sizes: Sequence[int], bands: Sequence[NDArray[np.uint8]]) -> int:
    """Non-zero 20-bit check value (CRC-32) of the band sizes and all symbols.

    It is the first symbol encoded, so it fills the coder's initial state nearly for free, and
    the last decoded: it catches wrong sizes, truncation, and corruption that an ANS decoder
    would otherwise resynchronise from after a burst of wrong symbols.
    """
    crc = zlib.crc32(np.asarray(sizes, dtype="<u8").tobytes(), 0x5EC5)
    for b in bands:
        crc = zlib.crc32(np.ascontiguousarray(b).data, crc)
    return (crc & ((1 << CANARY_BITS) - 1)) or 1


# ----------------------------------------------------------------------------- encoder side


_UNIT_ARR: Final = np.array(UNITS, dtype=np.int64)[:, None, None, None]  # (q, da, dt, band)


def _geom_payload(
    n: F64, hm: F64, s1: F64, modes: I64, maxj: I64, k: F64, unit: I64, a: I64, t: I64
) -> tuple[F64, I64]:
    """Cross-entropy (bits) of bands with the given statistics under GEOM params (broadcasting).

    Uses the sufficient statistics (size, mode count, sum of ``|x - m| - 1`` over the tails) and
    the closed-form normaliser; ``inf`` where the band does not fit in the support.
    """
    s = 8.0 / unit
    ab = a / s
    tb = t / s
    t8 = t * unit
    reach = np.where(t8 > 0, np.minimum(255, 1 + (CUT8 + t8 - 1) // np.maximum(t8, 1)), 255)
    left = np.minimum(modes, reach)
    right = np.minimum(255 - modes, reach)
    th = np.exp2(-tb)
    denom = np.where(t8 > 0, 1.0 - th, 1.0)
    sl = np.where(t8 > 0, (1.0 - th**left) / denom, left)
    sr = np.where(t8 > 0, (1.0 - th**right) / denom, right)
    payload = -hm * ab + tb * s1 + n * np.log2(np.exp2(ab) + sl + sr)
    return np.where((maxj <= reach) & (k > 0), payload, np.inf), t8


def _geom_costs(n: F64, hm: F64, k: F64, s1: F64, modes: I64, maxj: I64, sizes: list[int]) -> tuple[F64, I64, I64]:
    """Exact GEOM cost (bits) per (precision, band) via sufficient statistics, and its params.

    Tries the 4 grid points around the maximum-likelihood fit at every precision at once.
    """
    pr = PRIORS
    kk = np.maximum(k, 1.0)
    mu = s1 / kk
    theta = mu / (1.0 + mu)
    t_real = np.where(mu > 0, -np.log2(np.maximum(theta, 1e-300)), 16.0)
    a_real = np.log2(2.0 * np.maximum(hm, 1.0) / (kk * (1.0 - theta)))
    centre = np.array([(2 * s).bit_length() for s in sizes], dtype=np.int64)
    unit = _UNIT_ARR
    s = 8.0 / unit
    step = np.array([0, 1])
    a = np.clip(np.floor(a_real * s) + step[None, :, None, None], A_LO8 // unit, A_HI8 // unit).astype(np.int64)
    t = np.clip(np.floor(t_real * s) + step[None, None, :, None], 0, T_HI8 // unit).astype(np.int64)
    a, t = np.broadcast_arrays(a, t)
    payload, _ = _geom_payload(n, hm, s1, modes, maxj, k, unit, a, t)
    qi = np.arange(N_PREC)[:, None, None, None]
    cidx = (8 * centre) // unit - a + np.array(pr.a_off)[qi]
    cost = payload + pr.kind_bits[GEOM] + pr.prec_bits[qi] + _A_BITS[qi, cidx] + _T_BITS[qi, t]
    flat = cost.reshape(N_PREC, 4, -1)
    pick = flat.argmin(axis=1)[:, None, :]
    best = np.take_along_axis(flat, pick, axis=1)[:, 0]
    best_a = np.take_along_axis(a.reshape(N_PREC, 4, -1), pick, axis=1)[:, 0]
    best_t = np.take_along_axis(t.reshape(N_PREC, 4, -1), pick, axis=1)[:, 0]
    return best, best_a, best_t


def _table_costs(h: I64, modes: I64, lo: I64, hi: I64) -> tuple[F64, F64, list[I64], I64, I64]:
    """Exact TABLE and SPARSE costs per (precision, band) over the bands' joint column window."""
    pr = PRIORS
    nb = h.shape[0]
    w_lo, w_hi = int(lo.min()), int(hi.max())
    h = h[:, w_lo : w_hi + 1]
    col = np.arange(w_lo, w_hi + 1)
    rows = np.arange(nb)
    m = modes - w_lo
    present = h > 0
    hm = h[rows, m].astype(np.float64)
    lr = np.log2(np.maximum(h, 1)) - np.log2(hm)[:, None]
    width = col.size
    c = np.arange(width)
    prev = np.maximum.accumulate(np.where(present, c, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(present, c, width)[:, ::-1], axis=1)[:, ::-1]
    prev = np.concatenate((np.zeros((nb, 1), dtype=np.int64), prev[:, :-1]), axis=1)
    nxt = np.concatenate((nxt[:, 1:], np.zeros((nb, 1), dtype=np.int64)), axis=1)
    right = (c[None, :] > m[:, None]) & (col[None, :] <= hi[:, None])
    left = (c[None, :] < m[:, None]) & (col[None, :] >= lo[:, None])
    inside = left | right
    ref = np.clip(np.where(right, prev, nxt), 0, width - 1)
    side0 = pr.dist_bits[modes - lo] + pr.dist_bits[hi - modes] + pr.prec_bits[TABLE_Q0:, None]
    used = present & inside
    gaps = np.where(used, np.abs(c[None, :] - ref) - 1, 0)
    sparse0 = pr.kind_bits[SPARSE] + pr.dist_bits[used.sum(axis=1)] + np.where(used, pr.gap_bits[gaps], 0.0).sum(axis=1)
    units = _UNIT_ARR[TABLE_Q0:, :, 0, 0][:, :, None]  # (q, 1, 1)
    scale = 8.0 / units
    floor = MAX_LOG8 // units
    lq = np.where(present, np.maximum(np.rint(lr * scale), -floor), 0).astype(np.int64)  # (q, nb, w)
    eoff = np.array(pr.e_off[TABLE_Q0:])[:, None, None]
    sym = np.where(present, 1 + eoff + lq - np.take_along_axis(lq, ref[None], axis=2), 0)
    ebits = _E_BITS[np.arange(TABLE_Q0, N_PREC)[:, None, None], sym]
    dense_e = np.where(inside, ebits, 0.0).sum(axis=2)
    sparse_e = np.where(used, ebits, 0.0).sum(axis=2)
    w = np.where(present, np.exp2(lq / scale), 0.0)
    logp = np.log2(np.where(present, w, 1.0)) - np.log2(w.sum(axis=2, keepdims=True))
    base = -(h * logp).sum(axis=2) + side0
    return base + pr.kind_bits[TABLE] + dense_e, base + sparse0 + sparse_e, list(lq), ref, col


def _histograms(bands: Sequence[NDArray[np.uint8]]) -> I64:
    h = np.empty((len(bands), 256), dtype=np.int64)
    for i, b in enumerate(bands):
        h[i] = np.bincount(b, minlength=256)
    return h


def choose_models(bands: Sequence[NDArray[np.uint8]]) -> list[BandModel | None]:
    """The cheapest model per band (``None`` for empty bands)."""
    return _choose(bands)[0]


def _choose(bands: Sequence[NDArray[np.uint8]]) -> tuple[list[BandModel | None], F64]:
    """Models plus the estimated bits of each live band (side info + payload), for diagnostics."""
    out: list[BandModel | None] = [None] * len(bands)
    live = [i for i, b in enumerate(bands) if b.size]
    if not live:
        return out, np.zeros(0)
    sizes = [int(bands[i].size) for i in live]
    h = _histograms([bands[i] for i in live])
    nb = h.shape[0]
    rows = np.arange(nb)
    col = np.arange(256)
    modes = h.argmax(axis=1)
    n = h.sum(axis=1).astype(np.float64)
    hm = h[rows, modes].astype(np.float64)
    k = n - hm
    present = h > 0
    lo = np.where(present, col, 256).min(axis=1)
    hi = np.where(present, col, -1).max(axis=1)
    j = np.abs(col[None, :] - modes[:, None])
    s1 = (h * np.maximum(j - 1, 0)).sum(axis=1).astype(np.float64)
    maxj = np.maximum(modes - lo, hi - modes)
    pr = PRIORS

    cost = np.full((nb, 1 + 3 * N_PREC), np.inf)  # [CONST, GEOM q.., TABLE q.., SPARSE q..]
    cost[:, 0] = np.where(k == 0, pr.kind_bits[CONST], np.inf)
    gcost, g_a, g_t = _geom_costs(n, hm, k, s1, modes, maxj, sizes)
    cost[:, 1 : 1 + N_PREC] = gcost.T
    # TABLE only where its lower bound (order-0 entropy + minimal side info) can win
    with np.errstate(divide="ignore", invalid="ignore"):
        nh = -np.where(present, h * np.log2(h / n[:, None]), 0.0).sum(axis=1)
    min_ent = min(float(b[1:].min()) for b in pr.ent_bits[TABLE_Q0:])
    n_used = present.sum(axis=1) - 1
    bound = nh + min(pr.kind_bits[TABLE], pr.kind_bits[SPARSE]) + pr.prec_bits.min() + n_used * min_ent
    best_so_far = cost.min(axis=1)
    tab_rows = np.flatnonzero((k > 0) & (bound < best_so_far))
    tlogs: list[I64] = []
    tref = np.zeros((0, 0), dtype=np.int64)
    tcol = np.zeros(0, dtype=np.int64)
    if tab_rows.size:
        tcost, scost, tlogs, tref, tcol = _table_costs(h[tab_rows], modes[tab_rows], lo[tab_rows], hi[tab_rows])
        cost[tab_rows, 1 + N_PREC + TABLE_Q0 : 1 + 2 * N_PREC] = tcost.T
        cost[tab_rows, 1 + 2 * N_PREC + TABLE_Q0 :] = scost.T
    tab_pos = {int(r): i for i, r in enumerate(tab_rows)}

    best = cost.argmin(axis=1)
    best_cost = cost[rows, best]
    # SAME: reuse the most recent GEOM band's parameters when that is cheaper (greedy, in order)
    gq = gcost.argmin(axis=0)
    units = np.array(UNITS, dtype=np.int64)[gq]
    pay, _ = _geom_payload(
        n[:, None],
        hm[:, None],
        s1[:, None],
        modes[:, None],
        maxj[:, None],
        k[:, None],
        units[None, :],
        g_a[gq, rows][None, :],
        g_t[gq, rows][None, :],
    )  # (band, params of band)
    same_cost = (pay + pr.kind_bits[SAME]).tolist()
    best_l = best.tolist()
    cost_l = best_cost.tolist()
    modes_l = modes.tolist()
    ga_l = g_a.tolist()
    gt_l = g_t.tolist()
    state = -1
    last: BandModel | None = None
    for r, band in enumerate(live):
        choice = best_l[r]
        m = modes_l[r]
        if last is not None and same_cost[r][state] < cost_l[r]:
            cost_l[r] = same_cost[r][state]
            g_lo, g_hi = geom_support(m, last.t * UNITS[last.prec])
            out[band] = BandModel(SAME, m, last.prec, a=last.a, t=last.t, lo=g_lo, hi=g_hi)
        elif choice == 0:
            out[band] = BandModel(CONST, m, lo=m, hi=m)
        elif choice <= N_PREC:
            q = choice - 1
            a, t = ga_l[q][r], gt_l[q][r]
            g_lo, g_hi = geom_support(m, t * UNITS[q])
            last = out[band] = BandModel(GEOM, m, q, a=a, t=t, lo=g_lo, hi=g_hi)
            state = r
        else:
            kind, q = (TABLE, choice - 1 - N_PREC) if choice <= 2 * N_PREC else (SPARSE, choice - 1 - 2 * N_PREC)
            i = tab_pos[r]
            lq, ref = tlogs[q - TABLE_Q0][i], tref[i]
            w0 = int(tcol[0])
            lo_r, hi_r = int(lo[r]), int(hi[r])
            cols = np.concatenate((np.arange(m - 1, lo_r - 1, -1), np.arange(m + 1, hi_r + 1))) - w0
            ent = np.where(present[r, cols + w0], 1 + PRIORS.e_off[q] + lq[cols] - lq[ref[cols]], 0)
            out[band] = BandModel(kind, m, q, lo=lo_r, hi=hi_r, entries=ent.astype(np.int64))
    return out, np.array(cost_l)


@dataclass(frozen=True)
class Chunk:
    """Symbols coded with one model, in decode order."""

    symbols: NDArray[np.int32]
    model: Any


def _chunk(values: Sequence[int] | I64, model: Any) -> Chunk:
    return Chunk(np.asarray(values, dtype=np.int32), model)


def plan_chunks(bands: Sequence[NDArray[np.uint8]], models: Sequence[BandModel | None]) -> list[Chunk]:
    """Every (symbols, model) chunk of the stream in decode order.

    Order: kinds, mode deltas, precisions (GEOM and table bands), GEOM ``a`` then ``t`` per precision, table ranges,
    SPARSE used counts and gaps, table entries per precision, the band symbols (band order), the canary.
    """
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
    for q, unit in enumerate(UNITS):
        geo = [(i, m) for i, m in coded if m.kind == GEOM and m.prec == q]
        if geo:
            cidx = [a_centre(bands[i].size, unit) - m.a + pr.a_off[q] for i, m in geo]
            chunks.append(_chunk(cidx, pr.a[q]))
            chunks.append(_chunk([m.t for _, m in geo], pr.t[q]))
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
    for i, m in live:
        if m.kind == CONST:
            continue
        chunks.append(Chunk(np.subtract(bands[i], m.lo, dtype=np.int32), m.model()))
    chunks.append(_chunk([canary([b.size for b in bands], bands)], pr.canary))
    return chunks


# ----------------------------------------------------------------------------- decoder side


def _bad(msg: str) -> BitstreamError:
    return BitstreamError(f"entropy payload: {msg}")


def _decode_models(decode: Decode, sizes: list[int]) -> list[BandModel]:
    pr = PRIORS
    nl = len(sizes)
    kinds = [int(v) for v in decode(pr.kind, nl)]
    modes = np.cumsum(decode(pr.mode, nl).astype(np.int64) - 255) + MODE_START
    if np.any(modes < 0) or np.any(modes > 255):
        raise _bad("band mode out of range")
    coded = [r for r in range(nl) if kinds[r] in (GEOM, TABLE, SPARSE)]
    precs = [int(v) for v in decode(pr.prec, len(coded))] if coded else []
    prec = dict(zip(coded, precs, strict=True))
    if any(p >= N_PREC for p in precs):
        raise _bad("invalid precision")
    geom: dict[int, tuple[int, int]] = {}
    for q, unit in enumerate(UNITS):
        grp = [r for r in coded if kinds[r] == GEOM and prec[r] == q]
        if grp:
            centre = np.array([a_centre(sizes[r], unit) for r in grp], dtype=np.int64)
            a = centre + pr.a_off[q] - decode(pr.a[q], len(grp)).astype(np.int64)
            t = decode(pr.t[q], len(grp)).astype(np.int64)
            if np.any(a < A_LO8 // unit) or np.any(a > A_HI8 // unit) or np.any(t > T_HI8 // unit):
                raise _bad("geometric model parameter out of range")
            geom.update(zip(grp, zip(a.tolist(), t.tolist(), strict=True), strict=True))
    tab = [r for r in coded if kinds[r] in TABLES]
    bounds: dict[int, tuple[int, int]] = {}
    if tab:
        dl = decode(pr.dist, len(tab)).tolist()
        dr = decode(pr.dist, len(tab)).tolist()
        for r, a_, b_ in zip(tab, dl, dr, strict=True):
            lo, hi = int(modes[r]) - a_, int(modes[r]) + b_
            if lo < 0 or hi > 255 or lo == hi:
                raise _bad("table range out of bounds")
            bounds[r] = (lo, hi)
    counts = {r: bounds[r][1] - bounds[r][0] for r in tab}
    gaps: dict[int, I64] = {}
    sparse = [r for r in tab if kinds[r] == SPARSE]
    if sparse:
        used = decode(pr.dist, len(sparse)).tolist()
        for r, u in zip(sparse, used, strict=True):
            if not 1 <= u <= counts[r]:
                raise _bad("sparse table with an impossible number of symbols")
            counts[r] = u
        g = decode(pr.gap, sum(used)).astype(np.int64)
        gaps.update(zip(sparse, np.split(g, np.cumsum(used)[:-1]), strict=True))
    entries: dict[int, I64] = {}
    for q in range(N_PREC):
        grp = [r for r in tab if prec[r] == q]
        if grp:
            sizes_q = [counts[r] for r in grp]
            ent = decode(pr.ent[q], sum(sizes_q)).astype(np.int64)
            entries.update(zip(grp, np.split(ent, np.cumsum(sizes_q)[:-1]), strict=True))
    for r in sparse:
        m = int(modes[r])
        dense = (
            None
            if np.any(entries[r] == 0)
            else sparse_to_dense(m - bounds[r][0], bounds[r][1] - m, gaps[r], entries[r])
        )
        if dense is None:
            raise _bad("sparse table gaps do not match its range")
        entries[r] = dense
    models: list[BandModel] = []
    last: BandModel | None = None
    for r in range(nl):
        m = int(modes[r])
        if kinds[r] == SAME:
            if last is None:
                raise _bad("band reuses parameters before any geometric band")
            lo, hi = geom_support(m, last.t * UNITS[last.prec])
            models.append(BandModel(SAME, m, last.prec, a=last.a, t=last.t, lo=lo, hi=hi))
        elif kinds[r] == CONST:
            models.append(BandModel(CONST, m, lo=m, hi=m))
        elif kinds[r] == GEOM:
            ga, gt = geom[r]
            lo, hi = geom_support(m, gt * UNITS[prec[r]])
            last = BandModel(GEOM, m, prec[r], a=ga, t=gt, lo=lo, hi=hi)
            models.append(last)
        elif kinds[r] in TABLES:
            lo, hi = bounds[r]
            q = prec[r]
            logs = table_logs(m - lo, entries[r], pr.e_off[q])
            real = logs[logs != _ABSENT]
            if np.any(real > 0) or np.any(real < -(MAX_LOG8 // UNITS[q])):
                raise _bad("table entry out of range")
            if logs[0] == _ABSENT or logs[-1] == _ABSENT:
                raise _bad("table range ends on an absent symbol")
            models.append(BandModel(kinds[r], m, q, lo=lo, hi=hi, entries=entries[r]))
        else:
            raise _bad("invalid model kind")
    return models


def decode_plan(decode: Decode, sizes: Sequence[int]) -> list[NDArray[np.uint8]]:
    """Decode the chunks of :func:`plan_chunks` with ``decode(model, amount) -> int32 array``.

    Every decoded value is validated before it sizes anything; the caller checks that the coder
    ends exactly empty.
    """
    out = [np.empty(0, dtype=np.uint8) for _ in sizes]
    live = [i for i, s in enumerate(sizes) if s > 0]
    if not live:
        return out
    models = _decode_models(decode, [int(sizes[i]) for i in live])
    for band, bm in zip(live, models, strict=True):
        n = int(sizes[band])
        if bm.kind == CONST:
            out[band] = np.full(n, bm.mode, dtype=np.uint8)
            continue
        if bm.kind in TABLES:
            w = bm.weights()
            sym = decode(categorical(w), n)
            if not np.all(w[sym] > 0):
                raise _bad("symbol with zero probability")
        else:
            sym = decode(bm.model(), n)
        res = sym.astype(np.uint8)
        if bm.lo:
            res += np.uint8(bm.lo)
        out[band] = res
    if int(decode(PRIORS.canary, 1)[0]) != canary(sizes, out):
        raise _bad("check value mismatch (wrong band sizes, truncated or corrupted data)")
    return out
