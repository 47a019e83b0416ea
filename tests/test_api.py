"""compress()/decompress(): sizes, quality monotonicity, rate control, batches, the fluent form."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import vaerans_ecs
from vaerans_ecs.api import entity_to_bytes, inspect, symbols_of
from vaerans_ecs.components import ANSBitstream
from vaerans_ecs.core import World
from vaerans_ecs.errors import ModelError, VaeransError
from vaerans_ecs.models import ModelSpec
from vaerans_ecs.systems import ANSEncode, Hadamard4, OnnxVAEEncode, WaveletCDF53


def natural(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth image with some texture (compresses like a photo, not like noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 90 * np.sin(x / 9 + c) * np.cos(y / 13 - c) for c in range(3)], axis=-1)
    return np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-12))


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (64, 64), (768, 512), (1070, 1080)])
def test_roundtrip_shapes(synthetic_model: ModelSpec, shape: tuple[int, int]) -> None:
    img = natural(*shape)
    data = vaerans_ecs.compress(img, quality=60, model=synthetic_model.name)
    out = vaerans_ecs.decompress(data)
    assert out.shape == img.shape and out.dtype == np.uint8
    if min(shape) >= 64:
        assert psnr(out, img) > 20


def test_psnr_rises_with_quality(synthetic_model: ModelSpec) -> None:
    img = natural(96, 128, seed=3)
    results = []
    for q in (1, 20, 40, 60, 80, 100):
        data = vaerans_ecs.compress(img, quality=q, model=synthetic_model.name)
        results.append((len(data), psnr(vaerans_ecs.decompress(data), img)))
    sizes, psnrs = zip(*results, strict=True)
    assert list(sizes) == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert all(b > a for a, b in itertools.pairwise(psnrs)), psnrs


@pytest.mark.parametrize("target", [0.1, 0.3])
def test_target_bpp_within_5_percent(synthetic_model: ModelSpec, target: float) -> None:
    img = natural(128, 128, seed=5)
    data = vaerans_ecs.compress(img, target_bpp=target, model=synthetic_model.name)
    bpp = len(data) * 8 / img.shape[0] / img.shape[1]
    assert abs(bpp - target) <= 0.05 * target, bpp
    assert vaerans_ecs.decompress(data).shape == img.shape


def test_unreachable_target_gives_nearest(synthetic_model: ModelSpec, caplog: pytest.LogCaptureFixture) -> None:
    img = np.full((32, 32, 3), 128, np.uint8)
    data = vaerans_ecs.compress(img, target_bpp=50.0, model=synthetic_model.name)
    assert "not reachable" in caplog.text
    assert vaerans_ecs.decompress(data).shape == img.shape


def test_batch_equals_single(synthetic_model: ModelSpec) -> None:
    imgs = [natural(40, 48, seed=i) for i in range(3)] + [natural(33, 17, seed=9)]
    batch = vaerans_ecs.compress_batch(imgs, quality=50, model=synthetic_model.name)
    single = [vaerans_ecs.compress(img, quality=50, model=synthetic_model.name) for img in imgs]
    assert batch == single
    outs = vaerans_ecs.decompress_batch(batch)
    for out, data in zip(outs, single, strict=True):
        np.testing.assert_array_equal(out, vaerans_ecs.decompress(data))


def test_options_and_inspect(synthetic_model: ModelSpec) -> None:
    img = natural(64, 80)
    for wavelet in ("cdf53", "haar", "none"):
        for coder in ("rans", "range"):
            data = vaerans_ecs.compress(img, 50, synthetic_model.name, wavelet=wavelet, coder=coder, levels=2)
            assert psnr(vaerans_ecs.decompress(data), img) > 20
    info = inspect(data)
    assert (info.height, info.width) == (64, 80)
    assert [s.name for s in info.pipeline] == ["OnnxVAEEncode", "Hadamard4", "QuantizeU8", "ANSEncode"]
    assert info.fingerprint == synthetic_model.fingerprint
    assert info.total_bytes == len(data) and info.bpp == pytest.approx(len(data) * 8 / (64 * 80))
    assert symbols_of(data).shape == (4, 8 * 10)
    with pytest.raises(VaeransError, match="wavelet"):
        vaerans_ecs.compress(img, model=synthetic_model.name, wavelet="db4")
    with pytest.raises(VaeransError, match="quality"):
        vaerans_ecs.compress(img, quality=0, model=synthetic_model.name)


def test_fluent_line_from_the_brief(synthetic_model: ModelSpec) -> None:
    """`world.pipe(e) | OnnxVAEEncode() | Hadamard4() | ANSEncode()` gives a decodable stream.

    ANSEncode needs quantized symbols; the Pipe bridges the gap with the registered default
    QuantizeU8() (quality 75) and logs that it did.
    """
    img = natural(64, 64)
    world = World()
    e = world.spawn_image(img)
    bits = (world.pipe(e) | OnnxVAEEncode(synthetic_model.name) | Hadamard4() | ANSEncode()).out(ANSBitstream)
    assert bits.data
    data = entity_to_bytes(world, e)
    assert psnr(vaerans_ecs.decompress(data), img) > 20
    # and the full chain with a wavelet, as documented
    e2 = world.spawn_image(img)
    (world.pipe(e2) | OnnxVAEEncode(synthetic_model.name) | Hadamard4() | WaveletCDF53() | ANSEncode()).run()
    assert vaerans_ecs.decompress(entity_to_bytes(world, e2)).shape == img.shape


def test_fluent_line_with_default_model() -> None:
    """The literal line with the built-in default model, exactly as written in the brief."""
    img = natural(48, 64)
    world = World()
    e = world.spawn_image(img)
    (world.pipe(e) | OnnxVAEEncode() | Hadamard4() | ANSEncode()).run()
    data = entity_to_bytes(world, e)
    assert inspect(data).pipeline[0].get_config()["model"] != "default"  # resolved name is stored
    assert vaerans_ecs.decompress(data).shape == img.shape


def test_fingerprint_mismatch_is_refused(make_synthetic_model: object, synthetic_model: ModelSpec) -> None:
    from collections.abc import Callable

    assert callable(make_synthetic_model)
    make: Callable[..., ModelSpec] = make_synthetic_model
    make("fp-test", stride=8)
    data = vaerans_ecs.compress(natural(32, 32), model="fp-test")
    make("fp-test", stride=8, latent_shift=0.25)  # same name, different decoder weights
    with pytest.raises(ModelError, match="fingerprint"):
        vaerans_ecs.decompress(data)
