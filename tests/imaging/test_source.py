"""The array rules: any numpy array to SourceImage, and the lossy path's HxWx3 uint8 view of it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaerans_ecs.errors import ImageInputError
from vaerans_ecs.imaging import load_source, rgb_uint8

DTYPES = ["|u1", "<u2", ">u2", "|b1", "<f4", ">f4", "<f8", ">f8", "<f2"]


def _expected_rgb(arr: np.ndarray) -> np.ndarray:
    """The documented rules, written out once more in float arithmetic."""
    a = arr[:, :, None] if arr.ndim == 2 else arr
    a = a[:, :, :3] if a.shape[2] >= 3 else a[:, :, :1]
    kind = a.dtype.kind
    if kind == "b":
        v = a.astype(np.float64) * 255
    elif kind == "u" and a.dtype.itemsize == 2:
        v = np.floor(a.astype(np.float64) / 257 + 0.5)
    elif kind == "f":
        v = np.rint(a.astype(np.float64) * 255)
    else:
        v = a.astype(np.float64)
    return np.broadcast_to(v, (*v.shape[:2], 3)).astype(np.uint8)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    channels = draw(st.sampled_from([0, 1, 2, 3, 4]))
    shape = (h, w) if channels == 0 else (h, w, channels)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind == "b":
        arr = rng.integers(0, 2, shape).astype(bool)
    elif dtype.kind == "f":
        arr = rng.random(shape).astype(dtype)
    else:
        arr = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    layout = draw(st.sampled_from(["c", "fortran", "reversed", "matrix"]))
    if layout == "fortran":
        arr = np.asfortranarray(arr)
    elif layout == "reversed":
        arr = arr[::-1, ::-1]
    elif layout == "matrix" and arr.ndim == 2:
        arr = arr.view(np.matrix)
    return arr


@settings(max_examples=200, deadline=None, derandomize=True)
@given(arrays())
def test_array_rules(arr: np.ndarray) -> None:
    src = load_source(arr, max_pixels=10**6)
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    assert src.pixels.shape == (*arr.shape[:2], channels) and src.pixels.flags.c_contiguous
    wide = arr.dtype.kind == "u" and arr.dtype.itemsize == 2
    assert src.bit_depth == (16 if wide else 8) and src.pixels.dtype.isnative
    if arr.dtype.kind == "b" and channels == 1:
        assert src.mode == "1"
    else:
        names = ("I;16", "LA;16", "RGB;16", "RGBA;16") if wide else ("L", "LA", "RGB", "RGBA")
        assert src.mode == names[channels - 1]
    if wide or arr.dtype.kind == "u":
        np.testing.assert_array_equal(src.pixels.reshape(arr.shape), np.asarray(arr))  # values kept exactly
    rgb = rgb_uint8(src)
    assert rgb.dtype == np.uint8 and rgb.shape == (*arr.shape[:2], 3)
    np.testing.assert_array_equal(rgb, _expected_rgb(np.asarray(arr)))


def test_sixteen_bit_gray_mode_name() -> None:
    assert load_source(np.zeros((2, 2), ">u2")).mode == "I;16"


def test_masked_arrays() -> None:
    data = np.zeros((4, 4), np.uint8)
    assert load_source(np.ma.masked_array(data, mask=False)).mode == "L"
    with pytest.raises(ImageInputError, match="masked"):
        load_source(np.ma.masked_array(data, mask=np.eye(4, dtype=bool)))


def test_no_copy_for_plain_uint8_and_the_callers_array_stays_writable() -> None:
    arr = np.zeros((5, 6, 3), np.uint8)
    src = load_source(arr)
    assert np.shares_memory(src.pixels, arr) and arr.flags.writeable and not src.pixels.flags.writeable
    assert np.shares_memory(rgb_uint8(src), arr)
