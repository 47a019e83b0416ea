"""Pixel coder (encode_pixels / decode_pixels): exact and l-infinity round trips (8 and 16 bits),
every path, determinism, bases, corruption and forged geometry."""

from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaerans_ecs.errors import BitstreamError, ImageInputError, VaeransError
from vaerans_ecs.systems.residual import decode_pixels, encode_pixels
from vaerans_ecs.systems.residual.pixel import PATHS

PATH_CODES = {"predictive": 0, "palette": 1, "lz": (2, 3), "raw": 4}


def _photo(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """Smooth shading, an edge, texture and noise: what the predictive path is for."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for k in range(c):
        v = 120 + 70 * np.sin(xx / 7.0 + k) * np.cos(yy / 11.0) + 40 * (xx > 0.6 * w) + rng.normal(0, 2, (h, w))
        planes.append(v)
    return np.clip(np.stack(planes, 2), 0, 255).astype(np.uint8)


def _few_colours(h: int, w: int, c: int, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pal = rng.integers(0, 256, (k, c), dtype=np.uint8)
    return pal[rng.integers(0, k, (h, w))]


def _text(h: int, w: int) -> np.ndarray:
    """Repeated glyph-like blocks on a flat background, one channel."""
    rng = np.random.default_rng(3)
    glyphs = rng.integers(0, 2, (6, 7, 5)).astype(np.uint8) * 220
    out = np.zeros((h, w), np.uint8)
    for y in range(0, h - 7, 9):
        for x in range(0, w - 5, 6):
            out[y : y + 7, x : x + 5] = glyphs[rng.integers(0, 6)]
    return out[:, :, None]


def _roundtrip(img: np.ndarray, k: int = 0, base: np.ndarray | None = None, **kw: object) -> bytes:
    data = encode_pixels(img, max_error=k, base=base, **kw)  # type: ignore[arg-type]
    out = decode_pixels(data, *img.shape, max_error=k, base=base)
    assert out.shape == img.shape and out.dtype == np.uint8
    if k == 0:
        np.testing.assert_array_equal(out, img)
    else:
        assert int(np.abs(out.astype(np.int32) - img).max()) <= k
    return data


images = st.tuples(
    st.integers(1, 13),
    st.integers(1, 13),
    st.integers(1, 4),
    st.sampled_from(["noise", "photo", "few"]),
    st.integers(0, 2**16),
)


def _make(spec: tuple[int, int, int, str, int]) -> np.ndarray:
    h, w, c, kind, seed = spec
    if kind == "noise":
        return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)
    if kind == "photo":
        return _photo(h, w, c, seed)
    return _few_colours(h, w, c, 3, seed)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images, st.integers(0, 16), st.booleans(), st.sampled_from([PATHS, ("predictive",)]))
def test_roundtrip_bound(spec: tuple[int, int, int, str, int], k: int, with_base: bool, paths: tuple[str, ...]) -> None:
    img = _make(spec)
    base = None
    if with_base:
        noise = np.random.default_rng(spec[4] + 1).integers(-6, 7, img.shape)
        base = np.clip(img.astype(np.int32) + noise, 0, 255).astype(np.uint8)
    _roundtrip(img, k, base, paths=paths)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 1, 3), (1, 37, 3), (37, 1, 4), (2, 2, 2), (17, 9, 1), (9, 33, 3)])
@pytest.mark.parametrize("k", [0, 1, 7, 16])
def test_tiny_and_odd_sizes_predictive(shape: tuple[int, int, int], k: int) -> None:
    _roundtrip(_photo(*shape), k, paths=("predictive",))


@pytest.mark.parametrize("k", range(17))
def test_linf_bound_every_k(k: int) -> None:
    img = _photo(24, 30, 3, seed=k)
    data = _roundtrip(img, k, paths=("predictive",))
    if k:  # quantisation must actually remove information
        assert len(data) < len(encode_pixels(img, paths=("predictive",)))


@pytest.mark.parametrize(
    ("name", "img"),
    [
        ("predictive", _photo(48, 64, 3)),
        ("palette", _few_colours(40, 40, 4, 7)),
        ("lz", _text(60, 90)),
        ("raw", np.random.default_rng(5).integers(0, 256, (24, 20, 3), dtype=np.uint8)),
    ],
)
def test_each_path_roundtrips_and_is_chosen_where_it_fits(name: str, img: np.ndarray) -> None:
    data = _roundtrip(img, paths=(name,))
    codes = PATH_CODES[name]
    assert data[0] & 15 in (codes if isinstance(codes, tuple) else (codes,))
    best = _roundtrip(img)
    assert len(best) <= len(data)
    if name != "raw":  # the path made for this kind of image beats storing it raw
        assert len(data) < img.size


def test_lz_index_and_colour_bodies() -> None:
    few = np.repeat(_few_colours(20, 10, 3, 5), 4, axis=1)  # runs of one colour, 5 colours
    assert _roundtrip(few, paths=("lz",))[0] & 15 in (2, 3)
    many = np.repeat(_photo(30, 20, 3), 3, axis=1)  # >256 colours, each repeated: colour bytes body
    assert _roundtrip(many, paths=("lz",))[0] & 15 == 2


def test_compresses_smooth_and_flat_images() -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    grad = np.stack([xx * 3, yy * 3, xx + yy], 2).astype(np.uint8)
    assert len(_roundtrip(grad, paths=("predictive",))) * 8 / grad.size < 1.0
    flat = np.full((100, 150, 3), 77, np.uint8)
    assert len(_roundtrip(flat)) < 100
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert len(_roundtrip(noise)) <= noise.size + 9  # raw fallback: never more than a header over raw


def test_colour_prediction_uses_earlier_channels() -> None:
    grey = _photo(64, 64, 1, seed=2)
    rgb = np.repeat(grey, 3, axis=2)
    # three identical channels cost little more than one
    assert len(_roundtrip(rgb, paths=("predictive",))) < 1.3 * len(_roundtrip(grey, paths=("predictive",)))


def test_deterministic() -> None:
    img = _photo(33, 47, 3, seed=9)
    base = _photo(33, 47, 3, seed=10)
    for k in (0, 3):
        assert encode_pixels(img, max_error=k, base=base) == encode_pixels(img.copy(), max_error=k, base=base.copy())


def test_base_helps_when_it_is_close_and_must_match() -> None:
    img = np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    base = np.clip(img.astype(np.int32) + np.random.default_rng(2).integers(-2, 3, img.shape), 0, 255)
    base = base.astype(np.uint8)
    with_base = _roundtrip(img, base=base, paths=("predictive",))
    assert len(with_base) < 0.7 * len(encode_pixels(img, paths=("predictive",)))
    wrong = base.copy()
    wrong[10, 10, 1] ^= 1
    try:
        out = decode_pixels(with_base, *img.shape, base=wrong)
    except BitstreamError:
        pass
    else:
        np.testing.assert_array_equal(out, img)
    with pytest.raises(BitstreamError):
        decode_pixels(with_base, *img.shape)  # base missing at the decoder
    with pytest.raises(BitstreamError):
        decode_pixels(encode_pixels(img), *img.shape, base=base)  # base the encoder did not have


def _photo16(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """Smooth 16-bit shading and an edge, with noise of a few levels in the low bits."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    noise = np.random.default_rng(seed).integers(0, 8, (h, w, c))
    v = [30000 + 18000 * np.sin(xx / 9.0 + k) * np.cos(yy / 13.0) + 9000 * (xx > 0.6 * w) for k in range(c)]
    return (np.stack(v, 2) + noise).clip(0, 65535).astype(np.uint16)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 12),
    st.integers(1, 12),
    st.integers(1, 4),
    st.integers(0, 16),
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**16),
)
def test_roundtrip_16bit(h: int, w: int, c: int, k: int, noise: bool, with_base: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 65536, (h, w, c), dtype=np.uint16) if noise else _photo16(h, w, c, seed)
    base = None
    if with_base:
        base = (img.astype(np.int64) + rng.integers(-300, 301, img.shape)).clip(0, 65535).astype(np.uint16)
    data = encode_pixels(img, max_error=k, base=base)
    out = decode_pixels(data, h, w, c, bit_depth=16, max_error=k, base=base)
    assert out.dtype == np.uint16
    assert int(np.abs(out.astype(np.int64) - img).max()) <= k
    with pytest.raises(BitstreamError):
        decode_pixels(data, h, w, c, bit_depth=8, max_error=k, base=None if base is None else base.astype(np.uint8))


