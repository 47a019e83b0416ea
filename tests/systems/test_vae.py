"""OnnxVAEEncode / OnnxVAEDecode with the synthetic models of tests/synthetic_vae.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from tests.synthetic_vae import projection_matrix, reference_roundtrip
from vaerans_ecs import runtime
from vaerans_ecs.components import ImageInfo, Latent4, ReconRGB
from vaerans_ecs.config import Config, RuntimeConfig, get_config, set_config
from vaerans_ecs.core import World, system_from_config
from vaerans_ecs.errors import ModelError
from vaerans_ecs.models import ModelSpec
from vaerans_ecs.systems import vae
from vaerans_ecs.systems.vae import (
    OnnxVAEDecode,
    OnnxVAEEncode,
    axis_windows,
    feather_weights,
    pad_indices,
    pad_mode,
)

U8 = npt.NDArray[np.uint8]
SHAPES = [(1, 1), (7, 13), (64, 64), (65, 33)]


def noise(h: int, w: int, seed: int = 0) -> U8:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def smooth_image(h: int, w: int, seed: int = 0) -> U8:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([128 + 90 * np.sin(xx / 9 + yy / 13), 128 + 80 * np.cos(yy / 7), 128 + 60 * np.sin(xx / 5)], -1)
    img += np.random.default_rng(seed).normal(0, 8, img.shape)
    out: U8 = np.clip(img, 0, 255).astype(np.uint8)
    return out


def roundtrip(model: str, images: list[U8], **opts: Any) -> tuple[list[Any], list[U8], World]:
    world = World(arena_bytes=1 << 24)
    eids = world.spawn_batch_images(images)
    pipe = world.pipe(eids) | OnnxVAEEncode(model, **opts)
    latents = [world.view(c.ref).copy() for c in pipe.outs(Latent4)]
    decoded = world.pipe(eids) | OnnxVAEDecode(model, **opts)  # a new pipe: the encoder does not run again
    recon = [world.view(c.ref).copy() for c in decoded.outs(ReconRGB)]
    return latents, recon, world


def psnr(a: U8, b: U8) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture
def config() -> Iterator[Callable[[Config], None]]:
    saved = get_config()
    yield set_config
    set_config(saved)


# -- padding and tiling geometry ----------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 9, 17])
@pytest.mark.parametrize("pad", [0, 1, 3, 7])
def test_pad_indices_match_numpy(n: int, pad: int) -> None:
    expected = np.pad(np.arange(n), (0, pad), mode=pad_mode(n, pad))  # type: ignore[call-overload]
    np.testing.assert_array_equal(pad_indices(n, pad), expected)


def test_pad_mode_fallbacks() -> None:
    assert pad_mode(13, 3) == "reflect"
    assert pad_mode(4, 4) == "symmetric"
    assert pad_mode(1, 7) == "edge"


@pytest.mark.parametrize(("n", "tile", "overlap"), [(10, 4, 1), (10, 4, 0), (3, 4, 2), (17, 5, 3), (1, 1, 1)])
def test_axis_windows_cover_and_have_equal_length(n: int, tile: int, overlap: int) -> None:
    wins = axis_windows(n, tile, overlap)
    assert [w.core_start for w in wins] == list(range(0, n, tile))
    assert wins[-1].core_stop == n
    assert len({w.stop - w.start for w in wins}) == 1
    for w in wins:
        assert 0 <= w.start <= w.core_start < w.core_stop <= w.stop <= n
        assert w.core_start - w.start >= min(overlap, w.core_start)
        assert w.stop - w.core_stop >= min(overlap, n - w.core_stop)
    weights = feather_weights(wins[0], n, 4, 8)
    assert weights.shape == ((wins[0].stop - wins[0].start) * 4,) and weights.min() > 0 and weights.max() <= 1


# -- encode / decode ------------------------------------------------------------------------------


@pytest.mark.parametrize(("h", "w"), SHAPES)
def test_shapes_and_reconstruction(synthetic_model: ModelSpec, h: int, w: int) -> None:
    img = noise(h, w)
    world = World(arena_bytes=1 << 22)
    eid = world.spawn_image(img)
    pipe = world.pipe(eid) | OnnxVAEEncode("synthetic-s8")
    lat = pipe.out(Latent4)
    assert lat.ref.shape == (4, -(-h // 8), -(-w // 8))
    info = world.get_component(eid, ImageInfo)
    assert (info.height, info.width) == (h, w)
    assert info.model == "synthetic-s8" and info.fingerprint == synthetic_model.fingerprint
    recon = world.view((pipe | OnnxVAEDecode("synthetic-s8")).out(ReconRGB).ref)
    assert recon.shape == (h, w, 3) and recon.dtype == np.uint8
    diff = np.abs(recon.astype(np.int16) - reference_roundtrip(img))
    assert diff.max() <= 1 and np.mean(diff == 0) > 0.99  # float32 vs float64 rounding ties only


@pytest.mark.parametrize(("h", "w"), [(1, 1), (2, 3), (7, 13), (65, 33), (9, 17)])
def test_padding_and_crop_are_exact(synthetic_model_s4: ModelSpec, h: int, w: int) -> None:
    # A constant image is a fixed point of the projection whatever the padding: any off-by-one in
    # padding or cropping would show up as a wrong size or wrong pixels.
    img = np.empty((h, w, 3), np.uint8)
    img[...] = (200, 30, 91)
    latents, recon, _ = roundtrip("synthetic-s4", [img])
    assert latents[0].shape == (4, -(-h // 4), -(-w // 4))
    np.testing.assert_array_equal(recon[0], img)


def test_batch_of_mixed_shapes_equals_one_by_one(synthetic_model: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    images = [noise(*shape, seed=i) for i, shape in enumerate([*SHAPES, (64, 64), (7, 13), (64, 64)])]
    calls: list[tuple[int, ...]] = []
    real = runtime.run_session

    def counting(session: Any, x: Any, **kw: Any) -> Any:
        calls.append(x.shape)
        return real(session, x, **kw)

    monkeypatch.setattr(vae, "run_session", counting)
    lat_batch, rec_batch, _ = roundtrip("synthetic-s8", images)
    assert len(calls) == 2 * 4  # one encoder and one decoder run per distinct shape
    assert (3, 3, 64, 64) in calls and (3, 4, 8, 8) in calls
    for img, lat, rec in zip(images, lat_batch, rec_batch, strict=True):
        (lat1,), (rec1,), _ = roundtrip("synthetic-s8", [img])
        np.testing.assert_array_equal(lat, lat1)
        np.testing.assert_array_equal(rec, rec1)


def test_latent_scale_shift_and_input_range(make_synthetic_model: Callable[..., ModelSpec]) -> None:
    spec = make_synthetic_model("shifted", input_range=(-1.0, 1.0), latent_shift=0.3, latent_scale=0.25)
    assert spec.input_range == (-1.0, 1.0) and spec.latent_shift == pytest.approx(0.3)
    img = noise(16, 24, seed=3)
    (lat,), (rec,), _ = roundtrip("shifted", [img])
    # z = (raw - shift) * scale where raw = W @ (x - centre) + shift and x = 2 * u8 / 255 - 1.
    x = img.astype(np.float64) / 255.0 * 2.0 - 1.0
    blocks = x.reshape(2, 8, 3, 8, 3).transpose(0, 2, 1, 3, 4).reshape(2, 3, -1)
    expected = (blocks @ projection_matrix(8).T.astype(np.float64)).transpose(2, 0, 1) * 0.25
    np.testing.assert_allclose(lat, expected, atol=1e-4)
    assert np.abs(rec.astype(np.int16) - reference_roundtrip(img)).max() <= 1


def test_decode_without_image_info_gives_the_padded_size(synthetic_model: ModelSpec) -> None:
    world = World(arena_bytes=1 << 22)
    eid = world.spawn_image(noise(7, 13))
    (world.pipe(eid) | OnnxVAEEncode("synthetic-s8")).run()
    world.remove_component(eid, ImageInfo)
    recon = (world.pipe(eid) | OnnxVAEDecode("synthetic-s8")).out(ReconRGB)
    assert recon.ref.shape == (8, 16, 3)


def test_decode_checks_model_and_size(synthetic_model: ModelSpec, synthetic_model_s4: ModelSpec) -> None:
    world = World(arena_bytes=1 << 22)
    eid = world.spawn_image(noise(20, 20))
    (world.pipe(eid) | OnnxVAEEncode("synthetic-s8")).run()
    with pytest.raises(ModelError, match="fingerprint"):
        (world.pipe(eid) | OnnxVAEDecode("synthetic-s4")).run()  # wrong decoder for this latent
    world.add_component(eid, ImageInfo(height=20, width=20, model="synthetic-s8", fingerprint="0" * 16))
    with pytest.raises(ModelError, match="fingerprint 0000000000000000"):
        (world.pipe(eid) | OnnxVAEDecode("synthetic-s8")).run()
    with pytest.raises(ModelError, match="not available here"):
        (world.pipe(eid) | OnnxVAEDecode()).run()
    (world.pipe(eid) | OnnxVAEDecode("synthetic-s8", verify_fingerprint=False)).run()
    world.add_component(eid, ImageInfo(height=40, width=20, model="synthetic-s8"))
    with pytest.raises(ModelError, match="cannot decode to the 40x20 image"):
        (world.pipe(eid) | OnnxVAEDecode("synthetic-s8")).run()


def test_default_decoder_follows_image_info(synthetic_model: ModelSpec, synthetic_model_s4: ModelSpec) -> None:
    world = World(arena_bytes=1 << 22)
    a, b = world.spawn_batch_images([noise(16, 16, 1), noise(16, 16, 2)])
    (world.pipe(a) | OnnxVAEEncode("synthetic-s8")).run()
    (world.pipe(b) | OnnxVAEEncode("synthetic-s4")).run()
    recon = (world.pipe([a, b]) | OnnxVAEDecode()).outs(ReconRGB)  # "default": each latent's own model
    for rec, seed, stride in ((recon[0], 1, 8), (recon[1], 2, 4)):
        diff = world.view(rec.ref).astype(np.int16) - reference_roundtrip(noise(16, 16, seed), stride)
        assert np.abs(diff).max() <= 1


def test_max_pixels(synthetic_model: ModelSpec, config: Callable[[Config], None]) -> None:
    world = World(arena_bytes=1 << 22)
    eid = world.spawn_image(noise(32, 32))
    (world.pipe(eid) | OnnxVAEEncode("synthetic-s8")).run()
    config(Config(runtime=RuntimeConfig(max_pixels=1000)))
    with pytest.raises(ModelError, match="max_pixels"):
        (world.pipe(eid) | OnnxVAEDecode("synthetic-s8")).run()


def test_sessions_are_shared(synthetic_model: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    roundtrip("synthetic-s8", [noise(8, 8)], threads=1)
    created: list[str] = []
    real = runtime._create

    def counting(path: str, providers: list[str], threads: int) -> Any:
        created.append(path)
        return real(path, providers, threads)

    monkeypatch.setattr(runtime, "_create", counting)
    size = runtime.session_cache_size()
    for _ in range(3):
        roundtrip("synthetic-s8", [noise(8, 8), noise(9, 9)], threads=1)
    assert created == [] and runtime.session_cache_size() == size
    roundtrip("synthetic-s8", [noise(8, 8)], threads=2)
    assert len(created) == 2  # a new thread count: one new encoder and one new decoder session


def test_config_and_inverse() -> None:
    enc = OnnxVAEEncode("synthetic-s8", tile_size=64)
    assert enc.get_config() == {"id": "OnnxVAEEncode", "model": "synthetic-s8"}
    assert system_from_config(enc.get_config()) == enc
    dec = enc.inverse()
    assert isinstance(dec, OnnxVAEDecode) and dec.get_config() == {"id": "OnnxVAEDecode", "model": "synthetic-s8"}
    assert dec.inverse() == enc
    assert system_from_config({"id": "OnnxVAEDecode"}) == OnnxVAEDecode()


# -- tiling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tile", "overlap", "stride"), [(64, 16, 8), (40, 8, 8), (48, 12, 4), (100, 30, 4)])
def test_tiled_matches_untiled(
    make_synthetic_model: Callable[..., ModelSpec], tile: int, overlap: int, stride: int
) -> None:
    # The smooth model has a receptive field across block borders, like a real VAE.
    make_synthetic_model(f"smooth-s{stride}", stride=stride, smooth=True)
    images = [smooth_image(150, 230, seed=1), smooth_image(97, 61, seed=2)]
    lat0, rec0, _ = roundtrip(f"smooth-s{stride}", images, tile_size=0)
    lat1, rec1, _ = roundtrip(f"smooth-s{stride}", images, tile_size=tile, tile_overlap=overlap)
    for a, b in zip(lat0, lat1, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)  # the context covers the encoder's receptive field
    for a, b in zip(rec0, rec1, strict=True):
        assert a.shape == b.shape
        assert psnr(a, b) > 40.0


def test_tiling_uses_the_runtime_config(
    synthetic_model: ModelSpec, config: Callable[[Config], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    config(Config(runtime=RuntimeConfig(tile_size=32, tile_overlap=8)))
    shapes: list[tuple[int, ...]] = []
    real = runtime.run_session

    def spy(session: Any, x: Any, **kw: Any) -> Any:
        shapes.append(x.shape)
        return real(session, x, **kw)

    monkeypatch.setattr(vae, "run_session", spy)
    img = noise(70, 90)
    _, (rec,), _ = roundtrip("synthetic-s8", [img])
    assert max(s[-1] * s[-2] for s in shapes if s[1] == 3) <= 48 * 48  # windows, not the whole image
    assert len(shapes) > 2
    # The model is block-local, so tiling changes nothing but float rounding ties.
    assert np.abs(rec.astype(np.int16) - reference_roundtrip(img)).max() <= 1


@pytest.mark.parametrize("input_range", [(0.0, 1.0), (-1.0, 1.0)])
@pytest.mark.parametrize("use_scratch", [False, True])
def test_to_uint8_clips_rounds_and_maps_nan_to_the_lower_bound(
    input_range: tuple[float, float], use_scratch: bool
) -> None:
    """Decoder output -> uint8: out-of-range values clip, NaN (a forged latent's) becomes black."""
    lo, hi = input_range
    spec = ModelSpec(name="m", encoder=Path("e.onnx"), decoder=Path("d.onnx"), input_range=input_range)
    y = np.array([np.nan, np.inf, -np.inf, lo - 5, hi + 5, lo, hi, lo + (hi - lo) * 0.5], np.float32)
    y = np.broadcast_to(y.reshape(1, 1, 8), (3, 2, 8)).copy()
    out = np.zeros((2, 8, 3), np.uint8)
    scratch = np.full((3, 4, 9), 7.0, np.float32) if use_scratch else None
    vae._to_uint8(y, spec, out, scratch)
    expect = np.array([0, 255, 0, 0, 255, 0, 255, 128], np.uint8)
    assert (out == expect[None, :, None]).all()
