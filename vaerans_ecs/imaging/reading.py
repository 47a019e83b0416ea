"""Reading sources: PIL images and files (through Pillow) to :class:`SourceImage`, and the dispatch.

Every check that bounds work (the pixel cap) runs on the declared size, before pixels are
decoded. Whatever Pillow raises while decoding a file becomes :class:`ImageInputError`.
"""

from __future__ import annotations

import io
import logging
import os
from typing import IO, Any, Final

import numpy as np
import numpy.typing as npt

from vaerans_ecs.errors import ImageInputError
from vaerans_ecs.imaging.source import (
    MAX_METADATA_BYTES,
    SourceImage,
    check_pixel_count,
    normalise_exif,
    rgb_uint8,
    source_from_array,
)

__all__ = ["is_pil_image", "load_source", "open_formats", "source_from_pil", "to_rgb_uint8"]

log = logging.getLogger(__name__)

#: Pillow formats never used to read a source: EPS runs Ghostscript on the file; a .vae stream is
#: not a source image (decompress it first).
REFUSED_FORMATS: Final[frozenset[str]] = frozenset({"EPS", "VAERANS"})
#: 16-bit PNG raw modes Pillow reduces to 8 bits, and how to read them whole: the raw modes whose
#: two decodes give the high and the low bytes, or one raw mode that copies all the bytes.
_WIDE_PNG: Final[dict[str, tuple[str, ...]]] = {
    "RGB;16B": ("RGB;16B", "RGB;16L"),
    "RGBA;16B": ("RGBA;16B", "RGBA;16L"),
    "LA;16B": ("RGBA",),
}


def is_pil_image(obj: Any) -> bool:
    """True for a PIL.Image.Image, without importing Pillow when it is not loaded."""
    import sys

    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(obj, pil.Image)


def _default_max_pixels() -> int:
    from vaerans_ecs.config import get_config

    return get_config().runtime.max_pixels


def open_formats() -> tuple[str, ...]:
    """Pillow formats :func:`load_source` reads files with (all registered ones but :data:`REFUSED_FORMATS`)."""
    from PIL import Image

    Image.init()
    return tuple(f for f in Image.ID if f not in REFUSED_FORMATS)


def _icc_of(img: Any) -> bytes | None:
    icc = img.info.get("icc_profile")
    if not isinstance(icc, (bytes, bytearray)) or not icc:
        return None
    if len(icc) > MAX_METADATA_BYTES:
        raise ImageInputError(f"ICC profile of {len(icc)} bytes exceeds the {MAX_METADATA_BYTES}-byte limit")
    return bytes(icc)


def _exif_of(img: Any) -> bytes | None:
    """The source's EXIF block (TIFF orientation needs none: Pillow applies that tag when decoding)."""
    return normalise_exif(img.info.get("exif"))


def _wide_png(img: Any) -> tuple[npt.NDArray[np.uint16], dict[Any, Any]] | None:
    """All 16 bits of a 16-bit colour PNG Pillow has not loaded yet (it would keep ``v >> 8``), and its info.

    Pillow's own PNG decoder undoes zlib and the row filters; choosing the raw mode of the
    decoded rows picks which bytes it keeps. The file is opened again from ``img.fp`` (twice
    for RGB/RGBA, once for gray+alpha); ``img`` itself is left unloaded. None for any other image.
    """
    from PIL import Image

    tiles = getattr(img, "tile", None)
    if getattr(img, "format", None) != "PNG" or not tiles or len(tiles) != 1:
        return None
    plan = _WIDE_PNG.get(tiles[0].args if isinstance(tiles[0].args, str) else "")
    fp = getattr(img, "fp", None)
    if plan is None or fp is None:
        return None
    where = fp.tell()
    planes = []
    info: dict[Any, Any] = {}
    try:
        for rawmode in plan:
            with Image.open(fp, formats=["PNG"]) as twin:
                if twin.size != img.size or twin.mode != img.mode or twin.tile != tiles:
                    raise ImageInputError("the PNG changed while it was being read")
                twin.tile = [tiles[0]._replace(args=rawmode)]
                twin.load()
                planes.append(np.asarray(twin))
                info = dict(twin.info)  # complete once loaded (an eXIf chunk may follow the pixels)
    finally:
        fp.seek(where)
    if len(planes) == 2:
        return (planes[0].astype(np.uint16) << 8) | planes[1], info
    h, w = planes[0].shape[:2]  # gray+alpha: bytes Lhi Llo Ahi Alo per pixel
    return planes[0].view(">u2").reshape(h, w, 2).astype(np.uint16), info