def test_16bit_smooth_image_is_compressed() -> None:
    img = _photo16(96, 96, 3)
    data = encode_pixels(img)
    assert data[0] & 15 == 0 and len(data) < 0.6 * img.nbytes
    np.testing.assert_array_equal(decode_pixels(data, 96, 96, 3, bit_depth=16), img)


def _stream_cases() -> list[tuple[str, np.ndarray, int, tuple[str, ...]]]:
    return [
        ("predictive", _photo(4, 5, 3, seed=4), 0, ("predictive",)),
        ("near", _photo(5, 4, 2, seed=5), 2, ("predictive",)),
        ("palette", _few_colours(5, 5, 3, 4, seed=6), 0, ("palette",)),
        ("lz", _text(16, 14), 0, ("lz",)),
        ("16bit", _photo16(4, 4, 2, seed=7), 1, ("predictive",)),
    ]


@pytest.mark.parametrize("case", _stream_cases(), ids=lambda c: c[0])
def test_every_single_byte_corruption_and_truncation(case: tuple[str, np.ndarray, int, tuple[str, ...]]) -> None:
    _, img, k, paths = case
    depth = 8 * img.dtype.itemsize
    data = encode_pixels(img, max_error=k, paths=paths)
    good = decode_pixels(data, *img.shape, bit_depth=depth, max_error=k)
    for i in range(len(data)):
        for flip in (0x01, 0xFF):
            bad = bytearray(data)
            bad[i] ^= flip
            try:
                out = decode_pixels(bytes(bad), *img.shape, bit_depth=depth, max_error=k)
            except BitstreamError:
                continue
            np.testing.assert_array_equal(out, good)  # harmless change only
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            decode_pixels(data[:n], *img.shape, bit_depth=depth, max_error=k)
    with pytest.raises(BitstreamError):
        decode_pixels(data + b"\0", *img.shape, bit_depth=depth, max_error=k)


