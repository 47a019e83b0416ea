"""Per-band uint8 quantizer: error bounds, no clipping, DPCM, sources, side information, systems."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaerans_ecs.components import YUVW4, Component, Latent4, QuantParams, SymbolsU8, WaveletPyr
from vaerans_ecs.components.wavelet import Band
from vaerans_ecs.core.system import BRIDGES, SYSTEMS, System, system_from_config
from vaerans_ecs.core.world import World
from vaerans_ecs.errors import BitstreamError, ConfigError, VaeransError
from vaerans_ecs.systems import quantize as qmod
from vaerans_ecs.systems.quantize import (
    CANONICAL_ZERO,
    MED_MAX_SIZE,
    Dequantize,
    QuantizeU8,
    dpcm_decode,
    dpcm_residual,
    pack_quant_params,
    quality_for_step,
    step_for_quality,
    unpack_quant_params,
)
from vaerans_ecs.systems.wavelet import band_layout, synthesis_gains, wavelet_forward

FAST = settings(derandomize=True, deadline=None, max_examples=30)
F32 = npt.NDArray[np.float32]


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _latent(seed: int, h: int, w: int, scale: float = 1.0) -> F32:
    """Smooth-ish random (4, h, w) latent: a random walk plus Laplacian noise."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(np.cumsum(rng.normal(0, 0.2, (4, h, w)), axis=1), axis=2) / math.sqrt(h + w)
    return ((walk + rng.laplace(0, 0.3, (4, h, w))) * scale).astype(np.float32)


def _pyr_entity(world: World, x: F32, levels: int = 3, wavelet: str = "cdf53") -> int:
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


def _packed(world: World, eid: int, kind: type[WaveletPyr] | type[YUVW4] | type[Latent4]) -> F32:
    comp = world.get_component(eid, kind)
    arr: F32 = world.view(comp.ref).reshape(comp.ref.shape[0], -1).astype(np.float32)
    return arr


def _roundtrip(world: World, eid: int, quant: QuantizeU8) -> tuple[F32, F32, QuantParams, SymbolsU8]:
    """Quantize + dequantize the WaveletPyr of ``eid``; returns (input, output, params, symbols)."""
    x = _packed(world, eid, WaveletPyr).copy()
    world.pipe(eid).use(WaveletPyr).to(quant).run()
    params_type: type[QuantParams] = vars(qmod)["QuantParams"]  # patched by the anchor tests
    params = world.get_component(eid, params_type)
    sym = world.get_component(eid, SymbolsU8)
    (world.pipe(eid) | Dequantize("WaveletPyr")).run()
    y = _packed(world, eid, WaveletPyr)
    return x, y, params, sym


def _check_bound(x: F32, y: F32, params: QuantParams, bands: Sequence[Band]) -> None:
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


# ----------------------------------------------------------------------------------------------
# quality <-> step
# ----------------------------------------------------------------------------------------------
def test_step_for_quality_endpoints_and_monotone() -> None:
    assert step_for_quality(100, 0.05, 4.0) == pytest.approx(0.05)
    assert step_for_quality(1, 0.05, 4.0) == pytest.approx(4.0)
    assert step_for_quality(50.5, 0.05, 4.0) == pytest.approx(math.sqrt(0.05 * 4.0))
    steps = [step_for_quality(q, 0.1, 2.0) for q in range(1, 101)]
    assert all(a > b for a, b in itertools.pairwise(steps))
    assert step_for_quality(30, 0.5, 0.5) == 0.5
    assert quality_for_step(0.5, 0.5, 0.5) == 100.0
    for bad in (0, 0.5, 101, float("nan")):
        with pytest.raises(ConfigError):
            step_for_quality(bad)
    with pytest.raises(ConfigError):
        step_for_quality(50, 2.0, 1.0)
    with pytest.raises(ConfigError):
        quality_for_step(-1.0)