def _keyed_alpha(pixels: npt.NDArray[np.uint16], key: Any) -> npt.NDArray[np.uint16]:
    """Add the alpha a PNG tRNS colour key means (0 where the colour equals the key) to 16-bit pixels."""
    values = key if isinstance(key, tuple) else (key,)
    if len(values) != pixels.shape[2]:
        return pixels
    hit = np.all(pixels == np.asarray(values, dtype=np.uint16), axis=2)
    alpha = np.where(hit, np.uint16(0), np.uint16(65535))
    return np.ascontiguousarray(np.concatenate([pixels, alpha[:, :, None]], axis=2))


def _cmyk_to_rgb(img: Any, icc: bytes | None) -> tuple[npt.NDArray[np.uint8], bytes | None]:
    """CMYK to RGB: through its ICC profile to sRGB when it has one (then tagged sRGB), else Pillow's formula."""
    if icc is not None:
        try:
            from PIL import ImageCms

            srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            rgb = ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(icc)), srgb, outputMode="RGB")
            if rgb is not None:
                return np.asarray(rgb), srgb.tobytes()
        except Exception as exc:  # ImageCms.PyCMSError (a bad or mismatched profile), ImportError
            log.warning("CMYK image: its ICC profile cannot be applied (%s); converting without it", exc)
    return np.asarray(img.convert("RGB")), None


def _pil_pixels(img: Any, icc: bytes | None) -> tuple[npt.NDArray[Any], str, bytes | None]:
    """(pixels as an array the array rules read, mode override or "", ICC) for a PIL image."""
    mode = img.mode
    trns = "transparency" in img.info
    if mode == "1":
        return np.asarray(img), "1", icc
    if mode in ("P", "PA"):
        alpha = mode == "PA" or trns or (img.palette is not None and img.palette.mode == "RGBA")
        return np.asarray(img.convert("RGBA" if alpha else "RGB")), "P", icc
    if mode == "L" and trns:
        return np.asarray(img.convert("LA")), "", icc
    if mode == "RGB" and trns:
        return np.asarray(img.convert("RGBA")), "", icc
    if mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(img), "", icc
    if mode in ("La", "RGBa", "RGBX", "YCbCr"):
        return np.asarray(img.convert({"La": "LA", "RGBa": "RGBA"}.get(mode, "RGB"))), "", icc
    if mode == "CMYK":
        rgb, profile = _cmyk_to_rgb(img, icc)
        return rgb, "", profile
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img)
        if mode == "I" and (arr.min(initial=0) < 0 or arr.max(initial=0) > 65535):
            raise ImageInputError(f"PIL mode {mode} values outside 0..65535 are not supported")
        wide = arr.astype(np.uint16)[:, :, None]
        if trns:
            wide = _keyed_alpha(wide, img.info["transparency"])
        return wide, "", icc
    if mode == "F":
        return np.asarray(img), "", icc
    raise ImageInputError(f"unsupported PIL image mode {mode!r}")


