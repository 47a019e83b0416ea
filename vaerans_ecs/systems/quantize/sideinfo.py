"""Compact side information of the quantizer (format version 1, see the package docstring).

:func:`pack_quant_params` stores the base step, optional band weights and a few bits per band;
:func:`unpack_quant_params` rebuilds the :class:`QuantParams` from them, treating its bytes as
untrusted (only :class:`BitstreamError` escapes).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np

from vaerans_ecs.components.quant import QuantParams
from vaerans_ecs.components.wavelet import Band
from vaerans_ecs.errors import BitstreamError, VaeransError
from vaerans_ecs.systems.quantize.steps import (
    CANONICAL_ZERO,
    F64,
    I64,
    MAX_FACTOR,
    RECON_GRID,
    RECON_MAX_CODE,
    SOURCES,
    band_gains,
    check_band_weights,
    compose_steps,
    weight_vector,
)

__all__ = [
    "BitReader",
    "BitWriter",
    "base_step_of",
    "make_params",
    "pack_quant_params",
    "params_anchors",
    "unpack_quant_params",
]

_FORMAT_VERSION: Final = 1


def params_anchors(params: QuantParams) -> tuple[int, ...]:
    """One anchor per band (an empty ``anchors`` field means all 0)."""
    return params.anchors or (0,) * len(params.steps)


def make_params(
    steps: Sequence[float],
    zeros: Sequence[int],
    dpcm: Sequence[bool],
    recon: Sequence[float],
    anchors: Sequence[int],
    source: str,
    wavelet: str,
    levels: int,
) -> QuantParams:
    """QuantParams in canonical form: plain Python scalars, ``anchors=()`` when every anchor is 0."""
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


class BitWriter:
    """Big-endian bit string writer with exp-Golomb codes (``ue``/``se``), zero-padded to a byte."""

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


class BitReader:
    """Reader for :class:`BitWriter`'s bit strings; reading past the end raises BitstreamError."""

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
    unit = compose_steps(base32, weights, gains, 1)
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = np.rint(steps / unit)
    if not np.all((ratio >= 1) & (ratio <= MAX_FACTOR)):
        return None
    factors = ratio.astype(np.int64)
    return factors if np.array_equal(compose_steps(base32, weights, gains, factors), steps) else None


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
    gains = band_gains(bands, params.source, params.wavelet, params.levels, height, width)
    weights = weight_vector(bands, check_band_weights(band_weights))
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
    anchors = params_anchors(params)
    has_weights = bool(np.any(weights != 1.0))
    head = bytes([_FORMAT_VERSION << 5 | int(has_weights) << 4 | SOURCES.index(params.source) << 2])
    head += struct.pack("<f", base32)
    if has_weights:
        head += weights.astype("<f4").tobytes()
    bits = BitWriter()
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


def base_step_of(data: bytes) -> float:
    """The base step recorded in side information (see :func:`pack_quant_params`)."""
    if len(data) < 5:
        raise BitstreamError("quantizer side information is truncated")
    return float(struct.unpack("<f", bytes(data[1:5]))[0])


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
    bits = BitReader(data[pos:])
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
        gains = band_gains(bands, source, wavelet, levels, height, width)
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
                if k > MAX_FACTOR:
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
        steps = compose_steps(float(base32), np.tile(weights, n_channels), np.tile(gains, n_channels), factors)
    if not np.all(np.isfinite(steps) & (steps > 0) & (steps < 1e30)):
        raise BitstreamError("quantizer side information: step out of range")
    try:
        return make_params(steps.tolist(), zeros, dpcm, recon, anchors, source, wavelet, levels)
    except VaeransError as exc:  # pragma: no cover - every field was range-checked above
        raise BitstreamError(f"quantizer side information: {exc}") from None