@FAST
@given(st.floats(1.0, 100.0), st.floats(0.001, 1.0), st.floats(1.0, 50.0))
def test_quality_step_inverse(quality: float, step_min: float, ratio: float) -> None:
    step_max = step_min * ratio
    step = step_for_quality(quality, step_min, step_max)
    assert step_min * (1 - 1e-12) <= step <= step_max * (1 + 1e-12)
    if ratio > 1.0 + 1e-6:
        assert quality_for_step(step, step_min, step_max) == pytest.approx(quality, abs=1e-6)


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
    eid = _pyr_entity(world, _latent(seed, h, w, scale), levels, wavelet)
    quant = QuantizeU8(quality=quality, recon_offsets=recon)
    x, y, params, sym = _roundtrip(world, eid, quant)
    bands = sym.bands
    assert params.source == "WaveletPyr" and params.wavelet == wavelet and params.levels == levels
    assert len(params.steps) == 4 * len(bands)
    if not recon:
        assert set(params.recon) == {0.0}
    assert all(0 <= r < 0.5 and (r * 32).is_integer() for r in params.recon)
    _check_bound(x, y, params, bands)
    # steps = base * weight / gain * integer factor
    gains = synthesis_gains(h, w, wavelet, levels)
    base = quant.base_step
    for i, step in enumerate(params.steps):
        factor = step * gains[i % len(bands)] / base
        assert factor == pytest.approx(round(factor), rel=1e-9) and round(factor) >= 1


def test_band_steps_follow_gains_and_weights() -> None:
    world = World(arena_bytes=1 << 22)
    eid = _pyr_entity(world, _latent(1, 32, 24), 2)
    quant = QuantizeU8(step=0.25, band_weights={"HH1": 2.0, "LL2": 0.5, "HH9": 3.0})
    _, _, params, sym = _roundtrip(world, eid, quant)
    gains = synthesis_gains(32, 24, "cdf53", 2)
    names = [b.name for b in sym.bands]
    weight = {"HH1": 2.0, "LL2": 0.5}
    for i, step in enumerate(params.steps[: len(names)]):
        expected = np.float32(0.25) * weight.get(names[i], 1.0) / gains[i]
        assert step == pytest.approx(expected, rel=1e-12)


def test_smaller_step_lowers_error() -> None:
    world = World(arena_bytes=1 << 24)
    x = _latent(7, 48, 32, 2.0)
    for recon in (False, True):
        mses = []
        for step in (2.0, 1.0, 0.5, 0.25, 0.1, 0.03):
            eid = _pyr_entity(world, x)
            a, b, _, _ = _roundtrip(world, eid, QuantizeU8(step=step, recon_offsets=recon))
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
    x = _latent(5, 32, 32)
    x[0] += 1e4
    x[1, :16] -= 3e3
    eid = _pyr_entity(world, x)
    quant = QuantizeU8(step=0.01)
    a, b, params, sym = _roundtrip(world, eid, quant)
    _check_bound(a, b, params, sym.bands)
    unit0 = quant.base_step / synthesis_gains(32, 32, "cdf53", 3)[0]
    # the anchor absorbs the 1e4 offset; whatever widening remains is an integer factor of the unit step
    assert params.anchors and params.steps[0] >= unit0
    assert params.steps[0] / unit0 == pytest.approx(round(params.steps[0] / unit0))


@pytest.mark.parametrize("recon", [False, True])
def test_outlier_in_detail_band_widens_only_that_band(recon: bool) -> None:
    rng = np.random.default_rng(11)
    world = World(arena_bytes=1 << 22)
    x = _latent(2, 32, 32)
    coef = wavelet_forward(x, "cdf53", 2)
    bands = band_layout(32, 32, 2)
    hh1 = bands[-1]
    coef[2, hh1.offset + 5] = 5e3
    coef[2, hh1.offset + 6] = -5e3 + rng.normal()
    eid = world.spawn(
        WaveletPyr(ref=world.arena.copy_in(coef), height=32, width=32, wavelet="cdf53", levels=2, bands=bands)
    )
    quant = QuantizeU8(step=0.1, recon_offsets=recon)
    a, b, params, _ = _roundtrip(world, eid, quant)
    _check_bound(a, b, params, bands)
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
    x = _latent(0, 8, 8)
    x[1, 2, 3] = np.nan
    eid = world.spawn(YUVW4(ref=world.arena.copy_in(x)))
    with pytest.raises(VaeransError, match="non-finite"):
        (world.pipe(eid) | QuantizeU8()).run()


