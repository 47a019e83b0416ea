"""Output: restore_image (the source's mode back), encode_image / save_image (formats, quality, ICC, EXIF)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageOps

from vaerans_ecs.errors import VaeransError
from vaerans_ecs.imaging import (
    EXIF_FORMATS,
    LOSSY_FORMATS,
    ImageMeta,
    encode_image,
    image_format,
    is_lossy_format,
    load_source,
    restore_image,
    save_image,
)


def _rgb(h: int = 12, w: int = 20, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _profile(space: str) -> bytes:
    if space == "RGB":
        return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    # a gray profile: Pillow cannot create one, so relabel the sRGB profile's colour space (only the label is read)
    data = bytearray(_profile("RGB"))
    data[16:20] = b"GRAY"
    return bytes(data)


def _exif_block(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "vaerans test"
    return exif.tobytes()[6:]


def _reopen(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


# -- restore_image: the mode comes back ---------------------------------------------------------


def test_gray_from_an_rgb_decode_is_the_rounded_mean() -> None:
    rgb = np.array([[[10, 11, 13], [0, 0, 1], [0, 0, 2], [255, 254, 255]]], np.uint8)
    img = restore_image(rgb, ImageMeta("L"))
    assert img.mode == "L"
    assert np.asarray(img).tolist() == [[11, 0, 1, 255]]  # round((10+11+13)/3) = 11, 1/3 -> 0, 2/3 -> 1


def test_bilevel_comes_back_only_when_exact() -> None:
    exact = np.where(np.eye(6, dtype=bool)[:, :, None], 255, 0).astype(np.uint8).repeat(3, axis=2)
    img = restore_image(exact, ImageMeta("1"))
    assert img.mode == "1" and np.array_equal(np.asarray(img), np.eye(6, dtype=bool))
    noisy = exact.copy()
    noisy[0, 1] = 3
    assert restore_image(noisy, ImageMeta("1")).mode == "L"


def test_palette_when_at_most_256_colours() -> None:
    rng = np.random.default_rng(3)
    colours = rng.integers(0, 256, (256, 4), dtype=np.uint8)
    idx = rng.integers(0, 256, (30, 40))
    idx.flat[:256] = np.arange(256)
    rgba = colours[idx]
    img = restore_image(rgba, ImageMeta("P"))
    assert img.mode == "P" and img.palette.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(img.convert("RGBA")), rgba)
    img = restore_image(rgba[:, :, :3], ImageMeta("P"))  # alpha not decoded: an RGB palette
    assert img.mode == "P" and img.palette.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img.convert("RGB")), rgba[:, :, :3])
    many = _rgb(40, 40)  # ~1,600 colours
    assert restore_image(many, ImageMeta("P")).mode == "RGB"


@pytest.mark.parametrize(("meta_mode", "channels", "want"), [
    ("LA", 2, "LA"), ("LA", 3, "L"), ("RGBA", 4, "RGBA"), ("RGBA", 3, "RGB"), ("RGB", 4, "RGB"),
    ("L", 1, "L"), ("RGB", 1, "RGB"), ("I;16", 3, "L"), ("RGB;16", 3, "RGB"),
])
def test_alpha_and_depth_follow_what_was_decoded(meta_mode: str, channels: int, want: str) -> None:
    px = np.random.default_rng(0).integers(0, 256, (5, 7, channels), dtype=np.uint8)
    assert restore_image(px, ImageMeta(meta_mode)).mode == want


def test_sixteen_bit() -> None:
    gray = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)
    img = restore_image(gray, ImageMeta("I;16"))
    assert img.mode == "I;16" and np.array_equal(np.asarray(img), gray)
    with pytest.raises(VaeransError, match="16-bit"):
        restore_image(np.zeros((2, 2, 3), np.uint16), ImageMeta("RGB;16"))


def test_icc_kept_only_for_its_colour_space() -> None:
    rgb_icc, gray_icc = _profile("RGB"), _profile("GRAY")
    assert restore_image(_rgb(), ImageMeta("RGB", icc=rgb_icc)).info["icc_profile"] == rgb_icc
    assert "icc_profile" not in restore_image(_rgb(), ImageMeta("RGB", icc=gray_icc)).info
    assert restore_image(_rgb()[:, :, :1], ImageMeta("L", icc=gray_icc)).info["icc_profile"] == gray_icc
    assert "icc_profile" not in restore_image(_rgb()[:, :, :1], ImageMeta("L", icc=rgb_icc)).info


# -- lossless round trips through files ---------------------------------------------------------


@st.composite
def sources(draw: st.DrawFn) -> tuple[np.ndarray, str]:
    mode = draw(st.sampled_from(["1", "L", "LA", "RGB", "RGBA", "P", "P4", "I;16", "LA;16", "RGB;16", "RGBA;16"]))
    h, w = draw(st.integers(1, 17)), draw(st.integers(1, 17))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if mode == "1":
        return rng.integers(0, 2, (h, w, 1)).astype(np.uint8) * 255, mode
    if mode.startswith("P"):
        channels = 4 if mode == "P4" else 3
        palette = rng.integers(0, 256, (draw(st.integers(1, 256)), channels), dtype=np.uint8)
        return palette[rng.integers(0, len(palette), (h, w))], "P"
    channels = {"L": 1, "I": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode.split(";")[0]]
    dtype = np.uint16 if mode.endswith(";16") else np.uint8
    return rng.integers(0, np.iinfo(dtype).max + 1, (h, w, channels), dtype=dtype), mode


@settings(max_examples=60, deadline=None, derandomize=True)
@given(sources(), st.sampled_from(["png", "tiff"]))
def test_lossless_round_trip_through_files(source: tuple[np.ndarray, str], fmt: str) -> None:
    """Every stored mode, written (PNG; TIFF where Pillow has the mode) and read back: same mode, same pixels."""
    pixels, mode = source
    if mode in ("LA;16", "RGB;16", "RGBA;16"):
        fmt = "png"
    data = encode_image(pixels, ImageMeta(mode), fmt)
    back = load_source(data)
    palette_alpha_lost = mode == "P" and pixels.shape[2] == 4 and fmt != "png"  # TIFF palettes have no alpha
    assert back.mode == ("RGBA" if palette_alpha_lost else mode)
    np.testing.assert_array_equal(back.pixels, pixels)


# -- formats, quality, metadata -----------------------------------------------------------------


def test_image_format() -> None:
    assert image_format("png") == image_format(".PNG") == image_format("out/x.png") == "PNG"
    assert image_format("x.jpg") == image_format("jpeg") == "JPEG"
    assert image_format(Path("a.webp")) == "WEBP"
    with pytest.raises(VaeransError, match="writable extensions"):
        image_format("x.unknown")
    with pytest.raises(VaeransError, match="not a format"):
        image_format("x.vae")
    assert is_lossy_format("y.webp") and is_lossy_format("y.jpg") and not is_lossy_format("y.png")


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_lossy_formats_need_a_quality(fmt: str) -> None:
    """Pillow's defaults (JPEG q75, WebP q80) are never applied silently."""
    with pytest.raises(VaeransError, match="quality"):
        encode_image(_rgb(), ImageMeta(), fmt)
    low = encode_image(_rgb(64, 64), ImageMeta(), fmt, quality=20)
    high = encode_image(_rgb(64, 64), ImageMeta(), fmt, quality=95)
    assert len(low) < len(high)
    with pytest.raises(VaeransError, match=r"1\.\.100"):
        encode_image(_rgb(), ImageMeta(), fmt, quality=0)


