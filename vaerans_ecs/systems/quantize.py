"""Per-band uint8 quantizer: WaveletPyr / YUVW4 / Latent4 <-> SymbolsU8 + QuantParams.

Step sizes
    The base step is ``step`` when given, else :func:`step_for_quality` (quality 100 -> ``step_min``,
    1 -> ``step_max``, log-linear in between), rounded to float32 (the precision the side
    information stores). Band ``b`` uses ``base * weight_b / gain_b * k`` where ``gain_b`` is the
    wavelet synthesis gain (:func:`vaerans_ecs.systems.wavelet.synthesis_gains`), so one step costs
    the same squared error in the transform's input in every band, ``weight_b`` defaults to 1 and
    ``k`` is the widening factor (usually 1). A YUVW4 / Latent4 source is one band ``LL0`` per
    channel with gain 1. ``q = rint(c / step)``.

Symbols and zero points
    ``symbol = v + zero`` where ``v`` is ``q`` (minus an integer offset, see anchors) or, for a DPCM
    band, the prediction residual. The zero point is 128 whenever ``v`` lies in ``[-128, 127]``
    (one bit of side information; band modes then sit at 128, where the entropy coder's mode
    predictor starts), else ``max(0, -min(v))``. Nothing is ever clipped: a band whose values do
    not fit 256 levels is first tried with DPCM (low-pass band only), then its step is widened by
    the smallest integer factor that makes it fit.

Anchors (``QuantParams.anchors``; empty means every anchor is 0)
    One integer per band added back after decoding: for a DPCM band the value its first
    coefficient is predicted from (so an LL band at 1e4 costs no widening), for a plain band an
    offset used when its values fit 256 levels but not ``[-255, 255]``.

DPCM (low-pass band, i.e. band 0 of each channel)
    Lossless prediction on the integer ``q``, so the decoder reproduces it exactly (no drift). The
    predictor follows from the band size alone: LOCO-I / JPEG-LS MED (``median(a, b, a + b - c)``
    of the left, top and top-left neighbours) for bands of at most :data:`MED_MAX_SIZE`
    coefficients, the left neighbour (top for the first column) above that. Neighbours outside
    the band are 0 after subtracting the anchor, so the first row uses the left and the first
    column the top neighbour. Encoding is vectorised; MED decoding is inherently sequential (a
    Python loop, about 0.14 us per coefficient: ~0.22 ms for four 16x24 LL3 bands), left decoding is
    two cumulative sums. DPCM is used whenever it fits and its empirical entropy plus the anchor's
    cost is below the plain band's.

Reconstruction offsets
    For ``|q| >= 1`` the decoder outputs ``sign(q) * (|q| - delta) * step``. ``delta`` is the
    band's least-squares centroid shift toward zero, rounded to a multiple of 1/32 in ``[0, 15/32]``
    (never worse than ``delta = 0``: the MSE is a parabola in ``delta`` and 0 is on the grid).

Side information (:func:`pack_quant_params`, format version 1)
    Byte 0: ``version << 5 | has_weights << 4 | source << 2`` (source: 0 WaveletPyr, 1 YUVW4,
    2 Latent4); bytes 1-4: base step (float32 LE); if ``has_weights``: one float32 LE weight per
    band. Then a big-endian bit string: for a WaveletPyr ``ue(wavelet index in WAVELETS)``,
    ``ue(levels)``; then channel-major, band by band: for band 0 a DPCM bit and, when set,
    ``se(anchor)``; a widening bit and, when set, ``ue(k - 2)``; an explicit-zero bit and, when
    set, 8 bits of zero point plus (plain bands) ``se(anchor)``; 4 bits of ``delta * 32``. Zero
    padding to a byte. ``ue``/``se``: unsigned/signed exp-Golomb. Typically 6 bits per band plus
    6 bytes: 37 bytes for 4 channels x 10 bands. Steps are not stored: they are recomputed from the
    base step, weights, gains (of the band layout) and factors with the same float64 formula.
    :data:`MED_MAX_SIZE`, :data:`RECON_GRID` and :data:`CANONICAL_ZERO` are part of the format.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from vaerans_ecs.components.base import Component
from vaerans_ecs.components.latent import YUVW4, Latent4
from vaerans_ecs.components.quant import QuantParams, SymbolsU8
from vaerans_ecs.components.wavelet import Band, WaveletPyr
from vaerans_ecs.core.arena import TensorRef
from vaerans_ecs.core.batching import group_by_key, stacked_view
from vaerans_ecs.core.system import System, register_bridge, register_system
from vaerans_ecs.errors import BitstreamError, ConfigError, VaeransError

if TYPE_CHECKING:
    from vaerans_ecs.core.world import World

__all__ = [
    "CANONICAL_ZERO",
    "MED_MAX_SIZE",
    "RECON_GRID",
    "RECON_MAX_CODE",
    "SOURCES",
    "Dequantize",
    "QuantizeU8",
    "band_unit_steps",
    "dpcm_decode",
    "dpcm_residual",
    "pack_quant_params",
    "quality_for_step",
    "step_for_quality",
    "unpack_quant_params",
]

#: Component kinds the quantizer reads (and the dequantizer rebuilds), in order of preference.
SOURCES: Final[tuple[str, ...]] = ("WaveletPyr", "YUVW4", "Latent4")
_SOURCE_TYPES: Final[dict[str, type[WaveletPyr] | type[YUVW4] | type[Latent4]]] = {
    "WaveletPyr": WaveletPyr,
    "YUVW4": YUVW4,
    "Latent4": Latent4,
}
#: Zero point used whenever the band's values lie in [-128, 127] (one bit of side information).
CANONICAL_ZERO: Final = 128
#: Reconstruction offsets are multiples of 1 / RECON_GRID in [0, RECON_MAX_CODE / RECON_GRID].
RECON_GRID: Final = 32
RECON_MAX_CODE: Final = 15
#: DPCM bands of at most this many coefficients use MED, larger ones the left predictor.
MED_MAX_SIZE: Final = 1024
#: Largest widening factor (keeps steps and the exp-Golomb codes sane).
_MAX_FACTOR: Final = 1 << 48
_FORMAT_VERSION: Final = 1
_BAND_NAME = re.compile(r"^(LL|HL|LH|HH)\d+$")

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]


# ----------------------------------------------------------------------------------------------
# Quality <-> step
# ----------------------------------------------------------------------------------------------
def _check_range(step_min: float, step_max: float) -> None:
    if not (math.isfinite(step_min) and math.isfinite(step_max) and 0.0 < step_min <= step_max):
        raise ConfigError(f"need 0 < step_min <= step_max (finite), got step_min={step_min}, step_max={step_max}")


def step_for_quality(quality: float, step_min: float = 0.05, step_max: float = 4.0) -> float:
    """Base step for ``quality`` in [1, 100]: 100 -> ``step_min``, 1 -> ``step_max``, log-linear."""
    _check_range(step_min, step_max)
    if not (isinstance(quality, (int, float)) and 1.0 <= quality <= 100.0):
        raise ConfigError(f"quality must be a number in [1, 100], got {quality!r}")
    t = (float(quality) - 1.0) / 99.0
    return float(math.exp(math.log(step_max) + t * (math.log(step_min) - math.log(step_max))))


def quality_for_step(step: float, step_min: float = 0.05, step_max: float = 4.0) -> float:
    """Inverse of :func:`step_for_quality` (not clamped: steps outside the range give q outside [1, 100])."""
    _check_range(step_min, step_max)
    if not (math.isfinite(step) and step > 0.0):
        raise ConfigError(f"step must be positive and finite, got {step!r}")
    if step_min == step_max:
        return 100.0
    return 1.0 + 99.0 * (math.log(step) - math.log(step_max)) / (math.log(step_min) - math.log(step_max))


# ----------------------------------------------------------------------------------------------
# Band steps: base * weight / gain * factor, computed identically by encoder and side-info decoder
# ----------------------------------------------------------------------------------------------
def _plane_shape(bands: tuple[Band, ...]) -> tuple[int, int]:
    """Plane size of a ``band_layout`` table: level-1 HL has ceil(h/2) rows, LH floor(h/2)."""
    total = sum(b.size for b in bands)
    by_name = {b.name: b for b in bands}
    hl, lh = by_name.get("HL1"), by_name.get("LH1")
    if hl is not None:
        h = hl.h + (lh.h if lh is not None else 0)
        return h, total // max(h, 1)
    if lh is not None:
        return total // max(lh.w, 1), lh.w
    return bands[0].h, bands[0].w


@lru_cache(maxsize=64)
def _gains(bands: tuple[Band, ...], wavelet: str, levels: int, height: int, width: int) -> tuple[float, ...]:
    from vaerans_ecs.systems.wavelet import band_layout, synthesis_gains

    if band_layout(height, width, levels) != bands:
        raise VaeransError(f"band table does not match a {height}x{width} plane with {levels} {wavelet} levels")
    return tuple(float(g) for g in synthesis_gains(height, width, wavelet, levels))


def _band_gains(
    bands: tuple[Band, ...], source: str, wavelet: str, levels: int, height: int | None, width: int | None
) -> F64:
    if source != "WaveletPyr":
        if len(bands) != 1:
            raise VaeransError(f"a {source} source has a single band, got {len(bands)}")
        return np.ones(1, dtype=np.float64)
    if height is None or width is None:
        height, width = _plane_shape(bands)
    return np.array(_gains(bands, wavelet, int(levels), int(height), int(width)), dtype=np.float64)


def _weights(bands: tuple[Band, ...], band_weights: Mapping[str, float] | None) -> F64:
    """Per-band weights rounded to float32 (the precision the side information stores)."""
    w = [float((band_weights or {}).get(b.name, 1.0)) for b in bands]
    return np.array(w, dtype=np.float32).astype(np.float64)


def _compose(base: float, weights: F64, gains: F64, factors: npt.ArrayLike) -> F64:
    """``float32(base) * weight / gain * factor`` in float64, elementwise (the one formula used)."""
    base64 = np.float64(np.float32(base))
    return np.asarray(base64 * weights / gains * np.asarray(factors, dtype=np.float64), dtype=np.float64)


def band_unit_steps(
    bands: tuple[Band, ...],
    base_step: float,
    *,
    source: str = "WaveletPyr",
    wavelet: str = "none",
    levels: int = 0,
    band_weights: Mapping[str, float] | None = None,
    height: int | None = None,
    width: int | None = None,
) -> F64:
    """Per-band steps before widening: ``float32(base_step) * weight_b / gain_b``."""
    gains = _band_gains(bands, source, wavelet, levels, height, width)
    return _compose(base_step, _weights(bands, band_weights), gains, 1)


# ----------------------------------------------------------------------------------------------
# DPCM on integer bands
# ----------------------------------------------------------------------------------------------
def _predictor(size: int) -> str:
    return "med" if size <= MED_MAX_SIZE else "left"


def dpcm_residual(q: npt.NDArray[np.integer[Any]], anchor: npt.ArrayLike = 0) -> I64:
    """Prediction residual of integer bands ``q`` (``(..., h, w)``), vectorised.

    ``anchor`` (broadcast against the leading axes) is subtracted first; neighbours outside the
    band count as 0. The predictor is MED for ``h*w <= MED_MAX_SIZE`` and left otherwise.
    """
    h, w = q.shape[-2:]
    v = q.astype(np.int64) - np.asarray(anchor, dtype=np.int64)[..., None, None]
    pred = np.zeros_like(v)
    if _predictor(h * w) == "left":
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
    if _predictor(h * w) == "left":
        out = r.copy()
        np.cumsum(out[:, 0], out=out[:, 0])
        np.cumsum(out, axis=1, out=out)
    else:
        out = _med_decode(r)
    return np.asarray(out + np.int64(anchor), dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# Encoding rows (one row = one channel of one entity; every row shares the band table)
# ----------------------------------------------------------------------------------------------
@dataclass
class _Rows:
    factors: I64  # (R, nb) widening factors
    zeros: I64  # (R, nb) zero points
    anchors: I64  # (R, nb) integers added after decoding (DPCM origin or plain offset)
    dpcm: npt.NDArray[np.bool_]  # (R,) band 0 coded as DPCM residuals
    recon: I64  # (R, nb) recon offset codes (delta * RECON_GRID)


@dataclass
class _Choice:
    dpcm: bool
    anchor: int
    zero: int
    coded: I64  # values minus the plain offset (or DPCM residuals); symbols are coded + zero


#: Fast-path limit on |q| (float32 holds such integers and their quotients exactly enough).
_F32_SAFE: Final = float(1 << 22)


def _fits(lo: Any, hi: Any, shiftable: bool) -> Any:
    """Values in [lo, hi] fit uint8 with a zero point in [0, 255] (and an anchor, if ``shiftable``)."""
    ok = (hi - lo) <= 255
    if not shiftable:
        ok = ok & (lo >= -255) & (hi <= 255)
    return ok


def _placement(lo: int, hi: int, shiftable: bool) -> tuple[int, int] | None:
    """(zero point, anchor) putting [lo, hi] inside [0, 255]; canonical 128 when possible."""
    if hi - lo > 255:
        return None
    if lo >= -CANONICAL_ZERO and hi < 256 - CANONICAL_ZERO:
        return CANONICAL_ZERO, 0
    if lo >= -255 and hi <= 255:
        return max(0, -lo), 0
    return (0, lo) if shiftable else None


def _cost_bits(v: I64) -> float:
    """Empirical zero-order entropy of ``v`` times its length (bits)."""
    return float(_row_costs(v.reshape(1, -1))[0])


def _row_costs(v: I64) -> F64:
    """Entropy cost (bits) of every row of ``v`` (R, s) at once; rows spanning > 256 levels: inf."""
    n_rows, size = v.shape
    lo = v.min(axis=1, keepdims=True)
    idx = v - lo
    wide = idx.max(axis=1) > 255
    np.minimum(idx, 255, out=idx)
    idx += 256 * np.arange(n_rows, dtype=np.int64)[:, None]
    counts = np.bincount(idx.ravel(), minlength=256 * n_rows).reshape(n_rows, 256).astype(np.float64)
    bits = size * math.log2(max(size, 1)) - (counts * np.log2(np.maximum(counts, 1.0))).sum(axis=1)
    return np.where(wide, np.inf, bits)


def _se_bits(v: int) -> int:
    """Length of the signed exp-Golomb code of ``v``."""
    u = 2 * v - 1 if v > 0 else -2 * v
    return 2 * (u + 1).bit_length() - 1


def _choose(q: I64, allow_dpcm: bool) -> _Choice | None:
    """Plain or DPCM coding of the integer band ``q`` (h, w): the cheaper one that fits, or None."""
    best: _Choice | None = None
    best_cost = math.inf
    place = _placement(int(q.min()), int(q.max()), True)
    if place is not None:
        zero, shift = place
        best = _Choice(False, shift, zero, q - shift)
        if allow_dpcm:
            best_cost = _cost_bits(q) + (_se_bits(shift) if shift else 0)
    if allow_dpcm:
        anchor = int(q.flat[0])
        r = dpcm_residual(q, anchor)
        place = _placement(int(r.min()), int(r.max()), False)
        if place is not None and _cost_bits(r) + _se_bits(anchor) < best_cost:
            best = _Choice(True, anchor, place[0], r)
    return best


def _recon_code(x: F64, q: F64, step: float) -> int:
    sg = np.sign(q)
    n = float(np.abs(sg).sum())
    if n == 0.0:
        return 0
    delta = float(((q - x / step) * sg).sum()) / n
    return int(min(max(round(delta * RECON_GRID), 0), RECON_MAX_CODE))


def _first_fit(ks: I64, ok: npt.NDArray[np.bool_]) -> int | None:
    idx = np.flatnonzero(ok)
    return int(ks[idx[0]]) if idx.size else None


def _plain_factor(hi: float, lo: float, steps_k: Callable[[I64], F64], unit: float) -> int:
    """Smallest factor k >= 2 for which rint(x / step_k) fits (only min and max matter)."""
    # necessary: span/step <= 256; sufficient: span/step <= 254 (an anchor places any such span)
    ratio = (hi - lo) / unit
    if not ratio < 254.0 * _MAX_FACTOR:
        raise VaeransError(f"coefficient range {hi - lo:g} is too large for a step of {unit:g}")
    k_lo = max(2, math.floor(ratio / 256.0))
    k_hi = max(k_lo, math.ceil(ratio / 254.0) + 1)
    if k_hi - k_lo <= (1 << 20):
        ks = np.arange(k_lo, k_hi + 1, dtype=np.int64)
        st = steps_k(ks)
        found = _first_fit(ks, _fits(np.rint(lo / st), np.rint(hi / st), True))
        if found is not None:
            return found
    k = k_hi
    while True:  # float rounding of huge ratios only; the first few candidates fit
        st1 = float(steps_k(np.array([k], dtype=np.int64))[0])
        if _fits(np.rint(lo / st1), np.rint(hi / st1), True):
            return k
        k += 1


def _dpcm_factor(x: F64, k_max: int, steps_k: Callable[[I64], F64], unit: float) -> int | None:
    """Smallest factor 2 <= k < k_max whose DPCM residuals fit, if any."""
    h, w = x.shape
    real = x - x[0, 0]
    # Residual of the real-valued band under the same predictor: the integer residual at step s
    # differs from real / s by at most 2 (MED: 0.5 + 1.5), so its min/max move by at most 2.
    ppad = np.zeros((h + 1, w + 1))
    ppad[1:, 1:] = real
    a, b, c = ppad[1:, :-1], ppad[:-1, 1:], ppad[:-1, :-1]
    if _predictor(h * w) == "left":
        pred = a.copy()
        pred[1:, 0] = real[:-1, 0]
    else:
        mx, mn = np.maximum(a, b), np.minimum(a, b)
        pred = np.where(c >= mx, mn, np.where(c <= mn, mx, a + b - c))
    rr = real - pred
    lo, hi = float(rr.min()), float(rr.max())
    ratio = max(hi - lo, abs(lo), abs(hi)) / unit
    if not ratio < 250.0 * _MAX_FACTOR:
        return None
    k_lo = max(2, math.floor(ratio / 260.0))
    k_hi = min(k_max - 1, math.ceil(ratio / 250.0) + 1)
    if k_hi < k_lo:
        return None
    k_lo = max(k_lo, k_hi - 4095)  # extreme ranges: search the last 4096 candidates only
    chunk = max(1, min(256, (1 << 20) // max(x.size, 1)))
    for start in range(k_lo, k_hi + 1, chunk):
        ks = np.arange(start, min(start + chunk, k_hi + 1), dtype=np.int64)
        qs = np.rint(x[None] / steps_k(ks)[:, None, None]).astype(np.int64)
        res = dpcm_residual(qs, qs[:, 0, 0])
        found = _first_fit(ks, _fits(res.min(axis=(1, 2)), res.max(axis=(1, 2)), False))
        if found is not None:
            return found
    return None


def _fit_band(
    x: F64, band: Band, steps_k: Callable[[I64], F64], allow_dpcm: bool
) -> tuple[int, F64, _Choice]:
    """Slow path for one row's band: (factor, q, choice), never clipping."""
    if not np.isfinite(x).all():
        raise VaeransError(f"band {band.name} has non-finite coefficients")
    xb = x.reshape(band.h, band.w)
    unit = float(steps_k(np.array([1], dtype=np.int64))[0])
    factor = 1
    q = np.rint(xb / unit)
    choice = _choose(q.astype(np.int64), allow_dpcm)
    if choice is None:
        factor = _plain_factor(float(x.max()), float(x.min()), steps_k, unit)
        if allow_dpcm:
            factor = _dpcm_factor(xb, factor, steps_k, unit) or factor
        step = float(steps_k(np.array([factor], dtype=np.int64))[0])
        q = np.rint(xb / step)
        choice = _choose(q.astype(np.int64), allow_dpcm)
        if choice is None:  # pragma: no cover - the factor searches guarantee a fit
            raise VaeransError(f"internal error: band {band.name} does not fit 256 levels")
    return factor, q, choice