def source_from_pil(img: Any, max_pixels: int) -> SourceImage:
    """Describe a PIL image (first frame); its size is checked against ``max_pixels`` before decoding."""
    from PIL import Image

    width, height = img.size
    check_pixel_count(width, height, max_pixels)
    try:
        icc = _icc_of(img)
        wide = _wide_png(img) if img.mode in ("RGB", "RGBA") else None
        if wide is not None:
            pixels, info = wide
            if "transparency" in info and pixels.shape[2] == 3:
                pixels = _keyed_alpha(pixels, info["transparency"])
            mode, exif = "", normalise_exif(info.get("exif"))
        else:
            pixels, mode, icc = _pil_pixels(img, icc)
            exif = _exif_of(img)  # after decoding: a PNG's eXIf chunk may follow its pixels
    except ImageInputError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageInputError(f"refused by Pillow's decompression-bomb check: {exc}") from None
    except MemoryError:
        raise ImageInputError(f"not enough memory to decode a {width}x{height} image") from None
    except Exception as exc:  # Pillow raises many types for a bad file; all mean the same
        raise ImageInputError(f"cannot decode image: {type(exc).__name__}: {exc}") from None
    source = source_from_array(pixels, max_pixels, icc=icc, exif=exif)
    if mode:
        return SourceImage(source.pixels, mode, source.icc, source.exif, source.bit_depth)
    return source


def _open_and_read(fp: IO[bytes], max_pixels: int) -> SourceImage:
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(fp, formats=open_formats())
    except UnidentifiedImageError:
        raise ImageInputError("not an image file Pillow can read (unknown or corrupt format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageInputError(f"refused by Pillow's decompression-bomb check: {exc}") from None
    except Exception as exc:  # a broken header raises many types; all mean the same
        raise ImageInputError(f"cannot read image header: {type(exc).__name__}: {exc}") from None
    with img:
        frames = getattr(img, "n_frames", 1)
        if frames > 1:
            log.info("%s image with %d frames: only the first is read", img.format, frames)
        return source_from_pil(img, max_pixels)


def load_source(obj: Any, *, max_pixels: int | None = None) -> SourceImage:
    """Describe ``obj`` as a :class:`SourceImage`: an array, a PIL image, a file path, bytes or a binary file.

    ``max_pixels`` (default ``[runtime] max_pixels``) is checked against the declared size
    before any pixel is decoded or copied. A path that cannot be opened raises the ``OSError``
    of ``open``; a file Pillow cannot read or decode raises :class:`ImageInputError`.
    """
    limit = _default_max_pixels() if max_pixels is None else max_pixels
    if isinstance(obj, SourceImage):
        check_pixel_count(obj.width, obj.height, limit)
        return obj
    if isinstance(obj, np.ndarray):
        return source_from_array(obj, limit)
    if is_pil_image(obj):
        return source_from_pil(obj, limit)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _open_and_read(io.BytesIO(bytes(obj)), limit)
    if isinstance(obj, (str, os.PathLike)):
        with open(obj, "rb") as fh:
            return _open_and_read(fh, limit)
    if hasattr(obj, "read"):
        return _open_and_read(obj, limit)
    raise ImageInputError(
        f"expected a numpy array, a PIL image, a path, bytes or a binary file, got {type(obj).__name__}"
    )


def to_rgb_uint8(img: Any, *, max_pixels: int | None = None) -> npt.NDArray[np.uint8]:
    """HxWx3 uint8 for the lossy path from an array, a PIL image or a :class:`SourceImage`.

    The rules of :func:`load_source`, then :func:`~vaerans_ecs.imaging.source.rgb_uint8`
    (alpha dropped, gray replicated, 16-bit ``round(v / 257)``). Paths and bytes are refused
    here (``compress`` takes images, not files): read a file with :func:`load_source`.
    """
    if not (isinstance(img, (SourceImage, np.ndarray)) or is_pil_image(img)):
        raise ImageInputError(
            f"expected a numpy array, a PIL image or a SourceImage, got {type(img).__name__}; pass "
            "np.asarray(img) for array-likes, load_source(path) for a file"
        )
    return rgb_uint8(load_source(img, max_pixels=max_pixels))