def test_lossless_formats_refuse_a_quality() -> None:
    with pytest.raises(VaeransError, match="lossless"):
        encode_image(_rgb(), ImageMeta(), "png", quality=90)


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_icc_and_exif_restored_to_files(fmt: str) -> None:
    icc = _profile("RGB")
    exif = _exif_block(6)
    q = 95 if image_format(fmt) in LOSSY_FORMATS else None
    img = _reopen(encode_image(_rgb(), ImageMeta("RGB", icc=icc, exif=exif), fmt, quality=q))
    assert img.info.get("icc_profile") == icc
    assert img.getexif()[0x0112] == 6 and img.getexif()[0x010F] == "vaerans test"
    assert img.size == (20, 12)  # stored orientation; the viewer rotates
    src = load_source(encode_image(_rgb(), ImageMeta("RGB", icc=icc, exif=exif), fmt, quality=q))
    assert src.icc == icc and src.exif is not None


@pytest.mark.parametrize("fmt", ["bmp", "tiff", "ppm"])
def test_formats_without_exif_get_the_orientation_applied(fmt: str) -> None:
    assert image_format(fmt) not in EXIF_FORMATS
    rgb = _rgb()
    for orientation in range(1, 9):
        pil = Image.fromarray(rgb)
        pil.info["exif"] = b"Exif\x00\x00" + _exif_block(orientation)
        upright = np.asarray(ImageOps.exif_transpose(pil))
        got = np.asarray(_reopen(encode_image(rgb, ImageMeta("RGB", exif=_exif_block(orientation)), fmt)))
        np.testing.assert_array_equal(got, upright, err_msg=f"orientation {orientation}")


