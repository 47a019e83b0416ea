"""load_source: PIL images and files to SourceImage (modes, 16-bit PNG at full depth, metadata, limits)."""

from __future__ import annotations

import io
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageCms

from tests.imaging.iccfiles import cmyk_gray_profile
from tests.imaging.pngfiles import chunk, declared_only, png16, ramp16
from vaerans_ecs.config import RuntimeConfig
from vaerans_ecs.errors import ImageInputError, VaeransError
from vaerans_ecs.imaging import SourceImage, load_source, open_formats, rgb_uint8, to_rgb_uint8


def _rgb(h: int = 24, w: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _file(img: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _srgb() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "vaerans test"
    return exif


# -- every PIL mode -----------------------------------------------------------------------------


def _palette_image(alpha: bool) -> Image.Image:
    img = Image.new("P", (7, 5))
    colours = [(255, 0, 0, 40), (0, 255, 0, 255), (0, 0, 255, 0)]
    img.putpalette(bytes(v for c in colours for v in (c if alpha else c[:3])), rawmode="RGBA" if alpha else "RGB")
    img.putdata([i % 3 for i in range(35)])
    return img


MODES: dict[str, tuple[Any, str, Any]] = {
    # name: (PIL image builder, stored mode, expected pixels builder from the image)
    "1": (lambda: Image.fromarray(_rgb()[:, :, 0] > 127), "1",
          lambda im: (np.asarray(im).astype(np.uint8) * 255)[:, :, None]),
    "L": (lambda: Image.fromarray(_rgb()[:, :, 0]), "L", lambda im: np.asarray(im)[:, :, None]),
    "LA": (lambda: Image.fromarray(_rgb()[:, :, :2].copy()), "LA", np.asarray),
    "La": (lambda: Image.fromarray(_rgb()[:, :, :2].copy()).convert("La"), "LA",
           lambda im: np.asarray(im.convert("LA"))),
    "L+trns": (lambda: _with(Image.fromarray(_rgb()[:, :, 0]), transparency=7), "LA",
               lambda im: np.asarray(im.convert("LA"))),
    "P": (lambda: _palette_image(False), "P", lambda im: np.asarray(im.convert("RGB"))),
    "P-rgba-palette": (lambda: _palette_image(True), "P", lambda im: np.asarray(im.convert("RGBA"))),
    "P+trns-index": (lambda: _with(_palette_image(False), transparency=1), "P",
                     lambda im: np.asarray(im.convert("RGBA"))),
    "PA": (lambda: _palette_image(False).convert("PA"), "P", lambda im: np.asarray(im.convert("RGBA"))),
    "RGB": (lambda: Image.fromarray(_rgb()), "RGB", np.asarray),
    "RGB+trns": (lambda: _with(Image.fromarray(_rgb()), transparency=(1, 2, 3)), "RGBA",
                 lambda im: np.asarray(im.convert("RGBA"))),
    "RGBA": (lambda: Image.fromarray(np.dstack([_rgb(), _rgb(seed=1)[:, :, 0]])), "RGBA", np.asarray),
    "RGBa": (lambda: Image.fromarray(np.dstack([_rgb(), _rgb(seed=1)[:, :, 0]])).convert("RGBa"), "RGBA",
             lambda im: np.asarray(im.convert("RGBA"))),
    "RGBX": (lambda: Image.fromarray(_rgb()).convert("RGBX"), "RGB", lambda im: np.asarray(im.convert("RGB"))),
    "YCbCr": (lambda: Image.fromarray(_rgb()).convert("YCbCr"), "RGB", lambda im: np.asarray(im.convert("RGB"))),
    "CMYK": (lambda: Image.fromarray(_rgb()).convert("CMYK"), "RGB", lambda im: np.asarray(im.convert("RGB"))),
    "I;16": (lambda: Image.fromarray(ramp16(1)[:, :, 0]), "I;16", lambda im: ramp16(1)),
    "I;16B": (lambda: Image.fromarray(ramp16(1)[:, :, 0].astype(">u2")), "I;16", lambda im: ramp16(1)),
    "I": (lambda: Image.fromarray(ramp16(1)[:, :, 0].astype(np.int32)), "I;16", lambda im: ramp16(1)),
    "F": (lambda: Image.fromarray(np.linspace(0, 1, 60, dtype=np.float32).reshape(6, 10)), "L",
          lambda im: np.rint(np.linspace(0, 1, 60).reshape(6, 10, 1) * 255).astype(np.uint8)),
}


def _with(img: Image.Image, **info: Any) -> Image.Image:
    img.info.update(info)
    return img


@pytest.mark.parametrize("name", list(MODES))
def test_pil_modes(name: str) -> None:
    build, mode, expect = MODES[name]
    img = build()
    src = load_source(img)
    assert src.mode == mode, name
    np.testing.assert_array_equal(src.pixels, expect(img), err_msg=name)
    assert src.pixels.flags.c_contiguous and not src.pixels.flags.writeable
    assert src.bit_depth == (16 if mode.endswith(";16") else 8)


@pytest.mark.parametrize("mode", ["HSV", "LAB"])
def test_pil_modes_refused(mode: str) -> None:
    with pytest.raises(ImageInputError, match="mode"):
        load_source(Image.new(mode, (4, 4)))


def test_cmyk_goes_through_its_icc_profile() -> None:
    """With a profile, CMYK converts through it to sRGB (tagged sRGB); without a usable one, by Pillow's formula."""
    cmyk = Image.fromarray(_rgb()).convert("CMYK")
    naive = np.asarray(cmyk.convert("RGB"))
    cmyk.info["icc_profile"] = cmyk_gray_profile()
    src = load_source(cmyk)
    assert src.mode == "RGB" and src.icc is not None and src.icc[16:20] == b"RGB "
    p = src.pixels.astype(int)
    assert (p[:, :, 0] == p[:, :, 1]).all() and (p[:, :, 1] == p[:, :, 2]).all()  # the profile's neutral grays
    assert not np.array_equal(src.pixels, naive)
    for bad in (b"not a profile" * 20, _srgb()):  # garbage, and a profile of the wrong colour space
        cmyk.info["icc_profile"] = bad
        src = load_source(cmyk)
        assert src.icc is None and src.mode == "RGB"
        np.testing.assert_array_equal(src.pixels, naive)


# -- files: truncation, corruption, formats, paths ----------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP"])
def test_truncated_files_raise_image_input_error(fmt: str) -> None:
    data = _file(Image.fromarray(_rgb(64, 64)), fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    for cut in (len(data) // 2, len(data) - 20, 40):
        for obj in (data[:cut], _lazy(data[:cut])):
            if obj is None:
                continue
            try:
                src = load_source(obj)
            except ImageInputError as exc:
                assert "decode" in str(exc) or "read" in str(exc)
            else:  # some formats (JPEG, GIF) fill a cut-off tail themselves; then the size must hold
                assert src.pixels.shape[:2] == (64, 64), (fmt, cut)


def _lazy(data: bytes) -> Image.Image | None:
    """What ``Image.open`` gives (not loaded), or None when even the header is cut."""
    try:
        return Image.open(io.BytesIO(data))
    except OSError:
        return None


def test_truncated_png_opened_by_pillow() -> None:
    """compress(Image.open(truncated.png)) raised OSError: the conversion now says what is wrong."""
    data = _file(Image.fromarray(_rgb(64, 64)), "PNG")
    with pytest.raises(ImageInputError, match="truncated"):
        to_rgb_uint8(Image.open(io.BytesIO(data[: len(data) // 2])))


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n", b"GIF89a" + b"\x00" * 20, b"hello world" * 10,
                                  b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", b"\x00" * 13)])
def test_garbage_raises_image_input_error(data: bytes) -> None:
    with pytest.raises(ImageInputError):
        load_source(data)


def test_eps_and_vae_are_not_opened() -> None:
    assert "EPS" not in open_formats() and "PNG" in open_formats()
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(ImageInputError, match="not an image file"):
        load_source(eps)


def test_paths_bytes_and_file_objects(tmp_path: Path) -> None:
    rgb = _rgb()
    path = tmp_path / "x.png"
    Image.fromarray(rgb).save(path)
    for obj in (path, str(path), path.read_bytes(), bytearray(path.read_bytes()), io.BytesIO(path.read_bytes())):
        src = load_source(obj)
        assert src.mode == "RGB"
        np.testing.assert_array_equal(src.pixels, rgb)
    with pytest.raises(FileNotFoundError):
        load_source(tmp_path / "missing.png")
    with pytest.raises(ImageInputError, match="expected"):
        load_source([1, 2, 3])


def test_first_frame_of_an_animation() -> None:
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (10, 200)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    src = load_source(buf.getvalue())
    assert src.pixels.shape == (8, 8, 3) and int(src.pixels.max()) == 10


# -- 16-bit PNG at full depth -------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("interlace", [False, True])
def test_png16_read_at_full_depth(channels: int, interlace: bool) -> None:
    """Every 16-bit value, all five row filters, with and without Adam7: read bit-exactly."""
    px = ramp16(channels)
    data = png16(px, interlace=interlace)
    src = load_source(data)
    assert src.mode == {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}[channels]
    np.testing.assert_array_equal(src.pixels, px)


def test_png16_rgb_to_8_bits_is_round_v_over_257() -> None:
    """Pillow keeps v >> 8 (16,256 of 65,536 values off by one); the 8-bit path is round(v / 257)."""
    px = ramp16(3)
    data = png16(px)
    expected = np.rint(px.astype(np.float64) / 257.0).astype(np.uint8)
    assert int((np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) != expected).sum()) == 3 * 16256
    np.testing.assert_array_equal(rgb_uint8(load_source(data)), expected)
    np.testing.assert_array_equal(to_rgb_uint8(Image.open(io.BytesIO(data))), expected)  # not loaded yet


def test_png16_written_by_libpng() -> None:
    imagecodecs = pytest.importorskip("imagecodecs")
    for channels in (3, 4):
        px = ramp16(channels)
        np.testing.assert_array_equal(load_source(imagecodecs.png_encode(px)).pixels, px)


def test_png16_user_image_left_unloaded_and_file_position_kept() -> None:
    data = png16(ramp16(3))
    fp = io.BytesIO(data)
    img = Image.open(fp)
    fp.seek(5)
    src = load_source(img)
    assert fp.tell() == 5 and img.tile  # the caller's image is not decoded
    np.testing.assert_array_equal(src.pixels, ramp16(3))
    img.load()  # and still loads normally afterwards
    assert img.size == (256, 256)


def test_png16_transparency_key_and_exif_after_pixels() -> None:
    px = ramp16(3)[:4, :4].copy()
    key = tuple(int(v) for v in px[1, 2])
    trns = chunk(b"tRNS", np.asarray(key, ">u2").tobytes())
    exif = _exif(6).tobytes()[6:]
    src = load_source(png16(px, extra=trns, trailing=chunk(b"eXIf", exif)))
    assert src.mode == "RGBA;16"
    np.testing.assert_array_equal(src.pixels[:, :, :3], px)
    alpha = np.full((4, 4), 65535, np.uint16)
    alpha[1, 2] = 0
    np.testing.assert_array_equal(src.pixels[:, :, 3], alpha)
    assert src.exif == exif


# -- the pixel cap, before decoding -------------------------------------------------------------


def test_pixel_cap_is_checked_before_decoding() -> None:
    """A PNG declaring 12000x12000 over a few bytes of data: refused from the header, nothing decoded."""
    bomb = declared_only(12000, 12000)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ImageInputError, match="max_pixels = 1000000"):
        load_source(bomb, max_pixels=10**6)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 1.0 and peak < 8 << 20
    with pytest.raises(ImageInputError, match="max_pixels"):
        to_rgb_uint8(Image.open(io.BytesIO(bomb)), max_pixels=10**6)
    with pytest.raises(ImageInputError, match="max_pixels"):
        to_rgb_uint8(np.zeros((1001, 1000), np.uint8), max_pixels=10**6)
    assert load_source(np.zeros((1000, 1000), np.uint8), max_pixels=10**6).mode == "L"


def test_default_max_pixels_is_pillows_hard_limit() -> None:
    """Pillow opens no file over 2 * MAX_IMAGE_PIXELS; the default was 268 M, above it."""
    assert RuntimeConfig().max_pixels == 2 * Image.MAX_IMAGE_PIXELS == 178_956_970


def test_pillows_bomb_limit_becomes_image_input_error() -> None:
    bomb = declared_only(20000, 10000)  # 200 M pixels: over Pillow's limit, under a raised max_pixels
    with pytest.raises(ImageInputError, match="decompression-bomb"):
        load_source(bomb, max_pixels=10**9)


# -- metadata -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF"])
def test_icc_and_exif_captured_from_files(fmt: str) -> None:
    icc = _srgb()
    kwargs: dict[str, Any] = {"icc_profile": icc}
    if fmt != "TIFF":
        kwargs["exif"] = _exif(6)
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = 95
    src = load_source(_file(Image.fromarray(_rgb()), fmt, **kwargs))
    assert src.icc == icc
    if fmt == "TIFF":
        assert src.exif is None
    else:
        assert src.exif is not None and src.exif[:4] in (b"II*\x00", b"MM\x00*")
        assert Image.Exif().__class__  # the block is what Pillow reads back
        block = Image.Exif()
        block.load(src.exif)
        assert block[0x0112] == 6 and block[0x010F] == "vaerans test"
    assert src.pixels.shape == (24, 40, 3)  # stored orientation: never rotated


def test_tiff_orientation_is_applied_by_pillow_and_not_carried() -> None:
    """Pillow turns a TIFF upright while decoding it and drops the tag: carrying it would rotate twice."""
    rgb = _rgb()
    src = load_source(_file(Image.fromarray(rgb), "TIFF", tiffinfo={0x0112: 6}))
    assert src.exif is None and src.pixels.shape == (40, 24, 3)
    np.testing.assert_array_equal(src.pixels, np.rot90(rgb, -1))


def test_pixels_are_never_rotated() -> None:
    """The same rule for arrays, PIL images and files: EXIF orientation 6 leaves the pixels as stored."""
    rgb = _rgb()
    data = _file(Image.fromarray(rgb), "PNG", exif=_exif(6))
    for obj in (data, Image.open(io.BytesIO(data))):
        src = load_source(obj)
        assert src.exif is not None
        np.testing.assert_array_equal(src.pixels, rgb)
        np.testing.assert_array_equal(rgb_uint8(src), rgb)


def test_malformed_exif_is_dropped() -> None:
    img = Image.fromarray(_rgb())
    img.info["exif"] = b"Exif\x00\x00garbage"
    assert load_source(img).exif is None


def test_source_image_validates() -> None:
    px = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(ImageInputError, match="mode"):
        SourceImage(px, "CMYK")
    with pytest.raises(ImageInputError, match="channels"):
        SourceImage(px, "L")
    with pytest.raises(ImageInputError, match="8-bit"):
        SourceImage(px, "RGB", bit_depth=16)
    with pytest.raises(ImageInputError, match="uint16"):
        SourceImage(px, "RGB;16", bit_depth=16)
    with pytest.raises(ImageInputError, match="0 or 255"):
        SourceImage(np.ones((2, 2, 1), np.uint8), "1")
    with pytest.raises(ImageInputError, match="TIFF header"):
        SourceImage(px, "RGB", exif=b"junk")
    with pytest.raises(ImageInputError, match="empty"):
        SourceImage(px, "RGB", icc=b"")
    with pytest.raises(VaeransError, match="C-contiguous"):
        SourceImage(np.asfortranarray(np.zeros((2, 3, 3), np.uint8)), "RGB")
    ok = SourceImage(px, "P")
    assert ok.meta.mode == "P" and ok.meta.bit_depth == 8 and not ok.pixels.flags.writeable
    assert px.flags.writeable  # the caller's array is left writable
