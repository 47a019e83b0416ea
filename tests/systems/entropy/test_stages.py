"""ANSEncode / ANSDecode systems: pipes, configuration, registry, mismatches."""

from __future__ import annotations

import numpy as np
import pytest

from tests.systems.entropy.helpers import ALL
from vaerans_ecs.components.quant import ANSBitstream, QuantParams, SymbolsU8
from vaerans_ecs.core.system import SYSTEMS, system_from_config
from vaerans_ecs.core.world import World
from vaerans_ecs.errors import BitstreamError, RegistryError
from vaerans_ecs.systems.entropy import DEFAULT_CODER, ANSDecode, ANSEncode
from vaerans_ecs.systems.wavelet import band_layout

# ----------------------------------------------------------------------------- systems


def _spawn_symbols(world: World, seed: int, h: int = 24, w: int = 16) -> tuple[int, np.ndarray]:
    bands = band_layout(h, w, 3)
    rng = np.random.default_rng(seed)
    ref = world.alloc((4, h * w), np.uint8)
    arr = world.view(ref)
    arr[...] = np.clip(np.rint(rng.laplace(0, 2.0, arr.shape)) + 128, 0, 255)
    nb = 4 * len(bands)
    params = QuantParams(
        steps=(1.0,) * nb,
        zeros=(128,) * nb,
        dpcm=(False,) * nb,
        recon=(0.0,) * nb,
        source="WaveletPyr",
        wavelet="WaveletCDF53",
        levels=3,
    )
    eid = world.spawn(SymbolsU8(ref=ref, height=h, width=w, bands=bands), params)
    return eid, arr.copy()


@pytest.mark.parametrize("coder", ALL)
def test_systems_round_trip_through_pipe(coder: str) -> None:
    world = World(arena_bytes=1 << 22)
    eids, originals = zip(*(_spawn_symbols(world, s) for s in range(3)), strict=True)
    bits = (world.pipe(list(eids)) | ANSEncode(coder=coder)).outs(ANSBitstream)
    decoded = []
    for b in bits:
        assert b.coder == coder and b.channels == 4 and b.height == 24 and b.width == 16
        decoded.append(world.spawn(b))
    syms = (world.pipe(decoded) | ANSDecode(coder=coder)).outs(SymbolsU8)
    for sym, orig in zip(syms, originals, strict=True):
        np.testing.assert_array_equal(world.view(sym.ref), orig)
        assert sym.bands == band_layout(24, 16, 3)


def test_system_config_inverse_registry() -> None:
    enc = ANSEncode(coder="range")
    assert enc.get_config() == {"id": "ANSEncode", "coder": "range"}
    assert system_from_config(enc.get_config()) == enc
    assert enc.inverse() == ANSDecode(coder="range") and enc.inverse().inverse() == enc
    assert SYSTEMS.get("ANSEncode") is ANSEncode and SYSTEMS.get("ANSDecode") is ANSDecode
    assert ANSEncode().coder == DEFAULT_CODER == "rans-ctx"
    with pytest.raises(RegistryError):
        ANSEncode(coder="nope")


def test_decode_system_rejects_mismatch_and_corruption() -> None:
    world = World(arena_bytes=1 << 22)
    eid, _ = _spawn_symbols(world, 0)
    bits = (world.pipe(eid) | ANSEncode()).out(ANSBitstream)
    other = world.spawn(bits.model_copy(update={"coder": "zlib"}))
    with pytest.raises(BitstreamError):
        (world.pipe(other) | ANSDecode()).run()
    broken = world.spawn(bits.model_copy(update={"data": bits.data[:-2]}))
    with pytest.raises(BitstreamError):
        (world.pipe(broken) | ANSDecode()).run()
