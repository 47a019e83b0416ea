"""The predictive path of the pixel coder: per pass and channel, classified least-squares
prediction, closed-loop near-lossless quantisation and context-classified rANS.

For every pass (see :mod:`.pixel_passes`) and every channel in coding order (G, R, B, then
alpha for colour images) the coder

1. gathers the known neighbours (centred on ``mc``, the rounded mean of the near ones), for
   colour channels after the first the earlier channels' reconstruction error at the target and
   their centred target and near values, and optionally the centred base image;
2. predicts ``mc + (sum_k w[c, k] f_k + 128) >> 8`` with integer weights per class ``c`` of a local
   activity measure (the encoder fits them by iteratively reweighted least squares, an L1 fit);
3. quantises the error with step ``2k+1`` (exact for ``k = 0``) and reduces it modulo the range,
   so every symbol is one byte;
4. splits the symbols into classes by an integer combination (fitted by the encoder) of
   activity features the decoder knows, and codes each class with the ``"rans"`` coder.

Side information per pass and channel (LEB128 varints): ``nls`` (0 = predict ``mc``; 9 =
predict ``mc`` plus the first earlier colour channel's reconstruction minus its ``mc``; 10 =
predict the base), with
``0 < nls <= 8`` the base flag (only when a base is given), ``nls - 1`` class thresholds (first,
then differences) and ``nls`` weight vectors (signed; class k > 0 relative to class k - 1);
then ``nctx``, with ``nctx > 1`` the context weights (0..63 each) and ``nctx - 1`` strictly
increasing thresholds (first, then differences minus one); last the rANS payload's length plus
one and the payload, or 0 and the symbols as bytes (where that is smaller: tiny passes).
For 16-bit images the coded symbol is the bit length of the zigzagged residual index, and a
second payload (length, then ``"rans"`` data) holds the remaining bits (see :func:`_split_wide`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.errors import BitstreamError
from vaerans_ecs.systems.entropy import get_coder
from vaerans_ecs.systems.residual.pixel_passes import Pass, Reader, Writer, plan_passes

__all__ = ["PixelState", "decode_predictive", "encode_predictive"]

I32 = NDArray[np.int32]
I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
U8 = NDArray[np.uint8]

SHIFT: Final = 8  # fixed-point bits of the prediction weights
W_LIMIT: Final = 1 << 15
MAX_LS: Final = 8  # at most this many predictor classes per pass and channel
CROSS: Final = MAX_LS + 1  # predictor mode: mc plus the first earlier channel's centred target
BASE: Final = MAX_LS + 2  # predictor mode: the base
MAX_CTX: Final = 16  # at most this many entropy classes
CTX_W_MAX: Final = 63
THR_LIMIT: Final = 1 << 40
LS_CLASSES: Final = 4
LS_MIN: Final = 2000  # fewer targets than this: predict the near mean (no weights to send)
CTX_CLASSES: Final = 12
CTX_MIN_PER_CLASS: Final = 64
FIT_ROWS: Final = 8192  # the encoder fits on at most this many evenly spaced targets per class
#: Row strides of the fit's stages: least squares, then IRLS steps, each on every n-th fitted row.
STAGE_STEPS: Final = (4, 2, 2, 1)
GRAM_ROWS: Final = 192
LUT_MAX: Final = 1 << 20  # the largest value for which classes use a lookup table
WIDE_BUCKETS: Final = 18  # bit lengths 0..17 of zigzag symbols of 16-bit images

_CODER = get_coder("rans")


@dataclass
class PixelState:
    """Reconstruction so far, |error| map and geometry shared by encoder and decoder."""

    recon: I32  # (C, H, W)
    err: I32  # (C, H, W): |reconstruction - prediction| where coded
    base: I32 | None  # (C, H, W) or None
    maxval: int
    k: int

    @property
    def q(self) -> int:
        return 2 * self.k + 1

    @property
    def modulus(self) -> int:
        return (self.maxval + 2 * self.k) // self.q + 1


def coding_order(channels: int) -> list[int]:
    """G first for colour (then R, B, alpha); gray and gray+alpha in their own order."""
    return [1, 0, 2, 3][:channels] if channels >= 3 else list(range(channels))


@dataclass
class _Plane:
    """Everything about one channel in one pass that the decoder can compute before its symbols."""

    feats: list[I32]  # centred features, without the constant
    feats_base: list[I32]  # centred base features (empty without a base)
    mc: I32
    act: I64  # activity for the predictor classes
    ctx: list[I32]  # context features (non-negative)
    cross_at: int  # index in feats of the first earlier channel's centred target, -1 if none


def _prepare(
    st: PixelState,
    p: Pass,
    nb_all: list[I32],
    e_near: I32,
    e_far: I32,
    ci: int,
    c: int,
    prev: list[tuple[I32, I32, list[I32]]],
    colour: bool,
) -> _Plane:
    """Features of channel ``c`` (position ``ci`` in the coding order); ``prev`` holds, per earlier
    colour channel of this pass, (signed error, centred target, centred near neighbours)."""
    nb = [f[c] for f in nb_all]
    near = nb[: p.near]
    mc = ((sum(near, np.zeros_like(near[0])) + p.near // 2) // p.near).astype(np.int32)
    feats = [f - mc for f in nb]
    grad = sum((np.abs(a - b) for a, b in itertools.pairwise(near)), np.zeros_like(mc))
    enear, efar = e_near[c], e_far[c]
    far = sum((np.abs(f) for f in feats[p.near :]), np.zeros_like(mc))
    act = grad.astype(np.int64) + 2 * enear
    ctx = [grad, enear, efar, far]
    cross_at = len(feats) + 1 if colour and prev else -1
    if colour:
        for err, tgt, nears in prev:
            feats += [err, tgt, *nears]
            act += 4 * np.abs(err)
            ctx.append(np.abs(err))
    fb: list[I32] = []
    if st.base is not None:
        bt = st.base[c, p.rows, p.cols].ravel()
        fb = [bt - mc] + [f - mc for f in p.gather(st.base[c], min(p.near, 4))]
        ctx.append(np.abs(fb[0]))
    return _Plane(feats, fb, mc, act, ctx, cross_at)


def _small(values: I64, limit: int) -> bool:
    """Whether ``values`` are non-negative and at most ``limit`` (so that counting or table lookups,
    cheaper than sorting or binary searches, give the same results)."""
    return values.size > 0 and int(values.min()) >= 0 and int(values.max()) <= limit


def _classes(values: I64, thresholds: list[int]) -> U8:
    """Per value, how many thresholds it reaches (``searchsorted(thresholds, values, "right")``)."""
    if not thresholds:
        return np.zeros(values.shape, dtype=np.uint8)
    thr = np.asarray(thresholds, dtype=np.int64)
    if not _small(values, LUT_MAX):
        out: U8 = np.searchsorted(thr, values, side="right").astype(np.uint8)
        return out
    top = int(values.max())
    edges = np.concatenate(([0], np.clip(thr, 0, top + 1), [top + 1]))
    lut = np.repeat(np.arange(thr.size + 1, dtype=np.uint8), np.diff(edges))
    out = lut[values]
    return out


def _predict(pl: _Plane, use_base: bool, cls: U8, weights: I64, maxval: int) -> I32:
    """``clip(mc + (sum_k w[cls, k] f_k + w[cls, -1] * 1 + round) >> SHIFT)``, exact integers."""
    feats = pl.feats + (pl.feats_base if use_base else [])
    if weights.shape[0] == 0:
        return pl.mc.copy()
    # int32 is exact for 8 bits: |feature| <= 255, |weight| < 2**15, at most 40 terms; each product
    # fits int32 for 16 bits too (|feature| <= 65535)
    dt = np.int32 if maxval < 256 else np.int64
    n = pl.mc.size
    tmp = np.empty(n, dtype=dt)
    accs = np.empty((weights.shape[0], n), dtype=dt)
    for acc, row in zip(accs, weights.tolist(), strict=True):  # one weighted sum per class
        acc[:] = (1 << (SHIFT - 1)) + row[-1]
        for f, w in zip(feats, row, strict=False):
            if w:
                np.multiply(f, w, out=tmp, dtype=dt)
                acc += tmp
    # each target picks its class's sum
    sel = accs[0] if accs.shape[0] == 1 else accs.ravel()[cls * np.intp(n) + np.arange(n, dtype=np.intp)]
    pred = pl.mc + (sel >> SHIFT)
    out: I32 = np.clip(pred, 0, maxval).astype(np.int32)
    return out


def _dequantise(st: PixelState, pred: I32, sym: NDArray[np.integer]) -> tuple[I32, I32]:
    """(reconstruction, signed error in pixel units) from the symbols, as the decoder sees them."""
    m, q, k = st.modulus, st.q, st.k
    qv = sym.astype(np.int64) - m // 2
    v = pred + qv * q
    qv += m * (v < -k).astype(np.int64) - m * (v > st.maxval + k).astype(np.int64)
    rec = np.clip(pred + qv * q, 0, st.maxval).astype(np.int32)
    return rec, rec - pred


# ----------------------------------------------------------------------------- encoder


def _gram(a: NDArray[np.floating]) -> F64:
    """``a @ a.T`` of a (K, m) matrix, accumulated in float64 over column blocks small enough that
    BLAS stays single-threaded: threaded BLAS calls are many times slower on a machine whose cores
    are busy."""
    out = np.zeros((a.shape[0], a.shape[0]))
    for i in range(0, a.shape[1], GRAM_ROWS):
        blk = a[:, i : i + GRAM_ROWS]
        out += blk @ blk.T
    return out


def _fit(ay: NDArray[np.float32]) -> F64:
    """Weights ``w`` minimising roughly sum |y - w @ a| (IRLS from the least-squares start), where
    ``ay`` stacks the (F, m) features ``a`` and the targets ``y`` as its last row. Single precision
    products (exact before the IRLS weights: integers, block sums below 2**24) are accurate
    enough for weights rounded to 1/256."""
    nf = ay.shape[0] - 1
    reg = 1e-3 * np.eye(nf)
    sub = np.ascontiguousarray(ay[:, :: STAGE_STEPS[0]])
    g = _gram(sub)
    w = np.linalg.solve(g[:nf, :nf] + reg, g[:nf, nf])
    for st in STAGE_STEPS[1:]:
        sub = ay[:, ::st]
        res = sub[nf] - np.einsum("i,ij->j", w.astype(np.float32), sub[:nf])
        sw = 1.0 / np.sqrt(np.maximum(np.abs(res), np.float32(1.0)))
        g = _gram(sub * sw)
        w = np.linalg.solve(g[:nf, :nf] + reg, g[:nf, nf])
    out: F64 = np.asarray(w, dtype=np.float64)
    return out


def _rows(idx: I64) -> I64:
    """At most FIT_ROWS evenly spaced entries of ``idx``."""
    step = max(1, -(-idx.size // FIT_ROWS))
    return idx[::step]


def _quantiles(values: I64, n: int) -> list[int]:
    """The distinct ``quantile(values, i / n, method="lower")``, 0 < i < n (by counting where the
    values allow it: the same numbers as numpy's)."""
    if n <= 1 or values.size == 0:
        return []
    q = np.linspace(0, 1, n + 1)[1:-1]
    if _small(values, 4 * values.size + LUT_MAX // 256):
        pos = np.floor((values.size - 1) * q).astype(np.int64)  # numpy's "lower" index
        cum = np.cumsum(np.bincount(values))
        return sorted({int(v) for v in np.searchsorted(cum, pos, side="right")})
    return sorted({int(v) for v in np.quantile(values, q, method="lower")})


def _fit_weights(pl: _Plane, use_base: bool, x: I32, cls: U8, ncls: int) -> I64:
    feats = pl.feats + (pl.feats_base if use_base else [])
    nf = len(feats) + 1
    idx = []
    for j in range(ncls):  # the fitted rows of every class, gathered together
        rows = _rows(np.flatnonzero(cls == j))
        idx.append(rows if rows.size >= 4 * nf else _rows(np.arange(x.size, dtype=np.int64)))
    ends = np.cumsum([i.size for i in idx]).tolist()
    at = np.concatenate(idx)
    ay = np.empty((nf + 1, at.size), dtype=np.float32)
    for i, f in enumerate(feats):
        ay[i] = f[at]
    ay[nf - 1] = 1.0
    ay[nf] = x[at] - pl.mc[at]
    out = np.zeros((ncls, nf), dtype=np.int64)
    for j in range(ncls):
        w = _fit(ay[:, ends[j] - idx[j].size : ends[j]])
        out[j] = np.clip(np.round(w * (1 << SHIFT)), -W_LIMIT + 1, W_LIMIT - 1).astype(np.int64)
    return out


def _fixed_weights(pl: _Plane, mode: int, has_base: bool) -> I64 | None:
    """Weights of a fixed predictor: ``mc`` plus the first earlier channel's deviation from its
    own ``mc`` (CROSS), or the base value (BASE); None where it does not apply."""
    if mode == CROSS and pl.cross_at >= 0:
        w = np.zeros((1, len(pl.feats) + 1), dtype=np.int64)
        w[0, pl.cross_at] = 1 << SHIFT
        return w
    if mode == BASE and has_base:
        w = np.zeros((1, len(pl.feats) + len(pl.feats_base) + 1), dtype=np.int64)
        w[0, len(pl.feats)] = 1 << SHIFT
        return w
    return None


def _l1(pl: _Plane, use_base: bool, x: I32, cls: U8, w: I64, maxval: int) -> int:
    return int(np.abs(x - _predict(pl, use_base, cls, w, maxval)).sum())


def _encode_plane(st: PixelState, pl: _Plane, x: I32, out: Writer) -> tuple[I32, I32]:
    """Code one channel of one pass; returns (reconstruction, signed error)."""
    n = x.size
    nls = 0 if n < LS_MIN else (LS_CLASSES if n >= LS_MIN * LS_CLASSES else 1)
    use_base = False
    weights = np.zeros((0, 1), dtype=np.int64)
    cls = np.zeros(n, dtype=np.uint8)
    if not nls:  # few targets: the best fixed predictor, no weights to send
        best = _l1(pl, False, x, cls, weights, st.maxval)
        for mode in (CROSS, BASE):
            fixed = _fixed_weights(pl, mode, st.base is not None)
            if fixed is not None and (cost := _l1(pl, mode == BASE, x, cls, fixed, st.maxval)) < best:
                nls, weights, best = mode, fixed, cost
        use_base = nls == BASE
    out.uint(nls)
    if 0 < nls <= MAX_LS:
        thr = _quantiles(pl.act, nls)
        cls = _classes(pl.act, thr)
        weights = _fit_weights(pl, False, x, cls, len(thr) + 1)
        if st.base is not None:
            wb = _fit_weights(pl, True, x, cls, len(thr) + 1)
            if _l1(pl, True, x, cls, wb, st.maxval) < _l1(pl, False, x, cls, weights, st.maxval):
                use_base, weights = True, wb
            out.uint(int(use_base))
        out.uint(len(thr))
        for i, t in enumerate(thr):
            out.uint(t - (thr[i - 1] if i else 0))
        prev = np.zeros(weights.shape[1], dtype=np.int64)
        for row in weights:
            for v, pv in zip(row.tolist(), prev.tolist(), strict=True):
                out.sint(v - pv)
            prev = row
    pred = _predict(pl, use_base, cls, weights, st.maxval)
    m, q, k = st.modulus, st.q, st.k
    e = x.astype(np.int64) - pred
    qv = np.sign(e) * ((np.abs(e) + k) // q)
    wide = (qv + m // 2) % m
    rec, err = _dequantise(st, pred, wide)
    sym, extra = (wide.astype(np.uint8), None) if m <= 256 else _split_wide(wide - m // 2)
    # context classes
    nctx = min(CTX_CLASSES, n // CTX_MIN_PER_CLASS)
    cw: list[int] = []
    thr_c: list[int] = []
    if nctx > 1:
        step = max(1, -(-n // FIT_ROWS))  # least squares of |error| on the context features
        nz = len(pl.ctx) + 1
        z = np.empty((nz + 1, -(-n // step)))
        for i, f in enumerate(pl.ctx):
            z[i] = f[::step]
        z[nz - 1] = 1.0
        z[nz] = np.abs(err[::step])
        g = _gram(z)
        sol = np.linalg.solve(g[:nz, :nz] + 1e-3 * np.eye(nz), g[:nz, nz])[:-1]
        top = float(np.max(sol))
        if top > 0:
            cw = np.clip(np.round(sol / top * CTX_W_MAX), 0, CTX_W_MAX).astype(np.int64).tolist()
            thr_c = _quantiles(_ctx_value(pl, cw), nctx)
    out.uint(len(thr_c) + 1)
    if thr_c:
        for v in cw:
            out.uint(v)
        for i, t in enumerate(thr_c):
            out.uint(t - (thr_c[i - 1] + 1 if i else 0))
        ccls = _classes(_ctx_value(pl, cw), thr_c)
        order = np.argsort(ccls, kind="stable")
        bands = np.split(sym[order], np.cumsum(np.bincount(ccls, minlength=len(thr_c) + 1))[:-1])
    else:
        bands = [sym]
    payload = _CODER.encode(bands)
    if len(payload) < n:
        out.uint(len(payload) + 1)
        out.bytes(payload)
    else:  # tiny passes: the symbols as bytes beat the coder's tables and check value
        out.uint(0)
        out.bytes(sym.tobytes())
    if extra is not None:
        payload = _CODER.encode(extra)
        out.uint(len(payload))
        out.bytes(payload)
    return rec, err


def _split_wide(d: I64) -> tuple[U8, list[U8]]:
    """Symbols beyond a byte (16-bit images): the zigzag value's bit length (the coded symbol,
    0..17) and, per bit length b >= 2, the low ``b - 1`` bits as a low byte and (b >= 10) a high byte."""
    z = np.where(d >= 0, 2 * d, -2 * d - 1)
    bucket = np.frexp(z.astype(np.float64))[1].astype(np.int64)  # exact bit length
    extra = z - np.where(bucket >= 2, 1 << np.maximum(bucket - 1, 0), z)
    lo = [(extra[bucket == b] & 255).astype(np.uint8) for b in range(2, WIDE_BUCKETS)]
    hi = [(extra[bucket == b] >> 8).astype(np.uint8) for b in range(10, WIDE_BUCKETS)]
    return bucket.astype(np.uint8), lo + hi


def _join_wide(bucket: U8, r: Reader) -> I64:
    """Inverse of :func:`_split_wide` reading the extra bytes' payload: the centred symbols."""
    b = bucket.astype(np.int64)
    if int(b.max(initial=0)) >= WIDE_BUCKETS:
        raise BitstreamError("pixel stream: bit length out of range")
    counts = np.bincount(b, minlength=WIDE_BUCKETS).tolist()
    parts = _CODER.decode(r.take(r.uint(r.left)), counts[2:] + counts[10:])
    z = np.minimum(b, 1)
    for i, bl in enumerate(range(2, WIDE_BUCKETS)):
        v = parts[i].astype(np.int64)
        if bl >= 10:
            v += parts[i + WIDE_BUCKETS - 2 - 8].astype(np.int64) << 8
        if v.size and int(v.max()) >= 1 << (bl - 1):
            raise BitstreamError("pixel stream: extra bits out of range")
        z[b == bl] = (1 << (bl - 1)) + v
    out: I64 = np.where(z & 1, -((z + 1) >> 1), z >> 1)
    return out


def _ctx_value(pl: _Plane, cw: list[int]) -> I64:
    acc = np.zeros(pl.mc.shape, dtype=np.int64)
    for w, f in zip(cw, pl.ctx, strict=True):
        if w:
            acc += w * f.astype(np.int64)
    return acc


def _pass_data(st: PixelState, p: Pass) -> tuple[list[I32], I32, I32]:
    """Neighbour values of all channels ((C, n) arrays) and the sums of the near and of the far
    neighbours' |error| values ((C, n) each)."""
    return p.gather(st.recon), p.gather_sum(st.err, 0, p.near), p.gather_sum(st.err, p.near, len(p.neighbours))


def _store(st: PixelState, p: Pass, c: int, rec: I32, err: I32) -> None:
    h, w = p.shape
    st.recon[c, p.rows, p.cols] = rec.reshape(h, w)
    st.err[c, p.rows, p.cols] = np.abs(err).reshape(h, w)


def encode_predictive(img: NDArray[np.integer], st: PixelState, out: Writer) -> None:
    """Code ``img`` (H, W, C) pass by pass into ``out``; ``st.recon`` ends as the reconstruction."""
    channels = img.shape[2]
    order = coding_order(channels)
    colour = channels >= 3
    for c in range(channels):
        out.uint(int(img[0, 0, c]))
        st.recon[c, 0, 0] = img[0, 0, c]
    for p in plan_passes(img.shape[0], img.shape[1]):
        nbs, e_near, e_far = _pass_data(st, p)
        prev: list[tuple[I32, I32, list[I32]]] = []
        for ci, c in enumerate(order):
            pl = _prepare(st, p, nbs, e_near, e_far, ci, c, prev if c < 3 else [], colour and c < 3)
            x = img[p.rows, p.cols, c].ravel().astype(np.int32)
            rec, err = _encode_plane(st, pl, x, out)
            _store(st, p, c, rec, err)
            if colour and c < 3:
                prev.append((err, rec - pl.mc, pl.feats[: min(p.near, 4)]))


# ----------------------------------------------------------------------------- decoder


def _read_thresholds(r: Reader, count: int, strict: bool) -> list[int]:
    out: list[int] = []
    for i in range(count):
        d = r.uint(THR_LIMIT)
        out.append(d if not i else out[-1] + d + int(strict))
        if out[-1] > THR_LIMIT:
            raise BitstreamError("pixel stream: threshold out of range")
    return out


def _decode_plane(st: PixelState, pl: _Plane, n: int, r: Reader) -> tuple[I32, I32]:
    nls = r.uint(BASE)
    use_base = nls == BASE
    weights = np.zeros((0, 1), dtype=np.int64)
    cls = np.zeros(n, dtype=np.uint8)
    if nls > MAX_LS:
        fixed = _fixed_weights(pl, nls, st.base is not None)
        if fixed is None:
            raise BitstreamError("pixel stream: fixed predictor not available here")
        weights = fixed
    elif nls:
        if st.base is not None:
            use_base = bool(r.uint(1))
        thr = _read_thresholds(r, r.uint(MAX_LS - 1), strict=False)
        nf = len(pl.feats) + (len(pl.feats_base) if use_base else 0) + 1
        weights = np.zeros((len(thr) + 1, nf), dtype=np.int64)
        prev = [0] * nf
        for j in range(len(thr) + 1):
            row = [pv + r.sint(2 * W_LIMIT) for pv in prev]
            if any(abs(v) >= W_LIMIT for v in row):
                raise BitstreamError("pixel stream: prediction weight out of range")
            weights[j] = row
            prev = row
        cls = _classes(pl.act, thr)
    pred = _predict(pl, use_base, cls, weights, st.maxval)
    nctx = r.uint(MAX_CTX)
    if nctx < 1:
        raise BitstreamError("pixel stream: zero context classes")
    if nctx > 1:
        cw = [r.uint(CTX_W_MAX) for _ in pl.ctx]
        thr_c = _read_thresholds(r, nctx - 1, strict=True)
        ccls = _classes(_ctx_value(pl, cw), thr_c)
        sizes = np.bincount(ccls, minlength=nctx).tolist()
    else:
        sizes = [n]
    size = r.uint(r.left)
    if size == 0:
        bands = [np.frombuffer(r.take(n), dtype=np.uint8)]
        sizes = [n]
    else:
        bands = _CODER.decode(r.take(size - 1), sizes)
    if len(sizes) > 1:
        sym = np.empty(n, dtype=np.uint8)
        sym[np.argsort(ccls, kind="stable")] = np.concatenate(bands)
    else:
        sym = bands[0]
    m = st.modulus
    wide = sym.astype(np.int64) if m <= 256 else _join_wide(sym, r) + m // 2
    if int(wide.max(initial=0)) >= m or int(wide.min(initial=0)) < 0:
        raise BitstreamError("pixel stream: symbol out of range")
    return _dequantise(st, pred, wide)


def decode_predictive(st: PixelState, r: Reader) -> None:
    """Decode what :func:`encode_predictive` wrote into ``st.recon``."""
    channels, height, width = st.recon.shape
    order = coding_order(channels)
    colour = channels >= 3
    for c in range(channels):
        st.recon[c, 0, 0] = r.uint(st.maxval)
    for p in plan_passes(height, width):
        nbs, e_near, e_far = _pass_data(st, p)
        prev: list[tuple[I32, I32, list[I32]]] = []
        for ci, c in enumerate(order):
            pl = _prepare(st, p, nbs, e_near, e_far, ci, c, prev if c < 3 else [], colour and c < 3)
            rec, err = _decode_plane(st, pl, p.size, r)
            _store(st, p, c, rec, err)
            if colour and c < 3:
                prev.append((err, rec - pl.mc, pl.feats[: min(p.near, 4)]))