# ----------------------------------------------------------------------------------------------
# DPCM
# ----------------------------------------------------------------------------------------------
@FAST
@given(
    seed=st.integers(0, 2**16),
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    spread=st.sampled_from([1, 3, 40, 10**6]),
    anchor=st.integers(-(10**7), 10**7),
)
def test_dpcm_exact_roundtrip(seed: int, h: int, w: int, spread: int, anchor: int) -> None:
    rng = np.random.default_rng(seed)
    q = np.cumsum(rng.integers(-spread, spread + 1, (h, w)), axis=1) + anchor
    res = dpcm_residual(q, anchor)
    assert res.dtype == np.int64 and res.shape == q.shape
    np.testing.assert_array_equal(dpcm_decode(res, anchor), q)


@pytest.mark.parametrize("shape", [(40, 40), (3, MED_MAX_SIZE // 3 + 1)])
def test_dpcm_left_predictor_for_large_bands(shape: tuple[int, int]) -> None:
    h, w = shape
    q = np.arange(h * w, dtype=np.int64).reshape(h, w) * 3 - 7
    res = dpcm_residual(q, q[0, 0])
    assert h * w > MED_MAX_SIZE
    assert res[0, 0] == 0 and np.all(res[:, 1:] == 3) and np.all(res[1:, 0] == 3 * w)
    np.testing.assert_array_equal(dpcm_decode(res, int(q[0, 0])), q)


def test_dpcm_residual_batched_matches_single() -> None:
    rng = np.random.default_rng(4)
    q = rng.integers(-50, 50, (3, 2, 9, 7))
    anchors = rng.integers(-5, 5, (3, 2))
    res = dpcm_residual(q, anchors)
    for i in range(3):
        for j in range(2):
            np.testing.assert_array_equal(res[i, j], dpcm_residual(q[i, j], anchors[i, j]))
            np.testing.assert_array_equal(dpcm_decode(res[i, j], int(anchors[i, j])), q[i, j])


def test_med_predictor_values() -> None:
    q = np.array([[5, 7], [6, 100]])
    # (0,0): 5 - 0; (0,1): left; (1,0): top; (1,1): c=5 <= min(a=6, b=7) -> max = 7
    np.testing.assert_array_equal(dpcm_residual(q), [[5, 2], [1, 93]])


def test_ll_dpcm_is_chosen_when_it_lowers_entropy() -> None:
    world = World(arena_bytes=1 << 22)
    h, w = 64, 48
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = (np.sin(yy / 9.0) + np.cos(xx / 7.0)).astype(np.float32) * 3
    noise = np.random.default_rng(1).uniform(-3, 3, (h, w)).astype(np.float32)
    x = np.stack([smooth, noise, smooth, noise])
    eid = _pyr_entity(world, x, levels=2)
    a, b, params, sym = _roundtrip(world, eid, QuantizeU8(step=0.3))
    nb = len(sym.bands)
    assert params.dpcm[0] and params.dpcm[2 * nb]
    assert not any(params.dpcm[i] for i in range(4 * nb) if i % nb)
    _check_bound(a, b, params, sym.bands)


# ----------------------------------------------------------------------------------------------
# sources, pipes, batches
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [YUVW4, Latent4])
def test_latent_sources_roundtrip(kind: type[YUVW4] | type[Latent4]) -> None:
    world = World(arena_bytes=1 << 22)
    x = _latent(9, 12, 20, 2.0)
    eid = world.spawn(kind(ref=world.arena.copy_in(x)))
    quant = QuantizeU8(quality=60)
    (world.pipe(eid) | quant | Dequantize()).run()
    sym = world.get_component(eid, SymbolsU8)
    params = world.get_component(eid, QuantParams)
    assert sym.bands == (Band(name="LL0", level=0, h=12, w=20, offset=0),)
    assert (sym.height, sym.width, sym.ref.shape) == (12, 20, (4, 240))
    assert params.source == kind.__name__ and params.wavelet == "none" and params.levels == 0
    y = world.view(world.get_component(eid, kind).ref)
    assert y.shape == (4, 12, 20) and y.dtype == np.float32
    _check_bound(x.reshape(4, -1), y.reshape(4, -1), params, sym.bands)
    assert all(step >= quant.base_step * (1 - 1e-9) for step in params.steps)


def test_pipe_use_selects_yuvw4_over_pyramid() -> None:
    world = World(arena_bytes=1 << 22)
    x = _latent(3, 16, 16)
    eid = _pyr_entity(world, x, levels=2)
    world.add_component(eid, YUVW4(ref=world.arena.copy_in(x)))
    pipe = world.pipe(eid).use(YUVW4) | QuantizeU8(quality=80)
    assert pipe.out(QuantParams).source == "YUVW4"
    assert len(world.get_component(eid, SymbolsU8).bands) == 1
    quant = world.history(eid)[-1]
    assert isinstance(quant, QuantizeU8) and quant.source is YUVW4
    decoder = quant.inverse()
    assert decoder == Dequantize(target="YUVW4")
    assert decoder.produced_components() == (YUVW4,)
    out = (world.pipe(eid) | decoder).out(YUVW4)
    _check_bound(
        x.reshape(4, -1),
        world.view(out.ref).reshape(4, -1),
        world.get_component(eid, QuantParams),
        world.get_component(eid, SymbolsU8).bands,
    )
    # by default the pyramid is preferred
    assert (world.pipe(eid) | QuantizeU8()).out(QuantParams).source == "WaveletPyr"


def test_dequantize_target_mismatch_and_bad_params() -> None:
    world = World(arena_bytes=1 << 22)
    eid = world.spawn(YUVW4(ref=world.arena.copy_in(_latent(0, 4, 4))))
    (world.pipe(eid) | QuantizeU8()).run()
    with pytest.raises(VaeransError, match="quantized from YUVW4"):
        (world.pipe(eid) | Dequantize("WaveletPyr")).run()
    params = world.get_component(eid, QuantParams)
    world.add_component(eid, params.model_copy(update={"steps": params.steps * 2}))
    with pytest.raises(VaeransError):
        Dequantize().run(world, [eid])


def test_batch_equals_single_runs_and_mixed_sources() -> None:
    world = World(arena_bytes=1 << 23)
    xs = [_latent(s, 24, 16, 1.0 + s) for s in range(3)]
    eids = [_pyr_entity(world, x) for x in xs]
    eids.append(world.spawn(Latent4(ref=world.arena.copy_in(xs[0]))))
    eids.append(_pyr_entity(world, _latent(9, 10, 30), levels=1))
    QuantizeU8(quality=70).run(world, eids)  # mixed sources: a Pipe needs one common input, run() does not
    batch_syms = [world.view(world.get_component(e, SymbolsU8).ref).copy() for e in eids]
    batch_params = [world.get_component(e, QuantParams) for e in eids]
    for e, syms, params in zip(eids, batch_syms, batch_params, strict=True):
        QuantizeU8(quality=70).run(world, [e])
        np.testing.assert_array_equal(world.view(world.get_component(e, SymbolsU8).ref), syms)
        assert world.get_component(e, QuantParams) == params
    assert batch_params[3].source == "Latent4"
    Dequantize().run(world, eids)
    assert world.view(world.get_component(eids[3], Latent4).ref).shape == (4, 24, 16)


def test_chunked_rows_match_whole_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(arena_bytes=1 << 23)
    eids = [_pyr_entity(world, _latent(s, 16, 16, 3.0), levels=2) for s in range(3)]
    QuantizeU8(quality=90).run(world, eids)
    whole = [world.view(world.get_component(e, SymbolsU8).ref).copy() for e in eids]
    params = [world.get_component(e, QuantParams) for e in eids]
    Dequantize().run(world, eids)
    rec = [world.view(world.get_component(e, WaveletPyr).ref).copy() for e in eids]
    monkeypatch.setattr(qmod, "_CHUNK", 600)  # 2 rows of 256 coefficients per chunk
    eids2 = [_pyr_entity(world, _latent(s, 16, 16, 3.0), levels=2) for s in range(3)]
    QuantizeU8(quality=90).run(world, eids2)
    for e, sym, par in zip(eids2, whole, params, strict=True):
        np.testing.assert_array_equal(world.view(world.get_component(e, SymbolsU8).ref), sym)
        assert world.get_component(e, QuantParams) == par
    Dequantize().run(world, eids2)
    for e, r in zip(eids2, rec, strict=True):
        np.testing.assert_array_equal(world.view(world.get_component(e, WaveletPyr).ref), r)


def test_integer_pyramid_input() -> None:
    world = World(arena_bytes=1 << 22)
    rng = np.random.default_rng(0)
    x = rng.integers(-300, 300, (4, 16, 16)).astype(np.int32)
    coef = wavelet_forward(x, "cdf53", 2, integer=True)
    bands = band_layout(16, 16, 2)
    eid = world.spawn(
        WaveletPyr(ref=world.arena.copy_in(coef), height=16, width=16, wavelet="cdf53", levels=2, bands=bands)
    )
    a, b, params, _ = _roundtrip(world, eid, QuantizeU8(step=0.5))
    _check_bound(a, b, params, bands)


class _NeedsSymbols(System):
    """Stand-in for an entropy coder: requires SymbolsU8 and QuantParams."""

    name: ClassVar[str] = "test.needs_symbols"

    def required_components(self) -> tuple[type[Component], ...]:
        return (QuantParams, SymbolsU8)

    def run(self, world: World, eids: Sequence[int]) -> None:
        for e in eids:
            world.get_component(e, SymbolsU8)


def test_bridge_inserts_default_quantizer() -> None:
    assert isinstance(BRIDGES.get("SymbolsU8")(), QuantizeU8)
    world = World(arena_bytes=1 << 22)
    eid = _pyr_entity(world, _latent(0, 16, 16), levels=2)
    (world.pipe(eid) | _NeedsSymbols()).run()
    history = world.history(eid)
    assert [type(s) for s in history] == [QuantizeU8, _NeedsSymbols]
    assert history[0] == QuantizeU8() and history[0].source is WaveletPyr


# ----------------------------------------------------------------------------------------------
# configuration and registry
# ----------------------------------------------------------------------------------------------
def test_registry_and_config_roundtrip() -> None:
    assert SYSTEMS.get("QuantizeU8") is QuantizeU8 and SYSTEMS.get("Dequantize") is Dequantize
    quant = QuantizeU8(quality=42.5, step_min=0.1, step_max=3.0, band_weights={"HH1": 1.5}, recon_offsets=False)
    cfg = quant.get_config()
    assert cfg == {
        "id": "QuantizeU8",
        "quality": 42.5,
        "step": None,
        "step_min": 0.1,
        "step_max": 3.0,
        "band_weights": {"HH1": 1.5},
        "recon_offsets": False,
    }
    assert system_from_config(cfg) == quant and QuantizeU8.from_config(cfg) == quant
    rebuilt = system_from_config(QuantizeU8(step=0.3).get_config())
    assert isinstance(rebuilt, QuantizeU8) and rebuilt.base_step == pytest.approx(0.3)
    for deq in (Dequantize(), Dequantize("Latent4")):
        assert system_from_config(deq.get_config()) == deq
    assert quant.inverse() == Dequantize()
    assert Dequantize().inverse() == QuantizeU8()
    assert Dequantize("YUVW4").inverse().source is YUVW4
    assert set(Dequantize().produced_components()) == {WaveletPyr, YUVW4, Latent4}
    assert QuantizeU8().input_choices() == (WaveletPyr, YUVW4, Latent4)
    assert QuantizeU8(quality=100).base_step == pytest.approx(0.05, rel=1e-6)
    with pytest.raises(ConfigError):
        QuantizeU8.from_config({"id": "QuantizeU8", "qualty": 3})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"quality": 0},
        {"quality": 100.5},
        {"quality": True},
        {"step": 0.0},
        {"step": -1.0},
        {"step": float("inf")},
        {"step": 1e-60},
        {"step_min": 2.0, "step_max": 1.0},
        {"step_min": 0.0},
        {"band_weights": {"hh1": 2.0}},
        {"band_weights": {"HH1": 0.0}},
        {"band_weights": {"HH1": "x"}},
        {"band_weights": [("HH1", 1.0)]},
        {"recon_offsets": 1},
    ],
)
def test_invalid_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        QuantizeU8(**kwargs)  # type: ignore[arg-type]