def test_sixteen_bit_colour_only_as_png() -> None:
    px = np.random.default_rng(0).integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    with pytest.raises(VaeransError, match="PNG only"):
        encode_image(px, ImageMeta("RGB;16"), "tiff")
    icc = _profile("RGB")
    back = load_source(encode_image(px, ImageMeta("RGB;16", icc=icc, exif=_exif_block(3)), "png"))
    assert back.mode == "RGB;16" and back.icc == icc and back.exif == _exif_block(3)
    np.testing.assert_array_equal(back.pixels, px)


def test_palette_and_bilevel_expand_for_formats_without_them() -> None:
    rgb = np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8).repeat(8, axis=0).repeat(8, axis=1)
    img = _reopen(encode_image(rgb, ImageMeta("P"), "jpg", quality=95))
    assert img.mode == "RGB"
    bits = np.zeros((8, 8, 1), np.uint8)
    bits[::2] = 255
    assert _reopen(encode_image(bits, ImageMeta("1"), "webp", quality=90)).mode in ("L", "RGB")


def test_gif_refuses_more_than_256_colours() -> None:
    with pytest.raises(VaeransError, match="256 colours"):
        encode_image(_rgb(40, 40), ImageMeta("RGB"), "gif")
    assert _reopen(encode_image(_rgb(40, 40)[:, :, :1], ImageMeta("L"), "gif")).size == (40, 40)


def test_alpha_into_jpeg_is_a_clear_error() -> None:
    with pytest.raises(VaeransError, match="cannot write a RGBA image as JPEG"):
        encode_image(np.zeros((4, 4, 4), np.uint8), ImageMeta("RGBA"), "jpg", quality=90)


def test_save_image(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    save_image(target, _rgb(), ImageMeta())
    np.testing.assert_array_equal(load_source(target).pixels, _rgb())
    with pytest.raises(FileExistsError):
        save_image(target, _rgb(seed=1), ImageMeta())
    np.testing.assert_array_equal(load_source(target).pixels, _rgb())  # untouched
    save_image(target, _rgb(seed=1), ImageMeta(), overwrite=True)
    np.testing.assert_array_equal(load_source(target).pixels, _rgb(seed=1))
    save_image(tmp_path / "x.bin", _rgb(), ImageMeta(), fmt="webp", quality=90)
    assert Image.open(tmp_path / "x.bin").format == "WEBP"
    with pytest.raises(FileNotFoundError):
        save_image(tmp_path / "missing" / "x.png", _rgb(), ImageMeta())  # folders are not created
    with pytest.raises(VaeransError, match="quality"):
        save_image(tmp_path / "y.jpg", _rgb(), ImageMeta())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "x.bin"]  # no temporary file left


def test_meta_validates() -> None:
    with pytest.raises(VaeransError):
        ImageMeta("CMYK")
    with pytest.raises(VaeransError):
        ImageMeta("RGB", exif=b"Exif\x00\x00MM\x00*")  # the prefixed form is not the stored form
    assert ImageMeta("RGBA;16").bit_depth == 16 and ImageMeta("P").channels == (3, 4)
