"""The encoder's model search: the cheapest band model per band, from closed-form costs.

For every band at once (vectorised numpy over all bands), the exact total bits of each kind and
precision: side information under the fixed priors plus the band's cross-entropy under exactly
the model the decoder will rebuild (GEOM from sufficient statistics and a closed-form
normaliser, TABLE/SPARSE from the quantised log ratios). Then, in band order, SAME replaces a
band's choice when reusing the latest GEOM band's parameters is cheaper.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.systems.entropy.bandmodel import (
    CONST,
    GEOM,
    SAME,
    SPARSE,
    TABLE,
    BandModel,
    e8_lookup,
    geom_model,
)
from vaerans_ecs.systems.entropy.plan import Chunk, concat_bands, geom_band, plan_concat
from vaerans_ecs.systems.entropy.priors import (
    A_HI8,
    A_LO8,
    CUT8,
    F64,
    I64,
    MAX_LOG8,
    N_PREC,
    PRIORS,
    T_HI8,
    TABLE_Q0,
    UNITS,
    pad_rows,
)

__all__ = [
    "Choice",
    "cheapest_plans",
    "choose",
    "choose_models",
    "clear_caches",
    "encode_chunks",
    "histograms",
]

_A_BITS: Final = pad_rows(PRIORS.a_bits)  # (q, index), padded with inf
_E_BITS: Final = pad_rows(PRIORS.ent_bits)

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
#: ``max(|x - m| - 1, 0)`` per mode ``m`` (row) and symbol ``x`` (column).
_TAIL_STEPS: Final = np.maximum(np.abs(_COL[None, :] - _COL[:, None]) - 1, 0)
_TAIL_STEPS.setflags(write=False)
#: Lower bound of the TABLE/SPARSE side information, as the search has always computed it.
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
# flat copies of the per-precision tables, with the flat position where each row starts
_T_EXP2_FLAT: Final = _T_EXP2.ravel()
_T_LOG2_FLAT: Final = _T_LOG2.ravel()
_T_EXP2_ROW: Final = (np.arange(N_PREC - TABLE_Q0) * _T_EXP2.shape[1])[:, None]
_E_BITS_FLAT: Final = _E_BITS.ravel()
_E_ROW: Final = (_TQ * _E_BITS.shape[1])[:, None]
_T_SCALE2: Final = _T_SCALE[:, :, 0]  # (q, 1)
_T_NEG_FLOOR2: Final = -_T_FLOOR[:, :, 0]
_T_EOFF1: Final = 1 + _T_EOFF[:, :, 0]


def _t_tables() -> tuple[I64, F64, I64, F64]:
    """Everything GEOM's payload needs from ``t`` alone, per precision and ``t`` (flat rows).

    Returns the row offset of each precision, ``t / s``, the support half-width and the tail
    sums ``(1 - th**j) / (1 - th)`` (``j`` for ``t = 0``) for ``j = 0..255``: the same
    elementwise operations on the same values as evaluating them per band, done once.
    """
    sizes = [T_HI8 // u + 1 for u in UNITS]
    off = np.array(list(accumulate(sizes, initial=0))[:-1], dtype=np.int64)
    t = np.concatenate([np.arange(m, dtype=np.int64) for m in sizes])
    unit = np.repeat(np.array(UNITS, dtype=np.int64), sizes)
    tb = t / (8.0 / unit)
    t8 = t * unit
    pos = t8 > 0
    reach = np.where(pos, np.minimum(255, 1 + (CUT8 + t8 - 1) // np.maximum(t8, 1)), 255)
    th = np.exp2(-tb)
    denom = np.where(pos, 1.0 - th, 1.0)
    grid = (t.size, 256)
    th2 = np.ascontiguousarray(np.broadcast_to(th[:, None], grid))
    j2 = np.ascontiguousarray(np.broadcast_to(np.arange(256, dtype=np.int64), grid))
    tail = np.where(pos[:, None], (1.0 - th2**j2) / denom[:, None], j2)
    for arr in (off, tb, reach, tail):
        arr.setflags(write=False)
    return off, tb, reach, tail.ravel()


_T_OFF, _T_TB, _T_REACH, _T_TAIL = _t_tables()
_T_BITS_FLAT: Final = np.concatenate(PRIORS.t_bits)
_S_Q: Final = 8.0 / _UNIT_ARR  # (q, 1, 1, 1) steps per bit
_T_OFF_Q: Final = _T_OFF[:, None, None, None]


def _geom_payload(n: F64, hm: F64, s1: F64, modes: I64, maxj: I64, k: F64, s: F64, a: I64, ti: I64) -> F64:
    """Cross-entropy (bits) of bands with the given statistics under GEOM params (broadcasting).

    Uses the sufficient statistics (size, mode count, sum of ``|x - m| - 1`` over the tails) and
    the closed-form normaliser; ``inf`` where the band does not fit in the support. ``s`` is the
    precision's steps per bit and ``ti`` the row of ``t`` in the per-``t`` tables
    (:func:`_t_tables`); callers pass ``a`` and ``ti`` along different axes.
    """
    ab = a / s
    tb = _T_TB[ti]
    reach = _T_REACH[ti]
    row = ti * 256
    sl = _T_TAIL[row + np.minimum(modes, reach)]
    sr = _T_TAIL[row + np.minimum(255 - modes, reach)]
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
    s = _S_Q
    # clip as maximum then minimum: the same values (the fits are never NaN)
    a = np.minimum(np.maximum(np.floor(a_real * s) + _STEP_A, _A_MIN), _A_MAX).astype(np.int64)  # (q, 2, 1, band)
    t = np.minimum(np.maximum(np.floor(t_real * s) + _STEP_T, 0), _T_MAX).astype(np.int64)  # (q, 1, 2, band)
    ti = t + _T_OFF_Q
    payload = _geom_payload(n, hm, s1, modes, maxj, k, s, a, ti)
    cidx = (8 * centre) // _UNIT_ARR - a + _A_OFF
    cost = payload + pr.kind_bits[GEOM] + _PREC_BITS_Q + _A_BITS[_QI, cidx] + _T_BITS_FLAT[ti]
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


def _table_costs(
    h: I64, modes: I64, lo: I64, hi: I64, window: tuple[int, int]
) -> tuple[F64, F64, _TableEval]:
    """Exact TABLE and SPARSE costs per (precision, band) over the column ``window`` (lo, hi),
    which covers every band's columns.

    Elementwise work runs on each band's own columns only (compact layout); the sums go through
    :func:`_row_sums`. Also returns what building the winning tables needs (:class:`_TableEval`).
    """
    pr = PRIORS
    nb = h.shape[0]
    w_lo = window[0]
    width = window[1] - w_lo + 1
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
    ref = np.minimum(np.maximum(np.where(right, before, after), 0), total - 1)
    side0 = pr.dist_bits[modes - lo] + pr.dist_bits[hi - modes] + pr.prec_bits[TABLE_Q0:, None]
    used = present & inside
    gaps = np.where(used, np.abs(pos - ref) - 1, 0)
    n_used = np.bincount(row[used], minlength=nb)
    lq = np.where(present, np.maximum(np.rint(lr * _T_SCALE2), _T_NEG_FLOOR2), 0).astype(np.int64)
    ent = np.where(present, _T_EOFF1 + lq - lq[:, ref], 0)
    ebits = _E_BITS_FLAT[_E_ROW + ent]
    wpos = _T_EXP2_ROW - lq  # flat position of each column's weight in the exp2 / log2 tables
    nq = N_PREC - TABLE_Q0
    terms = np.zeros((3 * nq + 1, total))  # one pass of row sums for everything but the payload
    np.copyto(terms[:nq], ebits, where=inside)
    np.copyto(terms[nq : 2 * nq], ebits, where=used)
    np.copyto(terms[2 * nq : 3 * nq], _T_EXP2_FLAT[wpos], where=present)
    np.copyto(terms[3 * nq], pr.gap_bits[gaps], where=used)
    sums = _row_sums(terms, slot, nb, width)
    dense_e, sparse_e, wsum = sums[:nq], sums[nq : 2 * nq], sums[2 * nq : 3 * nq]
    sparse0 = pr.kind_bits[SPARSE] + pr.dist_bits[n_used] + sums[3 * nq]
    logp = np.where(present, _T_LOG2_FLAT[wpos], 0.0) - np.log2(wsum)[:, row]
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


def histograms(cat: NDArray[np.uint8], sizes: list[int]) -> I64:
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


class Choice(NamedTuple):
    """What the model search decides for a list of bands."""

    #: The cheapest model per band (``None`` for an empty band).
    models: list[BandModel | None]
    #: Estimated bits (side information + payload) of each non-empty band, in band order.
    bits: F64
    #: The weights of every TABLE/SPARSE band's model (by band index), straight from the quantised
    #: logs it codes: exactly :meth:`BandModel.weights`, without rebuilding them from the entries.
    table_weights: dict[int, F64]


def choose_models(bands: Sequence[NDArray[np.uint8]]) -> list[BandModel | None]:
    """The cheapest model per band (``None`` for empty bands)."""
    return choose(bands).models


def choose(bands: Sequence[NDArray[np.uint8]], segments: Sequence[int] | None = None) -> Choice:
    """The cheapest models of ``bands`` with their estimated bits and table weights.

    ``segments`` (a non-decreasing id per band) splits the bands into independent plans: SAME
    never refers to a GEOM band of another segment, so each segment's models are what choosing
    it alone would give.
    """
    return _choose_cat(concat_bands(bands), [int(b.size) for b in bands], segments)


@dataclass(frozen=True)
class _Stats:
    """Sufficient statistics of the non-empty bands, one row per band."""

    h: I64  # (band, 256) histograms
    n: F64  # sizes
    modes: I64  # most frequent symbols
    hm: F64  # counts of the modes
    k: F64  # symbols other than the mode
    s1: F64  # sum of |x - mode| - 1 over those
    present: NDArray[np.bool_]  # (band, 256) symbols that occur
    lo: I64  # smallest and largest symbols that occur
    hi: I64
    maxj: I64  # largest |x - mode|
    centre: I64  # bit length of 2n (the prediction of GEOM's a)


def _stats(cat: NDArray[np.uint8], sizes: list[int]) -> _Stats:
    h = histograms(cat, sizes)
    modes = h.argmax(axis=1)
    n = np.array(sizes, dtype=np.float64)
    hm = h.max(axis=1).astype(np.float64)  # the mode's count
    present = h > 0
    lo = present.argmax(axis=1)
    hi = 255 - present[:, ::-1].argmax(axis=1)
    s1 = (h * _TAIL_STEPS[modes]).sum(axis=1).astype(np.float64)
    maxj = np.maximum(modes - lo, hi - modes)
    centre = np.array([(2 * s).bit_length() for s in sizes], dtype=np.int64)
    return _Stats(h, n, modes, hm, n - hm, s1, present, lo, hi, maxj, centre)


#: Columns of the cost matrix: CONST, then GEOM, TABLE and SPARSE at each precision.
_GEOM_COLS: Final = 1
_TABLE_COLS: Final = 1 + N_PREC
_SPARSE_COLS: Final = 1 + 2 * N_PREC
_N_COLS: Final = 1 + 3 * N_PREC


def _kind_of(col: int) -> tuple[int, int]:
    """(kind, precision) of a cost matrix column."""
    if col == 0:
        return CONST, 0
    if col < _TABLE_COLS:
        return GEOM, col - _GEOM_COLS
    if col < _SPARSE_COLS:
        return TABLE, col - _TABLE_COLS
    return SPARSE, col - _SPARSE_COLS


@dataclass(frozen=True)
class _Costs:
    """Bits of every band under every (kind, precision), and what building the winners needs."""

    bits: F64  # (band, column)
    geom_a: I64  # (precision, band) best GEOM parameters
    geom_t: I64
    tables: _TableEval | None  # evaluation of the bands in table_pos
    table_pos: dict[int, int]  # band row -> its position in ``tables``


def _costs(st: _Stats) -> _Costs:
    """The cost matrix: CONST and GEOM for every band, tables where their lower bound can win."""
    pr = PRIORS
    bits = np.full((st.h.shape[0], _N_COLS), np.inf)
    bits[:, 0] = np.where(st.k == 0, pr.kind_bits[CONST], np.inf)
    gcost, g_a, g_t = _geom_costs(st.n, st.hm, st.k, st.s1, st.modes, st.maxj, st.centre)
    bits[:, _GEOM_COLS:_TABLE_COLS] = gcost.T
    # TABLE only where its lower bound (order-0 entropy + minimal side info) can win
    logs = np.zeros(st.h.shape)
    np.log2(st.h / st.n[:, None], out=logs, where=st.present)
    nh = -(st.h * logs).sum(axis=1)
    n_used = st.present.sum(axis=1) - 1
    bound = nh + _TAB_KIND_MIN + _PREC_MIN + n_used * _ENT_MIN
    least = bits.min(axis=1)
    can = (st.k > 0) & (bound < least)
    # Both kinds also code the range: skip those bands too (with a margin far above the float
    # error of the costs, so a skipped table could never have won). The column window stays
    # the one of every band above, so the costs of the evaluated bands are unchanged.
    tight = bound + pr.dist_bits[st.modes - st.lo] + pr.dist_bits[st.hi - st.modes]
    rows = np.flatnonzero(can & (tight - 1e-9 * (tight + st.n + 1.0) < least))
    tev: _TableEval | None = None
    if rows.size:
        window = (int(st.lo[can].min()), int(st.hi[can].max()))
        tcost, scost, tev = _table_costs(st.h[rows], st.modes[rows], st.lo[rows], st.hi[rows], window)
        bits[rows, _TABLE_COLS + TABLE_Q0 : _SPARSE_COLS] = tcost.T
        bits[rows, _SPARSE_COLS + TABLE_Q0 :] = scost.T
    return _Costs(bits, g_a, g_t, tev, dict(zip(rows.tolist(), range(rows.size), strict=True)))


@dataclass(frozen=True)
class _GeomCandidates:
    """The bands whose best model is GEOM: the ones a later SAME band may refer to."""

    rows: I64  # band rows
    params: list[tuple[int, int, int, int]]  # per candidate: precision, a, t, support half-width
    same_bits: F64  # (band, candidate) bits of each band as SAME after each candidate


def _geom_candidates(st: _Stats, best: I64, costs: _Costs) -> _GeomCandidates:
    rows = np.flatnonzero((best >= _GEOM_COLS) & (best < _TABLE_COLS))
    q = best[rows] - _GEOM_COLS
    a = costs.geom_a[q, rows]
    t = costs.geom_t[q, rows]
    ti = _T_OFF[q] + t
    pay = _geom_payload(
        st.n[:, None],
        st.hm[:, None],
        st.s1[:, None],
        st.modes[:, None],
        st.maxj[:, None],
        st.k[:, None],
        _S_Q[q, 0, 0, 0][None, :],
        a[None, :],
        ti[None, :],
    )
    reach = _T_REACH[ti]  # support half-width of each candidate's parameters (geom_support)
    params = list(zip(q.tolist(), a.tolist(), t.tolist(), reach.tolist(), strict=True))
    return _GeomCandidates(rows, params, pay + PRIORS.kind_bits[SAME])


def _same_refs(best_bits: F64, cands: _GeomCandidates, segments: list[int] | None) -> list[int]:
    """Per band, the candidate whose GEOM parameters it reuses as SAME, or -1 (greedy, in order).

    A band reuses the latest GEOM band of its segment when that costs less than its own best
    model; a band that keeps a GEOM model becomes the one later bands may reuse.
    """
    pos = dict(zip(cands.rows.tolist(), range(cands.rows.size), strict=True))
    refs = [-1] * best_bits.size
    latest = -1
    segment = segments[0] if segments else 0
    for r, (own, same) in enumerate(zip(best_bits.tolist(), cands.same_bits.tolist(), strict=True)):
        if segments is not None and segments[r] != segment:
            segment, latest = segments[r], -1
        if latest >= 0 and same[latest] < own:
            refs[r] = latest
        elif r in pos:
            latest = pos[r]
    return refs


def _geom_band_model(kind: int, mode: int, params: tuple[int, int, int, int]) -> BandModel:
    prec, a, t, reach = params
    return BandModel(kind, mode, prec, a, t, max(0, mode - reach), min(255, mode + reach))


def _table_band_model(
    tev: _TableEval, pos: int, kind: int, q: int, mode: int, lo: int, hi: int
) -> tuple[BandModel, F64]:
    """The TABLE/SPARSE model of evaluated band ``pos`` at precision ``q``, and its weights."""
    s0 = tev.start[pos]
    mid = s0 + mode - lo
    seg = slice(s0, s0 + hi - lo + 1)
    ent_q = tev.entries[q - TABLE_Q0]
    entries = np.concatenate((ent_q[s0:mid][::-1], ent_q[mid + 1 : seg.stop]))  # left chain outward, right chain
    w = e8_lookup(tev.lq[q - TABLE_Q0, seg] * UNITS[q])
    w[~tev.present[seg]] = 0.0
    return BandModel(kind, mode, q, lo=lo, hi=hi, entries=entries), w


def _choose_cat(cat: NDArray[np.uint8], all_sizes: list[int], segments: Sequence[int] | None = None) -> Choice:
    """:func:`choose` over the concatenated bands (``all_sizes`` includes empty bands)."""
    models: list[BandModel | None] = [None] * len(all_sizes)
    table_w: dict[int, F64] = {}
    live = [i for i, s in enumerate(all_sizes) if s]
    if not live:
        return Choice(models, np.zeros(0), table_w)
    st = _stats(cat, [all_sizes[i] for i in live])
    costs = _costs(st)
    best = costs.bits.argmin(axis=1)
    bits = costs.bits[np.arange(best.size), best]
    cands = _geom_candidates(st, best, costs)
    refs = _same_refs(bits, cands, None if segments is None else [segments[i] for i in live])
    cand_pos = dict(zip(cands.rows.tolist(), range(cands.rows.size), strict=True))
    for r, (band, col, ref, mode) in enumerate(zip(live, best.tolist(), refs, st.modes.tolist(), strict=True)):
        kind, q = _kind_of(col)
        if ref >= 0:
            models[band] = _geom_band_model(SAME, mode, cands.params[ref])
            bits[r] = cands.same_bits[r, ref]
        elif kind == CONST:
            models[band] = BandModel(CONST, mode, 0, 0, 0, mode, mode)
        elif kind == GEOM:
            models[band] = _geom_band_model(GEOM, mode, cands.params[cand_pos[r]])
        else:
            assert costs.tables is not None
            pos = costs.table_pos[r]
            lo, hi = int(st.lo[r]), int(st.hi[r])
            models[band], table_w[band] = _table_band_model(costs.tables, pos, kind, q, mode, lo, hi)
    return Choice(models, bits, table_w)


def encode_chunks(bands: Sequence[NDArray[np.uint8]], *, check: bool = True) -> list[Chunk]:
    """``plan_chunks(bands, choose_models(bands))`` with the bands concatenated only once.

    The concatenation serves the histograms, the symbol conversion and the check value.
    ``check=False`` leaves out the trailing check value (for callers that code several plans
    in one stream and end it with :func:`canary_chunk` of their own).
    """
    cat = concat_bands(bands)
    sizes = [int(b.size) for b in bands]
    models, _, table_w = _choose_cat(cat, sizes)
    return plan_concat(cat, sizes, models, table_w, check=check)


def cheapest_plans(items: Sequence[Sequence[Sequence[NDArray[np.uint8]]]]) -> list[tuple[int, list[Chunk]]]:
    """Per item, of its options (groupings of the same symbols), the index of the one with the
    fewest estimated bits (side information included) and its chunks, exactly
    ``encode_chunks(option, check=False)``. One vectorised model choice serves every option."""
    groups = [g for options in items for option in options for g in option]
    seg_ids = [k for k, option in enumerate(o for options in items for o in options) for _ in option]
    sizes = [int(g.size) for g in groups]
    cat = concat_bands(groups)
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
        out.append((best, plan_concat(cat[starts[a] : starts[b]], sizes[a:b], models[a:b], tw, check=False)))
    return out


def clear_caches() -> None:
    """Forget every cached model and table (benchmarks use it to time cold runs)."""
    geom_model.cache_clear()
    _band_keys.cache_clear()
    geom_band.cache_clear()