def test_invalid_dequantize_target() -> None:
    with pytest.raises(ConfigError):
        Dequantize("RGB")


# ----------------------------------------------------------------------------------------------
# compact side information
# ----------------------------------------------------------------------------------------------
def _quantized(
    world: World, x: F32, quant: QuantizeU8, levels: int = 3
) -> tuple[QuantParams, tuple[Band, ...], int, int]:
    eid = _pyr_entity(world, x, levels)
    world.pipe(eid).use(WaveletPyr).to(quant).run()
    _, h, w = x.shape
    return world.get_component(eid, QuantParams), band_layout(h, w, levels), h, w


@FAST
@given(
    seed=st.integers(0, 2**16),
    quality=st.floats(1.0, 100.0),
    levels=st.integers(0, 4),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    big=st.booleans(),
)
def test_side_info_roundtrip(seed: int, quality: float, levels: int, h: int, w: int, big: bool) -> None:
    world = World(arena_bytes=1 << 22)
    x = _latent(seed, h, w)
    if big:
        x[seed % 4] += 2e3
    quant = QuantizeU8(quality=quality)
    params, bands, _, _ = _quantized(world, x, quant, levels)
    data = pack_quant_params(params, 4, bands, quant.base_step)
    assert unpack_quant_params(data, 4, bands) == params
    assert unpack_quant_params(data, 4, bands, height=h, width=w) == params
    assert pack_quant_params(params, 4, bands) == data  # base step derived from the steps