def test_forged_sizes_fail_fast() -> None:
    img = _photo(16, 16, 3)
    data = encode_pixels(img)
    t0 = time.perf_counter()
    for h, w in ((10_000, 10_000), (16, 6_250_000), (10_000, 16)):
        with pytest.raises(BitstreamError):
            decode_pixels(data, h, w, 3)
    assert time.perf_counter() - t0 < 0.5
    for kw in ({"channels": 4}, {"max_error": 1}, {"bit_depth": 16}, {"bit_depth": 12}):
        args = {"height": 16, "width": 16, "channels": 3, **kw}
        with pytest.raises(BitstreamError):
            decode_pixels(data, **args)  # type: ignore[arg-type]


def test_forged_header_check_with_a_large_declared_size_fails_promptly() -> None:
    """Even a header whose geometry check was recomputed for ~10^6 pixels fails quickly."""
    img = _photo(16, 16, 3)
    data = bytearray(encode_pixels(img, paths=("predictive",)))
    h, w = 1000, 1000
    data[1:5] = zlib.crc32(struct.pack("<IIBBBB", h, w, 3, 8, 0, 0)).to_bytes(4, "little")
    t0 = time.perf_counter()
    with pytest.raises(BitstreamError):
        decode_pixels(bytes(data), h, w, 3)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x10", b"\x00" * 9, b"\xff" * 40, bytes([0x1F]) + b"\0" * 8, "text", None],
)
def test_garbage_raises_bitstream_error(bad: object) -> None:
    with pytest.raises(BitstreamError):
        decode_pixels(bad, 4, 4, 3)  # type: ignore[arg-type]


def test_invalid_encoder_input() -> None:
    for dtype in (np.int16, np.float32, np.uint32):
        with pytest.raises(ImageInputError):
            encode_pixels(np.zeros((4, 4, 3), dtype))
    with pytest.raises(ImageInputError):
        encode_pixels(np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageInputError):
        encode_pixels(np.zeros((4, 4, 5), np.uint8))
    for k in (-1, 17, 1.5, True):
        with pytest.raises(VaeransError):
            encode_pixels(np.zeros((4, 4, 3), np.uint8), max_error=k)  # type: ignore[arg-type]
    with pytest.raises(VaeransError):
        encode_pixels(np.zeros((4, 4, 3), np.uint8), base=np.zeros((4, 4, 1), np.uint8))
    with pytest.raises(VaeransError):
        encode_pixels(np.zeros((4, 4, 3), np.uint8), paths=("zip",))
    with pytest.raises(VaeransError):  # the palette path does not apply to 4096 colours
        encode_pixels(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8), paths=("palette",))
