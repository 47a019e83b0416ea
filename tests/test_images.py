"""Every kind of image: PIL modes, dtypes, odd shapes and sizes.

Each input either compresses by the rules of :mod:`vaerans_ecs.imaging` (the lossy VAE view
``to_rgb_uint8`` checked exactly) and decodes to the source's size and layout (gray stays one
channel, alpha stays, a lossless round trip is exact, 16 bits included), or fails with a clear
:class:`ImageInputError` (a VaeransError); none crashes.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.imaging.pngfiles import declared_only, png16, ramp16
from tests.synthetic_vae import reference_roundtrip
from vaerans_ecs import api
from vaerans_ecs.config import Config, RuntimeConfig, get_config, set_config
from vaerans_ecs.encoder import to_8bit
from vaerans_ecs.errors import ImageInputError, VaeransError
from vaerans_ecs.imaging import load_source, to_rgb_uint8
from vaerans_ecs.models import ModelSpec

U8 = np.ndarray


def smooth(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Float64 pattern in [0, 1] varying slowly (the synthetic model keeps it well)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = [0.5 + 0.4 * np.sin(x / (23 + 5 * c) + seed + c) * np.cos(y / (19 + 3 * c) - c) for c in range(channels)]
    return np.stack(planes, axis=-1)


def gray_rgb(v: np.ndarray) -> np.ndarray:
    return np.repeat(v[:, :, None], 3, axis=2).astype(np.uint8)


def u8(f: np.ndarray) -> np.ndarray:
    return np.rint(f * 255).astype(np.uint8)


def blocks(h: int, w: int) -> np.ndarray:
    """A bool pattern of 8x8 blocks (what a 1-bit image looks like to a stride-8 model)."""
    y, x = np.mgrid[0:h, 0:w]
    return ((y // 16 + x // 24) % 2).astype(bool)


# -- accepted inputs: (builder -> (input, expected HxWx3 uint8), mean-abs-error tolerance) ----------


def _pil_l() -> tuple[Any, U8]:
    v = u8(smooth(40, 56, 1)[:, :, 0])
    return Image.fromarray(v), gray_rgb(v)


def _pil_la() -> tuple[Any, U8]:
    v = u8(smooth(40, 56, 2))
    img = Image.fromarray(v[:, :, 0]).convert("LA")
    img.putalpha(Image.fromarray(v[:, :, 1]))
    return img, gray_rgb(v[:, :, 0])


def _pil_p() -> tuple[Any, U8]:
    rgb = u8(smooth(40, 56))
    img = Image.fromarray(rgb).quantize(colors=64)
    return img, np.asarray(img.convert("RGB"))


def _pil_p_from_png() -> tuple[Any, U8]:
    rgb = u8(smooth(33, 47))
    buf = io.BytesIO()
    pal = Image.fromarray(rgb).quantize(colors=16)
    pal.info["transparency"] = 0
    pal.save(buf, format="PNG", transparency=0)
    buf.seek(0)
    img = Image.open(buf)  # lazily loaded, palette + transparency
    assert img.mode == "P"
    return img, np.asarray(pal.convert("RGB"))


def _pil_pa() -> tuple[Any, U8]:
    rgb = u8(smooth(24, 40))
    img = Image.fromarray(rgb).quantize(colors=32).convert("PA")
    return img, np.asarray(img.convert("RGB"))


def _pil_1() -> tuple[Any, U8]:
    b = blocks(48, 72)
    img = Image.fromarray(b)
    assert img.mode == "1"
    return img, gray_rgb(b.astype(np.uint8) * 255)


def _pil_rgba() -> tuple[Any, U8]:
    rgba = u8(smooth(40, 56, 4))
    return Image.fromarray(rgba), rgba[:, :, :3].copy()


def _pil_convert(mode: str) -> Callable[[], tuple[Any, U8]]:
    def build() -> tuple[Any, U8]:
        img = Image.fromarray(u8(smooth(40, 56))).convert(mode)
        return img, np.asarray(img.convert("RGB"))

    return build


def _pil_i16() -> tuple[Any, U8]:
    v = np.rint(smooth(40, 56, 1)[:, :, 0] * 65535).astype(np.uint16)
    img = Image.fromarray(v)
    assert img.mode.startswith("I;16")
    return img, gray_rgb(np.rint(v / 257.0))


def _pil_i() -> tuple[Any, U8]:
    v = np.rint(smooth(40, 56, 1)[:, :, 0] * 65535).astype(np.int32)
    img = Image.fromarray(v)
    assert img.mode == "I"
    return img, gray_rgb(np.rint(v / 257.0))


def _pil_f() -> tuple[Any, U8]:
    v = smooth(40, 56, 1)[:, :, 0].astype(np.float32)
    img = Image.fromarray(v)
    assert img.mode == "F"
    return img, gray_rgb(np.rint(v.astype(np.float64) * 255))


def _arr(h: int, w: int, seed: int = 0) -> Callable[[], tuple[Any, U8]]:
    def build() -> tuple[Any, U8]:
        rgb = u8(smooth(h, w, seed=seed))
        return rgb, rgb

    return build


def _uint16() -> tuple[Any, U8]:
    v = np.rint(smooth(40, 56) * 65535).astype(np.uint16)
    v[0, :5, 0] = [0, 128, 129, 385, 65535]  # rounding edges of round(v / 257): 0, 0, 1, 1, 255
    expected = np.rint(v / 257.0).astype(np.uint8)
    assert list(expected[0, :5, 0]) == [0, 0, 1, 1, 255]
    return v, expected


def _float(dtype: Any) -> Callable[[], tuple[Any, U8]]:
    def build() -> tuple[Any, U8]:
        f = smooth(40, 56).astype(dtype)
        f[0, 0] = [0.0, 1.0, 0.5]
        return f, np.rint(f.astype(np.float64) * 255).astype(np.uint8)

    return build


def _bool() -> tuple[Any, U8]:
    b = blocks(48, 72)
    return b, gray_rgb(b.astype(np.uint8) * 255)


def _gray_hw1() -> tuple[Any, U8]:
    v = u8(smooth(40, 56, 1))
    return v, gray_rgb(v[:, :, 0])


def _gray_alpha_hw2() -> tuple[Any, U8]:
    v = u8(smooth(40, 56, 2))
    return v, gray_rgb(v[:, :, 0])


def _strided(kind: str) -> Callable[[], tuple[Any, U8]]:
    def build() -> tuple[Any, U8]:
        base = u8(smooth(80, 120))
        view = {"step": base[::2, ::3], "flipped": base[::-1, ::-1], "fortran": np.asfortranarray(base),
                "channel-first-view": np.moveaxis(np.ascontiguousarray(np.moveaxis(base, 2, 0)), 0, 2)}[kind]
        if kind == "step":
            view.flags.writeable = False
        return view, np.ascontiguousarray(view)

    return build


def _matrix() -> tuple[Any, U8]:
    v = u8(smooth(40, 56, 1)[:, :, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix is discouraged, still passed in
        return np.matrix(v), gray_rgb(v)


def _uint16_big_endian() -> tuple[Any, U8]:
    v, expected = _uint16()
    return v.astype(">u2"), expected


def _float_big_endian() -> tuple[Any, U8]:
    f = smooth(40, 56).astype(">f4")
    return f, np.rint(f.astype(np.float64) * 255).astype(np.uint8)


def _pil_png16_rgb() -> tuple[Any, U8]:
    """A 16-bit RGB PNG opened by Pillow (not loaded): every value, converted by round(v / 257)."""
    px = ramp16(3)
    return Image.open(io.BytesIO(png16(px))), np.rint(px / 257.0).astype(np.uint8)


ACCEPTED: dict[str, tuple[Callable[[], tuple[Any, U8]], float]] = {
    "pil-L": (_pil_l, 15),
    "pil-LA": (_pil_la, 15),
    "pil-P": (_pil_p, 15),
    "pil-P-png-transparency": (_pil_p_from_png, 15),
    "pil-PA": (_pil_pa, 15),
    "pil-1": (_pil_1, 15),
    "pil-RGBA": (_pil_rgba, 15),
    "pil-RGBX": (_pil_convert("RGBX"), 15),
    "pil-CMYK": (_pil_convert("CMYK"), 15),
    "pil-YCbCr": (_pil_convert("YCbCr"), 15),
    "pil-I;16": (_pil_i16, 15),
    "pil-I": (_pil_i, 15),
    "pil-F": (_pil_f, 15),
    "uint16": (_uint16, 15),
    "uint16-big-endian": (_uint16_big_endian, 15),
    "float32-big-endian": (_float_big_endian, 15),
    "np.matrix": (_matrix, 15),
    "pil-png16-RGB": (_pil_png16_rgb, 30),
    "float32": (_float(np.float32), 15),
    "float64": (_float(np.float64), 15),
    "float16": (_float(np.float16), 15),
    "bool": (_bool, 15),
    "gray-HxWx1": (_gray_hw1, 15),
    "gray-alpha-HxWx2": (_gray_alpha_hw2, 15),
    "1x1": (_arr(1, 1), 15),
    "1x2": (_arr(1, 2), 15),
    "1xN": (_arr(1, 37), 15),
    "Nx1": (_arr(37, 1), 15),
    "2x3": (_arr(2, 3), 15),
    "7x9": (_arr(7, 9), 15),
    "13x29": (_arr(13, 29), 15),
    "63x65": (_arr(63, 65), 15),
    "1x5000": (_arr(1, 5000), 15),
    "5000x1": (_arr(5000, 1), 15),
    "3x4000": (_arr(3, 4000), 15),
    "9x2050": (_arr(9, 2050), 15),
    "strided-readonly": (_strided("step"), 20),
    "negative-strides": (_strided("flipped"), 15),
    "fortran-order": (_strided("fortran"), 15),
    "non-contiguous-channels": (_strided("channel-first-view"), 15),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_accepted_input(synthetic_model: ModelSpec, name: str) -> None:
    build, tolerance = ACCEPTED[name]
    img, expected = build()
    converted = to_rgb_uint8(img)
    assert converted.dtype == np.uint8 and converted.flags.c_contiguous
    np.testing.assert_array_equal(converted, expected, err_msg=f"{name}: conversion differs from the rules")
    source = load_source(img)
    layout = source.pixels.shape if source.pixels.shape[2] > 1 else source.pixels.shape[:2]
    # lossless: the very pixels of the source, in its layout and bit depth (16 bits included)
    exact = api.decompress(api.compress(img, lossless=True))
    assert exact.shape == layout and exact.dtype == source.pixels.dtype, name
    np.testing.assert_array_equal(exact, source.pixels.reshape(layout), err_msg=f"{name}: lossless differs")
    # lossy: the same layout at 8 bits; RGB goes through the named VAE, other layouts the transform coder
    data = api.compress(img, 90, model=synthetic_model.name)
    out = api.decompress(data)
    assert out.shape == layout and out.dtype == np.uint8
    assert api.inspect(data).height == layout[0] and api.inspect(data).width == layout[1]
    pix8 = to_8bit(source.pixels).reshape(layout)
    if source.pixels.shape[2] == 3:
        # The synthetic model's lossless reconstruction is reference_roundtrip (a per-block projection);
        # what is left is quantisation error, small at quality 90.
        err = np.abs(out.astype(np.int16) - reference_roundtrip(pix8))
        assert float(err.mean()) <= 1.5 and int(err.max()) <= 8, f"{name}: error vs the model's reconstruction"
        loss = float(np.abs(out.astype(np.float64) - pix8).mean())
        assert loss <= tolerance, f"{name}: mean abs error {loss:.2f} > {tolerance} vs the converted input"
    else:
        loss = float(np.abs(out.astype(np.float64) - pix8).mean())
        assert loss <= 3.0, f"{name}: mean abs error {loss:.2f} of the transform coder at quality 90"
    assert api.compress(img, 90, model=synthetic_model.name) == data  # conversion is deterministic


# -- refused inputs -----------------------------------------------------------------------------

REFUSED: dict[str, tuple[Callable[[], Any], str]] = {
    "float-above-1": (lambda: np.where(np.eye(8)[:, :, None] > 0, 1.0001, smooth(8, 8)), r"\[0, 1\]"),
    "float-negative": (lambda: np.where(np.eye(8)[:, :, None] > 0, -1e-6, smooth(8, 8)).astype(np.float32),
                       r"\[0, 1\]"),
    "float-nan": (lambda: np.full((8, 8, 3), np.nan, np.float32), "NaN"),
    "float-inf": (lambda: np.full((8, 8), np.inf), "NaN or infinity"),
    "pil-F-out-of-range": (lambda: Image.fromarray(np.full((8, 8), 3.5, np.float32)), r"\[0, 1\]"),
    "pil-I-negative": (lambda: Image.fromarray(np.full((8, 8), -5, np.int32)), "0..65535"),
    "pil-I-too-large": (lambda: Image.fromarray(np.full((8, 8), 70000, np.int32)), "0..65535"),
    "pil-HSV": (lambda: Image.new("HSV", (8, 8)), "mode"),
    "pil-LAB": (lambda: Image.new("LAB", (8, 8)), "mode"),
    "int8": (lambda: np.zeros((8, 8, 3), np.int8), "dtype"),
    "int32": (lambda: np.zeros((8, 8, 3), np.int32), "dtype"),
    "int64": (lambda: np.zeros((8, 8), np.int64), "dtype"),
    "uint32": (lambda: np.zeros((8, 8, 3), np.uint32), "dtype"),
    "complex": (lambda: np.zeros((8, 8, 3), np.complex64), "dtype"),
    "object": (lambda: np.empty((8, 8, 3), dtype=object), "dtype"),
    "5-channels": (lambda: np.zeros((8, 8, 5), np.uint8), "shape"),
    "1-d": (lambda: np.zeros(64, np.uint8), "shape"),
    "4-d": (lambda: np.zeros((2, 8, 8, 3), np.uint8), "shape"),
    "0-d": (lambda: np.array(7, np.uint8), "shape"),
    "empty-rows": (lambda: np.zeros((0, 8, 3), np.uint8), "empty"),
    "empty-cols": (lambda: np.zeros((8, 0), np.uint8), "empty"),
    "list": (lambda: [[[0, 0, 0]]], "numpy array"),
    "none": (lambda: None, "numpy array"),
    "bytes-not-an-image": (lambda: b"\x89PNG....", "not an image file"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_input(synthetic_model: ModelSpec, name: str) -> None:
    build, message = REFUSED[name]
    img = build()
    with pytest.raises(ImageInputError, match=message) as info:
        api.compress(img, 50, model=synthetic_model.name)
    assert isinstance(info.value, VaeransError)
    with pytest.raises(ImageInputError):
        api.compress_batch([u8(smooth(8, 8)), img], 50, model=synthetic_model.name)


def test_truncated_file_is_an_image_input_error(synthetic_model: ModelSpec) -> None:
    """``compress(Image.open(truncated.png))`` raised a bare OSError."""
    buf = io.BytesIO()
    Image.fromarray(u8(smooth(64, 64))).save(buf, format="PNG")
    cut = buf.getvalue()[: len(buf.getvalue()) // 2]
    with pytest.raises(ImageInputError, match="truncated"):
        api.compress(Image.open(io.BytesIO(cut)), 50, model=synthetic_model.name)


def test_compress_refuses_over_max_pixels_before_decoding(synthetic_model: ModelSpec) -> None:
    """``compress`` had no pixel cap of its own: now ``[runtime] max_pixels`` applies to the declared size."""
    saved = get_config()
    set_config(Config(runtime=RuntimeConfig(max_pixels=100 * 100)))
    try:
        img = Image.open(io.BytesIO(declared_only(101, 100)))  # its pixel data is garbage: decoding would fail
        with pytest.raises(ImageInputError, match="max_pixels"):
            api.compress(img, 50, model=synthetic_model.name)
        assert img.tile  # refused from the header: nothing was decoded
        with pytest.raises(ImageInputError, match="max_pixels"):
            api.compress(np.zeros((101, 100), np.uint8), 50, model=synthetic_model.name)
        api.compress(np.zeros((100, 100), np.uint8), 50, model=synthetic_model.name)
    finally:
        set_config(saved)


# -- one large image ----------------------------------------------------------------------------


@pytest.mark.slow
def test_4096x4096(synthetic_model: ModelSpec) -> None:
    """Tiled encode/decode of 48 MiB of pixels with the synthetic model (a few seconds)."""
    n = 4096
    y = np.arange(n, dtype=np.uint16)[:, None]
    x = np.arange(n, dtype=np.uint16)[None, :]
    img = np.empty((n, n, 3), np.uint8)
    img[:, :, 0] = (x >> 4).astype(np.uint8)
    img[:, :, 1] = (y >> 4).astype(np.uint8)
    img[:, :, 2] = ((x + y) >> 5).astype(np.uint8)
    t0 = time.perf_counter()
    data = api.compress(img, 60, model=synthetic_model.name)
    out = api.decompress(data)
    seconds = time.perf_counter() - t0
    assert out.shape == img.shape
    err = np.abs(out.astype(np.int16) - img)
    assert float(err.mean()) < 3.0 and int(np.percentile(err, 99.9)) <= 12
    assert seconds < 20, f"4096x4096 round trip took {seconds:.1f} s"