#: Rows are processed in chunks of about this many coefficients, so temporaries stay in cache.
_CHUNK: Final = 1 << 17


def _encode_rows(
    x: npt.NDArray[Any],
    bands: tuple[Band, ...],
    base: float,
    weights: F64,
    gains: F64,
    recon_offsets: bool,
    out: U8,
) -> _Rows:
    """Quantize ``x`` (R, n) into ``out`` (R, n) uint8; returns the per-row band parameters."""
    n_rows, n = x.shape
    step = max(1, _CHUNK // max(n, 1))
    if n_rows <= step:
        return _encode_chunk(x, bands, base, weights, gains, recon_offsets, out)
    parts = [
        _encode_chunk(x[i : i + step], bands, base, weights, gains, recon_offsets, out[i : i + step])
        for i in range(0, n_rows, step)
    ]
    return _Rows(
        factors=np.concatenate([p.factors for p in parts]),
        zeros=np.concatenate([p.zeros for p in parts]),
        anchors=np.concatenate([p.anchors for p in parts]),
        dpcm=np.concatenate([p.dpcm for p in parts]),
        recon=np.concatenate([p.recon for p in parts]),
    )


def _encode_chunk(
    x: npt.NDArray[Any],
    bands: tuple[Band, ...],
    base: float,
    weights: F64,
    gains: F64,
    recon_offsets: bool,
    out: U8,
) -> _Rows:
    n_rows = x.shape[0]
    nb = len(bands)
    sizes = np.array([b.size for b in bands], dtype=np.int64)
    offsets = np.array([b.offset for b in bands], dtype=np.int64)
    nonempty = sizes > 0
    starts = offsets[nonempty]
    unit = _compose(base, weights, gains, 1)
    step_vec = np.repeat(unit.astype(np.float32), sizes)
    # Fast float32 path over all rows and bands; a band whose values do not fit (too wide a range,
    # |q| beyond float32 comfort, NaN) is redone in float64 by the slow path below.
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.divide(x, step_vec, dtype=np.float32)
        q = np.rint(t)
    qmin = np.zeros((n_rows, nb), dtype=np.float32)
    qmax = np.zeros((n_rows, nb), dtype=np.float32)
    with np.errstate(invalid="ignore"):
        qmin[:, nonempty] = np.minimum.reduceat(q, starts, axis=1)
        qmax[:, nonempty] = np.maximum.reduceat(q, starts, axis=1)
        ok = _fits(qmin, qmax, True) & (qmin > -_F32_SAFE) & (qmax < _F32_SAFE)
    zeros = np.full((n_rows, nb), CANONICAL_ZERO, dtype=np.int64)
    anchors = np.zeros((n_rows, nb), dtype=np.int64)
    lo = np.where(ok, qmin, 0).astype(np.int64)
    hi = np.where(ok, qmax, 0).astype(np.int64)
    canon = (lo >= -CANONICAL_ZERO) & (hi < 256 - CANONICAL_ZERO)
    near = ~canon & (lo >= -255) & (hi <= 255)
    zeros[near] = np.maximum(0, -lo[near])
    shifted = ~canon & ~near
    zeros[shifted] = 0
    anchors[shifted] = lo[shifted]
    recon = np.zeros((n_rows, nb), dtype=np.int64)
    if recon_offsets:
        # delta = mean of (|q| - |t|) over |q| >= 1 (rint keeps the sign, so |q| = rint(|t|))
        cnt = np.zeros((n_rows, nb), dtype=np.float32)
        tot = np.zeros((n_rows, nb), dtype=np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            qa = np.abs(q)
            np.abs(t, out=t)
            np.subtract(qa, t, out=t)
            np.minimum(qa, np.float32(1.0), out=qa)  # 1 where q != 0
            t *= qa
            cnt[:, nonempty] = np.add.reduceat(qa, starts, axis=1)
            tot[:, nonempty] = np.add.reduceat(t, starts, axis=1)
            delta = np.nan_to_num(tot / np.maximum(cnt, np.float32(1.0)))
        recon = np.clip(np.rint(delta * RECON_GRID), 0, RECON_MAX_CODE).astype(np.int64)
    bad = np.argwhere(~ok)
    for r, b in bad:  # never cast garbage: cleared here, filled by the slow path below
        q[r, offsets[b] : offsets[b] + sizes[b]] = 0
    np.add(q, np.repeat((zeros - anchors).astype(np.float32), sizes, axis=1), out=q)
    np.copyto(out, q, casting="unsafe")

    factors = np.ones((n_rows, nb), dtype=np.int64)
    dpcm = np.zeros(n_rows, dtype=bool)
    band0 = bands[0]
    allow_dpcm = band0.size >= 2

    def steps_k(b: int) -> Callable[[I64], F64]:
        return lambda ks: _compose(base, weights[b : b + 1], gains[b : b + 1], ks)

    for r, b in bad:
        r, b = int(r), int(b)
        sl = slice(int(offsets[b]), int(offsets[b] + sizes[b]))
        xb = np.asarray(x[r, sl], dtype=np.float64)
        factor, qb, choice = _fit_band(xb, bands[b], steps_k(b), allow_dpcm and b == 0)
        factors[r, b] = factor
        dpcm[r] |= choice.dpcm
        zeros[r, b], anchors[r, b] = choice.zero, choice.anchor
        out[r, sl] = (choice.coded.ravel() + choice.zero).astype(np.uint8)
        if recon_offsets:
            step = float(steps_k(b)(np.array([factor], dtype=np.int64))[0])
            recon[r, b] = _recon_code(xb, qb.ravel(), step)
    rows0 = np.flatnonzero(ok[:, 0])
    if allow_dpcm and rows0.size:  # band 0 rows that fit plainly: DPCM when it is cheaper
        s0 = band0.size
        q0 = out[rows0, :s0].astype(np.int64) - (zeros[rows0, :1] - anchors[rows0, :1])
        anch = q0[:, 0]
        res = dpcm_residual(q0.reshape(-1, band0.h, band0.w), anch).reshape(-1, s0)
        rlo, rhi = res.min(axis=1), res.max(axis=1)
        plain_bits = _row_costs(q0) + np.array([_se_bits(int(a)) if a else 0 for a in anchors[rows0, 0]])
        dpcm_bits = _row_costs(res) + np.array([_se_bits(int(a)) for a in anch], dtype=np.float64)
        for i in np.flatnonzero(_fits(rlo, rhi, False) & (dpcm_bits < plain_bits)):
            r = int(rows0[i])
            place = _placement(int(rlo[i]), int(rhi[i]), False)
            assert place is not None
            dpcm[r] = True
            zeros[r, 0], anchors[r, 0] = place[0], int(anch[i])
            out[r, :s0] = (res[i] + place[0]).astype(np.uint8)
    return _Rows(factors=factors, zeros=zeros, anchors=anchors, dpcm=dpcm, recon=recon)


def _decode_rows(
    sym: U8,
    bands: tuple[Band, ...],
    steps: F64,
    zeros: I64,
    dpcm: npt.NDArray[np.bool_],
    anchors: I64,
    recon: F64,
    out: F32,
) -> None:
    """Dequantize ``sym`` (R, n) into ``out`` (R, n) float32 with per-row, per-band parameters."""
    n_rows, n = sym.shape
    step = max(1, _CHUNK // max(n, 1))
    for i in range(0, n_rows, step):
        rows = slice(i, i + step)
        _decode_chunk(sym[rows], bands, steps[rows], zeros[rows], dpcm[rows], anchors[rows], recon[rows], out[rows])


def _decode_chunk(
    sym: U8,
    bands: tuple[Band, ...],
    steps: F64,
    zeros: I64,
    dpcm: npt.NDArray[np.bool_],
    anchors: I64,
    recon: F64,
    out: F32,
) -> None:
    sizes = np.array([b.size for b in bands], dtype=np.int64)
    shift = zeros - np.where(dpcm, 0, anchors)  # plain: q = s - zero + anchor; DPCM: residual = s - zero
    np.subtract(sym, np.repeat(shift.astype(np.float32), sizes, axis=1), out=out)
    for r, b in np.argwhere(dpcm | (np.abs(anchors) > _F32_SAFE)):  # exact integers for these
        band = bands[b]
        sl = slice(band.offset, band.offset + band.size)
        vals = sym[r, sl].astype(np.int64) - int(zeros[r, b])
        if dpcm[r, b]:
            vals = dpcm_decode(vals.reshape(band.h, band.w), int(anchors[r, b])).ravel()
        else:
            vals += int(anchors[r, b])
        step = float(steps[r, b])
        rec = vals.astype(np.float64) * step
        rec -= np.sign(vals) * (float(recon[r, b]) * step)
        out[r, sl] = rec
        steps[r, b], recon[r, b] = 1.0, 0.0  # already in output units: leave untouched below
    if np.any(recon != 0):
        sg = np.sign(out)
        sg *= np.repeat((recon * steps).astype(np.float32), sizes, axis=1)
        out *= np.repeat(steps.astype(np.float32), sizes, axis=1)
        out -= sg
    else:
        out *= np.repeat(steps.astype(np.float32), sizes, axis=1)


# ----------------------------------------------------------------------------------------------
# QuantParams helpers
# ----------------------------------------------------------------------------------------------
def _params_anchors(params: QuantParams) -> tuple[int, ...]:
    return params.anchors or (0,) * len(params.steps)


def _make_params(
    steps: Sequence[float],
    zeros: Sequence[int],
    dpcm: Sequence[bool],
    recon: Sequence[float],
    anchors: Sequence[int],
    source: str,
    wavelet: str,
    levels: int,
) -> QuantParams:
    return QuantParams(
        steps=tuple(float(s) for s in steps),
        zeros=tuple(int(z) for z in zeros),
        dpcm=tuple(bool(d) for d in dpcm),
        recon=tuple(float(v) for v in recon),
        source=source,
        wavelet=wavelet,
        levels=int(levels),
        anchors=tuple(int(a) for a in anchors) if any(anchors) else (),  # canonical: () means all 0
    )


# ----------------------------------------------------------------------------------------------
# Systems
# ----------------------------------------------------------------------------------------------
def _check_weights(band_weights: Any) -> dict[str, float] | None:
    if band_weights is None:
        return None
    if not isinstance(band_weights, Mapping):
        raise ConfigError(f"band_weights must be a mapping band name -> weight, got {type(band_weights).__name__}")
    out: dict[str, float] = {}
    for name, weight in band_weights.items():
        if not isinstance(name, str) or not _BAND_NAME.match(name):
            raise ConfigError(f"band_weights: {name!r} is not a band name like 'LL3', 'HL1', 'LH2', 'HH1'")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ConfigError(f"band_weights[{name!r}] must be a number, got {weight!r}")
        w32 = float(np.float32(weight))
        if not (math.isfinite(w32) and w32 > 0.0):
            raise ConfigError(f"band_weights[{name!r}] must be positive and finite, got {weight!r}")
        out[name] = float(weight)
    return out


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"QuantizeU8: {name} must be a positive finite number, got {value!r}")
    return float(value)


def _rows_view(world: World, refs: list[TensorRef], n: int) -> npt.NDArray[Any]:
    """All channels of ``refs`` as one (R, n) array, without a copy when they are adjacent."""
    stacked = stacked_view(world, refs)
    if stacked is None:
        stacked = np.stack([world.view(r) for r in refs])
    return stacked.reshape(-1, n)


@register_system
class QuantizeU8(System):
    """Per-band uint8 quantizer: WaveletPyr / YUVW4 / Latent4 -> SymbolsU8 + QuantParams."""

    name: ClassVar[str] = "QuantizeU8"
    #: Nothing: the stream's QuantParams side information carries all that decoding needs.
    stream_fields: ClassVar[tuple[str, ...] | None] = ()
    config_fields: ClassVar[tuple[str, ...]] = (
        "quality",
        "step",
        "step_min",
        "step_max",
        "band_weights",
        "recon_offsets",
    )

    def __init__(
        self,
        quality: float = 75.0,
        step: float | None = None,
        step_min: float = 0.05,
        step_max: float = 4.0,
        band_weights: Mapping[str, float] | None = None,
        recon_offsets: bool = True,
    ) -> None:
        self.step_min = _positive("step_min", step_min)
        self.step_max = _positive("step_max", step_max)
        _check_range(self.step_min, self.step_max)
        if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not 1.0 <= quality <= 100.0:
            raise ConfigError(f"QuantizeU8: quality must be a number in [1, 100], got {quality!r}")
        self.quality = float(quality)
        self.step = None if step is None else _positive("step", step)
        if self.step is not None and not np.float32(self.step) > 0:
            raise ConfigError(f"QuantizeU8: step {step!r} underflows float32")
        self.band_weights = _check_weights(band_weights)
        if not isinstance(recon_offsets, bool):
            raise ConfigError(f"QuantizeU8: recon_offsets must be a bool, got {recon_offsets!r}")
        self.recon_offsets = recon_offsets

    @property
    def base_step(self) -> float:
        """The base step actually used (float32-rounded, as stored in the side information)."""
        step = self.step if self.step is not None else step_for_quality(self.quality, self.step_min, self.step_max)
        return float(np.float32(step))

    def input_choices(self) -> tuple[type[Component], ...]:
        return (WaveletPyr, YUVW4, Latent4)

    def produced_components(self) -> tuple[type[Component], ...]:
        return (SymbolsU8, QuantParams)

    def inverse(self) -> System:
        return Dequantize(target=self.source.__name__ if self.source is not None else None)

    def _source_of(self, world: World, eid: int) -> type[WaveletPyr] | type[YUVW4] | type[Latent4]:
        if self.source is not None:
            return _SOURCE_TYPES[self.source.__name__]
        for kind in _SOURCE_TYPES.values():
            if world.has_component(eid, kind):
                return kind
        raise VaeransError(f"{self!r}: entity {eid} has none of WaveletPyr, YUVW4, Latent4")

    def run(self, world: World, eids: Sequence[int]) -> None:
        base = self.base_step
        items: list[tuple[str, TensorRef, int, int, tuple[Band, ...], str, int]] = []
        for eid in eids:
            kind = self._source_of(world, eid)
            comp = world.get_component(eid, kind)
            if isinstance(comp, WaveletPyr):
                items.append(("WaveletPyr", comp.ref, comp.height, comp.width, comp.bands, comp.wavelet, comp.levels))
            else:
                _, h, w = comp.ref.shape
                band = Band(name="LL0", level=0, h=h, w=w, offset=0)
                items.append((kind.__name__, comp.ref, h, w, (band,), "none", 0))
        keys = [(it[0], it[1].shape, it[1].dtype, it[2], it[3], it[4], it[5], it[6]) for it in items]
        for idx in group_by_key(keys).values():
            source, ref0, h, w, bands, wavelet, levels = items[idx[0]]
            c = ref0.shape[0]
            n = h * w
            gains = _band_gains(bands, source, wavelet, levels, h, w)
            weights = _weights(bands, self.band_weights)
            x = _rows_view(world, [items[i][1] for i in idx], n)
            block = world.alloc((len(idx), c, n), np.uint8)
            out = world.view(block)
            rows = _encode_rows(x, bands, base, weights, gains, self.recon_offsets, out.reshape(-1, n))
            nb = len(bands)
            steps = _compose(base, weights, gains, rows.factors)
            for j, i in enumerate(idx):
                rs = slice(j * c, (j + 1) * c)
                dp = np.zeros((c, nb), dtype=bool)
                dp[:, 0] = rows.dpcm[rs]
                params = _make_params(
                    steps[rs].ravel().tolist(),
                    rows.zeros[rs].ravel().tolist(),
                    dp.ravel().tolist(),
                    (rows.recon[rs] / RECON_GRID).ravel().tolist(),
                    rows.anchors[rs].ravel().tolist(),
                    source,
                    wavelet,
                    levels,
                )
                sym = SymbolsU8(ref=world.arena.subref(block, j), height=h, width=w, bands=bands)
                world.add_component(eids[i], sym)
                world.add_component(eids[i], params)


@register_system
class Dequantize(System):
    """SymbolsU8 + QuantParams -> the recorded source kind (WaveletPyr, YUVW4 or Latent4), float32.

    ``target`` (a component name) declares what a Pipe should expect after this system and is
    checked against each entity's QuantParams; ``None`` declares all three kinds, and each entity
    gets the kind recorded in its QuantParams.
    """

    name: ClassVar[str] = "Dequantize"
    config_fields: ClassVar[tuple[str, ...]] = ("target",)

    def __init__(self, target: str | None = None) -> None:
        if target is not None and target not in SOURCES:
            raise ConfigError(f"Dequantize: target must be one of {', '.join(SOURCES)} or None, got {target!r}")
        self.target = target

    def required_components(self) -> tuple[type[Component], ...]:
        return (SymbolsU8, QuantParams)

    def produced_components(self) -> tuple[type[Component], ...]:
        if self.target is None:
            return tuple(_SOURCE_TYPES.values())
        return (_SOURCE_TYPES[self.target],)

    def inverse(self) -> System:
        q = QuantizeU8()
        return q.with_source(_SOURCE_TYPES[self.target]) if self.target is not None else q

    def run(self, world: World, eids: Sequence[int]) -> None:
        syms = [world.get_component(e, SymbolsU8) for e in eids]
        params = [world.get_component(e, QuantParams) for e in eids]
        for eid, sym, par in zip(eids, syms, params, strict=True):
            if self.target is not None and par.source != self.target:
                raise VaeransError(f"{self!r}: entity {eid} was quantized from {par.source}")
            c = sym.ref.shape[0]
            if len(par.steps) != c * len(sym.bands):
                raise VaeransError(
                    f"entity {eid}: QuantParams has {len(par.steps)} bands, SymbolsU8 has "
                    f"{c} channels x {len(sym.bands)} bands"
                )
            if par.source != "WaveletPyr" and (len(sym.bands) != 1 or c != 4):
                raise VaeransError(f"entity {eid}: a {par.source} source needs 4 channels of one band")
        keys = [
            (p.source, p.wavelet, p.levels, s.ref.shape, s.height, s.width, s.bands)
            for s, p in zip(syms, params, strict=True)
        ]
        for idx in group_by_key(keys).values():
            sym0, par0 = syms[idx[0]], params[idx[0]]
            c, n = sym0.ref.shape
            nb = len(sym0.bands)
            h, w = sym0.height, sym0.width
            shape: tuple[int, ...] = (len(idx), c, n) if par0.source == "WaveletPyr" else (len(idx), c, h, w)
            block = world.alloc(shape, np.float32)
            out = world.view(block).reshape(-1, n)
            x = _rows_view(world, [syms[i].ref for i in idx], n)
            ps = [params[i] for i in idx]
            steps = np.array([p.steps for p in ps], dtype=np.float64).reshape(-1, nb)
            zeros = np.array([p.zeros for p in ps], dtype=np.int64).reshape(-1, nb)
            dpcm = np.array([p.dpcm for p in ps], dtype=bool).reshape(-1, nb)
            anchors = np.array([_params_anchors(p) for p in ps], dtype=np.int64).reshape(-1, nb)
            recon = np.array([p.recon for p in ps], dtype=np.float64).reshape(-1, nb)
            _decode_rows(x, sym0.bands, steps, zeros, dpcm, anchors, recon, out)
            for j, i in enumerate(idx):
                ref = world.arena.subref(block, j)
                comp: Component
                if par0.source == "WaveletPyr":
                    comp = WaveletPyr(
                        ref=ref, height=h, width=w, wavelet=par0.wavelet, levels=par0.levels, bands=sym0.bands
                    )
                elif par0.source == "YUVW4":
                    comp = YUVW4(ref=ref)
                else:
                    comp = Latent4(ref=ref)
                world.add_component(eids[i], comp)


register_bridge(SymbolsU8, QuantizeU8)


# ----------------------------------------------------------------------------------------------
# Compact side information
# ----------------------------------------------------------------------------------------------
class _BitWriter:
    def __init__(self) -> None:
        self.value = 0
        self.nbits = 0

    def put(self, value: int, nbits: int) -> None:
        self.value = (self.value << nbits) | value
        self.nbits += nbits

    def put_ue(self, v: int) -> None:
        u = v + 1
        n = u.bit_length()
        self.put(0, n - 1)
        self.put(u, n)

    def put_se(self, v: int) -> None:
        self.put_ue(2 * v - 1 if v > 0 else -2 * v)

    def tobytes(self) -> bytes:
        pad = -self.nbits % 8
        return (self.value << pad).to_bytes((self.nbits + pad) // 8, "big")


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.left = 8 * len(data)

    def get(self, nbits: int) -> int:
        if nbits > self.left:
            raise BitstreamError("quantizer side information is truncated")
        self.left -= nbits
        return (self.value >> self.left) & ((1 << nbits) - 1)

    def get_ue(self, max_bits: int = 50) -> int:
        zeros = 0
        while self.get(1) == 0:
            zeros += 1
            if zeros > max_bits:
                raise BitstreamError("quantizer side information: exp-Golomb code too long")
        return ((1 << zeros) | self.get(zeros)) - 1

    def get_se(self) -> int:
        u = self.get_ue()
        return (u + 1) // 2 if u & 1 else -(u // 2)


def _check_counts(n_channels: int, bands: tuple[Band, ...]) -> None:
    if isinstance(n_channels, bool) or not isinstance(n_channels, int) or n_channels < 1:
        raise VaeransError(f"n_channels must be a positive int, got {n_channels!r}")
    if not bands:
        raise VaeransError("the band table is empty")


def _factors(base32: float, weights: F64, gains: F64, steps: F64) -> I64 | None:
    """Integer widening factors reproducing ``steps`` exactly from ``base32``, or None."""
    unit = _compose(base32, weights, gains, 1)
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = np.rint(steps / unit)
    if not np.all((ratio >= 1) & (ratio <= _MAX_FACTOR)):
        return None
    factors = ratio.astype(np.int64)
    return factors if np.array_equal(_compose(base32, weights, gains, factors), steps) else None


def _wavelet_names() -> tuple[str, ...]:
    from vaerans_ecs.systems.wavelet import WAVELETS

    return tuple(WAVELETS)


def pack_quant_params(
    params: QuantParams,
    n_channels: int,
    bands: tuple[Band, ...],
    base_step: float | None = None,
    *,
    band_weights: Mapping[str, float] | None = None,
    height: int | None = None,
    width: int | None = None,
) -> bytes:
    """Serialize ``params`` compactly (see the module docstring for the format).

    The per-band steps must be ``base_step * weight / gain * integer`` as :class:`QuantizeU8`
    makes them. ``base_step`` (the quantizer's :attr:`QuantizeU8.base_step`) is derived from the
    steps when omitted (always possible unless every band was widened). ``band_weights`` must be
    the quantizer's when it had custom weights (they are then stored, 4 bytes per band).
    ``height``/``width`` of the wavelet plane are derived from ``bands`` when omitted.
    """
    _check_counts(n_channels, bands)
    nb = len(bands)
    if len(params.steps) != n_channels * nb:
        raise VaeransError(f"QuantParams has {len(params.steps)} bands, expected {n_channels} x {nb}")
    wavelet_code = 0
    if params.source == "WaveletPyr":
        if params.wavelet not in _wavelet_names():
            raise VaeransError(f"cannot pack quantizer parameters for unknown wavelet {params.wavelet!r}")
        wavelet_code = _wavelet_names().index(params.wavelet)
    gains = _band_gains(bands, params.source, params.wavelet, params.levels, height, width)
    weights = _weights(bands, _check_weights(band_weights))
    steps = np.array(params.steps, dtype=np.float64).reshape(n_channels, nb)
    candidates: list[float]
    if base_step is not None:
        candidates = [float(base_step)]
    else:  # unwidened bands give the base back exactly (to float32 precision)
        candidates = sorted(set(np.float32(steps * gains / weights).ravel().tolist()))[:8]
    factors: I64 | None = None
    base32 = np.float32(0.0)
    for cand in candidates:
        base32 = np.float32(cand)
        if np.isfinite(base32) and base32 > 0:
            factors = _factors(float(base32), weights, gains, steps)
            if factors is not None:
                break
    if factors is None:
        raise VaeransError(
            "QuantParams.steps are not base_step * weight / gain * integer factor; pass the base_step "
            "and band_weights of the QuantizeU8 that made them"
        )
    recon = np.array(params.recon, dtype=np.float64)
    codes = np.rint(recon * RECON_GRID)
    if np.any(codes != recon * RECON_GRID) or np.any((codes < 0) | (codes > RECON_MAX_CODE)):
        raise VaeransError(f"recon offsets must be multiples of 1/{RECON_GRID} in [0, {RECON_MAX_CODE}/{RECON_GRID}]")
    anchors = _params_anchors(params)
    has_weights = bool(np.any(weights != 1.0))
    head = bytes([_FORMAT_VERSION << 5 | int(has_weights) << 4 | SOURCES.index(params.source) << 2])
    head += struct.pack("<f", base32)
    if has_weights:
        head += weights.astype("<f4").tobytes()
    bits = _BitWriter()
    if params.source == "WaveletPyr":
        bits.put_ue(wavelet_code)
        bits.put_ue(params.levels)
    for c in range(n_channels):
        for b in range(nb):
            i = c * nb + b
            if b == 0:
                bits.put(int(params.dpcm[i]), 1)
                if params.dpcm[i]:
                    bits.put_se(anchors[i])
            elif params.dpcm[i]:
                raise VaeransError("DPCM is only supported on band 0 of each channel")
            k = int(factors[c, b])
            bits.put(int(k > 1), 1)
            if k > 1:
                bits.put_ue(k - 2)
            z = params.zeros[i]
            plain_offset = 0 if params.dpcm[i] else anchors[i]
            explicit = z != CANONICAL_ZERO or plain_offset != 0
            bits.put(int(explicit), 1)
            if explicit:
                bits.put(z, 8)
                if not params.dpcm[i]:
                    bits.put_se(plain_offset)
            bits.put(int(codes[i]), 4)
    return head + bits.tobytes()


def unpack_quant_params(
    data: bytes,
    n_channels: int,
    bands: tuple[Band, ...],
    *,
    height: int | None = None,
    width: int | None = None,
) -> QuantParams:
    """Inverse of :func:`pack_quant_params`; malformed or truncated ``data`` raises BitstreamError.

    ``bands`` is the layout the stream describes; ``height``/``width`` of the wavelet plane are
    derived from it when omitted. The source kind, wavelet and levels are read from ``data``.
    """
    _check_counts(n_channels, bands)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"quantizer side information must be bytes, got {type(data).__name__}")
    data = bytes(data)
    nb = len(bands)
    if len(data) < 5:
        raise BitstreamError("quantizer side information is truncated")
    head = data[0]
    if head >> 5 != _FORMAT_VERSION or head & 0b11 or (head >> 2) & 0b11 == 3:
        raise BitstreamError(f"quantizer side information: bad header byte 0x{head:02x}")
    has_weights = bool(head >> 4 & 1)
    source = SOURCES[(head >> 2) & 0b11]
    (base32,) = struct.unpack("<f", data[1:5])
    if not (math.isfinite(base32) and base32 > 0):
        raise BitstreamError(f"quantizer side information: invalid base step {base32!r}")
    pos = 5
    if has_weights:
        if len(data) < pos + 4 * nb:
            raise BitstreamError("quantizer side information is truncated (band weights)")
        weights = np.frombuffer(data, dtype="<f4", count=nb, offset=pos).astype(np.float64)
        pos += 4 * nb
        if not (np.all(np.isfinite(weights)) and np.all(weights > 0)):
            raise BitstreamError("quantizer side information: invalid band weight")
    else:
        weights = np.ones(nb, dtype=np.float64)
    bits = _BitReader(data[pos:])
    wavelet, levels = "none", 0
    if source == "WaveletPyr":
        names = _wavelet_names()
        code = bits.get_ue(8)
        levels = bits.get_ue(8)
        if code >= len(names):
            raise BitstreamError(f"quantizer side information: unknown wavelet code {code}")
        wavelet = names[code]
    elif len(bands) != 1:
        raise BitstreamError(f"quantizer side information: a {source} source has one band, the layout has {nb}")
    try:
        gains = _band_gains(bands, source, wavelet, levels, height, width)
    except VaeransError as exc:
        raise BitstreamError(f"quantizer side information does not match the band layout: {exc}") from None
    n = n_channels * nb
    factors = np.ones(n, dtype=np.int64)
    zeros = [CANONICAL_ZERO] * n
    dpcm = [False] * n
    anchors = [0] * n
    recon = [0.0] * n
    for c in range(n_channels):
        for b in range(nb):
            i = c * nb + b
            if b == 0 and bits.get(1):
                dpcm[i] = True
                anchors[i] = bits.get_se()
            if bits.get(1):
                k = bits.get_ue() + 2
                if k > _MAX_FACTOR:
                    raise BitstreamError(f"quantizer side information: widening factor {k} too large")
                factors[i] = k
            if bits.get(1):
                zeros[i] = bits.get(8)
                if not dpcm[i]:
                    anchors[i] = bits.get_se()
            recon[i] = bits.get(4) / RECON_GRID
    if bits.left >= 8 or bits.get(bits.left) != 0:
        raise BitstreamError("quantizer side information has trailing data")
    with np.errstate(over="ignore"):
        steps = _compose(float(base32), np.tile(weights, n_channels), np.tile(gains, n_channels), factors)
    if not np.all(np.isfinite(steps) & (steps > 0) & (steps < 1e30)):
        raise BitstreamError("quantizer side information: step out of range")
    try:
        return _make_params(steps.tolist(), zeros, dpcm, recon, anchors, source, wavelet, levels)
    except VaeransError as exc:  # pragma: no cover - every field was range-checked above
        raise BitstreamError(f"quantizer side information: {exc}") from None
