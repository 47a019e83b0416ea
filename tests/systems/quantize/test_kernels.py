"""Quantizer row kernels: error bounds, recon offsets, no clipping (DPCM, widening, anchors)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.systems.quantize.helpers import FAST, check_bound, latent, pyr_entity, roundtrip
from vaerans_ecs.components import YUVW4, Latent4, QuantParams, SymbolsU8, WaveletPyr
from vaerans_ecs.core.world import World
from vaerans_ecs.errors import BitstreamError, VaeransError
from vaerans_ecs.systems.quantize import CANONICAL_ZERO, Dequantize, QuantizeU8, pack_quant_params, unpack_quant_params
from vaerans_ecs.systems.wavelet import band_layout, synthesis_gains, wavelet_forward


# ----------------------------------------------------------------------------------------------
# error bounds, monotonicity, recon offsets
# ----------------------------------------------------------------------------------------------
@FAST
@given(
    seed=st.integers(0, 2**16),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    levels=st.integers(0, 4),
    quality=st.floats(1.0, 100.0),
    scale=st.sampled_from([0.01, 1.0, 30.0]),
    recon=st.booleans(),
    wavelet=st.sampled_from(["cdf53", "haar"]),
)
def test_error_bounded_by_half_step_plus_offset(
    seed: int, h: int, w: int, levels: int, quality: float, scale: float, recon: bool, wavelet: str
) -> None:
    world = World(arena_bytes=1 << 22)
    eid = pyr_entity(world, latent(seed, h, w, scale), levels, wavelet)
    quant = QuantizeU8(quality=quality, recon_offsets=recon)
    x, y, params, sym = roundtrip(world, eid, quant)
    bands = sym.bands
    assert params.source == "WaveletPyr" and params.wavelet == wavelet and params.levels == levels
    assert len(params.steps) == 4 * len(bands)
    if not recon:
        assert set(params.recon) == {0.0}
    assert all(0 <= r < 0.5 and (r * 32).is_integer() for r in params.recon)
    check_bound(x, y, params, bands)
    # steps = base * weight / gain * integer factor
    gains = synthesis_gains(h, w, wavelet, levels)
    base = quant.base_step
    for i, step in enumerate(params.steps):
        factor = step * gains[i % len(bands)] / base
        assert factor == pytest.approx(round(factor), rel=1e-9) and round(factor) >= 1


def test_band_steps_follow_gains_and_weights() -> None:
    world = World(arena_bytes=1 << 22)
    eid = pyr_entity(world, latent(1, 32, 24), 2)
    quant = QuantizeU8(step=0.25, band_weights={"HH1": 2.0, "LL2": 0.5, "HH9": 3.0})
    _, _, params, sym = roundtrip(world, eid, quant)
    gains = synthesis_gains(32, 24, "cdf53", 2)
    names = [b.name for b in sym.bands]
    weight = {"HH1": 2.0, "LL2": 0.5}
    for i, step in enumerate(params.steps[: len(names)]):
        expected = np.float32(0.25) * weight.get(names[i], 1.0) / gains[i]
        assert step == pytest.approx(expected, rel=1e-12)


def test_smaller_step_lowers_error() -> None:
    world = World(arena_bytes=1 << 24)
    x = latent(7, 48, 32, 2.0)
    for recon in (False, True):
        mses = []
        for step in (2.0, 1.0, 0.5, 0.25, 0.1, 0.03):
            eid = pyr_entity(world, x)
            a, b, _, _ = roundtrip(world, eid, QuantizeU8(step=step, recon_offsets=recon))
            mses.append(float(((a - b) ** 2).mean()))
        assert all(m1 > m2 for m1, m2 in itertools.pairwise(mses)), mses


def test_recon_offsets_lower_mse_on_laplacian_bands() -> None:
    rng = np.random.default_rng(3)
    x = rng.laplace(0, 1.0, (4, 64, 64)).astype(np.float32)
    world = World(arena_bytes=1 << 24)
    mse = {}
    for recon in (False, True):
        eid = world.spawn(YUVW4(ref=world.arena.copy_in(x)))
        (world.pipe(eid) | QuantizeU8(step=1.5, recon_offsets=recon) | Dequantize()).run()
        params = world.get_component(eid, QuantParams)
        y = world.view(world.get_component(eid, YUVW4).ref)
        mse[recon] = float(((x - y) ** 2).mean())
        assert set(params.zeros) == {CANONICAL_ZERO}  # |q| <= 127: canonical zero point
        if recon:
            assert all(r > 0 for r in params.recon)
    assert mse[True] < 0.97 * mse[False], mse


# ----------------------------------------------------------------------------------------------
# no clipping: DPCM and step widening
# ----------------------------------------------------------------------------------------------
def test_large_ll_values_never_clip() -> None:
    """LL values of 1e4 at a tiny step: widened (and/or DPCM), error bounded by the used step."""
    world = World(arena_bytes=1 << 22)
    x = latent(5, 32, 32)
    x[0] += 1e4
    x[1, :16] -= 3e3
    eid = pyr_entity(world, x)
    quant = QuantizeU8(step=0.01)
    a, b, params, sym = roundtrip(world, eid, quant)
    check_bound(a, b, params, sym.bands)
    unit0 = quant.base_step / synthesis_gains(32, 32, "cdf53", 3)[0]
    # the anchor absorbs the 1e4 offset; whatever widening remains is an integer factor of the unit step
    assert params.anchors and params.steps[0] >= unit0
    assert params.steps[0] / unit0 == pytest.approx(round(params.steps[0] / unit0))


@pytest.mark.parametrize("recon", [False, True])
def test_outlier_in_detail_band_widens_only_that_band(recon: bool) -> None:
    rng = np.random.default_rng(11)
    world = World(arena_bytes=1 << 22)
    x = latent(2, 32, 32)
    coef = wavelet_forward(x, "cdf53", 2)
    bands = band_layout(32, 32, 2)
    hh1 = bands[-1]
    coef[2, hh1.offset + 5] = 5e3
    coef[2, hh1.offset + 6] = -5e3 + rng.normal()
    eid = world.spawn(
        WaveletPyr(ref=world.arena.copy_in(coef), height=32, width=32, wavelet="cdf53", levels=2, bands=bands)
    )
    quant = QuantizeU8(step=0.1, recon_offsets=recon)
    a, b, params, _ = roundtrip(world, eid, quant)
    check_bound(a, b, params, bands)
    nb = len(bands)
    gains = synthesis_gains(32, 32, "cdf53", 2)
    factors = [params.steps[i] * gains[i % nb] / quant.base_step for i in range(4 * nb)]
    widened = [i for i, f in enumerate(factors) if round(f) > 1]
    assert widened == [2 * nb + nb - 1]
    k = round(factors[widened[0]])
    # smallest factor: k - 1 would not fit in 256 levels
    unit = quant.base_step / gains[-1]
    band = coef[2, hh1.offset :].astype(np.float64)
    span = np.rint(band.max() / (unit * (k - 1))) - np.rint(band.min() / (unit * (k - 1)))
    assert span > 255


def test_dpcm_rescues_smooth_ll_without_widening() -> None:
    """A smooth low-pass ramp spanning far more than 256 steps is coded as DPCM at its own step."""
    h, w = 16, 12
    ramp = (np.add.outer(np.arange(h), np.arange(w)) * 0.7).astype(np.float32)
    x = np.stack([ramp, -ramp, ramp * 0.1, ramp * 0]).astype(np.float32)
    world = World(arena_bytes=1 << 22)
    eid = world.spawn(Latent4(ref=world.arena.copy_in(x)))
    quant = QuantizeU8(step=0.05, recon_offsets=False)
    (world.pipe(eid) | quant | Dequantize()).run()
    params = world.get_component(eid, QuantParams)
    y = world.view(world.get_component(eid, Latent4).ref)
    assert params.source == "Latent4" and params.dpcm[0] and params.dpcm[1]
    base = quant.base_step
    assert params.steps[0] == pytest.approx(base) and params.steps[1] == pytest.approx(base)
    assert np.abs(x - y).max() <= base / 2 + 1e-4


def test_non_finite_input_raises() -> None:
    world = World(arena_bytes=1 << 22)
    x = latent(0, 8, 8)
    x[1, 2, 3] = np.nan
    eid = world.spawn(YUVW4(ref=world.arena.copy_in(x)))
    with pytest.raises(VaeransError, match="non-finite"):
        (world.pipe(eid) | QuantizeU8()).run()


# ----------------------------------------------------------------------------------------------
# anchors: per-band integer offsets (DPCM origin / plain offset)
# ----------------------------------------------------------------------------------------------
def test_anchors_keep_large_offsets_at_full_precision() -> None:
    """With anchors a smooth LL at 1e4 needs no widening (DPCM from the first value), and a
    narrow band far from zero is coded with a plain offset."""
    world = World(arena_bytes=1 << 22)
    h, w = 32, 32
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = (np.sin(yy / 20.0) + np.cos(xx / 16.0)).astype(np.float32)
    x = np.stack([smooth + 1e4, smooth - 3e3, smooth, smooth * 0]).astype(np.float32)
    eid = pyr_entity(world, x, levels=2)
    coef = world.view(world.get_component(eid, WaveletPyr).ref)
    bands = band_layout(h, w, 2)
    hh1 = bands[-1]
    rng = np.random.default_rng(0)
    coef[3, hh1.offset : hh1.offset + hh1.size] = 400.0 + rng.uniform(0, 5, hh1.size)
    quant = QuantizeU8(step=0.02)
    a, b, params, _ = roundtrip(world, eid, quant)
    check_bound(a, b, params, bands)
    nb = len(bands)
    gains = synthesis_gains(h, w, "cdf53", 2)
    unit = [quant.base_step / g for g in gains]
    anchors = params.anchors
    for c in (0, 1):
        assert params.dpcm[c * nb] and params.steps[c * nb] == pytest.approx(unit[0])
        assert anchors[c * nb] == round(a[c, 0] / unit[0])
    i = 3 * nb + nb - 1
    assert params.steps[i] == pytest.approx(unit[-1]) and anchors[i] != 0 and not params.dpcm[i]
    sym = world.view(world.get_component(eid, SymbolsU8).ref)
    assert sym[3, hh1.offset :].min() == params.zeros[i] == 0
    data = pack_quant_params(params, 4, bands, quant.base_step)
    assert unpack_quant_params(data, 4, bands) == params
    assert pack_quant_params(params, 4, bands) == data
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            unpack_quant_params(data[:cut], 4, bands)


@FAST
@given(seed=st.integers(0, 2**16), offset=st.sampled_from([0.0, 50.0, -2e3, 1e5]), step=st.floats(0.001, 2.0))
def test_anchors_roundtrip_bounded(seed: int, offset: float, step: float) -> None:
    world = World(arena_bytes=1 << 22)
    x = latent(seed, 20, 12) + np.float32(offset)
    eid = pyr_entity(world, x, levels=2)
    quant = QuantizeU8(step=step)
    a, b, params, sym = roundtrip(world, eid, quant)
    check_bound(a, b, params, sym.bands)
    data = pack_quant_params(params, 4, sym.bands, quant.base_step)
    assert unpack_quant_params(data, 4, sym.bands) == params
