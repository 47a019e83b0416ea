"""Lossy wavelet transform coder of image planes (an image, or a residual over a lossy base).

``encode_transform(planes, step)`` -> bytes and ``decode_transform(data, C, H, W)`` -> planes.
Pipeline: orthonormal colour transform (RGB -> YUV, :mod:`.colour`), CDF 9/7 wavelet
(:mod:`.transform_wavelet`), quantiser with steps divided by each band's synthesis gain
(:mod:`.transform_quant`), then rANS coding by context class (:mod:`.transform_context`): each
polyphase pass of each level and channel is split by an activity class computed from already
decoded data, and each class is one array of the project's ``"rans"`` coder (which picks a
compact model per array). Signs are bits in contexts of a sign prediction
(:mod:`.transform_signs`), sent with the next pass. The coarsest band is coded as a
plane-predictor residual. Magnitudes beyond the symbol alphabet escape to a final section.
Byte layout: :mod:`.transform_format`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from vaerans_ecs.errors import BitstreamError, VaeransError
from vaerans_ecs.systems.entropy import get_coder
from vaerans_ecs.systems.residual import transform_context as ctx
from vaerans_ecs.systems.residual import transform_format as fmt
from vaerans_ecs.systems.residual import transform_quant as tq
from vaerans_ecs.systems.residual import transform_signs as sgn
from vaerans_ecs.systems.residual.colour import colour_forward, colour_inverse
from vaerans_ecs.systems.residual.transform_wavelet import (
    WAVELETS,
    Decomposition,
    band_gains,
    dwt_forward,
    dwt_inverse,
    level_shapes,
)

__all__ = [
    "auto_levels",
    "DEFAULT_LEVELS",
    "MAX_ABS",
    "MAX_STEP",
    "MIN_STEP",
    "TILE",
    "WAVELETS",
    "decode_transform",
    "encode_transform",
    "encode_transform_recon",
]

log = logging.getLogger(__name__)

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]
U8 = NDArray[np.uint8]

#: Most wavelet levels the encoder uses unless told otherwise (fewer when the image is small).
DEFAULT_LEVELS: Final = 5
#: Accepted quantiser steps (pixel units).
MIN_STEP: Final = fmt.MIN_STEP
MAX_STEP: Final = fmt.MAX_STEP
#: Planes must stay within +-MAX_ABS (pixel units): with MIN_STEP this bounds every magnitude.
MAX_ABS: Final = 4096.0
_CODER: Final = "rans"


@dataclass
class _Geometry:
    channels: int
    levels: int
    shapes: list[list[tuple[int, int]]]  # per level (finest first): (h, w) of HL, LH, HH
    ll_shape: tuple[int, int]


def _geometry(channels: int, height: int, width: int, levels: int) -> _Geometry:
    lv = level_shapes(height, width, levels)
    shapes = [[(lh, hw), (hh, lw), (hh, hw)] for lh, hh, lw, hw in lv]
    ll = (lv[-1][0], lv[-1][2]) if lv else (height, width)
    return _Geometry(channels, len(lv), shapes, ll)


def _steps(geo: _Geometry, step: float, chroma: float, colour: bool, wavelet: str) -> tuple[F64, list[F64]]:
    """Quantiser steps: of the LL band per channel (C,), and per level of the (C, 3) detail bands."""
    cw = np.ones(geo.channels)
    if colour and geo.channels >= 3:
        cw[1:3] = chroma
    g_ll, g_det = band_gains(geo.levels, wavelet)
    det = [step * cw[:, None] / np.array(g, dtype=np.float64)[None, :] for g in g_det]
    return step * cw / g_ll, det


def _passes(geo: _Geometry, nonzero: NDArray[np.bool_]) -> list[tuple[int, int, int]]:
    """(level, channel, phase) of every coded pass, in stream order (coarsest level first)."""
    out = []
    for lev in range(geo.levels - 1, -1, -1):
        for ch in range(geo.channels):
            if nonzero[ch, lev]:
                for phase in range(len(ctx.PHASES)):
                    if sum(ctx.phase_count(bh, bw, phase) for bh, bw in geo.shapes[lev]):
                        out.append((lev, ch, phase))
    return out


@dataclass
class _PassState:
    """Capped magnitudes decoded so far, per level and band ((C, h, w) each): the contexts' input."""

    geo: _Geometry
    mags: list[list[I32]] = field(init=False)
    signs: list[list[NDArray[np.int8]]] = field(init=False)
    _parents: dict[tuple[int, int], list[tuple[I32, I32] | None]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        c = self.geo.channels
        self.mags = [[np.zeros((c, bh, bw), dtype=np.int32) for bh, bw in row] for row in self.geo.shapes]
        self.signs = [[np.zeros((c, bh, bw), dtype=np.int8) for bh, bw in row] for row in self.geo.shapes]

    def classes(self, lev: int, ch: int, phase: int) -> U8:
        """Context classes of a pass's coefficients (HL, LH, HH in turn, :func:`ctx.gather` order)."""
        key = (lev, ch)
        if key not in self._parents:
            up = lev + 1 < self.geo.levels
            self._parents[key] = [ctx.parent_features(self.mags[lev + 1][o][ch]) if up else None for o in range(3)]
        cross: list[I32 | None] = [None, None, None]
        if ch >= 1:
            row = self.mags[lev]
            cross = [row[o][0] + row[o][1] if ch == 2 else row[o][0] for o in range(3)]
        bands = [self.mags[lev][o][ch] for o in range(3)]
        return ctx.step_classes(bands, phase, 0 if ch == 0 else 1, self._parents[key], cross)

    def split(self, lev: int, phase: int, vals: NDArray[np.signedinteger[Any]]) -> list[NDArray[np.signedinteger[Any]]]:
        """A pass's values cut into its three bands' parts."""
        ends = np.cumsum([ctx.phase_count(bh, bw, phase) for bh, bw in self.geo.shapes[lev]])
        return _cut(vals, ends)

    def record(self, lev: int, ch: int, phase: int, vals: NDArray[np.signedinteger[Any]]) -> None:
        """Store a coded pass's values (capped magnitudes) for the contexts of later passes."""
        for o, part in enumerate(self.split(lev, phase, vals)):
            ctx.scatter(self.mags[lev][o][ch], phase, np.minimum(np.abs(part), ctx.CAP).astype(np.int32))

    def sign_score(self, lev: int, ch: int, phase: int) -> I32:
        """Sign prediction scores of a pass's coefficients (from the signs decoded so far)."""
        up = lev + 1 < self.geo.levels
        parts = []
        for o in range(3):
            sg = self.signs[lev][o]
            parent = self.signs[lev + 1][o][ch] if up else None
            first = sg[0] if ch >= 1 else None
            second = sg[1] if ch == 2 else None
            parts.append(sgn.sign_score(sg[ch], phase, o, parent, first, second))
        return np.concatenate(parts)

    def record_signs(self, lev: int, ch: int, phase: int, signs: NDArray[np.int8]) -> None:
        """Store a pass's signs (-1, 0, 1 per coefficient, gather order)."""
        for o, part in enumerate(self.split(lev, phase, signs)):
            ctx.scatter(self.signs[lev][o][ch], phase, part)


def _cut(a: NDArray[Any], ends: NDArray[np.integer[Any]]) -> list[NDArray[Any]]:
    """``a`` cut at the cumulative ``ends`` (the last one is ``a.size``): np.split without its overhead."""
    out = []
    start = 0
    for end in ends.tolist():
        out.append(a[start:end])
        start = end
    return out


def _split_by_class(sym: U8, cls: U8, n_classes: int = ctx.N_CLASSES) -> list[U8]:
    order = np.argsort(cls, kind="stable")
    counts = np.bincount(cls, minlength=n_classes)
    return _cut(sym[order], np.cumsum(counts))


def _unsplit(arrays: list[U8], cls: U8) -> U8:
    """Inverse of :func:`_split_by_class`."""
    out = np.empty(cls.size, dtype=np.uint8)
    out[np.argsort(cls, kind="stable")] = np.concatenate(arrays) if arrays else out[:0]
    return out


def _encode_signs(state: _PassState, done: tuple[int, int, int, I64]) -> list[U8]:
    """Sign-bit arrays (one per context) of a coded pass, then its signs join the state."""
    lev, ch, phase, q = done
    score = state.sign_score(lev, ch, phase)
    nz = q != 0
    bits = sgn.sign_bits(q[nz], score[nz])
    arrays = _split_by_class(bits, sgn.sign_contexts(score[nz], np.abs(q[nz])), sgn.N_SIGN_CONTEXTS)
    state.record_signs(lev, ch, phase, np.sign(q).astype(np.int8))
    return arrays


def _offset_code(v: float) -> int:
    return int(np.clip(round(v * fmt.BIAS_ONE), -fmt.BIAS_MAX, fmt.BIAS_MAX))


def encode_transform(
    planes: NDArray[np.float32],
    step: float,
    *,
    colour: bool = True,
    levels: int | None = None,
    wavelet: str | None = None,
    chroma: float = 1.1,
    deadzone: float = 0.38,
    rdo: float = 0.1,
    tiles: bool | None = None,
) -> bytes:
    """Code ``(C, H, W)`` float planes (pixel units) with quantiser step ``step`` (the rate knob).

    ``colour`` decorrelates the first three channels as RGB (C >= 3); ``levels`` wavelet levels
    (None: :func:`auto_levels`);
    ``wavelet`` one of :data:`WAVELETS`, or None to choose: CDF 9/7, except for planes that look
    synthetic (many exactly equal neighbours), where every wavelet is tried, and independent
    TILE x TILE tiles that each choose when some tiles look synthetic and others not (mixed
    content); the lowest ``squared error + lambda * bits`` wins; ``chroma`` multiplies the step of the two
    colour-difference channels; ``deadzone`` is the rounding offset of the detail quantiser
    (0.5 = nearest) when ``rdo`` is 0; ``rdo`` > 0 is the Lagrangian of the rate-distortion
    quantiser (squared steps per bit); ``tiles`` True codes independent TILE x TILE tiles (each
    choosing its wavelet), False never, None as said above. Deterministic.
    """
    return _encode_transform(planes, step, colour, levels, wavelet, chroma, deadzone, rdo, tiles, None)


def encode_transform_recon(
    planes: NDArray[np.float32],
    step: float,
    *,
    colour: bool = True,
    levels: int | None = None,
    wavelet: str | None = None,
    chroma: float = 1.1,
    deadzone: float = 0.38,
    rdo: float = 0.1,
    tiles: bool | None = None,
) -> tuple[bytes, F32]:
    """:func:`encode_transform`, and the planes :func:`decode_transform` returns for its stream.

    A closed-loop encoder needs the decoder's reconstruction; this builds it from the quantised
    coefficients the encoder already holds (the decoder's own dequantiser and inverse transform)
    instead of entropy-decoding the stream again.
    """
    keep: list[F32] = []
    data = _encode_transform(planes, step, colour, levels, wavelet, chroma, deadzone, rdo, tiles, keep)
    return data, keep[0]


def _encode_transform(
    planes: NDArray[np.float32], step: float, colour: bool, levels: int | None, wavelet: str | None,
    chroma: float, deadzone: float, rdo: float, tiles: bool | None, keep: list[F32] | None,
) -> bytes:
    x = np.asarray(planes)
    if x.ndim != 3 or not 1 <= x.shape[0] <= fmt.MAX_CHANNELS or x.shape[1] < 1 or x.shape[2] < 1:
        raise VaeransError(f"encode_transform expects (C, H, W) planes with C in 1..4, got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)  # channel planes: every later pass reads them whole
    if not np.all(np.isfinite(x)) or float(np.max(np.abs(x))) > MAX_ABS:
        raise VaeransError(f"encode_transform: planes must be finite and within +-{MAX_ABS:g}")
    step32 = float(np.float32(step))
    if not math.isfinite(step32) or not MIN_STEP <= step32 <= MAX_STEP:
        raise VaeransError(f"encode_transform: step must lie in [{MIN_STEP:g}, {MAX_STEP:g}], got {step!r}")
    explicit_levels = levels
    if levels is None:
        levels = auto_levels(x.shape[1], x.shape[2])
    if not 0 <= int(levels) <= fmt.MAX_LEVELS:
        raise VaeransError(f"encode_transform: levels must be in 0..{fmt.MAX_LEVELS}, got {levels!r}")
    if wavelet is not None and wavelet not in WAVELETS:
        raise VaeransError(f"encode_transform: wavelet must be one of {', '.join(WAVELETS)} or None, got {wavelet!r}")
    chroma_code = round(float(chroma) * fmt.CHROMA_ONE)
    if not 1 <= chroma_code <= 255:
        raise VaeransError(f"encode_transform: chroma must be in (0, {255 / fmt.CHROMA_ONE:g}], got {chroma!r}")
    if not 0.0 < deadzone <= 0.5 or not 0.0 <= rdo <= 10.0:
        raise VaeransError(f"encode_transform: need 0 < deadzone <= 0.5 and 0 <= rdo <= 10, got {deadzone}, {rdo}")
    opts = _Options(step32, int(levels), chroma_code, float(deadzone), float(rdo), bool(colour) and x.shape[0] >= 3)
    synthetic = wavelet is None and _looks_synthetic(x)
    names = [wavelet] if wavelet is not None else list(WAVELETS) if synthetic else ["cdf97"]
    use_tiles = bool(tiles) or (tiles is None and synthetic and max(x.shape[1:]) > TILE and _mixed_tiles(x))
    if use_tiles:
        tile_args = {"colour": colour, "levels": explicit_levels, "wavelet": wavelet, "chroma": chroma}
        tile_args |= {"deadzone": deadzone, "rdo": rdo, "tiles": False}
        names = ["tiles"] if tiles else [*names, "tiles"]
    if len(names) == 1 and names[0] != "tiles":
        return _encode(x, opts, names[0], keep)
    best: tuple[float, bytes, F32] | None = None
    for name in names:  # each candidate with its reconstruction (what the decoder would return)
        if name == "tiles":
            data, decoded = _encode_tiles(x, step32, opts.colour, tile_args)
        else:
            one: list[F32] = []
            data = _encode(x, opts, name, one)
            decoded = one[0]
        if len(names) == 1:
            best = (0.0, data, decoded)
            break
        cost = float(np.sum(np.square(decoded - x, dtype=np.float64))) + _SELECT_LAMBDA * step32**2 * 8 * len(data)
        log.debug("transform coder: %s gives %d bytes, cost %.4g", name, len(data), cost)
        if best is None or cost < best[0]:
            best = (cost, data, decoded)
    assert best is not None
    if keep is not None:
        keep.append(best[2])
    return best[1]


#: Side of the tiles tried on synthetic images (each tile picks its own wavelet).
TILE: Final = 128


def _encode_tiles(x: F32, step: float, colour: bool, args: dict[str, Any]) -> tuple[bytes, F32]:
    """Independent TILE x TILE streams (each with the automatic choices), in a tiled stream, and its decoding."""
    c, h, w = x.shape
    parts = []
    out = np.empty((c, h, w), dtype=np.float32)
    for i, j, th, tw in fmt.tile_grid(h, w, TILE):
        data, decoded = encode_transform_recon(np.ascontiguousarray(x[:, i : i + th, j : j + tw]), step, **args)
        parts.append(data)
        out[:, i : i + th, j : j + tw] = decoded
    return fmt.pack_tiled(TILE.bit_length() - 1, parts, (c, h, w, colour)), out


def auto_levels(height: int, width: int) -> int:
    """Wavelet levels for a plane size: the coarsest band keeps >= 8 samples on the short side
    (each level adds passes whose side information small bands cannot repay), at most
    DEFAULT_LEVELS, at least 1."""
    short = max(1, min(int(height), int(width)))
    return max(1, min(DEFAULT_LEVELS, (short // 8).bit_length() - 1))


#: Share of exactly equal neighbours above which the encoder tries every wavelet.
_SYNTHETIC_SHARE: Final = 0.3
#: Lagrangian (squared steps per bit) of the choice between wavelets.
_SELECT_LAMBDA: Final = 0.1


def _mixed_tiles(x: F32) -> bool:
    """Whether some TILE x TILE tiles look synthetic and others do not (mixed content)."""
    _, h, w = x.shape
    kinds = {_looks_synthetic(x[:, i : i + th, j : j + tw]) for i, j, th, tw in fmt.tile_grid(h, w, TILE)}
    return len(kinds) > 1


def _looks_synthetic(x: F32) -> bool:
    """Whether many horizontal and vertical neighbours are exactly equal (graphics, text, screens).

    Neighbours equal in every channel are also equal in the first: when too few are, that answers.
    """
    _, h, w = x.shape
    pairs = h * (w - 1) + (h - 1) * w
    if pairs <= 0:
        return False
    limit = _SYNTHETIC_SHARE * pairs
    across = x[0, :, 1:] == x[0, :, :-1]
    down = x[0, 1:, :] == x[0, :-1, :]
    if not int(np.count_nonzero(across)) + int(np.count_nonzero(down)) > limit:
        return False
    for ch in range(1, x.shape[0]):
        across &= x[ch, :, 1:] == x[ch, :, :-1]
        down &= x[ch, 1:, :] == x[ch, :-1, :]
    return bool(int(np.count_nonzero(across)) + int(np.count_nonzero(down)) > limit)


@dataclass(frozen=True)
class _Options:
    step: float
    levels: int
    chroma_code: int
    deadzone: float
    rdo: float
    colour: bool


def _encode(x: F32, opts: _Options, wavelet: str, keep: list[F32] | None = None) -> bytes:
    """One stream with one wavelet; ``keep`` (when given) receives the decoder's reconstruction."""
    c, h, w = x.shape
    geo = _geometry(c, h, w, opts.levels)
    dec = dwt_forward(colour_forward(x) if opts.colour else x, geo.levels, wavelet)
    ll_steps, det_steps = _steps(geo, opts.step, opts.chroma_code / fmt.CHROMA_ONE, opts.colour, wavelet)
    q_ll = np.rint(dec.ll.astype(np.float64) / ll_steps[:, None, None]).astype(np.int64)
    norm = [
        [band / det_steps[lev][:, o].astype(np.float32)[:, None, None] for o, band in enumerate(bands)]
        for lev, bands in enumerate(dec.details)
    ]
    peaks = [float(np.max(np.abs(b), initial=0)) for r in norm for b in r]
    if max([float(np.max(np.abs(q_ll), initial=0)), *peaks]) + 1 > tq.ESC + fmt.MAX_EXCESS:
        raise VaeransError("encode_transform: step too fine for these values (a coefficient exceeds the escape range)")
    # A (level, channel) is skipped when the dead-zone quantiser zeroes all of it.
    nonzero = np.zeros((c, geo.levels), dtype=bool)
    for lev, row in enumerate(norm):
        for ch in range(c):
            nonzero[ch, lev] = any(bool(np.any(np.abs(b[ch]) >= 1.0 - opts.deadzone)) for b in row)

    coder = get_coder(_CODER)
    sym, esc = tq.symbols(tq.ll_residual(q_ll).reshape(c, -1))
    records = [coder.encode(list(sym))]
    escapes = [esc.ravel()]
    state = _PassState(geo)
    # the decoder's coefficient planes, for the reconstruction (when asked)
    q_det = [] if keep is None else [[np.zeros((c, bh, bw), dtype=np.int32) for bh, bw in r] for r in geo.shapes]
    stats = tq.RateDistortionStats()
    done: tuple[int, int, int, I64] | None = None  # the previous pass: its signs ride with this one
    for lev, ch, phase in _passes(geo, nonzero):
        arrays = _encode_signs(state, done) if done is not None else []
        cls = state.classes(lev, ch, phase)
        y = np.concatenate([ctx.gather(norm[lev][o][ch], phase) for o in range(3)])
        q = tq.quantise_pass(y, cls, ctx.N_CLASSES, opts.deadzone, opts.rdo)
        stats.add(0 if ch == 0 else 1, q, y)
        sym, esc = tq.magnitude_symbols(q)
        records.append(coder.encode(arrays + _split_by_class(sym, cls)))
        escapes.append(esc)
        state.record(lev, ch, phase, q)
        if keep is not None:
            for o, part in enumerate(state.split(lev, phase, q)):
                ctx.scatter(q_det[lev][o][ch], phase, part)
        done = (lev, ch, phase, q)
    if done is not None:
        records.append(coder.encode(_encode_signs(state, done)))
    esc_all = np.concatenate(escapes)
    esc_bytes = fmt.leb128_encode(esc_all) if esc_all.size else b""
    esc_payload = coder.encode([np.frombuffer(esc_bytes, dtype=np.uint8)]) if esc_bytes else b""
    header = fmt.Header(
        step=opts.step,
        levels=geo.levels,
        wavelet=WAVELETS.index(wavelet),
        chroma_code=opts.chroma_code,
        bias_codes=[_offset_code(v) for v in stats.offsets()],
        nonzero=nonzero,
    )
    out = fmt.pack(header, records, len(esc_bytes), esc_payload, (c, h, w, opts.colour))
    if keep is not None:
        keep.append(_reconstruct(geo, header, q_det, q_ll, opts.colour))
    log.debug("transform coder: %d bytes for %dx%dx%d at step %g (%s)", len(out), c, h, w, opts.step, wavelet)
    return out


def decode_transform(data: bytes, channels: int, height: int, width: int, *, colour: bool = True) -> F32:
    """Decode what :func:`encode_transform` wrote for planes of this size; returns float32 (C, H, W).

    Malformed, truncated or corrupted data, or a size or colour flag other than the encoder's,
    raises :class:`~vaerans_ecs.errors.BitstreamError`.
    """
    try:
        return _decode(data, channels, height, width, colour)
    except BitstreamError:
        raise
    except (ValueError, IndexError, OverflowError, TypeError) as exc:  # defensive: report as malformed
        raise BitstreamError(f"transform stream: malformed ({exc})") from None


def _decode(data: bytes, c: int, h: int, w: int, colour: bool) -> F32:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BitstreamError(f"transform stream must be bytes, got {type(data).__name__}")
    for name, v, hi in (("channels", c, fmt.MAX_CHANNELS), ("height", h, 1 << 30), ("width", w, 1 << 30)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or not 1 <= int(v) <= hi:
            raise BitstreamError(f"transform stream: invalid {name} {v!r}")
    c, h, w = int(c), int(h), int(w)
    data = bytes(data)
    if data[:1] == bytes([fmt.TILED_VERSION]):
        tile, parts = fmt.unpack_tiled(data, (c, h, w, bool(colour) and c >= 3))
        out = np.empty((c, h, w), dtype=np.float32)
        for (i, j, th, tw), tile_data in zip(fmt.tile_grid(h, w, tile), parts, strict=True):
            if tile_data[:1] == bytes([fmt.TILED_VERSION]):
                raise BitstreamError("transform stream: tiles do not nest")
            out[:, i : i + th, j : j + tw] = _decode(tile_data, c, th, tw, colour)
        return out
    stream = fmt.unpack(data, (c, h, w, bool(colour) and c >= 3))
    hd = stream.header
    geo = _geometry(c, h, w, hd.levels)
    if geo.levels != hd.levels:
        raise BitstreamError(f"transform stream: {hd.levels} wavelet levels is too many for {h}x{w}")
    passes = _passes(geo, hd.nonzero)
    stream.expect_records(1 + len(passes) + (1 if passes else 0))
    coder = get_coder(_CODER)

    ll_h, ll_w = geo.ll_shape
    ll_vals = np.stack(coder.decode(stream.records[0], [ll_h * ll_w] * c)).astype(np.int64) - 128
    n_esc = int(np.count_nonzero(np.abs(ll_vals) == tq.ESC))
    state = _PassState(geo)
    q_det = [[np.zeros((c, bh, bw), dtype=np.int32) for bh, bw in row] for row in geo.shapes]
    escaped: list[tuple[int, NDArray[np.intp]]] = []  # (pass index, positions of escape symbols)
    done: tuple[int, int, int, I32] | None = None  # the previous pass (magnitudes): its signs come now
    for k in range(len(passes) + 1 if passes else 0):
        sizes: list[int] = []
        if done is not None:
            score = state.sign_score(*done[:3])
            nz = done[3] != 0
            sctx = sgn.sign_contexts(score[nz], done[3][nz])
            sizes += np.bincount(sctx, minlength=sgn.N_SIGN_CONTEXTS).tolist()
        if k < len(passes):
            lev, ch, phase = passes[k]
            cls = state.classes(lev, ch, phase)
            sizes += np.bincount(cls, minlength=ctx.N_CLASSES).tolist()
        arrays = coder.decode(stream.records[1 + k], sizes)
        if done is not None:
            signs = np.zeros(done[3].size, dtype=np.int8)
            signs[nz] = sgn.signs_from_bits(_unsplit(arrays[: sgn.N_SIGN_CONTEXTS], sctx), score[nz])
            state.record_signs(*done[:3], signs)
            for o, part in enumerate(state.split(done[0], done[2], signs)):
                band = q_det[done[0]][o][done[1]]
                ctx.scatter(band, done[2], ctx.gather(band, done[2]) * part)
            arrays = arrays[sgn.N_SIGN_CONTEXTS :]
        if k == len(passes):
            break
        vals = _unsplit(arrays, cls).astype(np.int32)
        idx = np.flatnonzero(vals == tq.ESC)
        if idx.size:
            escaped.append((k, idx))
            n_esc += int(idx.size)
        state.record(lev, ch, phase, vals)
        for o, part in enumerate(state.split(lev, phase, vals)):
            ctx.scatter(q_det[lev][o][ch], phase, part)
        done = (lev, ch, phase, vals)
    excess = stream.escapes(n_esc, coder)

    pos = tq.apply_escapes(ll_vals.reshape(-1), excess, 0)
    for k, idx in escaped:  # stream order: passes in turn, each in gather order
        lev, ch, phase = passes[k]
        vals = np.concatenate([ctx.gather(q_det[lev][o][ch], phase) for o in range(3)]).astype(np.int64)
        vals[idx] += np.sign(vals[idx]) * excess[pos : pos + idx.size]
        pos += int(idx.size)
        for o, part in enumerate(state.split(lev, phase, vals)):
            ctx.scatter(q_det[lev][o][ch], phase, part)
    q_ll = tq.ll_reconstruct(ll_vals.reshape(c, ll_h, ll_w))
    return _reconstruct(geo, hd, q_det, q_ll, colour)


def _reconstruct(geo: _Geometry, hd: fmt.Header, q_det: list[list[I32]], q_ll: I64, colour: bool) -> F32:
    c = geo.channels
    use_colour = colour and c >= 3
    wavelet = WAVELETS[hd.wavelet]
    ll_steps, det_steps = _steps(geo, hd.step, hd.chroma_code / fmt.CHROMA_ONE, use_colour, wavelet)
    kinds = [0] + [1] * (c - 1)
    ll = (q_ll.astype(np.float64) * ll_steps[:, None, None]).astype(np.float32)
    details: list[tuple[F32, F32, F32]] = []
    for lev, row in enumerate(q_det):
        out = []
        for o, q in enumerate(row):
            mag = np.abs(q).astype(np.float32)
            for ch, kind in enumerate(kinds):
                # m -> (m - offset) * step for m >= 1; 0 stays 0
                off1, off2 = hd.bias_codes[2 * kind] / fmt.BIAS_ONE, hd.bias_codes[2 * kind + 1] / fmt.BIAS_ONE
                m = mag[ch]
                m -= np.where(m == 1, np.float32(off1), np.where(m > 1, np.float32(off2), np.float32(0)))
                m *= np.float32(det_steps[lev][ch, o])
            np.negative(mag, out=mag, where=q < 0)
            out.append(mag)
        details.append((out[0], out[1], out[2]))
    x = dwt_inverse(Decomposition(ll=ll, details=details), wavelet)
    return np.ascontiguousarray(colour_inverse(x) if use_colour else x, dtype=np.float32)
