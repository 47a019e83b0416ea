"""Shared helpers of the quantizer tests: random latents, pyramid entities, round trips, error bounds."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from hypothesis import settings

from vaerans_ecs.components import YUVW4, Latent4, QuantParams, SymbolsU8, WaveletPyr
from vaerans_ecs.components.wavelet import Band
from vaerans_ecs.core.world import World
from vaerans_ecs.systems.quantize import Dequantize, QuantizeU8
from vaerans_ecs.systems.wavelet import band_layout, wavelet_forward

FAST = settings(derandomize=True, deadline=None, max_examples=30)
F32 = npt.NDArray[np.float32]


def latent(seed: int, h: int, w: int, scale: float = 1.0) -> F32:
    """Smooth-ish random (4, h, w) latent: a random walk plus Laplacian noise."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(np.cumsum(rng.normal(0, 0.2, (4, h, w)), axis=1), axis=2) / math.sqrt(h + w)
    return ((walk + rng.laplace(0, 0.3, (4, h, w))) * scale).astype(np.float32)


def pyr_entity(world: World, x: F32, levels: int = 3, wavelet: str = "cdf53") -> int:
    _, h, w = x.shape
    coef = wavelet_forward(x, wavelet, levels)
    pyr = WaveletPyr(
        ref=world.arena.copy_in(coef),
        height=h,
        width=w,
        wavelet=wavelet,
        levels=levels,
        bands=band_layout(h, w, levels),
    )
    return world.spawn(pyr)


def packed(world: World, eid: int, kind: type[WaveletPyr] | type[YUVW4] | type[Latent4]) -> F32:
    comp = world.get_component(eid, kind)
    arr: F32 = world.view(comp.ref).reshape(comp.ref.shape[0], -1).astype(np.float32)
    return arr


def roundtrip(world: World, eid: int, quant: QuantizeU8) -> tuple[F32, F32, QuantParams, SymbolsU8]:
    """Quantize + dequantize the WaveletPyr of ``eid``; returns (input, output, params, symbols)."""
    x = packed(world, eid, WaveletPyr).copy()
    world.pipe(eid).use(WaveletPyr).to(quant).run()
    params = world.get_component(eid, QuantParams)
    sym = world.get_component(eid, SymbolsU8)
    (world.pipe(eid) | Dequantize("WaveletPyr")).run()
    y = packed(world, eid, WaveletPyr)
    return x, y, params, sym


def check_bound(x: F32, y: F32, params: QuantParams, bands: Sequence[Band]) -> None:
    """|x - y| <= step * (1/2 + recon) per band (plus float32 rounding)."""
    nb = len(bands)
    for c in range(x.shape[0]):
        for b, band in enumerate(bands):
            i = c * nb + b
            sl = slice(band.offset, band.offset + band.size)
            err = np.abs(x[c, sl].astype(np.float64) - y[c, sl])
            tol = 1e-5 * (1.0 + np.abs(x[c, sl]).max()) + 1e-6 * params.steps[i]
            bound = params.steps[i] * (0.5 + params.recon[i]) + tol
            assert err.max() <= bound, (band.name, c, err.max(), params.steps[i], params.recon[i])


def quantized(
    world: World, x: F32, quant: QuantizeU8, levels: int = 3
) -> tuple[QuantParams, tuple[Band, ...], int, int]:
    eid = pyr_entity(world, x, levels)
    world.pipe(eid).use(WaveletPyr).to(quant).run()
    _, h, w = x.shape
    return world.get_component(eid, QuantParams), band_layout(h, w, levels), h, w
