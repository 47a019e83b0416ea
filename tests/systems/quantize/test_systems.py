"""QuantizeU8 / Dequantize systems: sources, pipes, batches, configuration and registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pytest

from tests.systems.quantize.helpers import check_bound, latent, pyr_entity, roundtrip
from vaerans_ecs.components import YUVW4, Component, Latent4, QuantParams, SymbolsU8, WaveletPyr
from vaerans_ecs.components.wavelet import Band
from vaerans_ecs.core.system import BRIDGES, SYSTEMS, System, system_from_config
from vaerans_ecs.core.world import World
from vaerans_ecs.errors import ConfigError, VaeransError
from vaerans_ecs.systems.quantize import Dequantize, QuantizeU8, kernels
from vaerans_ecs.systems.wavelet import band_layout, wavelet_forward


# ----------------------------------------------------------------------------------------------
# sources, pipes, batches
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [YUVW4, Latent4])
def test_latent_sources_roundtrip(kind: type[YUVW4] | type[Latent4]) -> None:
    world = World(arena_bytes=1 << 22)
    x = latent(9, 12, 20, 2.0)
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
    check_bound(x.reshape(4, -1), y.reshape(4, -1), params, sym.bands)
    assert all(step >= quant.base_step * (1 - 1e-9) for step in params.steps)


def test_pipe_use_selects_yuvw4_over_pyramid() -> None:
    world = World(arena_bytes=1 << 22)
    x = latent(3, 16, 16)
    eid = pyr_entity(world, x, levels=2)
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
    check_bound(
        x.reshape(4, -1),
        world.view(out.ref).reshape(4, -1),
        world.get_component(eid, QuantParams),
        world.get_component(eid, SymbolsU8).bands,
    )
    # by default the pyramid is preferred
    assert (world.pipe(eid) | QuantizeU8()).out(QuantParams).source == "WaveletPyr"


def test_dequantize_target_mismatch_and_bad_params() -> None:
    world = World(arena_bytes=1 << 22)
    eid = world.spawn(YUVW4(ref=world.arena.copy_in(latent(0, 4, 4))))
    (world.pipe(eid) | QuantizeU8()).run()
    with pytest.raises(VaeransError, match="quantized from YUVW4"):
        (world.pipe(eid) | Dequantize("WaveletPyr")).run()
    params = world.get_component(eid, QuantParams)
    world.add_component(eid, params.model_copy(update={"steps": params.steps * 2}))
    with pytest.raises(VaeransError):
        Dequantize().run(world, [eid])


def test_batch_equals_single_runs_and_mixed_sources() -> None:
    world = World(arena_bytes=1 << 23)
    xs = [latent(s, 24, 16, 1.0 + s) for s in range(3)]
    eids = [pyr_entity(world, x) for x in xs]
    eids.append(world.spawn(Latent4(ref=world.arena.copy_in(xs[0]))))
    eids.append(pyr_entity(world, latent(9, 10, 30), levels=1))
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
    eids = [pyr_entity(world, latent(s, 16, 16, 3.0), levels=2) for s in range(3)]
    QuantizeU8(quality=90).run(world, eids)
    whole = [world.view(world.get_component(e, SymbolsU8).ref).copy() for e in eids]
    params = [world.get_component(e, QuantParams) for e in eids]
    Dequantize().run(world, eids)
    rec = [world.view(world.get_component(e, WaveletPyr).ref).copy() for e in eids]
    monkeypatch.setattr(kernels, "ROW_CHUNK", 600)  # 2 rows of 256 coefficients per chunk
    eids2 = [pyr_entity(world, latent(s, 16, 16, 3.0), levels=2) for s in range(3)]
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
    a, b, params, _ = roundtrip(world, eid, QuantizeU8(step=0.5))
    check_bound(a, b, params, bands)


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
    eid = pyr_entity(world, latent(0, 16, 16), levels=2)
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