def test_side_info_size_on_realistic_layout() -> None:
    world = World(arena_bytes=1 << 24)
    x = _latent(1, 128, 192, 2.0)
    for quality in (5, 50, 95):
        quant = QuantizeU8(quality=quality)
        params, bands, _, _ = _quantized(world, x, quant)
        data = pack_quant_params(params, 4, bands, quant.base_step)
        assert len(bands) == 10
        assert len(data) <= 48, (quality, len(data))  # about 1 byte per band or less


def test_side_info_latent_source_and_weights() -> None:
    world = World(arena_bytes=1 << 22)
    x = _latent(2, 10, 14)
    eid = world.spawn(Latent4(ref=world.arena.copy_in(x)))
    quant = QuantizeU8(step=0.2)
    (world.pipe(eid) | quant).run()
    params = world.get_component(eid, QuantParams)
    bands = world.get_component(eid, SymbolsU8).bands
    data = pack_quant_params(params, 4, bands, quant.base_step)
    assert unpack_quant_params(data, 4, bands) == params
    # custom weights are stored (4 bytes per band) and need to be passed to pack
    weights = {"HL1": 1.7, "LL2": 0.3}
    quant = QuantizeU8(quality=40, band_weights=weights)
    params, bands, _, _ = _quantized(world, _latent(3, 20, 20), quant, 2)
    with pytest.raises(VaeransError, match="band_weights"):
        pack_quant_params(params, 4, bands, quant.base_step)
    data = pack_quant_params(params, 4, bands, quant.base_step, band_weights=weights)
    assert unpack_quant_params(data, 4, bands) == params
    with pytest.raises(VaeransError):
        pack_quant_params(params, 4, bands, quant.base_step * 1.01, band_weights=weights)
    with pytest.raises(VaeransError):
        pack_quant_params(params, 3, bands, quant.base_step, band_weights=weights)


