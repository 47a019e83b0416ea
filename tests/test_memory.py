"""Bounded memory for large images: zero-copy input and output, and tiled VAE passes without
whole-image float buffers.

The memory checks use ``tracemalloc``, which sees numpy's allocations but not onnxruntime's nor
the arena's chunks reserved before the measurement, so they are deterministic and measure just
the Python-side temporaries of the systems (no timing, no RSS).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from vaerans_ecs import api
from vaerans_ecs.components import RGB, Latent4, ReconRGB
from vaerans_ecs.config import Config, RuntimeConfig, get_config, set_config
from vaerans_ecs.core import World
from vaerans_ecs.core.arena import Arena
from vaerans_ecs.errors import StaleReferenceError, VaeransError
from vaerans_ecs.models import ModelSpec
from vaerans_ecs.systems.vae import OnnxVAEDecode, OnnxVAEEncode, axis_windows, blend_weights

U8 = npt.NDArray[np.uint8]


def smooth(h: int, w: int, seed: int = 0) -> U8:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 90 * np.sin(xx / 9 + yy / 13), 128 + 80 * np.cos(yy / 7), 128 + 60 * np.sin(xx / 5)], -1)
    img += np.random.default_rng(seed).normal(0, 8, img.shape).astype(np.float32)
    out: U8 = np.clip(img, 0, 255).astype(np.uint8)
    return out


@pytest.fixture
def runtime_config() -> Iterator[Callable[..., None]]:
    saved = get_config()

    def apply(**runtime: int) -> None:
        set_config(Config(runtime=RuntimeConfig(**runtime)))

    yield apply
    set_config(saved)


def traced_peak(fn: Callable[[], object]) -> int:
    """Peak bytes allocated (tracemalloc) while ``fn`` runs, above what was allocated before."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


# -- arena: adopted and dedicated buffers ---------------------------------------------------------


def test_adopt_is_zero_copy_read_only_and_released_by_reset() -> None:
    arena = Arena(1 << 16)
    img = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    ref = arena.adopt(img)
    view = arena.view(ref)
    assert arena.is_external(ref) and np.shares_memory(view, img)
    assert arena.bytes_used == 0  # not the arena's memory
    with pytest.raises(ValueError):
        view[0, 0, 0, 0] = 1  # a caller's buffer is never written through the arena
    assert img.flags.writeable  # ... and the caller's own array is left as it was
    sub = arena.view(arena.subref(ref, 1))
    np.testing.assert_array_equal(sub, img[1])
    plain = arena.alloc_tensor((3,), np.float32)
    assert not arena.is_external(plain)
    arena.reset()
    with pytest.raises(StaleReferenceError):
        arena.view(ref)
    with pytest.raises(VaeransError, match="C-contiguous"):
        arena.adopt(img[:, :, ::2])


def test_alloc_dedicated_is_writable_and_outlives_reset() -> None:
    arena = Arena(1 << 16)
    ref = arena.alloc_dedicated((6, 7, 3), np.uint8)
    view = arena.view(ref)
    view[...] = 9
    arena.reset()
    assert int(view.sum()) == 9 * view.size  # the buffer lives on in the views handed out


def test_spawn_without_copy_references_the_image() -> None:
    imgs = [smooth(24, 40, 1), smooth(24, 40, 2), smooth(17, 9, 3)]
    world = World(arena_bytes=1 << 20)
    eids = world.spawn_batch_images(imgs, copy=False)
    for eid, img in zip(eids, imgs, strict=True):
        assert np.shares_memory(world.view(world.get_component(eid, RGB).ref), img)
    copied = world.spawn_image(imgs[0])
    assert not np.shares_memory(world.view(world.get_component(copied, RGB).ref), imgs[0])
    strided = np.ascontiguousarray(np.repeat(imgs[0], 2, axis=1))[:, ::2]  # not contiguous: copied
    eid = world.spawn_image(strided, copy=False)
    np.testing.assert_array_equal(world.view(world.get_component(eid, RGB).ref), imgs[0])


