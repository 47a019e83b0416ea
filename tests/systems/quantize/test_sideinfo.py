"""Compact side information: round trips, size, weights, and hostile bytes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.systems.quantize.helpers import FAST, latent, pyr_entity, quantized
from vaerans_ecs.components import Latent4, QuantParams, SymbolsU8
from vaerans_ecs.components.wavelet import Band
from vaerans_ecs.core.world import World
from vaerans_ecs.errors import BitstreamError, VaeransError
from vaerans_ecs.systems.quantize import QuantizeU8, pack_quant_params, unpack_quant_params
from vaerans_ecs.systems.quantize.sideinfo import BitWriter
from vaerans_ecs.systems.wavelet import band_layout


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
    x = latent(seed, h, w)
    if big:
        x[seed % 4] += 2e3
    quant = QuantizeU8(quality=quality)
    params, bands, _, _ = quantized(world, x, quant, levels)
    data = pack_quant_params(params, 4, bands, quant.base_step)
    assert unpack_quant_params(data, 4, bands) == params
    assert unpack_quant_params(data, 4, bands, height=h, width=w) == params
    assert pack_quant_params(params, 4, bands) == data  # base step derived from the steps


def test_side_info_size_on_realistic_layout() -> None:
    world = World(arena_bytes=1 << 24)
    x = latent(1, 128, 192, 2.0)
    for quality in (5, 50, 95):
        quant = QuantizeU8(quality=quality)
        params, bands, _, _ = quantized(world, x, quant)
        data = pack_quant_params(params, 4, bands, quant.base_step)
        assert len(bands) == 10
        assert len(data) <= 48, (quality, len(data))  # about 1 byte per band or less


def test_side_info_latent_source_and_weights() -> None:
    world = World(arena_bytes=1 << 22)
    x = latent(2, 10, 14)
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
    params, bands, _, _ = quantized(world, latent(3, 20, 20), quant, 2)
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
    x = latent(8, 32, 32)
    x[0] += 500.0
    quant = QuantizeU8(quality=99)
    params, bands, _, _ = quantized(world, x, quant, 2)
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
    w = BitWriter()
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
    params, bands, _, _ = quantized(world, latent(4, 16, 16), quant, 2)
    data = pack_quant_params(params, 4, bands)
    # the stream says 2 levels of cdf53: a 3-level layout does not match
    with pytest.raises(BitstreamError, match="band layout"):
        unpack_quant_params(data, 4, band_layout(16, 16, 3))
    eid = pyr_entity(world, latent(4, 16, 16), 2, "haar")
    (world.pipe(eid) | QuantizeU8(quality=50)).run()
    haar = world.get_component(eid, QuantParams)
    assert haar.wavelet == "haar" and haar.steps[:10] != params.steps[:10]
    assert unpack_quant_params(pack_quant_params(haar, 4, bands), 4, bands) == haar
    with pytest.raises(VaeransError, match="unknown wavelet"):
        pack_quant_params(params.model_copy(update={"wavelet": "db4"}), 4, bands)
    # wavelet code 5 (exp-Golomb 00110) does not exist
    bad = BitWriter()
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