def test_side_info_corruption_raises_bitstream_error() -> None:
    world = World(arena_bytes=1 << 22)
    x = _latent(8, 32, 32)
    x[0] += 500.0
    quant = QuantizeU8(quality=99)
    params, bands, _, _ = _quantized(world, x, quant, 2)
    data = pack_quant_params(params, 4, bands, quant.base_step)

    def unpack(d: bytes) -> QuantParams:
        return unpack_quant_params(d, 4, bands)

    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            unpack(data[:cut])
    with pytest.raises(BitstreamError):
        unpack(data + b"\x00")
    for head in (0x00, 0xFF, data[0] | 0x01, data[0] | 0x0C):
        with pytest.raises(BitstreamError):
            unpack(bytes([head]) + data[1:])
    for base in (b"\x00\x00\x00\x00", b"\x00\x00\xc0\x7f", b"\x00\x00\x80\xbf"):  # 0, nan, -1
        with pytest.raises(BitstreamError):
            unpack(data[:1] + base + data[5:])
    rng = np.random.default_rng(0)
    for _ in range(300):  # random corruption: a clean error or a valid QuantParams, nothing else
        bad = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            bad[int(rng.integers(0, len(bad)))] ^= 1 << int(rng.integers(0, 8))
        try:
            got = unpack(bytes(bad))
        except BitstreamError:
            continue
        assert len(got.steps) == len(params.steps)
    with pytest.raises(BitstreamError):
        unpack_quant_params("not bytes", 4, bands)  # type: ignore[arg-type]