def test_compress_reads_large_images_in_place_with_the_same_stream(
    synthetic_model: ModelSpec, runtime_config: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime_config(tile_size=32, tile_overlap=8)  # 40x56 > 32**2 pixels: tiled, so read in place
    adopted: list[npt.NDArray[np.generic]] = []
    real = Arena.adopt

    def spy(self: Arena, array: npt.NDArray[np.generic], **kw: bool) -> Any:
        adopted.append(array)
        return real(self, array, **kw)

    monkeypatch.setattr(Arena, "adopt", spy)
    img, small = smooth(40, 56), smooth(30, 30, 1)
    before = img.copy()
    streams = api.compress_batch([img, small, img], 60, model=synthetic_model.name)
    assert len(adopted) == 2 and all(np.shares_memory(a, img) for a in adopted)  # `small` was copied
    np.testing.assert_array_equal(img, before)
    assert img.flags.writeable
    world = World(arena_bytes=1 << 22)  # the former path: copies in the arena
    eids = world.spawn_batch_images([img, small, img])
    assert api.encode_entities(world, eids, quality=60, model=synthetic_model.name) == streams
    assert streams[0] == streams[2] == api.compress(img, 60, model=synthetic_model.name)


# -- tiled VAE passes -----------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "tile", "overlap"), [(37, 8, 2), (64, 16, 4), (10, 3, 5), (5, 8, 2)])
def test_blend_weights_sum_to_one(n: int, tile: int, overlap: int) -> None:
    stride = 4
    windows = axis_windows(n, tile, overlap)
    total = np.zeros(n * stride, dtype=np.float64)
    for win, wgt in zip(windows, blend_weights(windows, n, stride, 2 * overlap * stride), strict=True):
        assert wgt.dtype == np.float32 and wgt.shape == ((win.stop - win.start) * stride,)
        total[win.start * stride : win.stop * stride] += wgt
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_tiled_passes_hold_no_whole_image_float_buffers(
    synthetic_model_s4: ModelSpec, runtime_config: Callable[..., None]
) -> None:
    """Temporaries of a tiled encode stay under half its latent, of a decode under one float strip."""
    runtime_config(tile_size=96, tile_overlap=8)  # windows of 96 + 2 x 8 = 112 pixels
    encode, decode = OnnxVAEEncode(synthetic_model_s4.name), OnnxVAEDecode(synthetic_model_s4.name)
    warm = World(arena_bytes=1 << 20)
    eid = warm.spawn_image(smooth(100, 100))
    encode.run(warm, [eid])  # sessions and caches, outside the measurement
    decode.run(warm, [eid])
    h, w = 384, 2048
    world = World(arena_bytes=64 << 20)  # reserved before tracemalloc starts: not counted
    eid = world.spawn_image(smooth(h, w))
    enc_peak = traced_peak(lambda: encode.run(world, [eid]))
    dec_peak = traced_peak(lambda: decode.run(world, [eid]))
    # Encoder: per-window float input only; a whole-latent temporary alone would be latent_bytes.
    latent_bytes = world.get_component(eid, Latent4).ref.nbytes
    assert enc_peak < latent_bytes // 2, (enc_peak, latent_bytes)
    # Decoder: its uint8 output (a buffer of its own, so traced) plus less than one float strip
    # of a window's height across the whole width; the whole float image would be 3.4 strips.
    strip = 3 * 112 * w * 4
    out_bytes = h * w * 3
    assert dec_peak - out_bytes < strip, (dec_peak - out_bytes, strip)
    assert world.view(world.get_component(eid, ReconRGB).ref).shape == (h, w, 3)


def test_decompress_returns_a_tiled_image_without_copying(
    synthetic_model: ModelSpec, runtime_config: Callable[..., None]
) -> None:
    runtime_config(tile_size=32, tile_overlap=8)
    img = smooth(90, 150)
    data = api.compress(img, 80, model=synthetic_model.name)
    out = api.decompress(data)
    assert out.shape == img.shape and out.dtype == np.uint8 and out.flags.writeable
    again = api.decompress(data)
    np.testing.assert_array_equal(out, again)  # deterministic
    assert not np.shares_memory(out, again)
    out[...] = 0  # the caller owns it
    np.testing.assert_array_equal(api.decompress(data), again)
