"""Concurrency and resource exhaustion: the API keeps working and gives the same results.

* 8 threads x 10 round trips (compress + decompress + inspect + symbols_of) with the synthetic
  model give byte-identical streams and identical images to a sequential run, including the
  first use of the onnxruntime sessions from several threads at once.
* An arena exhausted mid-pipeline (tiny ``[arena]`` capacity) raises ArenaExhaustedError and
  leaves the API usable: later calls, with the tiny or the normal configuration, give the same
  results as calls made before the failure.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from vaerans_ecs import api
from vaerans_ecs.config import ArenaConfig, Config, RuntimeConfig, get_config, set_config
from vaerans_ecs.errors import ArenaExhaustedError, VaeransError
from vaerans_ecs.models import ModelSpec
from vaerans_ecs.runtime import clear_session_cache

THREADS = 8
ROUNDS = 10
WAVELETS = ("cdf53", "haar", "none")
CODERS = ("rans", "range", "zlib")


def _image(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 90 * np.sin(x / (4 + c) + seed) * np.cos(y / 7 - c) for c in range(3)], axis=-1)
    return np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def config() -> Iterator[None]:
    saved = get_config()
    set_config(Config(runtime=RuntimeConfig(intra_op_threads=1)))
    yield
    set_config(saved)


def _job(thread: int, rnd: int) -> tuple[np.ndarray, float, str, str]:
    k = thread * ROUNDS + rnd
    size = (8 + (k * 7) % 41, 8 + (k * 13) % 37)  # 8..48 x 8..44, many distinct shapes
    return _image(*size, seed=k), 20.0 + (k * 11) % 80, WAVELETS[k % 3], CODERS[(k // 3) % 3]


def _round_trip(model: str, thread: int, rnd: int) -> tuple[bytes, np.ndarray, np.ndarray, int]:
    img, quality, wavelet, coder = _job(thread, rnd)
    data = api.compress(img, quality, model=model, wavelet=wavelet, coder=coder)
    out = api.decompress(data)
    info = api.inspect(data)
    return data, out, api.symbols_of(data), info.height * info.width


def test_threads_match_sequential(synthetic_model: ModelSpec, config: None) -> None:
    model = synthetic_model.name
    expected = {(t, r): _round_trip(model, t, r) for t in range(THREADS) for r in range(ROUNDS)}
    clear_session_cache()  # the threads race to create the sessions again
    barrier = threading.Barrier(THREADS)
    errors: list[str] = []

    def worker(t: int) -> dict[tuple[int, int], tuple[bytes, np.ndarray, np.ndarray, int]]:
        barrier.wait()
        got = {}
        try:
            for r in range(ROUNDS):
                got[(t, r)] = _round_trip(model, t, r)
        except Exception:
            errors.append(traceback.format_exc())
        return got

    with ThreadPoolExecutor(THREADS) as pool:
        results = {}
        for part in pool.map(worker, range(THREADS)):
            results.update(part)
    assert not errors, errors[0]
    assert results.keys() == expected.keys()
    for key, (data, out, sym, pixels) in results.items():
        e_data, e_out, e_sym, e_pixels = expected[key]
        assert data == e_data, f"thread/round {key}: stream differs"
        np.testing.assert_array_equal(out, e_out)
        np.testing.assert_array_equal(sym, e_sym)
        assert pixels == e_pixels


def test_threads_batch_calls(synthetic_model: ModelSpec, config: None) -> None:
    """compress_batch / decompress_batch from several threads, mixed sizes (batched VAE passes)."""
    model = synthetic_model.name
    images = [_image(24, 40, s) for s in range(4)] + [_image(17, 9, s) for s in range(3)]
    expected = api.compress_batch(images, 60, model=model)
    expected_out = api.decompress_batch(expected)

    def work(_: int) -> tuple[list[bytes], list[np.ndarray]]:
        streams = api.compress_batch(images, 60, model=model)
        return streams, api.decompress_batch(streams)

    with ThreadPoolExecutor(4) as pool:
        for streams, outs in pool.map(work, range(8)):
            assert streams == expected
            for a, b in zip(outs, expected_out, strict=True):
                np.testing.assert_array_equal(a, b)


# -- arena exhaustion ----------------------------------------------------------------------------


def test_arena_exhaustion_leaves_the_api_usable(synthetic_model: ModelSpec) -> None:
    model = synthetic_model.name
    saved = get_config()
    tiny = Config(arena=ArenaConfig(capacity_mb=1, max_capacity_mb=1), runtime=RuntimeConfig(intra_op_threads=1))
    normal = Config(runtime=RuntimeConfig(intra_op_threads=1))
    big = _image(560, 560, 1)  # 0.9 MiB: fits the 1 MiB arena, its pipeline tensors do not
    small = _image(40, 56, 2)
    try:
        set_config(normal)
        big_data = api.compress(big, 50, model=model)
        big_out = api.decompress(big_data)
        small_data = api.compress(small, 50, model=model)
        small_out = api.decompress(small_data)

        set_config(tiny)
        with pytest.raises(ArenaExhaustedError, match="max_capacity") as info:
            api.compress(big, 50, model=model)
        assert isinstance(info.value, VaeransError) and isinstance(info.value, MemoryError)
        assert any(frame.name == "run" for frame in traceback.extract_tb(info.value.__traceback__)), (
            "expected the arena to run out inside a system, mid-pipeline"
        )
        with pytest.raises(ArenaExhaustedError):
            api.decompress(big_data)  # the decoded image alone nearly fills it
        with pytest.raises(ArenaExhaustedError):
            api.decompress_batch([small_data, big_data])
        # Same tiny configuration, small work: fine and identical.
        assert api.compress(small, 50, model=model) == small_data
        np.testing.assert_array_equal(api.decompress(small_data), small_out)

        set_config(normal)
        assert api.compress(big, 50, model=model) == big_data
        np.testing.assert_array_equal(api.decompress(big_data), big_out)
        assert api.compress_batch([small, big], 50, model=model) == [small_data, big_data]
    finally:
        set_config(saved)