def test_side_info_exp_golomb_limits() -> None:
    bands = (Band(name="LL0", level=0, h=2, w=2, offset=0),)
    # header: version 1, Latent4, base 1.0; then LL: dpcm 0, widen 1, 60 zero bits (too long)
    head = bytes([1 << 5 | 2 << 2]) + np.float32(1.0).tobytes()
    with pytest.raises(BitstreamError, match="too long"):
        unpack_quant_params(head + bytes([0b01000000]) + bytes(8), 1, bands)
    # widening factor 2**50: valid exp-Golomb but beyond the limit
    w = qmod._BitWriter()
    w.put(0, 1)
    w.put(1, 1)
    w.put_ue(2**50 - 2)
    w.put(0, 1)
    w.put(0, 4)
    with pytest.raises(BitstreamError, match="too large"):
        unpack_quant_params(head + w.tobytes(), 1, bands)


def test_side_info_wavelet_and_layout_checks() -> None:
    world = World(arena_bytes=1 << 22)
    quant = QuantizeU8(quality=50)
    params, bands, _, _ = _quantized(world, _latent(4, 16, 16), quant, 2)
    data = pack_quant_params(params, 4, bands)
    # the stream says 2 levels of cdf53: a 3-level layout does not match
    with pytest.raises(BitstreamError, match="band layout"):
        unpack_quant_params(data, 4, band_layout(16, 16, 3))
    eid = _pyr_entity(world, _latent(4, 16, 16), 2, "haar")
    (world.pipe(eid) | QuantizeU8(quality=50)).run()
    haar = world.get_component(eid, QuantParams)
    assert haar.wavelet == "haar" and haar.steps[:10] != params.steps[:10]
    assert unpack_quant_params(pack_quant_params(haar, 4, bands), 4, bands) == haar
    with pytest.raises(VaeransError, match="unknown wavelet"):
        pack_quant_params(params.model_copy(update={"wavelet": "db4"}), 4, bands)
    # wavelet code 5 (exp-Golomb 00110) does not exist
    bad = qmod._BitWriter()
    bad.put_ue(5)
    bad.put_ue(2)
    with pytest.raises(BitstreamError, match="unknown wavelet"):
        unpack_quant_params(data[:5] + bad.tobytes() + data[6:], 4, bands)
    # a latent source has one band
    with pytest.raises(BitstreamError):
        unpack_quant_params(bytes([1 << 5 | 1 << 2]) + data[1:], 4, bands)


