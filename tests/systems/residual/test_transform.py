"""Transform coder (encode_transform / decode_transform): round trips, rate control, hostile input."""

from __future__ import annotations

import itertools
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaerans_ecs.errors import BitstreamError, VaeransError
from vaerans_ecs.systems.residual.transform import MIN_STEP, WAVELETS, decode_transform, encode_transform


def _image(c: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like test image: smooth gradients, an edge, a texture patch and a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 110 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    base = base + 50 * (xx > w * 0.6)
    tex = 25 * np.sin(xx * 1.7 + yy * 0.9) * ((yy > h / 2) & (xx < w / 2))
    planes = [base + tex + k * 15 * np.cos(yy / 7.0 + k) + rng.normal(0, 3, (h, w)) for k in range(c)]
    return np.clip(np.stack(planes), 0, 255).astype(np.float32)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    c=st.integers(1, 4),
    h=st.integers(1, 19),
    w=st.integers(1, 19),
    step=st.sampled_from([0.05, 0.5, 2.0, 9.0, 40.0]),
    colour=st.booleans(),
    residual=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_round_trip_any_shape(c: int, h: int, w: int, step: float, colour: bool, residual: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.normal(0, 40, (c, h, w)) if residual else rng.uniform(0, 255, (c, h, w))).astype(np.float32)
    data = encode_transform(x, step, colour=colour)
    y = decode_transform(data, c, h, w, colour=colour)
    assert y.shape == (c, h, w) and y.dtype == np.float32
    assert np.all(np.isfinite(y))
    # Each coefficient is off by at most about one (chroma-scaled) step; the transform is
    # near-orthonormal, so the RMS pixel error stays within a small multiple of the step.
    assert _rmse(x, y) <= 1.5 * step + 1e-3


@pytest.mark.parametrize(
    "shape", [(1, 1, 1), (3, 1, 1), (1, 1, 9), (3, 9, 1), (2, 3, 5), (4, 5, 3), (3, 2, 2), (1, 33, 1)]
)
def test_tiny_and_odd_sizes(shape: tuple[int, int, int]) -> None:
    x = _image(*shape, seed=1) if min(shape[1:]) > 1 else np.full(shape, 77.0, dtype=np.float32)
    for step in (0.1, 4.0):
        y = decode_transform(encode_transform(x, step), *shape)
        assert y.shape == shape
        assert _rmse(x, y) <= 1.5 * step


def test_psnr_and_size_fall_as_step_grows() -> None:
    x = _image(3, 48, 72)
    steps = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    sizes, psnrs = [], []
    for s in steps:
        data = encode_transform(x, s)
        y = np.clip(np.rint(decode_transform(data, 3, 48, 72)), 0, 255)
        sizes.append(len(data))
        psnrs.append(_psnr(x, y))
    assert all(a > b for a, b in itertools.pairwise(psnrs)), psnrs
    assert all(a > b for a, b in itertools.pairwise(sizes)), sizes
    assert psnrs[0] > 50 and psnrs[0] - psnrs[-1] > 15


def test_fine_step_is_near_exact_and_uses_escapes() -> None:
    x = _image(3, 24, 40, seed=3)
    y = decode_transform(encode_transform(x, MIN_STEP), 3, 24, 40)
    assert float(np.max(np.abs(x - y))) < 0.1


def test_deterministic_bytes() -> None:
    x = _image(3, 40, 56, seed=5)
    assert encode_transform(x, 3.0) == encode_transform(x.copy(), 3.0)


def test_zero_planes_cost_little_and_decode_to_zero() -> None:
    x = np.zeros((3, 64, 64), dtype=np.float32)
    data = encode_transform(x, 2.0)
    assert len(data) < 64
    assert np.array_equal(decode_transform(data, 3, 64, 64), x)


def test_colour_transform_helps_on_correlated_rgb() -> None:
    x = _image(1, 64, 64, seed=7)
    rgb = np.concatenate([x, x * 0.9 + 10, x * 0.8 + 20]).astype(np.float32)
    with_colour = encode_transform(rgb, 2.0, colour=True)
    without = encode_transform(rgb, 2.0, colour=False)
    assert len(with_colour) < 0.8 * len(without)
    assert _psnr(rgb, decode_transform(with_colour, 3, 64, 64, colour=True)) > 40


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_every_wavelet_round_trips(wavelet: str) -> None:
    x = _image(3, 21, 34, seed=2)
    y = decode_transform(encode_transform(x, 1.0, wavelet=wavelet), 3, 21, 34)
    assert _rmse(x, y) < 1.0


def _text_like(h: int, w: int) -> np.ndarray:
    """Black glyph-like strokes on white: flat areas and sharp edges."""
    rng = np.random.default_rng(4)
    img = np.full((h, w), 250.0, dtype=np.float32)
    for _ in range(60):
        y, x = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
        if rng.random() < 0.5:
            img[y : y + 7, x : x + 1] = 10
        else:
            img[y : y + 1, x : x + 6] = 10
    return img[None]


def test_synthetic_planes_choose_the_cheapest_wavelet() -> None:
    x = _text_like(48, 64)
    step = 6.0

    def cost(data: bytes) -> float:
        err = decode_transform(data, 1, 48, 64) - x
        return float(np.sum(err.astype(np.float64) ** 2)) + 0.1 * step**2 * 8 * len(data)

    auto = cost(encode_transform(x, step))
    forced = [cost(encode_transform(x, step, wavelet=name)) for name in WAVELETS]
    assert auto == pytest.approx(min(forced))
    assert min(forced) < forced[0]  # on text, 9/7 is not the best


def _mixed(h: int, w: int) -> np.ndarray:
    """Text-like strokes on the left, a smooth noisy photo-like area on the right."""
    text = _text_like(h, w // 2)[0]
    photo = _image(1, h, w - w // 2, seed=6)[0]
    return np.concatenate([text, photo], axis=1)[None].astype(np.float32)


def test_tiles_round_trip_and_are_chosen_only_when_cheaper() -> None:
    x = _mixed(72, 300)
    step = 5.0

    def cost(data: bytes) -> float:
        err = decode_transform(data, 1, 72, 300) - x
        return float(np.sum(err.astype(np.float64) ** 2)) + 0.1 * step**2 * 8 * len(data)

    tiled = encode_transform(x, step, tiles=True)
    assert tiled != encode_transform(x, step, tiles=False)
    assert _rmse(x, decode_transform(tiled, 1, 72, 300)) < step
    options = [cost(tiled)] + [cost(encode_transform(x, step, wavelet=n, tiles=False)) for n in WAVELETS]
    assert cost(encode_transform(x, step)) == pytest.approx(min(options))


@pytest.mark.parametrize(("c", "h", "w"), [(3, 130, 20), (1, 1, 300), (4, 129, 129)])
def test_tiled_streams_of_any_shape(c: int, h: int, w: int) -> None:
    x = _image(c, h, w, seed=8) if min(h, w) > 1 else np.full((c, h, w), 99.0, dtype=np.float32)
    data = encode_transform(x, 2.0, tiles=True)
    assert _rmse(x, decode_transform(data, c, h, w)) <= 1.5 * 2.0
    with pytest.raises(BitstreamError):
        decode_transform(data, c, h, w + 1)


def test_tiled_stream_corruption_and_truncation_are_caught() -> None:
    x = _mixed(20, 140)
    data = encode_transform(x, 4.0, tiles=True)
    ref = decode_transform(data, 1, 20, 140)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x41
        try:
            out = decode_transform(bytes(bad), 1, 20, 140)
        except BitstreamError:
            continue
        assert np.array_equal(out, ref)
    for n in range(0, len(data), 3):
        with pytest.raises(BitstreamError):
            decode_transform(data[:n], 1, 20, 140)


def test_rdo_trades_rate_for_distortion() -> None:
    x = _image(3, 64, 64, seed=9)
    plain = encode_transform(x, 4.0, rdo=0.0)
    rdo = encode_transform(x, 4.0, rdo=0.3)
    assert len(rdo) < len(plain)
    assert _psnr(x, decode_transform(rdo, 3, 64, 64)) > 30


@pytest.mark.parametrize(
    "kwargs",
    [
        {"step": 0.0},
        {"step": float("nan")},
        {"step": 1e6},
        {"levels": -1},
        {"chroma": 0.0},
        {"rdo": -1.0},
        {"wavelet": "db4"},
    ],
)
def test_bad_encoder_arguments(kwargs: dict[str, object]) -> None:
    x = _image(3, 8, 8)
    args = {"step": 1.0, **kwargs}
    step = args.pop("step")
    with pytest.raises(VaeransError):
        encode_transform(x, step, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", [np.zeros((5, 4, 4)), np.zeros((4, 4)), np.full((1, 4, 4), np.inf), np.full((1, 2, 2), 1e5)]
)
def test_bad_planes(bad: np.ndarray) -> None:
    with pytest.raises(VaeransError):
        encode_transform(bad.astype(np.float32), 1.0)


def test_every_single_byte_change_and_truncation_is_caught() -> None:
    x = _image(3, 12, 20, seed=11)
    data = encode_transform(x, 3.0)
    ref = decode_transform(data, 3, 12, 20)
    for i in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[i] ^= flip
            try:
                out = decode_transform(bytes(bad), 3, 12, 20)
            except BitstreamError:
                continue
            assert np.array_equal(out, ref)
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            decode_transform(data[:n], 3, 12, 20)
    with pytest.raises(BitstreamError):
        decode_transform(data + b"\0", 3, 12, 20)


@pytest.mark.parametrize(
    "geometry", [(3, 12, 21), (3, 13, 20), (4, 12, 20), (1, 12, 20), (3, 12, 20, False), (3, 10_000, 10_000)]
)
def test_wrong_geometry_is_rejected(geometry: tuple[int, ...]) -> None:
    data = encode_transform(_image(3, 12, 20), 3.0)
    c, h, w, *rest = geometry
    with pytest.raises(BitstreamError):
        decode_transform(data, c, h, w, colour=bool(rest[0]) if rest else True)


def test_forged_huge_size_fails_fast_without_big_allocations() -> None:
    data = encode_transform(_image(3, 16, 16), 2.0)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(BitstreamError):
            decode_transform(data, 3, 10_000, 10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 0.5
    assert peak < 1 << 20


@pytest.mark.parametrize("bad", [b"", b"\x01", "text", None, 3])
def test_junk_and_wrong_types(bad: object) -> None:
    with pytest.raises(BitstreamError):
        decode_transform(bad, 3, 4, 4)  # type: ignore[arg-type]


@pytest.mark.parametrize("dims", [(0, 4, 4), (5, 4, 4), (3, 0, 4), (3, 4, -1), (True, 4, 4)])
def test_invalid_declared_dims(dims: tuple[int, int, int]) -> None:
    data = encode_transform(_image(3, 4, 4), 3.0)
    with pytest.raises(BitstreamError):
        decode_transform(data, *dims)