def test_pack_rejects_inconsistent_params() -> None:
    bands = (Band(name="LL0", level=0, h=2, w=2, offset=0),)

    def params(**kw: object) -> QuantParams:
        base: dict[str, object] = {
            "steps": (0.5,),
            "zeros": (128,),
            "dpcm": (False,),
            "recon": (0.0,),
            "source": "YUVW4",
        }
        base.update(kw)
        return QuantParams(**base)

    assert unpack_quant_params(pack_quant_params(params(), 1, bands, 0.5), 1, bands) == params()
    with pytest.raises(VaeransError):
        pack_quant_params(params(recon=(0.01,)), 1, bands, 0.5)
    with pytest.raises(VaeransError):
        pack_quant_params(params(recon=(0.5,)), 1, bands, 0.5)
    with pytest.raises(VaeransError):
        pack_quant_params(params(steps=(0.75,)), 1, bands, 0.5)
    with pytest.raises(VaeransError):
        pack_quant_params(params(), 1, bands, float("nan"))
    with pytest.raises(VaeransError):
        pack_quant_params(params(), 0, bands, 0.5)
    two = (bands[0], Band(name="HL1", level=1, h=1, w=1, offset=4))
    with pytest.raises(VaeransError):
        pack_quant_params(params(), 1, two, 0.5)


# ----------------------------------------------------------------------------------------------
# anchors: exercised through a QuantParams with the proposed ``anchors`` field
# ----------------------------------------------------------------------------------------------
class _AnchoredParams(QuantParams):
    """QuantParams plus the proposed per-band integer offset (DPCM origin / plain offset)."""

    anchors: tuple[int, ...] = ()


@pytest.fixture
def anchored(monkeypatch: pytest.MonkeyPatch) -> type[QuantParams]:
    if "anchors" in QuantParams.model_fields:
        return QuantParams
    monkeypatch.setattr(qmod, "QuantParams", _AnchoredParams)
    monkeypatch.setattr(qmod, "_HAS_ANCHORS", True)
    return _AnchoredParams


def test_anchors_keep_large_offsets_at_full_precision(anchored: type[QuantParams]) -> None:
    """With anchors a smooth LL at 1e4 needs no widening (DPCM from the first value), and a
    narrow band far from zero is coded with a plain offset."""
    world = World(arena_bytes=1 << 22)
    h, w = 32, 32
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = (np.sin(yy / 20.0) + np.cos(xx / 16.0)).astype(np.float32)
    x = np.stack([smooth + 1e4, smooth - 3e3, smooth, smooth * 0]).astype(np.float32)
    eid = _pyr_entity(world, x, levels=2)
    coef = world.view(world.get_component(eid, WaveletPyr).ref)
    bands = band_layout(h, w, 2)
    hh1 = bands[-1]
    rng = np.random.default_rng(0)
    coef[3, hh1.offset : hh1.offset + hh1.size] = 400.0 + rng.uniform(0, 5, hh1.size)
    quant = QuantizeU8(step=0.02)
    a, b, params, _ = _roundtrip(world, eid, quant)
    assert isinstance(params, anchored)
    _check_bound(a, b, params, bands)
    nb = len(bands)
    gains = synthesis_gains(h, w, "cdf53", 2)
    unit = [quant.base_step / g for g in gains]
    anchors = params.anchors  # type: ignore[attr-defined]
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
    with pytest.MonkeyPatch.context() as mp:
        if "anchors" not in QuantParams.model_fields:
            mp.setattr(qmod, "QuantParams", _AnchoredParams)
            mp.setattr(qmod, "_HAS_ANCHORS", True)
        world = World(arena_bytes=1 << 22)
        x = _latent(seed, 20, 12) + np.float32(offset)
        eid = _pyr_entity(world, x, levels=2)
        quant = QuantizeU8(step=step)
        a, b, params, sym = _roundtrip(world, eid, quant)
        _check_bound(a, b, params, sym.bands)
        data = pack_quant_params(params, 4, sym.bands, quant.base_step)
        assert unpack_quant_params(data, 4, sym.bands) == params
